// zdtm-errors: checks that ckpt fails cleanly on bad input.
//
//   zdtm-errors --ckpt PATH --workdir DIR [--testbin DIR]
//
// --only PREFIX runs only the sub-checks whose names start with PREFIX.
// --testbin is the directory holding the test programs (same_pid,
// unsupported_fd, scm_unsupported); default: ../static next to this binary. Every sub-check
// prints "[ OK ] name" or "[FAIL] name: reason" and leaves no process
// behind. Exit 0 when all pass. "Failing cleanly" means: exit code non-zero
// and < 128 (no crash), a message naming the problem, no process left with
// the dumped pid, and a live victim left running untouched.
// restore-port-taken needs sk_tcp_inflight in --testbin.
//
// The image-damage checks rely on the image layout of images/image_types.h:
// core-PID.img / mm-PID.img, two u32 magics, then (u32 length, message).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "zdtm.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

constexpr double kCkptTimeout = 120;

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string g_ckpt, g_workdir, g_testbin;
std::string g_only;  // --only PREFIX: run the sub-checks whose names start with it
int g_failed = 0;

std::string indent(const std::string& text, size_t max_lines = 25) {
  std::string out;
  size_t lines = 0, pos = 0;
  while (pos < text.size() && lines < max_lines) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out += "    | " + text.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
    lines++;
  }
  if (pos < text.size()) out += "    | ...\n";
  return out.empty() ? "    (no output)\n" : out;
}

// Runs ckpt. r.output is what the user sees (stdout+stderr); the given
// log files are appended to r.logs. Checks that a message names a pid look
// at r.output only: the logs name the pid anyway.
struct Ckpt : CmdResult {
  std::string logs;
  std::string all() const { return output + logs; }
};
Ckpt ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
          const std::vector<std::string>& logs = {}) {
  args.insert(args.begin(), g_ckpt);
  Ckpt r;
  static_cast<CmdResult&>(r) = run_cmd(args, dir + "/ckpt-" + name + ".out", kCkptTimeout);
  for (const auto& l : logs) r.logs += read_text(l);
  return r;
}

// A non-zero exit below 128: refused, not crashed.
void expect_refused(const Ckpt& r, const std::string& what) {
  if (r.ok()) throw Fail(what + " succeeded, want a failure\n" + indent(r.all()));
  if (r.crashed()) throw Fail(what + " crashed: " + r.describe() + "\n" + indent(r.all()));
}

struct Helper {
  pid_t pid;
  std::string out;
};

Helper start_helper(const std::string& test, const std::string& dir,
                    const std::vector<std::string>& args = {}) {
  fs::create_directories(dir);
  Helper h{0, dir + "/out.txt"};
  std::vector<std::string> argv = {g_testbin + "/" + test};
  argv.insert(argv.end(), args.begin(), args.end());
  h.pid = start_test(argv, dir, h.out);
  if (h.pid < 0) throw Fail("setup: fork failed");
  std::string err = wait_ready(h.pid, h.out, 60);
  if (!err.empty())
    throw Fail("setup: helper " + test + ": " + err + "\n" + indent(read_text(h.out)));
  return h;
}

void expect_alive(const Helper& h, const std::string& when) {
  char st = proc_state(h.pid);
  if (st != 'R' && st != 'S' && st != 'D')
    throw Fail("victim not running " + when + ": " + describe_pid(h.pid));
  if (proc_ppid(h.pid) != getpid())
    throw Fail("victim pid " + std::to_string(h.pid) + " is no longer our child " + when);
}

// SIGTERM; the helper must verify its state and pass.
void finish_helper(const Helper& h) {
  kill(h.pid, SIGTERM);
  int status;
  if (!wait_exit(h.pid, 60, &status))
    throw Fail("victim did not exit after SIGTERM: " + describe_pid(h.pid));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || count_lines(h.out, "PASS") != 1)
    throw Fail("victim failed its own verification (" + describe_status(status) + ")\n" +
               indent(read_text(h.out)));
}

void expect_no_pid(pid_t pid, const std::string& when) {
  for (int i = 0; i < 2; i++) {
    if (proc_state(pid)) throw Fail(when + " left " + describe_pid(pid));
    usleep(200000);
  }
}

// A TCP port of 127.0.0.1 nobody listens on (just now).
int free_port() {
  int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (sk < 0 || bind(sk, reinterpret_cast<sockaddr*>(&a), len) < 0 ||
      getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) < 0)
    throw Fail(std::string("setup: finding a free port: ") + strerror(errno));
  close(sk);
  return ntohs(a.sin_port);
}

