// ckpt-bench-victim tcp N: one process holding N established loopback TCP
// connections, both ends of each: a listener on 127.0.0.1 (kernel-chosen
// port), N clients connected to it and the N sockets it accepted, so 2N
// connected sockets plus the listener (fds 3 .. 2N+3). Every socket has
// sent kUnread bytes its peer has not read (a pattern naming the
// connection and the direction).
//
// READY once all N are connected and their data has arrived; then it waits
// for SIGTERM (sigwaitinfo). On SIGTERM, for every connection: the client
// and server still see the same addresses as before the dump, the unread
// bytes are there on both ends and right, and a fresh message goes each
// way and arrives (every wait bounded). Exit 0 only if all N pass; 1 with
// the first failures on stderr; 2 on a setup error; 3 if RLIMIT_NOFILE is
// too low.
#include "bench_victim_tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kUnread = 64;  // bytes each end leaves unread
constexpr size_t kEcho = 32;    // bytes of the message sent each way after restore
constexpr long kMaxConns = 100000;
constexpr int kWaitMs = 10000;  // bound on each wait for data

[[noreturn]] void fail_setup(const char* what) {
  fprintf(stderr, "ckpt-bench-victim: tcp: %s: %s\n", what, strerror(errno));
  _exit(2);
}

// Byte k of what connection i sends in direction d ('c' client->server,
// 's' server->client), phase p (0 before the dump, 1 after).
unsigned char pattern(long i, char d, int p, size_t k) {
  uint64_t x = uint64_t(i) * 0x9e3779b97f4a7c15ull + uint64_t(d) * 131 + uint64_t(p) * 7 + k;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ull;
  return static_cast<unsigned char>(x >> 56);
}

bool send_all(int fd, long i, char d, int p, size_t n) {
  unsigned char buf[kUnread > kEcho ? kUnread : kEcho];
  for (size_t k = 0; k < n; k++) buf[k] = pattern(i, d, p, k);
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += size_t(w);
  }
  return true;
}

// Reads exactly n bytes (waiting at most kWaitMs for each part) and checks
// them. Returns "" or what was wrong.
std::string recv_check(int fd, long i, char d, int p, size_t n) {
  unsigned char buf[kUnread > kEcho ? kUnread : kEcho];
  size_t off = 0;
  while (off < n) {
    pollfd q = {fd, POLLIN, 0};
    int r = poll(&q, 1, kWaitMs);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return "no data within " + std::to_string(kWaitMs / 1000) + " s";
    ssize_t got = recv(fd, buf + off, n - off, MSG_DONTWAIT);
    if (got == 0) return "end of stream after " + std::to_string(off) + " bytes";
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got < 0) return std::string("recv: ") + strerror(errno);
    off += size_t(got);
  }
  for (size_t k = 0; k < n; k++)
    if (buf[k] != pattern(i, d, p, k)) return "byte " + std::to_string(k) + " is wrong";
  return "";
}

struct Conn {
  int client = -1, server = -1;
  sockaddr_in caddr = {}, saddr = {};  // client's local and server's local addresses
};

sockaddr_in local_of(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return a;
}

sockaddr_in peer_of(int fd) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return a;
}

bool same(const sockaddr_in& a, const sockaddr_in& b) {
  return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
}

}  // namespace

