// fd2_checks: checks of the fd2 work (locks, file states, terminals) that a
// round trip cannot make: ckpt must refuse, or the world must change
// between dump and restore.
//
//   fd2_checks --ckpt PATH --workdir DIR
//
// Sub-checks (each prints "[ OK ] name" or "[FAIL] name: reason"):
//   tty-outside      a process holding a pty slave whose master is outside
//                    the dumped tree: without --shell-job the dump fails with
//                    "pid N fd M: terminal /dev/pts/K is outside the dumped
//                    tree (use --shell-job)"; with --shell-job it dumps.
//   pty-slave-outside  a process holding a pty master whose slave another
//                    process outside the tree holds: refused, naming it.
//   file-shrank      the file under an fd shrank below the fd's offset after
//                    the dump: restore fails naming the pid, fd and path;
//                    once it has its size again (new mtime) restore works,
//                    with a warning, and the process passes its own checks.
//
// The victims are this program run as "fd2_checks --victim MODE" (zdtm
// contract: READY, SIGTERM, verify, PASS).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors_lib.h"
#include "harness.h"
#include "zdtm.h"

namespace fs = std::filesystem;

namespace {

// ---- victims ----

// Holds a pty slave as fd 10; its master stays with the parent, which is
// not dumped (the parent prints READY when both are set up).
[[noreturn]] void victim_tty_outside() {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) fail("posix_openpt: %s", strerror(errno));
  std::string slave = ptsname(m);
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    close(m);
    setsid();
    int s = open(slave.c_str(), O_RDWR);
    if (s < 0 || dup2(s, 10) != 10) fail("open %s: %s", slave.c_str(), strerror(errno));
    close(s);
    test_msg("child %d slave %s", getpid(), slave.c_str());
    test_wait();
    pass();
  }
  usleep(200 * 1000);
  test_ready();
  test_wait();
  kill(c, SIGTERM);
  waitpid(c, nullptr, 0);
  pass();
}

// The parent keeps the slave; the child keeps only the master.
[[noreturn]] void victim_slave_outside() {
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) fail("posix_openpt: %s", strerror(errno));
  int s = open(ptsname(m), O_RDWR | O_NOCTTY);
  if (s < 0) fail("open slave: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    close(s);
    dup2(m, 10);
    close(m);
    test_msg("child %d", getpid());
    test_wait();
    pass();
  }
  close(m);
  usleep(200 * 1000);
  test_ready();
  test_wait();
  kill(c, SIGTERM);
  waitpid(c, nullptr, 0);
  pass();
}

constexpr off_t kFileSize = 10000, kOffset = 8000;

// data.dat open as fd 20 at offset 8000.
[[noreturn]] void victim_hold_file() {
  int fd = open("data.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ftruncate(fd, kFileSize) || dup2(fd, 20) != 20)
    fail("data.dat: %s", strerror(errno));
  close(fd);
  lseek(20, kOffset, SEEK_SET);
  test_ready();
  test_wait();
  if (lseek(20, 0, SEEK_CUR) != kOffset) fail("offset %ld", (long)lseek(20, 0, SEEK_CUR));
  char buf[10];
  if (read(20, buf, 10) != 10) fail("read at the offset: %s", strerror(errno));
  pass();
}

// ---- the driver ----

using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

constexpr double kCkptTimeout = 120;
std::string g_self;  // this binary: the victims are its --victim modes

struct Run {
  CmdResult r;
  std::string text;  // output and log
};
Run ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
         const std::string& log = "") {
  args.insert(args.begin(), g_ckpt);
  Run out;
  out.r = run_cmd(args, dir + "/ckpt-" + name + ".out", kCkptTimeout);
  out.text = out.r.output + (log.empty() ? "" : read_text(log));
  return out;
}

struct Victim {
  pid_t pid;
  std::string out;
};
Victim start_victim(const std::string& mode, const std::string& dir) {
  fs::create_directories(dir);
  Victim v{0, dir + "/out.txt"};
  v.pid = start_test({g_self, "--victim", mode}, dir, v.out);
  if (v.pid < 0) throw Fail("fork failed");
  std::string err = wait_ready(v.pid, v.out, 60);
  if (!err.empty()) throw Fail("victim " + mode + ": " + err + "\n" + indent(read_text(v.out)));
  return v;
}

// A number printed by the victim after `key ` in its output.
pid_t victim_number(const Victim& v, const std::string& key) {
  std::string t = read_text(v.out);
  size_t p = t.find(key + " ");
  if (p == std::string::npos) throw Fail("victim did not print '" + key + "'\n" + indent(t));
  return pid_t(atol(t.c_str() + p + key.size() + 1));
}

void finish(const Victim& v, int passes) {
  kill(v.pid, SIGTERM);
  int st;
  if (!wait_exit(v.pid, 60, &st)) throw Fail("victim did not exit: " + describe_pid(v.pid));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(v.out, "PASS") != passes)
    throw Fail("victim failed (" + describe_status(st) + ")\n" + indent(read_text(v.out)));
}