// Runs one named sub-check; cleans up whatever it left.
void check(const std::string& name, const std::function<void(const std::string& dir)>& fn) {
  if (name.rfind(g_only, 0) != 0) return;
  std::string dir = g_workdir + "/" + name;
  fs::create_directories(dir);
  std::string err;
  try {
    fn(dir);
  } catch (const Fail& f) {
    err = f.what();
  } catch (const std::exception& e) {
    err = std::string("exception: ") + e.what();
  }
  auto left = kill_all_children();
  if (err.empty() && !left.empty()) {
    err = "processes left behind:";
    for (const auto& l : left) err += " [" + l + "]";
  }
  if (err.empty()) {
    printf("[ OK ] %s\n", name.c_str());
  } else {
    printf("[FAIL] %s: %s\n", name.c_str(), err.c_str());
    g_failed++;
  }
  fflush(stdout);
}

pid_t free_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

// The good image restore checks damage copies of.
struct GoodImage {
  std::string error;  // setup failure, if any
  std::string dir, out;
  pid_t pid = 0;
};

GoodImage make_good_image() {
  GoodImage g;
  std::string base = g_workdir + "/good";
  fs::create_directories(base);
  try {
    Helper h = start_helper("same_pid", base + "/run");
    g.pid = h.pid;
    g.out = h.out;
    g.dir = base + "/img";
    fs::create_directories(g.dir);
    Ckpt r = ckpt(base, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", g.dir, "-o", "dump.log", "-v4"},
                  {g.dir + "/dump.log"});
    if (!r.ok()) throw Fail("dump of same_pid failed: " + r.describe() + "\n" + indent(r.all()));
    int status;
    if (!wait_exit(h.pid, 10, &status) || !WIFSIGNALED(status))
      throw Fail("dump did not kill pid " + std::to_string(h.pid));
  } catch (const Fail& f) {
    g.error = std::string("setup (good dump): ") + f.what();
  }
  kill_all_children();
  return g;
}

std::string image_file(const GoodImage& g, const std::string& img, const char* type) {
  std::string path = img + "/" + type + "-" + std::to_string(g.pid) + ".img";
  if (!fs::exists(path) || fs::file_size(path) <= 12) {
    std::string names;
    for (const auto& e : fs::directory_iterator(img)) names += " " + e.path().filename().string();
    throw Fail("setup: no usable " + path + "; image files:" + names);
  }
  return path;
}

void overwrite(const std::string& path, size_t off, const std::string& bytes) {
  int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0 || pwrite(fd, bytes.data(), bytes.size(), off) != static_cast<ssize_t>(bytes.size()))
    throw Fail("setup: cannot damage " + path);
  close(fd);
}

// Copies the good image, damages the copy, restores it: must be refused
// (naming `file`, when given, in what the user sees).
void check_bad_restore(const GoodImage& g, const std::string& name,
                       const std::function<void(const std::string& img)>& damage,
                       const std::string& file = "") {
  check(name, [&](const std::string& dir) {
    if (!g.error.empty()) throw Fail(g.error);
    std::string img = dir + "/img";
    fs::remove_all(img);
    fs::copy(g.dir, img, fs::copy_options::recursive);
    fs::remove(img + "/dump.log");
    damage(img);
    Ckpt r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    expect_refused(r, "restore");
    if (!file.empty() && r.output.find(file) == std::string::npos)
      throw Fail("the refusal does not name " + file + "\n" + indent(r.output));
    expect_no_pid(g.pid, "the failed restore");
  });
}

void append(const std::string& path, const std::string& bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()))
    throw Fail("setup: cannot append to " + path);
  close(fd);
}


// Incremental chains: the memory trackers pre-dumps leave (ckpt-memtrack,
// reparented to us) exit once their tree's root is gone: reap them.
void reap_trackers() {
  for (int i = 0; i < 500; i++) {
    bool any = false;
    for (pid_t p : our_children()) {
      if (read_text("/proc/" + std::to_string(p) + "/comm").rfind("ckpt-memtrack", 0) != 0)
        continue;
      any = true;
      if (proc_state(p) == 'Z') waitpid(p, nullptr, 0);
    }
    if (!any) return;
    usleep(20000);
  }
  throw Fail("a memory tracker did not exit after its process did");
}

bool write_tracked(pid_t pid) {
  return read_text("/proc/" + std::to_string(pid) + "/smaps").find(" uw") != std::string::npos;
}

Ckpt step(const std::string& dir, const std::string& name, const std::string& cmd, pid_t pid,
          const std::string& img, const std::string& parent) {
  std::vector<std::string> a = {cmd, "-t", std::to_string(pid), "-D", img, "-o", name + ".log",
                                "-v4"};
  if (!parent.empty()) a.insert(a.end(), {"--prev-images-dir", parent});
  return ckpt(dir, name, a, {img + "/" + name + ".log"});
}

}  // namespace

