// sk_tcp_ext_run: runs sk_tcp_ext against a TCP server outside the dumped
// tree.
//
//   sk_tcp_ext_run --zdtm-run PATH --ckpt CKPT --mode MODE --workdir DIR -- TESTBIN
//
// 1. Starts the server (a child of ours, so never part of the dumped
//    tree): listeners on 127.0.0.1:0 and [::1]:0, whose ports go to the
//    test as --port4/--port6. Per connection it checks the test's stream
//    byte by byte and sends its own (protocol in sk_tcp_ext.cc), keeping
//    32 KiB unread on its side too.
// 2. Runs zdtm-run in MODE with --ckpt-opt --tcp-established and itself as
//    the ckpt zdtm-run calls: as that shim, before each real dump it runs
//    the same dump without --tcp-established, which must fail naming one
//    of the connections ("... -> 127.0.0.1:PORT is established (use
//    --tcp-established)") and leave the test running; then it runs the
//    real dump. Restores go straight to the real ckpt.
// 3. The server must then have seen exactly one connection per listener,
//    each an unbroken stream to a clean end: no reset, no error, no byte
//    lost, repeated or reordered. It exits 0 only then; we wait for it.
// Modes: plain, default and dump-twice. Not leave-running: there the
// original keeps talking to the server after the dump and then ends its
// connections, so the server's streams cannot rewind to the image that
// the restore would bring back.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"
#include "sk_inet.h"

namespace fs = std::filesystem;

