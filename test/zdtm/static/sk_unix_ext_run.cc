// sk_unix_ext_run: runs sk_unix_ext against a unix socket server outside
// the dumped tree.
//
//   sk_unix_ext_run --zdtm-run PATH --ckpt CKPT --mode MODE --workdir DIR -- TESTBIN
//
// 1. Starts the outside server: a datagram echo socket and a stream
//    listener, bound to paths in DIR-peer/.
// 2. Runs TESTBIN --stream too and checks that `ckpt dump --ext-unix-sk`
//    refuses its stream socket connected outside, leaving it running.
// 3. Runs zdtm-run in MODE with itself as the ckpt it calls: as that shim
//    it first checks that a dump without --ext-unix-sk is refused with the
//    documented message (and the test keeps running), then runs the real
//    dump with --ext-unix-sk; restores go straight to the real ckpt.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

const char kRefused[] = "unix socket connected outside the dumped tree (use --ext-unix-sk)";
const char kStreamRefused[] = "only datagram sockets can be connected again";

[[noreturn]] void die(const std::string& why) {
  fprintf(stderr, "sk_unix_ext_run: FAIL: %s\n", why.c_str());
  kill_all_children();
  exit(1);
}

int bound(int type, const std::string& path) {
  int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", path.c_str());
  unlink(path.c_str());
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0)
    die("bind " + path + ": " + strerror(errno));
  return fd;
}

