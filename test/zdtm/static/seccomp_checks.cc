// seccomp_checks: what a round trip of the seccomp/LSM work cannot show.
//
//   seccomp_checks --ckpt PATH --workdir DIR
//
// Sub-checks (each prints "[ OK ] name" or "[FAIL] name: reason"):
//   ckpt-under-seccomp  a ckpt that runs under a seccomp filter itself cannot
//                  suspend the victim's filters (PTRACE_O_SUSPEND_SECCOMP):
//                  the dump fails naming the pid and the reason, before any
//                  parasite, and the victim runs on and passes its checks.
//   user-notif     a filter that can return SECCOMP_RET_USER_NOTIF is refused at
//                  dump (its listener cannot come back); the victim runs on.
//   bad-images     on one dump of a filtered victim: a seccomp.img whose
//                  filter names a later one as its previous is refused; an
//                  lsm.img with an AppArmor profile this host cannot set is
//                  refused naming the pid and the label (no process left);
//                  with the label "unconfined" (nothing to set without
//                  AppArmor) the restore works and the victim passes.
//
// The victims are this program run as "seccomp_checks --victim" (zdtm
// contract): no_new_privs and a filter getpriority -> EDOM, checked after
// SIGTERM; "--victim-notif": a filter with a (closed) listener.
#include <sys/prctl.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors_lib.h"
#include "harness.h"
#include "zdtm.h"
#include "seccomp_util.h"

namespace fs = std::filesystem;
using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

namespace {

[[noreturn]] void victim(bool notif) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("no_new_privs: %s", strerror(errno));
  if (notif) {
    // Its listener is closed at once: ckpt must refuse the filter itself.
    long fd =
        seccomp_install({{SYS_getppid, SECCOMP_RET_USER_NOTIF}}, SECCOMP_FILTER_FLAG_NEW_LISTENER);
    if (fd < 0) fail("seccomp with a listener: %s", strerror(errno));
    close(int(fd));
    test_ready();
    test_wait();
    if (thread_status("Seccomp_filters") != "1") fail("Seccomp_filters changed");
    pass();
  }
  if (seccomp_install({{SYS_getpriority, SECCOMP_RET_ERRNO | EDOM}}) != 0)
    fail("seccomp: %s", strerror(errno));
  test_ready();
  test_wait();
  long r = syscall(SYS_getpriority, 0, 0);
  if (r != -1 || errno != EDOM) fail("getpriority returned %ld errno %d, want EDOM", r, errno);
  if (thread_status("Seccomp_filters") != "1")
    fail("Seccomp_filters %s", thread_status("Seccomp_filters").c_str());
  pass();
}

// "--under-seccomp PROG ARGS...": runs PROG under an allow-everything filter.
[[noreturn]] void under_seccomp(char** argv) {
  if (seccomp_install({}) != 0) {
    perror("seccomp");
    _exit(126);
  }
  execv(argv[0], argv);
  perror("execv");
  _exit(127);
}

constexpr double kCkptTimeout = 120;
std::string g_self;  // this binary: the victims are its --victim modes

CmdResult ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
               bool under = false) {
  args.insert(args.begin(), g_ckpt);
  if (under) {
    args.insert(args.begin(), "--under-seccomp");
    args.insert(args.begin(), g_self);
  }
  return run_cmd(args, dir + "/ckpt-" + name + ".out", kCkptTimeout);
}

void expect(bool cond, const std::string& what, const CmdResult& r) {
  if (!cond) throw Fail(what + " (" + r.describe() + ")\n" + indent(r.output));
}

struct Victim {
  pid_t pid;
  std::string out;
};
Victim start_victim(const std::string& dir, const char* mode = "--victim") {
  fs::create_directories(dir);
  Victim v{0, dir + "/out.txt"};
  v.pid = start_test({g_self, mode}, dir, v.out);
  if (v.pid < 0) throw Fail("fork failed");
  std::string err = wait_ready(v.pid, v.out, 60);
  if (!err.empty()) throw Fail("victim: " + err + "\n" + indent(read_text(v.out)));
  return v;
}

void finish(const Victim& v) {
  kill(v.pid, SIGTERM);
  int st;
  if (!wait_exit(v.pid, 60, &st)) throw Fail("victim did not exit: " + describe_pid(v.pid));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(v.out, "PASS") != 1)
    throw Fail("victim failed (" + describe_status(st) + ")\n" + indent(read_text(v.out)));
}

void check_under_seccomp(const std::string& dir) {
  Victim v = start_victim(dir + "/run");
  std::string img = dir + "/img";
  fs::create_directories(img);
  CmdResult r = ckpt(dir, "dump", {"dump", "-t", std::to_string(v.pid), "-D", img}, true);
  expect(!r.ok() && !r.crashed(), "a dump by a ckpt under seccomp did not fail cleanly", r);
  std::string want = "pid " + std::to_string(v.pid) + ": in seccomp mode 2: cannot suspend it";
  expect(r.output.find(want) != std::string::npos, "the error does not say '" + want + "'", r);
  char st = proc_state(v.pid);
  if (st != 'S' && st != 'R') throw Fail(std::string("the victim was left in state ") + st);
  finish(v);
}