void expect(bool cond, const std::string& what, const Run& r) {
  if (!cond) throw Fail(what + "\n" + indent(r.text));
}

void check_tty_outside(const std::string& dir) {
  Victim v = start_victim("tty-outside", dir + "/run");
  pid_t child = victim_number(v, "child");
  std::string t = read_text(v.out);
  size_t p = t.find("slave ");
  std::string slave = t.substr(p + 6, t.find('\n', p) - p - 6);
  std::string img = dir + "/img";
  fs::create_directories(img);
  Run r = ckpt(
      dir, "dump",
      {"dump", "-t", std::to_string(child), "-D", img, "-o", "dump.log", "-v4", "--leave-running"},
      img + "/dump.log");
  expect(!r.r.ok() && !r.r.crashed(), "the dump did not fail cleanly (" + r.r.describe() + ")", r);
  std::string want = "pid " + std::to_string(child) + " fd 10: terminal " + slave +
                     " is outside the dumped tree (use --shell-job)";
  expect(r.r.output.find(want) != std::string::npos, "the error is not '" + want + "'", r);
  fs::remove_all(img);
  fs::create_directories(img);
  r = ckpt(dir, "dump-j",
           {"dump", "-t", std::to_string(child), "-D", img, "-o", "dump.log", "-v4",
            "--leave-running", "--shell-job"},
           img + "/dump.log");
  expect(r.r.ok(), "the dump with --shell-job failed", r);
  finish(v, 2);
}

void check_slave_outside(const std::string& dir) {
  Victim v = start_victim("slave-outside", dir + "/run");
  pid_t child = victim_number(v, "child");
  std::string img = dir + "/img";
  fs::create_directories(img);
  Run r = ckpt(
      dir, "dump",
      {"dump", "-t", std::to_string(child), "-D", img, "-o", "dump.log", "-v4", "--leave-running"},
      img + "/dump.log");
  expect(!r.r.ok() && !r.r.crashed(), "the dump did not fail cleanly (" + r.r.describe() + ")", r);
  std::string want = "pid " + std::to_string(child) + " fd 10: pty master of /dev/pts/";
  expect(r.r.output.find(want) != std::string::npos &&
             r.r.output.find("open outside the dumped tree (pid " + std::to_string(v.pid)) !=
                 std::string::npos,
         "the error does not name the pty and the outside holder", r);
  finish(v, 2);
}

void check_file_shrank(const std::string& dir) {
  Victim v = start_victim("hold-file", dir + "/run");
  std::string img = dir + "/img", data = dir + "/run/data.dat";
  fs::create_directories(img);
  Run r =
      ckpt(dir, "dump", {"dump", "-t", std::to_string(v.pid), "-D", img, "-o", "dump.log", "-v4"},
           img + "/dump.log");
  expect(r.r.ok(), "dump failed", r);
  int st;
  if (!wait_exit(v.pid, 10, &st)) throw Fail("the dump did not kill the victim");
  fs::resize_file(data, 5000);
  std::string pidfile = dir + "/pidfile";
  r = ckpt(dir, "restore-shrunk",
           {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", pidfile},
           img + "/restore.log");
  expect(!r.r.ok() && !r.r.crashed(), "restore of a shrunk file did not fail cleanly", r);
  std::string want = "pid " + std::to_string(v.pid) + " fd 20: " + fs::canonical(data).string() +
                     " shrank to 5000 bytes";
  expect(r.r.output.find(want) != std::string::npos, "the error does not say '" + want + "'", r);
  if (proc_state(v.pid)) throw Fail("the failed restore left pid " + std::to_string(v.pid));
  // Its size again, but not the same file any more (mtime): a warning.
  usleep(20 * 1000);
  fs::resize_file(data, kFileSize);
  r = ckpt(dir, "restore",
           {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", pidfile},
           img + "/restore.log");
  expect(r.r.ok(), "restore failed", r);
  track_pid(v.pid);
  expect(r.text.find("fd 20: file " + fs::canonical(data).string() +
                     " was modified since the dump") != std::string::npos,
         "no warning about the modified file", r);
  finish(v, 1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "--victim")) {
    test_init(argc, argv);
    std::string mode = argv[2];
    if (mode == "tty-outside") victim_tty_outside();
    if (mode == "slave-outside") victim_slave_outside();
    if (mode == "hold-file") victim_hold_file();
    fail("unknown victim %s", argv[2]);
  }
  if (!ParseArgs(argc, argv, "fd2_checks")) return 2;
  harness_init();
  g_self = fs::canonical("/proc/self/exe").string();
  std::error_code ec;
  check("tty-outside", check_tty_outside);
  check("pty-slave-outside", check_slave_outside);
  check("file-shrank", check_file_shrank);
  if (g_failed) return 1;
  fs::remove_all(g_workdir, ec);
  return 0;
}