// The outside server: echoes datagrams from named senders, accepts stream
// connections and keeps them. Dies with its parent.
pid_t start_server(const std::string& dpath, const std::string& spath) {
  int d = bound(SOCK_DGRAM, dpath), l = bound(SOCK_STREAM, spath);
  if (listen(l, 16) < 0) die(std::string("listen: ") + strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) {
    close(d);
    close(l);
    return pid;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<int> keep;
  for (;;) {
    pollfd p[2] = {{d, POLLIN, 0}, {l, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) continue;
    if (p[0].revents & POLLIN) {
      char buf[4096];
      sockaddr_un from = {};
      socklen_t fl = sizeof(from);
      ssize_t n = recvfrom(d, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n >= 0 && fl > sizeof(sa_family_t))
        sendto(d, buf, size_t(n), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), fl);
    }
    if (p[1].revents & POLLIN) {
      int c = accept(l, nullptr, nullptr);
      if (c >= 0) keep.push_back(c);
    }
  }
}

std::string g_real;

// The ckpt shim zdtm-run calls.
int shim(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] != "dump") {
    args.insert(args.begin(), g_real);
    std::vector<char*> av;
    for (auto& a : args) av.push_back(a.data());
    av.push_back(nullptr);
    execv(g_real.c_str(), av.data());
    perror("exec ckpt");
    return 127;
  }
  // The refused dump first, into a directory of its own.
  std::vector<std::string> refused = {g_real};
  std::string dir, pid;
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i] == "-D" && i + 1 < args.size()) {
      dir = args[i + 1] + "-refused";
      refused.push_back("-D");
      refused.push_back(dir);
      i++;
      continue;
    }
    if (args[i] == "-t" && i + 1 < args.size()) pid = args[i + 1];
    refused.push_back(args[i]);
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  CmdResult r = run_cmd(refused, dir + "/shim.out", 60);
  std::string log = read_text(dir + "/dump.log") + r.output;
  if (r.ok()) {
    fprintf(stderr, "shim: a dump without --ext-unix-sk succeeded\n");
    return 1;
  }
  if (log.find(kRefused) == std::string::npos) {
    fprintf(stderr, "shim: the refused dump does not say \"%s\":\n%s\n", kRefused, log.c_str());
    return 1;
  }
  if (kill(pid_t(atoi(pid.c_str())), 0) < 0) {
    fprintf(stderr, "shim: the test did not survive the refused dump\n");
    return 1;
  }
  fs::remove_all(dir);
  args.insert(args.begin(), g_real);
  args.push_back("--ext-unix-sk");
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  execv(g_real.c_str(), av.data());
  perror("exec ckpt");
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* real = getenv("SK_UNIX_EXT_REAL_CKPT")) {
    g_real = real;
    return shim(argc, argv);
  }
  std::string zrun, ckpt, mode, workdir;
  std::vector<std::string> test;
  int i = 1;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") {
      i++;
      break;
    }
    if (i + 1 >= argc) break;
    if (a == "--zdtm-run")
      zrun = argv[++i];
    else if (a == "--ckpt")
      ckpt = argv[++i];
    else if (a == "--mode")
      mode = argv[++i];
    else if (a == "--workdir")
      workdir = argv[++i];
  }
  for (; i < argc; i++) test.push_back(argv[i]);
  if (zrun.empty() || ckpt.empty() || mode.empty() || workdir.empty() || test.empty()) {
    fprintf(stderr,
            "usage: sk_unix_ext_run --zdtm-run PATH --ckpt CKPT --mode MODE --workdir DIR -- "
            "TESTBIN\n");
    return 2;
  }
  harness_init();
  workdir = fs::absolute(workdir).string();
  ckpt = fs::absolute(ckpt).string();
  std::string peerdir = workdir + "-peer";
  fs::remove_all(peerdir);
  fs::create_directories(peerdir);
  std::string dpath = peerdir + "/echo.sock", spath = peerdir + "/stream.sock";
  if (spath.size() >= sizeof(sockaddr_un::sun_path)) die("work directory path too long: " + spath);
  pid_t server = start_server(dpath, spath);

  if (mode != "plain") {
    // A stream socket connected outside: refused even with --ext-unix-sk.
    std::vector<std::string> targv = test;
    for (const char* a : {"--peer", dpath.c_str(), "--stream", spath.c_str()}) targv.push_back(a);
    std::string out = peerdir + "/stream-test.txt";
    pid_t t = start_test(targv, peerdir, out);
    std::string err = wait_ready(t, out, 60);
    if (!err.empty()) die("stream variant: " + err);
    std::string img = peerdir + "/stream-img";
    fs::create_directories(img);
    CmdResult r = run_cmd({ckpt, "dump", "-t", std::to_string(t), "-D", img, "-o", "dump.log",
                           "-v4", "--ext-unix-sk"},
                          peerdir + "/stream-dump.out", 60);
    std::string log = read_text(img + "/dump.log") + r.output;
    if (r.ok()) die("ckpt dumped a stream socket connected outside the tree");
    if (log.find(kStreamRefused) == std::string::npos)
      die(std::string("the refusal of the stream socket does not say \"") + kStreamRefused +
          "\":\n" + log);
    if (proc_state(t) == 0 || proc_state(t) == 'Z')
      die("the stream variant did not survive the refused dump");
    kill(t, SIGKILL);
    int st;
    waitpid(t, &st, 0);
    untrack_pid(t);
    printf(
        "sk_unix_ext_run: stream socket connected outside refused with --ext-unix-sk, as it "
        "should\n");
  }

  std::string self = fs::read_symlink("/proc/self/exe").string();
  setenv("SK_UNIX_EXT_REAL_CKPT", ckpt.c_str(), 1);
  std::vector<std::string> zargv = {zrun, "--ckpt",    self,    "--mode",
                                    mode, "--workdir", workdir, "--"};
  for (const auto& a : test) zargv.push_back(a);
  zargv.push_back("--peer");
  zargv.push_back(dpath);
  fflush(stdout);
  pid_t z = fork();
  if (z == 0) {
    std::vector<char*> av;
    for (auto& a : zargv) av.push_back(a.data());
    av.push_back(nullptr);
    execv(zrun.c_str(), av.data());
    perror("exec zdtm-run");
    _exit(127);
  }
  int st = 0;
  waitpid(z, &st, 0);
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
  kill_all_children();
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) fs::remove_all(peerdir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