void check_user_notif(const std::string& dir) {
  Victim v = start_victim(dir + "/run", "--victim-notif");
  std::string img = dir + "/img";
  fs::create_directories(img);
  CmdResult r = ckpt(dir, "dump", {"dump", "-t", std::to_string(v.pid), "-D", img});
  expect(!r.ok() && !r.crashed(), "a filter with a listener was dumped", r);
  std::string want =
      "pid " + std::to_string(v.pid) + ": seccomp filter 0 hands system calls to a listener";
  expect(r.output.find(want) != std::string::npos, "the error does not say '" + want + "'", r);
  finish(v);
}

// ---- images written by hand (layout of images/image_types.h) ----

std::string varint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    s.push_back(char(v ? b | 0x80 : b));
  } while (v);
  return s;
}
std::string field(int num, const std::string& bytes) {  // length-delimited
  return varint(uint64_t(num) << 3 | 2) + varint(bytes.size()) + bytes;
}
std::string field_int(int num, uint64_t v) { return varint(uint64_t(num) << 3) + varint(v); }

void write_image(const std::string& path, uint32_t type_magic, const std::string& msg) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint32_t head[3] = {0x54504b43, type_magic, uint32_t(msg.size())};
  std::string img = zdtm_seal_image(std::string(reinterpret_cast<const char*>(head), sizeof(head)) + msg);
  f.write(img.data(), std::streamsize(img.size()));
  if (!f) throw Fail("cannot write " + path);
}

std::string lsm_image(pid_t tid, const std::string& label) {
  return field(1, "apparmor") + field(2, field_int(1, uint64_t(tid)) + field(2, label));
}

void check_bad_images(const std::string& dir) {
  Victim v = start_victim(dir + "/run");
  std::string img = dir + "/img";
  fs::create_directories(img);
  CmdResult r = ckpt(dir, "dump", {"dump", "-t", std::to_string(v.pid), "-D", img});
  expect(r.ok(), "dump failed", r);
  int st;
  if (!wait_exit(v.pid, 10, &st)) throw Fail("the dump did not kill the victim");
  std::string sc = img + "/seccomp.img";
  if (!fs::exists(sc)) throw Fail("the dump wrote no seccomp.img");
  fs::copy_file(sc, dir + "/seccomp.img.orig");
  std::vector<std::string> restore = {"restore", "-D", img, "-d"};

  // A filter whose previous one comes after it.
  write_image(sc, 0x53434d01, field(1, field(1, std::string(8, '\0')) + field_int(3, 5)));
  r = ckpt(dir, "restore-bad-seccomp", restore);
  expect(!r.ok() && !r.crashed(), "restore of a corrupt seccomp.img did not fail cleanly", r);
  expect(r.output.find("seccomp image: filter 1: its previous filter is not an earlier one") !=
             std::string::npos,
         "the error does not explain the bad seccomp image", r);
  if (proc_state(v.pid)) throw Fail("a refused restore left pid " + std::to_string(v.pid));
  fs::copy_file(dir + "/seccomp.img.orig", sc, fs::copy_options::overwrite_existing);

  // A profile nobody can set here.
  std::string lsm = img + "/lsm.img";
  bool had_lsm = fs::exists(lsm);
  write_image(lsm, 0x4c534d01, lsm_image(v.pid, "zdtm_forged (enforce)"));
  r = ckpt(dir, "restore-forged-lsm", restore);
  expect(!r.ok() && !r.crashed(), "restore with a forged AppArmor label did not fail cleanly", r);
  expect(r.output.find("pid " + std::to_string(v.pid)) != std::string::npos &&
             r.output.find("zdtm_forged") != std::string::npos,
         "the error names neither the pid nor the label", r);
  if (proc_state(v.pid)) throw Fail("a refused restore left pid " + std::to_string(v.pid));

  // "unconfined": nothing to set on a host without AppArmor, nor on one
  // where ckpt itself is unconfined.
  if (!had_lsm) {
    write_image(lsm, 0x4c534d01, lsm_image(v.pid, "unconfined"));
    r = ckpt(dir, "restore", restore);
    expect(r.ok(), "restore with the label 'unconfined' failed", r);
    track_pid(v.pid);
    finish(v);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !strncmp(argv[1], "--victim", 8)) {
    test_init(argc, argv);
    victim(!strcmp(argv[1], "--victim-notif"));
  }
  if (argc >= 3 && !strcmp(argv[1], "--under-seccomp")) under_seccomp(argv + 2);
  if (!ParseArgs(argc, argv, "seccomp_checks")) return 2;
  harness_init();
  g_self = fs::canonical("/proc/self/exe").string();
  std::error_code ec;
  check("ckpt-under-seccomp", check_under_seccomp);
  check("user-notif", check_user_notif);
  check("bad-images", check_bad_images);
  if (g_failed) return 1;
  fs::remove_all(g_workdir, ec);
  return 0;
}