namespace {

const char kRefused[] = " is established (use --tcp-established)";
constexpr size_t kChunk = 8 * 1024, kLag = 32 * 1024;
constexpr uint64_t kCap = 256ull << 20;

[[noreturn]] void die(const std::string& why) {
  fprintf(stderr, "sk_tcp_ext_run: FAIL: %s\n", why.c_str());
  zdtm::kill_all_children();
  exit(1);
}

// ---- the server (runs in a forked child) ----

struct Peer {
  int fd = -1;
  std::string what;
  char hdr[16];
  size_t hdr_got = 0;
  inet::Stream in, out;  // from / to the test
  bool seed_sent = false, eof = false, done = false;
};

[[noreturn]] void server_fail(const Peer& p, const std::string& why) {
  fprintf(stderr, "sk_tcp_ext server: %s: %s (received %llu, sent %llu)\n", p.what.c_str(),
          why.c_str(), (unsigned long long)p.in.received, (unsigned long long)p.out.sent);
  _exit(1);
}

// Reads what exceeds `keep` unread bytes (everything once keep is 0).
void serve_in(Peer* p, size_t keep) {
  char buf[65536];
  for (;;) {
    size_t want = sizeof(buf);
    if (p->hdr_got < sizeof(p->hdr)) {
      want = sizeof(p->hdr) - p->hdr_got;
    } else if (keep) {
      int avail = 0;
      ioctl(p->fd, FIONREAD, &avail);
      if (size_t(avail) <= keep) return;
      want = std::min(sizeof(buf), size_t(avail) - keep);
    }
    ssize_t r = recv(p->fd, buf, want, MSG_DONTWAIT);
    if (r == 0) {
      p->eof = true;
      return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r < 0) server_fail(*p, std::string("recv: ") + strerror(errno));
    if (p->hdr_got < sizeof(p->hdr)) {
      memcpy(p->hdr + p->hdr_got, buf, size_t(r));
      p->hdr_got += size_t(r);
      if (p->hdr_got == sizeof(p->hdr)) {
        if (memcmp(p->hdr, "ZDTMTCP1", 8)) server_fail(*p, "bad header");
        memcpy(&p->in.seed, p->hdr + 8, 8);
      }
      continue;
    }
    long long bad = inet::mismatch(p->in.seed, p->in.received, buf, size_t(r));
    if (bad >= 0)
      server_fail(*p, "stream byte " + std::to_string(bad) + " is wrong (lost or repeated data)");
    p->in.received += uint64_t(r);
  }
}

void serve_out(Peer* p) {
  if (!p->seed_sent) {  // our seed first, counted apart from the stream
    if (send(p->fd, &p->out.seed, 8, MSG_DONTWAIT | MSG_NOSIGNAL) != 8)
      server_fail(*p, std::string("cannot send the seed: ") + strerror(errno));
    p->seed_sent = true;
  }
  char buf[kChunk];
  inet::fill(p->out.seed, p->out.sent, buf, sizeof(buf));
  ssize_t w = send(p->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w > 0) p->out.sent += uint64_t(w);
  if (w < 0 && errno != EAGAIN && errno != EINTR)
    server_fail(*p, std::string("send: ") + strerror(errno));
}

// Whether the test shut down its side (more may still be unread).
bool peer_closed(int fd) {
  pollfd p = {fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

// After both streams ended: waits (at most 60 s) for the test to take
// the end of ours, so that a reset at the very end is still reported.
void linger_until_closed(Peer* peers) {
  for (int t = 0; t < 600; t++) {
    bool open = false;
    for (int i = 0; i < 2; i++) {
      Peer& p = peers[i];
      char x;
      ssize_t r = recv(p.fd, &x, 1, MSG_DONTWAIT);
      if (r < 0 && errno == ECONNRESET) server_fail(p, "reset after the end");
      if (r > 0) server_fail(p, "data after the end of the stream");
      if (inet::tcp_state(p.fd) != TCP_CLOSE) open = true;
    }
    if (!open) return;
    usleep(100 * 1000);
  }
}

// Bounded: sending stops at kCap, and the driver kills us at the latest
// when zdtm-run has given up.
[[noreturn]] void serve(int l4, int l6, uint64_t seed) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  Peer peers[2];
  const int ls[2] = {l4, l6};
  for (int i = 0; i < 2; i++) {
    peers[i].what = i ? "[::1] connection" : "127.0.0.1 connection";
    peers[i].out.seed = zdtm_mix(seed, uint64_t(i));
  }
  for (;;) {
    pollfd pl[2] = {{l4, POLLIN, 0}, {l6, POLLIN, 0}};
    poll(pl, 2, 2);
    for (int i = 0; i < 2; i++) {
      if (!(pl[i].revents & POLLIN)) continue;
      int fd = accept(ls[i], nullptr, nullptr);
      if (fd < 0) continue;
      if (peers[i].fd >= 0) server_fail(peers[i], "a second connection arrived (the first broke?)");
      peers[i].fd = fd;
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    bool all_done = true;
    for (Peer& p : peers) {
      if (p.done) continue;
      all_done = false;
      if (p.fd < 0) continue;
      const bool closing = peer_closed(p.fd);
      serve_in(&p, closing ? 0 : kLag);
      if (!closing && p.out.sent < kCap) serve_out(&p);
      if (!p.eof) continue;
      // The test ended its stream (all read and checked): end ours.
      if (shutdown(p.fd, SHUT_WR)) server_fail(p, std::string("shutdown: ") + strerror(errno));
      printf("sk_tcp_ext server: %s ended cleanly: received %llu, sent %llu bytes\n",
             p.what.c_str(), (unsigned long long)p.in.received, (unsigned long long)p.out.sent);
      fflush(stdout);
      p.done = true;
    }
    if (all_done) {
      linger_until_closed(peers);
      _exit(0);
    }
  }
}

int listen_on(int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  inet::Addr a = inet::loopback(family);
  if (family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  // Inherited by the accepted sockets: room for far more than the lag
  // (see sk_tcp_ext.cc).
  int rcvbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (fd < 0 || bind(fd, a.sa(), a.len) || listen(fd, 4))
    die("listen on " + a.str() + ": " + strerror(errno));
  return fd;
}

// ---- the ckpt shim zdtm-run calls ----

std::string g_real;

[[noreturn]] void exec_real(std::vector<std::string> args) {
  args.insert(args.begin(), g_real);
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  execv(g_real.c_str(), av.data());
  perror("exec ckpt");
  _exit(127);
}

int shim(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] != "dump") exec_real(args);
  std::vector<std::string> refused = {g_real};
  std::string dir, pid;
  for (size_t i = 0; i < args.size(); i++) {
    if (args[i] == "--tcp-established") continue;
    if (args[i] == "-D" && i + 1 < args.size()) {
      dir = args[++i] + "-refused";
      refused.push_back("-D");
      refused.push_back(dir);
      continue;
    }
    if (args[i] == "-t" && i + 1 < args.size()) pid = args[i + 1];
    refused.push_back(args[i]);
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  zdtm::CmdResult r = zdtm::run_cmd(refused, dir + "/shim.out", 60);
  std::string out = r.output;
  if (r.ok()) {
    fprintf(stderr, "shim: a dump without --tcp-established succeeded\n");
    return 1;
  }
  if (r.crashed()) {
    fprintf(stderr, "shim: the dump without --tcp-established crashed: %s\n%s",
            r.describe().c_str(), out.c_str());
    return 1;
  }
  const std::string v4 = std::string("-> 127.0.0.1:") + getenv("SK_TCP_EXT_PORT4") + kRefused;
  const std::string v6 = std::string("-> [::1]:") + getenv("SK_TCP_EXT_PORT6") + kRefused;
  if (out.find(v4) == std::string::npos && out.find(v6) == std::string::npos) {
    fprintf(stderr, "shim: the refusal names neither connection (\"%s\" or \"%s\"):\n%s\n",
            v4.c_str(), v6.c_str(), out.c_str());
    return 1;
  }
  if (out.find("pid " + pid + " fd ") == std::string::npos) {
    fprintf(stderr, "shim: the refusal does not name pid %s and the fd:\n%s\n", pid.c_str(),
            out.c_str());
    return 1;
  }
  char st = zdtm::proc_state(pid_t(atoi(pid.c_str())));
  if (st != 'S' && st != 'R') {
    fprintf(stderr, "shim: the test is not running after the refused dump: %s\n",
            zdtm::describe_pid(pid_t(atoi(pid.c_str()))).c_str());
    return 1;
  }
  fprintf(stderr, "shim: refused as expected: %s", out.c_str());
  fs::remove_all(dir);
  exec_real(args);
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* real = getenv("SK_TCP_EXT_REAL_CKPT")) {
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
            "usage: sk_tcp_ext_run --zdtm-run PATH --ckpt CKPT --mode MODE --workdir DIR -- "
            "TESTBIN\n");
    return 2;
  }
  if (mode == "leave-running") die("leave-running is not a mode of this test (see the header)");
  zdtm::harness_init();
  workdir = fs::absolute(workdir).string();

  int l4 = listen_on(AF_INET), l6 = listen_on(AF_INET6);
  const uint16_t port4 = inet::name_of(l4).port(), port6 = inet::name_of(l6).port();
  fflush(stdout);
  pid_t server = fork();
  if (server < 0) die("fork");
  if (server == 0) serve(l4, l6, zdtm_seed());
  close(l4);
  close(l6);
  zdtm::track_pid(server);
  printf("sk_tcp_ext_run: server pid %d on 127.0.0.1:%u and [::1]:%u\n", server, port4, port6);

  std::vector<std::string> zargv = {zrun, "--mode", mode, "--workdir", workdir};
  if (mode == "plain") {
    zargv.insert(zargv.end(), {"--ckpt", ckpt});
  } else {
    // zdtm-run calls us as its ckpt (the shim above), we call the real one.
    setenv("SK_TCP_EXT_REAL_CKPT", fs::absolute(ckpt).c_str(), 1);
    setenv("SK_TCP_EXT_PORT4", std::to_string(port4).c_str(), 1);
    setenv("SK_TCP_EXT_PORT6", std::to_string(port6).c_str(), 1);
    zargv.insert(zargv.end(), {"--ckpt", fs::read_symlink("/proc/self/exe").string(), "--ckpt-opt",
                               "--tcp-established"});
  }
  zargv.push_back("--");
  for (const auto& a : test) zargv.push_back(a);
  for (const std::string& a : {std::string("--port4"), std::to_string(port4),
                               std::string("--port6"), std::to_string(port6)})
    zargv.push_back(a);
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
  int zst = 0;
  waitpid(z, &zst, 0);
  const bool zok = WIFEXITED(zst) && WEXITSTATUS(zst) == 0;

  int sst = 0;
  bool exited = zdtm::wait_exit(server, zok ? 30 : 1, &sst);
  if (!exited) {
    kill(server, SIGKILL);
    waitpid(server, &sst, 0);
  }
  zdtm::untrack_pid(server);
  zdtm::kill_all_children();
  if (!zok) die("zdtm-run failed (" + zdtm::describe_status(zst) + ")");
  if (!exited) die("the server did not see both connections end within 30 s");
  if (!WIFEXITED(sst) || WEXITSTATUS(sst) != 0)
    die("the server saw a broken connection (" + zdtm::describe_status(sst) + ")");
  printf("sk_tcp_ext_run: PASS (one unbroken connection per family)\n");
  return 0;
}
