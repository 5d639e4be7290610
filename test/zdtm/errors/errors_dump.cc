// zdtm-errors, dumps that must be refused or fail cleanly: a missing pid,
// unknown options, unsupported files and process states, namespace layouts
// ckpt cannot restore, ckpt killed mid-dump, a full disk, a page server
// that is absent, hangs up or is fed hostile input. The victim runs on.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
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
#include <string>
#include <utility>
#include <vector>

#include "errors_checks.h"
#include "errors_lib.h"
#include "zdtm.h"

namespace fs = std::filesystem;
using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

void RunDumpChecks() {
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
  // A tree with a mount namespace of its own: a regular file in flight is
  // saved by the path the tree sees; one on a mount outside its namespace
  // (here a tmpfs mounted nowhere, whose file readlink names
  // "/work/out.txt", a path of the tree's own) is refused, not restored as
  // the tree's /work/out.txt.
  check("dump-scm-outside-mntns", [](const std::string& dir) {
    Helper h = start_helper("scm_unsupported", dir + "/run", {"--outside-ns"},
                            CLONE_NEWPID | CLONE_NEWNS);
    std::string img = dir + "/img";
    fs::create_directories(img);
    Ckpt r =
        ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img, "-o", "dump.log", "-v4"},
             {img + "/dump.log"});
    expect_refused(r, "dump of a tree holding a file from outside its mount namespace in flight");
    if (r.all().find("is on a mount outside the mount namespace of pid") == std::string::npos ||
        !mentions_number(r.output, h.pid))
      throw Fail("the error does not say \"is on a mount outside the mount namespace\" naming pid " +
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
                             {"--clone-files", "share one fd table"},  // (siblings)
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
      // --clone-fs and --clone-files name the two children (the root's
      // pid is not in it).
      bool siblings = std::string(arg) == "--clone-fs" || std::string(arg) == "--clone-files";
      bool named = siblings ? r.output.find(" and pid ") != std::string::npos &&
                                  r.output.find("not through their parents") != std::string::npos
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

}