int bench_tcp_victim_main(char** argv) {
  char* end = nullptr;
  errno = 0;
  long n = strtol(argv[2], &end, 10);
  if (errno || end == argv[2] || *end || n < 1 || n > kMaxConns) {
    fprintf(stderr, "ckpt-bench-victim: tcp N: N in [1, %ld]\n", kMaxConns);
    return 2;
  }
  const rlim_t need = rlim_t(2 * n) + 4 + 8;
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) fail_setup("getrlimit");
  if (rl.rlim_cur < need) {
    if (rl.rlim_max < need) {
      fprintf(stderr, "ckpt-bench-victim: tcp: RLIMIT_NOFILE hard limit %llu < %llu needed\n",
              (unsigned long long)rl.rlim_max, (unsigned long long)need);
      return 3;
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) fail_setup("setrlimit");
  }

  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0) fail_setup("socket");
  sockaddr_in la = {};
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0) fail_setup("bind 127.0.0.1:0");
  if (listen(l, 128) != 0) fail_setup("listen");
  la = local_of(l);

  // Connect and accept one at a time: the accept queue is empty at READY
  // (ckpt refuses connections not yet accepted without --skip-in-flight).
  std::vector<Conn> conns(static_cast<size_t>(n));
  for (long i = 0; i < n; i++) {
    Conn& c = conns[size_t(i)];
    c.client = socket(AF_INET, SOCK_STREAM, 0);
    if (c.client < 0) fail_setup("socket");
    if (connect(c.client, reinterpret_cast<sockaddr*>(&la), sizeof(la)) != 0) fail_setup("connect");
    c.server = accept(l, nullptr, nullptr);
    if (c.server < 0) fail_setup("accept");
    c.caddr = local_of(c.client);
    c.saddr = local_of(c.server);
    if (!same(peer_of(c.server), c.caddr)) {
      fprintf(stderr, "ckpt-bench-victim: tcp: accepted a connection that is not client %ld\n", i);
      return 2;
    }
    if (!send_all(c.client, i, 'c', 0, kUnread) || !send_all(c.server, i, 's', 0, kUnread))
      fail_setup("send");
  }
  // READY only once every byte has arrived (nothing in flight at the dump).
  for (long i = 0; i < n; i++) {
    const Conn& c = conns[size_t(i)];
    for (int fd : {c.client, c.server}) {
      for (int t = 0;; t++) {
        int avail = 0;
        if (ioctl(fd, FIONREAD, &avail) != 0) fail_setup("FIONREAD");
        if (size_t(avail) >= kUnread) break;
        if (t > 10000) {
          fprintf(stderr, "ckpt-bench-victim: tcp: connection %ld: data did not arrive\n", i);
          return 2;
        }
        usleep(1000);
      }
    }
  }

  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &term, nullptr) != 0) fail_setup("sigprocmask");
  if (write(STDOUT_FILENO, "READY\n", 6) != 6) fail_setup("write READY");
  for (;;) {
    int s = sigwaitinfo(&term, nullptr);
    if (s == SIGTERM) break;
    if (s < 0 && errno != EINTR) fail_setup("sigwaitinfo");
  }

  long bad = 0;
  for (long i = 0; i < n; i++) {
    const Conn& c = conns[size_t(i)];
    std::string why;
    if (!same(local_of(c.client), c.caddr) || !same(peer_of(c.client), c.saddr) ||
        !same(local_of(c.server), c.saddr) || !same(peer_of(c.server), c.caddr))
      why = "addresses changed";
    if (why.empty()) why = recv_check(c.server, i, 'c', 0, kUnread);
    if (why.empty()) why = recv_check(c.client, i, 's', 0, kUnread);
    if (why.empty() && !send_all(c.client, i, 'c', 1, kEcho)) why = "send from the client failed";
    if (why.empty() && !send_all(c.server, i, 's', 1, kEcho)) why = "send from the server failed";
    if (why.empty()) why = recv_check(c.server, i, 'c', 1, kEcho);
    if (why.empty()) why = recv_check(c.client, i, 's', 1, kEcho);
    if (!why.empty() && bad++ < 5)
      fprintf(stderr, "ckpt-bench-victim: tcp: connection %ld (client fd %d, server fd %d): %s\n",
              i, c.client, c.server, why.c_str());
  }
  if (bad) {
    fprintf(stderr, "ckpt-bench-victim: tcp: %ld of %ld connections failed\n", bad, n);
    _exit(1);
  }
  _exit(0);
}