int main(int argc, char** argv) {
  harness_init();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--ckpt")
      g_ckpt = argv[i + 1];
    else if (a == "--workdir")
      g_workdir = argv[i + 1];
    else if (a == "--testbin")
      g_testbin = argv[i + 1];
    else if (a == "--only")
      g_only = argv[i + 1];
  }
  if (g_ckpt.empty() || g_workdir.empty()) {
    fprintf(stderr, "usage: zdtm-errors --ckpt PATH --workdir DIR [--testbin DIR]\n");
    return 2;
  }
  if (g_testbin.empty())
    g_testbin = fs::read_symlink("/proc/self/exe").parent_path().string() + "/../static";
  g_ckpt = fs::absolute(g_ckpt).string();
  g_testbin = fs::absolute(g_testbin).string();
  g_workdir = fs::absolute(g_workdir).string();
  fs::remove_all(g_workdir);
  fs::create_directories(g_workdir);

  check("dump-nonexistent-pid", [](const std::string& dir) {
    pid_t p = free_pid();
    Ckpt r = ckpt(dir, "dump", {"dump", "-t", std::to_string(p), "-D", dir});
    expect_refused(r, "dump of non-existent pid " + std::to_string(p));
    if (!mentions_number(r.output, p))
      throw Fail("the error does not name pid " + std::to_string(p) + "\n" + indent(r.output));
  });

  check("dump-unknown-option", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    Ckpt r =
        ckpt(dir, "dump", {"dump", "--zdtm-bogus-option", "-t", std::to_string(h.pid), "-D", dir});
    expect_refused(r, "dump --zdtm-bogus-option");
    if (r.output.find("zdtm-bogus-option") == std::string::npos)
      throw Fail("the error does not name the unknown option\n" + indent(r.output));
    expect_alive(h, "after the refused dump");
    finish_helper(h);
  });

  check("dump-unsupported-fd", [](const std::string& dir) {
    Helper h = start_helper("unsupported_fd", dir + "/run");
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    expect_refused(r, "dump of a process holding a pidfd of a process outside the tree");
    if (r.all().find("outside the dumped tree: not supported") == std::string::npos ||
        !mentions_number(r.output, getpid()))
      throw Fail("the error does not say \"outside the dumped tree: not supported\" naming pid " +
                 std::to_string(getpid()) + "\n" + indent(r.all()));
    expect_alive(h, "after the refused dump");
    finish_helper(h);
  });

  // A file in flight of a kind ckpt does not dump in flight: refused naming
  // the kind, the queue left as it was (the helper checks it).
  check("dump-scm-unsupported", [](const std::string& dir) {
    Helper h = start_helper("scm_unsupported", dir + "/run");
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    expect_refused(r, "dump of a process with a timerfd in flight in a unix socket queue");
    if (r.all().find("a timerfd (anon_inode:[timerfd]) in flight is not supported") ==
            std::string::npos ||
        !mentions_number(r.output, h.pid))
      throw Fail("the error does not say \"a timerfd ... in flight is not supported\" naming pid " +
                 std::to_string(h.pid) + "\n" + indent(r.all()));
    expect_alive(h, "after the refused dump");
    finish_helper(h);
  });
  // A socket whose peer only a message in flight holds (the garbage
  // collector's case): refused as such, the queue left as it was.
  check("dump-scm-peer-in-flight", [](const std::string& dir) {
    Helper h = start_helper("scm_unsupported", dir + "/run", {"--peer-in-flight"});
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    expect_refused(r, "dump of a process whose socket's peer is only in flight");
    if (r.all().find("is held only by a message in flight") == std::string::npos ||
        !mentions_number(r.output, h.pid))
      throw Fail("the error does not say \"is held only by a message in flight\" naming pid " +
                 std::to_string(h.pid) + "\n" + indent(r.all()));
    expect_alive(h, "after the refused dump");
    finish_helper(h);
  });

  // Namespace layouts ckpt cannot restore: refused before anything is
  // touched, naming the task and the kind.
  for (auto [arg_, want_] : {std::pair<const char*, const char*>{"--nested-uts",
                                                                  "in another uts namespace"},
                             {"--pending-pid", "made a pid namespace for its future children"},
                             {"--outside-file", "is on a mount outside its mount namespace"}}) {
    const char* arg = arg_;  // plain copies: clang 14 cannot capture structured bindings
    const char* want = want_;
    check(std::string("dump-ns") + (arg + 1), [&](const std::string& dir) {
      fs::create_directories(dir + "/run");
      Helper h{0, dir + "/run/out.txt"};
      h.pid = start_test({g_testbin + "/ns_unsupported", arg}, dir + "/run", h.out);
      if (h.pid < 0) throw Fail("setup: fork failed");
      std::string err = wait_ready(h.pid, h.out, 60);
      if (!err.empty()) throw Fail("setup: ns_unsupported: " + err);
      std::string img = dir + "/img";
      Ckpt r = ckpt(dir, "dump",
                    {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"});
      expect_refused(r, std::string("dump of a tree with ") + arg);
      if (r.output.find(want) == std::string::npos || !mentions_number(r.output, h.pid))
        throw Fail(std::string("the error does not say \"") + want + "\" with a pid\n" +
                   indent(r.output));
      expect_alive(h, "after the refused dump");
      finish_helper(h);
    });
  }

  // Process state ckpt refuses (issue 14; criu/task_stop.h,
  // criu/shared_tables.h): refused before anything is touched, naming the
  // task and the reason.
  for (auto [arg_, want_] : {std::pair<const char*, const char*>{"--traced", "traced by pid "},
                             {"--clone-files", "share one fd table"},
                             {"--clone-fs", "but not through their parents"},
                             {"--thread-files", "has its own fd table"}}) {
    // Plain copies: clang before 16 cannot capture structured bindings.
    const char* arg = arg_;
    const char* want = want_;
    check(std::string("dump-pstate") + (arg + 1), [&](const std::string& dir) {
      fs::create_directories(dir + "/run");
      Helper h{0, dir + "/run/out.txt"};
      h.pid = start_test({g_testbin + "/pstate_unsupported", arg}, dir + "/run", h.out);
      if (h.pid < 0) throw Fail("setup: fork failed");
      std::string err = wait_ready(h.pid, h.out, 60);
      if (!err.empty()) throw Fail("setup: pstate_unsupported: " + err);
      std::string img = dir + "/img";
      Ckpt r = ckpt(dir, "dump",
                    {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"});
      expect_refused(r, std::string("dump of a tree with ") + arg);
      // --clone-fs names the two children (the root's pid is not in it).
      bool named = std::string(arg) == "--clone-fs" ? r.output.find(" and pid ") != std::string::npos
                                                    : mentions_number(r.output, h.pid);
      if (r.output.find(want) == std::string::npos || !named)
        throw Fail(std::string("the error does not say \"") + want + "\" with a pid\n" +
                   indent(r.output));
      expect_alive(h, "after the refused dump");
      finish_helper(h);
    });
  }

  // ckpt SIGKILLed at various points of a dump (seizing, infecting, pages,
  // writing images): the victim must go on exactly as before. With
  // --leave-running a dump that completes before the kill is fine too.
  for (int delay_ms : {30, 120, 300}) {
    check("dump-ckpt-killed-" + std::to_string(delay_ms) + "ms", [&](const std::string& dir) {
      Helper h = start_helper("bigmem", dir + "/run");
      std::string img = dir + "/img";
      fs::create_directories(img);
      pid_t c = fork();
      if (c < 0) throw Fail("fork failed");
      if (c == 0) {
        std::string pid = std::to_string(h.pid);
        execl(g_ckpt.c_str(), g_ckpt.c_str(), "dump", "-t", pid.c_str(), "-D", img.c_str(), "-R",
              "-o", "dump.log", "-v4", (char*)nullptr);
        _exit(127);
      }
      usleep(delay_ms * 1000);
      kill(c, SIGKILL);
      int st;
      waitpid(c, &st, 0);
      usleep(200000);
      expect_alive(h, "after ckpt was killed mid-dump");
      std::string status = read_text("/proc/" + std::to_string(h.pid) + "/status");
      if (status.find("TracerPid:\t0\n") == std::string::npos)
        throw Fail("the victim is still traced after ckpt died");
      finish_helper(h);
    });
  }

  // A full disk: images on a 4 MiB tmpfs cannot hold 300 MiB of memory.
  check("dump-disk-full", [&](const std::string& dir) {
    Helper h = start_helper("bigmem", dir + "/run");
    std::string img = dir + "/small";
    fs::create_directories(img);
    if (mount("ckpt-full", img.c_str(), "tmpfs", 0, "size=4m,mode=0700") != 0)
      throw Fail(std::string("setup: mount tmpfs: ") + strerror(errno));
    Ckpt r = ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img});
    bool inventory = fs::exists(img + "/inventory.img");
    umount2(img.c_str(), MNT_DETACH);
    expect_refused(r, "dump onto a full disk");
    if (r.output.find("No space left") == std::string::npos)
      throw Fail("the error does not say the disk is full\n" + indent(r.output));
    if (inventory) throw Fail("a failed dump left an inventory behind");
    expect_alive(h, "after the failed dump");
    finish_helper(h);
  });

  // --page-server (criu/page_xfer.h): a server that is not there, one that
  // drops the connection in the middle of the pages; the victim runs on and
  // no inventory appears.
  check("dump-page-server-absent", [&](const std::string& dir) {
    Helper h = start_helper("bigmem", dir + "/run");
    int port = free_port();  // nobody listens there
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "--page-server", "--address",
                   "127.0.0.1", "--port", std::to_string(port)});
    expect_refused(r, "dump to a page server that is not there");
    if (r.output.find("page server at 127.0.0.1:" + std::to_string(port)) == std::string::npos)
      throw Fail("the error does not name the page server\n" + indent(r.output));
    if (fs::exists(img + "/inventory.img")) throw Fail("a failed dump left an inventory");
    expect_alive(h, "after the failed dump");
    finish_helper(h);
  });
  check("dump-page-server-dropped", [&](const std::string& dir) {
    Helper h = start_helper("bigmem", dir + "/run");
    // A fake server: takes the connection, reads 1 MiB, hangs up.
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      throw Fail(std::string("setup: fake page server: ") + strerror(errno));
    pid_t fake = fork();
    if (fake == 0) {
      int c = accept(ls, nullptr, nullptr);
      static char buf[65536];
      for (size_t got = 0; c >= 0 && got < (1u << 20);) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        got += size_t(n);
      }
      _exit(0);
    }
    close(ls);
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "--page-server", "--address",
                   "127.0.0.1", "--port", std::to_string(ntohs(a.sin_port))});
    int st;
    waitpid(fake, &st, 0);
    expect_refused(r, "dump to a page server that hangs up");
    if (fs::exists(img + "/inventory.img")) throw Fail("a failed dump left an inventory");
    expect_alive(h, "after the failed dump");
    finish_helper(h);
  });
  // The page server itself, fed a hostile name and then a dump that stops
  // half-way: it fails, and leaves no file that could pass for an image.
  check("page-server-bad-input", [&](const std::string& dir) {
    struct Frame {
      uint32_t magic, cmd;
      uint64_t len;
    };
    auto serve = [&](const std::string& srv, const std::vector<std::string>& frames) {
      int port = free_port();
      pid_t ps = fork();
      if (ps == 0) {
        execl(g_ckpt.c_str(), g_ckpt.c_str(), "page-server", "-D", srv.c_str(), "--address",
              "127.0.0.1", "--port", std::to_string(port).c_str(), (char*)nullptr);
        _exit(127);
      }
      int sk = -1;
      for (int i = 0; i < 200; i++) {  // until it listens
        sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(uint16_t(port));
        if (connect(sk, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) break;
        close(sk);
        sk = -1;
        usleep(20000);
      }
      if (sk < 0) throw Fail("setup: the page server does not listen");
      for (const std::string& f : frames)
        if (write(sk, f.data(), f.size()) != ssize_t(f.size())) break;
      close(sk);
      int st = 0;
      if (!wait_exit(ps, 30, &st)) throw Fail("the page server did not exit");
      return st;
    };
    auto frame = [](uint32_t cmd, const std::string& payload, uint64_t len) {
      Frame f = {0x53504b43, cmd, len};
      return std::string(reinterpret_cast<const char*>(&f), sizeof(f)) + payload;
    };
    std::string srv = dir + "/srv";
    int st = serve(srv, {frame(1, "../evil.img", 11)});
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) throw Fail("the page server took ../evil.img");
    if (fs::exists(dir + "/evil.img")) throw Fail("the page server wrote outside its directory");
    st = serve(srv, {frame(1, "pages-1.img", 11), frame(2, std::string(4096, 'x'), 1 << 20)});
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) throw Fail("the page server accepted half a dump");
    if (!fs::is_empty(srv))
      throw Fail("a dump that stopped half-way left files on the page server: " +
                 fs::directory_iterator(srv)->path().filename().string());
  });

  const GoodImage good = make_good_image();
  check("restore-empty-dir", [&](const std::string& dir) {
    fs::create_directories(dir + "/empty");
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", dir + "/empty", "-d", "--pidfile", dir + "/pidfile"});
    expect_refused(r, "restore from an empty dir");
    if (good.error.empty()) expect_no_pid(good.pid, "the failed restore");
  });
  auto truncate_half = [&good](const char* type) {
    return [&good, type](const std::string& img) {
      std::string f = image_file(good, img, type);
      fs::resize_file(f, fs::file_size(f) / 2);
    };
  };
  check_bad_restore(good, "restore-truncated-core", truncate_half("core"));
  check_bad_restore(good, "restore-truncated-mm", truncate_half("mm"));
  check_bad_restore(good, "restore-bad-magic", [&](const std::string& img) {
    overwrite(image_file(good, img, "core"), 0, "XXXX");
  });
  check_bad_restore(good, "restore-huge-record-length", [&](const std::string& img) {
    overwrite(image_file(good, img, "mm"), 8, std::string("\xf0\xff\xff\x7f", 4));
  });
  check_bad_restore(good, "restore-garbage-record", [&](const std::string& img) {
    std::string f = image_file(good, img, "core");
    overwrite(f, 12, std::string(fs::file_size(f) - 12, '\xff'));
  });
  // Damage a parse cannot see (images/image_check.h): refused by checksum,
  // naming the file.
  std::string pid_s = std::to_string(good.pid);
  check_bad_restore(good, "restore-zeroed-range-in-core", [&](const std::string& img) {
    overwrite(image_file(good, img, "core"), 20, std::string(24, '\0'));
  }, "core-" + pid_s + ".img");
  check_bad_restore(good, "restore-garbage-after-core", [&](const std::string& img) {
    append(image_file(good, img, "core"), "garbage after the last record");
  }, "core-" + pid_s + ".img");
  check_bad_restore(good, "restore-garbage-after-fs", [&](const std::string& img) {
    append(image_file(good, img, "fs"), std::string(8, '\0'));
  }, "fs-" + pid_s + ".img");
  check_bad_restore(good, "restore-truncated-pages", [&](const std::string& img) {
    fs::resize_file(img + "/pages-1.img", fs::file_size(img + "/pages-1.img") - 4096);
  }, "pages-1.img");
  check_bad_restore(good, "restore-extended-pages", [&](const std::string& img) {
    append(img + "/pages-1.img", std::string(4096, '\0'));
  }, "pages-1.img");
  check_bad_restore(good, "restore-changed-page", [&](const std::string& img) {
    overwrite(img + "/pages-1.img", 100, "X");
  }, "pages-1.img");
  // shm-files.img (criu/shm_files.h) naming a file outside a tmpfs, or a
  // path that climbs: refused before anything is written or created.
  auto shm_files_entry = [](const std::string& img, const std::string& path) {
    auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
    std::string m = std::string("\x08\x01\x12", 3) + char(path.size()) + path +
                    std::string("\x18\x05\x20\x80\x03\x28\x00\x30\x00", 9);
    std::string file = zdtm_seal_image(u32(0x54504b43) + u32(0x53484601) + u32(uint32_t(m.size())) + m);
    std::ofstream(img + "/shm-files.img", std::ios::binary) << file;
    std::ofstream(img + "/shm-file-1.img", std::ios::binary) << "ckpt!";
  };
  const std::string victim = g_workdir + "/shm-victim";
  check_bad_restore(good, "restore-shm-file-not-tmpfs", [&](const std::string& img) {
    shm_files_entry(img, victim);
  }, "is no longer on a tmpfs");
  check("restore-shm-file-not-tmpfs-untouched", [&](const std::string&) {
    if (fs::exists(victim)) throw Fail("the refused restore made " + victim);
  });
  check_bad_restore(good, "restore-shm-file-dotdot", [&](const std::string& img) {
    shm_files_entry(img, "/dev/shm/../" + victim.substr(1));
  }, "bad entry for");
  // Without this the refusals above prove nothing: the same image, undamaged.
  // --lsm-profile naming an LSM this host does not run: refused before any
  // process exists, naming it (and the undamaged image then restores).
  check("restore-lsm-profile-unavailable", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string active = read_text("/sys/kernel/security/lsm");
    std::string lsm = "smack";
    for (const char* l : {"smack", "selinux", "apparmor"})
      if (active.find(l) == std::string::npos) lsm = l;
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", img, "-d", "--lsm-profile", lsm + ":ckpt-test-label"});
    expect_refused(r, "restore with --lsm-profile " + lsm);
    if (r.output.find(lsm) == std::string::npos)
      throw Fail("the error does not name " + lsm + "\n" + indent(r.output));
    expect_no_pid(good.pid, "the refused restore");
  });

  // Lazy restore (criu/lazy_pages.h): no daemon, a lazy dump that is not
  // there, a dump whose pages a lazy dump holds, a lazy dump's port taken.
  check("restore-lazy-no-daemon", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(dir, "restore",
                  {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--lazy-pages"},
                  {img + "/restore.log"});
    expect_refused(r, "restore --lazy-pages without a lazy-pages daemon");
    if (r.all().find("no lazy-pages daemon") == std::string::npos)
      throw Fail("the error does not say the daemon is missing\n" + indent(r.all()));
    expect_no_pid(good.pid, "the refused lazy restore");
  });
  check("lazy-pages-source-absent", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    int port = free_port();  // nobody listens there
    Ckpt r = ckpt(dir, "lazy-pages",
                  {"lazy-pages", "-D", img, "--page-server", "--address", "127.0.0.1", "--port",
                   std::to_string(port)});
    expect_refused(r, "lazy-pages from a lazy dump that is not there");
    if (r.output.find("lazy dump at 127.0.0.1:" + std::to_string(port)) == std::string::npos)
      throw Fail("the error does not name the lazy dump\n" + indent(r.output));
    if (fs::exists(img + "/lazy-pages.sock")) throw Fail("the failed daemon left its socket");
  });
  check("restore-pages-held-by-lazy-dump", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    int held = open((img + "/lazy-pages.held").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (held < 0) throw Fail("setup: cannot mark the dump as held");  // as a lazy dump leaves it
    close(held);
    Ckpt r = ckpt(dir, "restore", {"restore", "-D", img, "-d", "-o", "restore.log", "-v4"},
                  {img + "/restore.log"});
    expect_refused(r, "an ordinary restore of a dump whose pages a lazy dump holds");
    if (r.all().find("--lazy-pages") == std::string::npos)
      throw Fail("the error does not point to --lazy-pages\n" + indent(r.all()));
    Ckpt l = ckpt(dir, "lazy-pages-local", {"lazy-pages", "-D", img});
    expect_refused(l, "a local lazy-pages daemon for pages a lazy dump holds");
    expect_no_pid(good.pid, "the refused restore");
  });
  check("dump-lazy-port-taken", [&](const std::string& dir) {
    Helper h = start_helper("bigmem", dir + "/run");
    int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (sk < 0 || bind(sk, reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(sk, 1) < 0 ||
        getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      throw Fail(std::string("setup: a listener: ") + strerror(errno));
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "--lazy-pages", "--address",
                   "127.0.0.1", "--port", std::to_string(ntohs(a.sin_port))});
    close(sk);
    expect_refused(r, "dump --lazy-pages on a port that is taken");
    if (fs::exists(img + "/inventory.img")) throw Fail("a failed dump left an inventory");
    expect_alive(h, "after the failed dump");
    finish_helper(h);
  });

  check("restore-good-image", [&](const std::string& dir) {
    if (!good.error.empty()) throw Fail(good.error);
    std::string img = dir + "/img";
    fs::copy(good.dir, img, fs::copy_options::recursive);
    Ckpt r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    if (!r.ok())
      throw Fail("restore of the undamaged image failed: " + r.describe() +
                 " (until this passes, the restore-* refusals above prove little)\n" +
                 indent(r.all()));
    expect_alive(Helper{good.pid, good.out}, "after restore");
    finish_helper(Helper{good.pid, good.out});
  });

  check("restore-pid-in-use", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r = ckpt(dir, "dump",
                  {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4",
                   "--leave-running"},
                  {img + "/dump.log"});
    if (!r.ok())
      throw Fail("setup: dump --leave-running failed: " + r.describe() + "\n" + indent(r.all()));
    expect_alive(h, "after dump --leave-running");
    r = ckpt(
        dir, "restore",
        {"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"},
        {img + "/restore.log"});
    expect_refused(r, "restore while pid " + std::to_string(h.pid) + " is in use");
    if (!mentions_number(r.output, h.pid))
      throw Fail("the error does not name pid " + std::to_string(h.pid) + "\n" + indent(r.output));
    expect_alive(h, "after the refused restore");
    finish_helper(h);
  });

  // A listener's port taken by another process (us) between dump and
  // restore: restore fails naming the address and port, and nothing of
  // the tree is left; once the port is free the same image restores.
  // The victim is sk_tcp_inflight's: listeners on 127.0.0.1 and ::1.
  check("restore-port-taken", [](const std::string& dir) {
    std::string run = dir + "/run", img = dir + "/img";
    fs::create_directories(run);
    fs::create_directories(img);
    Helper h{0, run + "/out.txt"};
    h.pid = start_test({g_testbin + "/sk_tcp_inflight", "--victim"}, run, h.out);
    std::string err = h.pid < 0 ? "fork failed" : wait_ready(h.pid, h.out, 60);
    if (!err.empty()) throw Fail("setup: sk_tcp_inflight --victim: " + err);
    std::string text = read_text(h.out);
    size_t at = text.find("INFO: port4 ");
    if (at == std::string::npos) throw Fail("setup: the victim printed no port\n" + indent(text));
    const int port = atoi(text.c_str() + at + 12);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    if (!r.ok()) throw Fail("setup: dump failed: " + r.describe() + "\n" + indent(r.all()));
    int status;
    if (!wait_exit(h.pid, 10, &status)) throw Fail("setup: the dump did not kill the victim");

    int taker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (taker < 0 || bind(taker, reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(taker, 1)) {
      std::string why = strerror(errno);
      if (taker >= 0) close(taker);
      throw Fail("setup: cannot take 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
    const std::vector<std::string> restore = {
        "restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--pidfile", dir + "/pidfile"};
    r = ckpt(dir, "restore-taken", restore, {img + "/restore.log"});
    bool refused = !r.ok();
    close(taker);
    if (!refused) {
      // It runs: stop it before reporting (kill_all_children reaps it).
      throw Fail("restore succeeded while another socket listened on 127.0.0.1:" +
                 std::to_string(port) + "\n" + indent(r.all()));
    }
    expect_refused(r, "restore with the listener's port taken");
    if (r.output.find("127.0.0.1:" + std::to_string(port)) == std::string::npos)
      throw Fail("the error does not name 127.0.0.1:" + std::to_string(port) + "\n" +
                 indent(r.output));
    expect_no_pid(h.pid, "the failed restore");
    r = ckpt(dir, "restore", restore, {img + "/restore.log"});
    if (!r.ok())
      throw Fail("restore with the port free again failed: " + r.describe() + "\n" +
                 indent(r.all()));
    track_pid(h.pid);
    expect_alive(h, "after restore");
    finish_helper(h);
  });

  // ---- incremental chains (criu/mem_track.h, criu/page_chain.h) ----
  check("restore-pre-dump-alone", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string d1 = dir + "/d1";
    Ckpt r = step(dir, "pre-dump", "pre-dump", h.pid, d1, "");
    if (!r.ok()) throw Fail("setup: pre-dump failed: " + r.describe() + "\n" + indent(r.all()));
    r = ckpt(dir, "restore", {"restore", "-D", d1, "-d", "-o", "restore.log", "-v4"},
             {d1 + "/restore.log"});
    expect_refused(r, "restore of a pre-dump alone");
    if (r.all().find("is a pre-dump") == std::string::npos)
      throw Fail("the error does not say it is a pre-dump\n" + indent(r.all()));
    expect_alive(h, "after the refused restore");
    finish_helper(h);
    reap_trackers();
  });

  // A step whose parent is a pre-dump of another process: refused at dump
  // (the victim untouched, no tracking added) and, with the link changed
  // behind ckpt's back, at restore (nothing left running).
  check("chain-of-another-process", [](const std::string& dir) {
    Helper a = start_helper("same_pid", dir + "/a");
    Helper b = start_helper("same_pid", dir + "/b");
    std::string da = dir + "/da", db = dir + "/db";
    Ckpt r = step(dir, "pre-dump-a", "pre-dump", a.pid, da, "");
    if (!r.ok()) throw Fail("setup: pre-dump of a failed\n" + indent(r.all()));
    std::string maps_b = read_text("/proc/" + std::to_string(b.pid) + "/maps");
    for (const char* cmd : {"pre-dump", "dump"}) {
      std::string img = dir + "/b-" + cmd;
      r = step(dir, std::string(cmd) + "-b", cmd, b.pid, img, "../da");
      expect_refused(r, std::string(cmd) + " of pid " + std::to_string(b.pid) +
                            " with a parent of pid " + std::to_string(a.pid));
      if (!mentions_number(r.output, a.pid) || !mentions_number(r.output, b.pid))
        throw Fail("the error does not name both pids\n" + indent(r.output));
      expect_alive(b, std::string("after the refused ") + cmd);
      if (write_tracked(b.pid)) throw Fail(std::string("the refused ") + cmd + " left uffd-wp");
      if (read_text("/proc/" + std::to_string(b.pid) + "/maps") != maps_b)
        throw Fail(std::string("the refused ") + cmd + " changed the victim's mappings");
      if (fs::exists(img + "/inventory.img") || fs::exists(img + "/parent"))
        throw Fail(std::string("the refused ") + cmd + " left a parent link or an inventory");
    }
    // A good chain of a (pre-dump, dump), then its parent swapped for b's.
    r = step(dir, "pre-dump-b", "pre-dump", b.pid, db, "");
    if (!r.ok()) throw Fail("setup: pre-dump of b failed\n" + indent(r.all()));
    std::string d2 = dir + "/d2";
    r = step(dir, "dump-a", "dump", a.pid, d2, "../da");
    if (!r.ok()) throw Fail("setup: dump of a failed\n" + indent(r.all()));
    int st;
    if (!wait_exit(a.pid, 10, &st)) throw Fail("setup: the dump did not kill a");
    fs::remove(d2 + "/parent");
    fs::create_directory_symlink("../db", d2 + "/parent");
    r = ckpt(dir, "restore", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    expect_refused(r, "restore of a chain whose parent is another process's");
    if (r.all().find("another process") == std::string::npos)
      throw Fail("the error does not say the chain is of another process\n" + indent(r.all()));
    expect_no_pid(a.pid, "the refused restore");
    // The right parent back: it restores.
    fs::remove(d2 + "/parent");
    fs::create_directory_symlink("../da", d2 + "/parent");
    r = ckpt(dir, "restore-good", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    if (!r.ok()) throw Fail("restore of the right chain failed\n" + indent(r.all()));
    track_pid(a.pid);
    expect_alive(a, "after the restore");
    finish_helper(a);
    finish_helper(b);
    reap_trackers();
  });

  // The parent missing at dump (a clear error, victim untouched) and gone
  // before restore (refused, nothing left).
  check("chain-parent-missing", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    Ckpt r = step(dir, "dump-nowhere", "dump", h.pid, dir + "/dx", "../no-such-dir");
    expect_refused(r, "dump with a missing parent");
    if (r.output.find("no-such-dir") == std::string::npos)
      throw Fail("the error does not name the missing parent\n" + indent(r.output));
    expect_alive(h, "after the refused dump");
    std::string d1 = dir + "/d1", d2 = dir + "/d2";
    r = step(dir, "pre-dump", "pre-dump", h.pid, d1, "");
    if (!r.ok()) throw Fail("setup: pre-dump failed\n" + indent(r.all()));
    r = step(dir, "dump", "dump", h.pid, d2, "../d1");
    if (!r.ok()) throw Fail("setup: dump failed\n" + indent(r.all()));
    int st;
    if (!wait_exit(h.pid, 10, &st)) throw Fail("setup: the dump did not kill the victim");
    fs::remove_all(d1);
    r = ckpt(dir, "restore", {"restore", "-D", d2, "-d", "-o", "restore.log", "-v4"},
             {d2 + "/restore.log"});
    expect_refused(r, "restore with the parent images gone");
    if (r.all().find("parent") == std::string::npos)
      throw Fail("the error does not name the parent images\n" + indent(r.all()));
    expect_no_pid(h.pid, "the refused restore");
    reap_trackers();
  });

  kill_all_children();
  printf("zdtm-errors: %d sub-check(s) failed\n", g_failed);
  return g_failed ? 1 : 0;
}
