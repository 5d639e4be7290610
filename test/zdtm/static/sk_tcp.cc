// sk_tcp: TCP sockets of one family on loopback (127.0.0.1, or ::1 with
// --v6), run with --tcp-established.
//   l   a listener (port 0, backlog 5): SO_REUSEADDR, SO_KEEPALIVE,
//       SO_RCVBUF (inherited by s), IPV6_V6ONLY on v6
//   c   a client connected to l, O_NONBLOCK: TCP_NODELAY, SO_KEEPALIVE with
//       TCP_KEEPIDLE/INTVL/CNT, TCP_USER_TIMEOUT, SO_SNDBUF, IP_TOS or
//       IPV6_TCLASS, IP_TTL or IPV6_UNICAST_HOPS
//   s   the accepted server end: SO_LINGER {1, 5}, its own TOS
//   u   a socket never bound or connected, with options
//   b   a socket only bound (port 0)
// Unread at the dump: 100 KiB c -> s and 3 KiB s -> c (patterned streams
// seeded per run). After SIGTERM: addresses, states and every option in
// inet::tcp_opts() (plus the buffer sizes set) are what they were; the
// listener's queue is empty with backlog 5 (sock_diag); the unread data
// arrives exactly, then 1 MiB flows each way; l accepts a new connection
// and u can connect; b still holds its port (a second bind gets
// EADDRINUSE).
#include "sk_inet.h"

namespace {

constexpr int kBacklog = 5;
constexpr size_t kUnreadCS = 100 * 1024, kUnreadSC = 3 * 1024, kMore = 1024 * 1024;

struct Sock {
  int fd = -1;
  const char* what = "";
  inet::OptSnapshot opts;
  inet::Addr self, peer;
  int state = 0;
};

void record(Sock* k, int fd, const char* what, const std::vector<inet::OptSpec>& specs) {
  k->fd = fd;
  k->what = what;
  k->opts = inet::snapshot(fd, specs);
  k->self = inet::name_of(fd);
  k->peer = inet::name_of(fd, true);
  k->state = inet::tcp_state(fd);
}

void verify(const Sock& k) {
  inet::expect_tcp_state(k.fd, k.state, k.what);
  inet::expect_name(k.fd, false, k.self, k.what);
  inet::expect_name(k.fd, true, k.peer, k.what);
  inet::expect_snapshot(k.fd, k.opts, k.what);
}

// Waits until fd has n unread bytes (loopback delivers at once; this only
// makes "unread at the dump" certain rather than likely).
void await_inq(int fd, int n, const char* what) {
  for (int i = 0; i < 1000 && inet::inq(fd) < n; i++) usleep(10000);
  if (inet::inq(fd) != n) fail("setup: %s has %d unread bytes, want %d", what, inet::inq(fd), n);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const int fam = argc > 1 && !strcmp(argv[1], "--v6") ? AF_INET6 : AF_INET;
  const int ipl = fam == AF_INET ? IPPROTO_IP : IPPROTO_IPV6;
  const int tos_opt = fam == AF_INET ? IP_TOS : IPV6_TCLASS;
  const int ttl_opt = fam == AF_INET ? IP_TTL : IPV6_UNICAST_HOPS;
  const uint64_t seed = zdtm_seed();
  inet::Stream cs, sc;  // c -> s, s -> c
  cs.seed = zdtm_mix(seed, 1);
  sc.seed = zdtm_mix(seed, 2);

  int l = inet::new_socket(fam, SOCK_STREAM);
  inet::setopt_int(l, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
  inet::setopt_int(l, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
  inet::setopt_int(l, SOL_SOCKET, SO_RCVBUF, 256 * 1024, "SO_RCVBUF");
  if (fam == AF_INET6) inet::setopt_int(l, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  inet::bind_to(l, inet::loopback(fam));
  if (listen(l, kBacklog)) fail("listen: %s", strerror(errno));
  const inet::Addr lname = inet::name_of(l);

  int c = inet::new_socket(fam, SOCK_STREAM);
  inet::setopt_int(c, SOL_SOCKET, SO_SNDBUF, 256 * 1024, "SO_SNDBUF");
  inet::setopt_int(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  inet::setopt_int(c, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
  inet::setopt_int(c, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
  inet::setopt_int(c, IPPROTO_TCP, TCP_KEEPINTVL, 13, "TCP_KEEPINTVL");
  inet::setopt_int(c, IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
  inet::setopt_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT");
  inet::setopt_int(c, ipl, tos_opt, 0x10, "IP_TOS/IPV6_TCLASS");
  inet::setopt_int(c, ipl, ttl_opt, 33, "IP_TTL/IPV6_UNICAST_HOPS");
  inet::connect_to(c, lname);
  if (fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK)) fail("O_NONBLOCK: %s", strerror(errno));
  int s = inet::accept_one(l, "l");
  inet::set_linger(s, 1, 5);
  inet::setopt_int(s, ipl, tos_opt, 0x08, "IP_TOS/IPV6_TCLASS");

  int u = inet::new_socket(fam, SOCK_STREAM);
  inet::setopt_int(u, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
  inet::setopt_int(u, ipl, ttl_opt, 17, "IP_TTL/IPV6_UNICAST_HOPS");
  inet::setopt_int(u, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");

  int b = inet::new_socket(fam, SOCK_STREAM);
  inet::setopt_int(b, IPPROTO_TCP, TCP_KEEPIDLE, 99, "TCP_KEEPIDLE");
  inet::setopt_int(b, ipl, tos_opt, 0x04, "IP_TOS/IPV6_TCLASS");
  inet::bind_to(b, inet::loopback(fam));

  inet::send_stream(c, &cs, kUnreadCS, "c -> s (unread)");
  inet::send_stream(s, &sc, kUnreadSC, "s -> c (unread)");
  await_inq(s, int(kUnreadCS), "s");
  await_inq(c, int(kUnreadSC), "c");

  const auto base = inet::tcp_opts(fam);
  Sock kl, kc, ks, ku, kb;
  record(&kl, l, "listener", inet::with(base, {INET_OPT(SOL_SOCKET, SO_RCVBUF)}));
  record(&kc, c, "client", inet::with(base, {INET_OPT(SOL_SOCKET, SO_SNDBUF)}));
  record(&ks, s, "server end", inet::with(base, {INET_OPT(SOL_SOCKET, SO_RCVBUF)}));
  record(&ku, u, "unconnected", base);
  record(&kb, b, "bound", base);
  if (kl.state != TCP_LISTEN || kc.state != TCP_ESTABLISHED || ks.state != TCP_ESTABLISHED ||
      ku.state != TCP_CLOSE || kb.state != TCP_CLOSE)
    fail("setup: unexpected TCP states");
  if (kb.self.port() == 0) fail("setup: b got no port");
  inet::expect_listener_queue(lname, 0, kBacklog, "setup: listener");
  test_msg("%s: listener %s, client %s, bound %s", inet::family_name(fam), lname.str().c_str(),
           kc.self.str().c_str(), kb.self.str().c_str());

  test_ready();
  test_wait();

  for (const Sock* k : {&kl, &kc, &ks, &ku, &kb}) verify(*k);
  inet::expect_listener_queue(lname, 0, kBacklog, "listener");

  // The data unread at the dump, exactly, then more both ways.
  inet::recv_stream(s, &cs, kUnreadCS, "s <- c (unread at dump)");
  inet::recv_stream(c, &sc, kUnreadSC, "c <- s (unread at dump)");
  inet::exchange(c, &cs, s, &sc, kMore, "c <-> s after restore");
  if (inet::inq(c) || inet::inq(s))
    fail("extra data after the exchange: c %d, s %d bytes", inet::inq(c), inet::inq(s));

  // The listener accepts a new connection.
  int n = inet::new_socket(fam, SOCK_STREAM);
  inet::connect_to(n, lname);
  int a = inet::accept_one(l, "listener after restore");
  inet::expect_name(a, true, inet::name_of(n), "accepted after restore");
  inet::Stream na{zdtm_mix(seed, 3)}, an{zdtm_mix(seed, 4)};
  inet::exchange(n, &na, a, &an, 64 * 1024, "new connection");

  // The socket that was never connected still works as one.
  inet::connect_to(u, lname);
  int ua = inet::accept_one(l, "listener (u)");
  inet::Stream uw{zdtm_mix(seed, 5)}, wu{zdtm_mix(seed, 6)};
  inet::exchange(u, &uw, ua, &wu, 16 * 1024, "u after connect");
  inet::expect_listener_queue(lname, 0, kBacklog, "listener after two accepts");

  // b still owns its port: binding it again without SO_REUSEADDR fails.
  int b2 = inet::new_socket(fam, SOCK_STREAM);
  if (bind(b2, kb.self.sa(), kb.self.len) == 0)
    fail("bound: a second socket could bind %s too: the restored socket does not hold it",
         kb.self.str().c_str());
  if (errno != EADDRINUSE) fail("bound: second bind: %s, want EADDRINUSE", strerror(errno));
  close(b2);

  // In leave-running mode this process exits here and the restore then
  // recreates these very connections (same address pairs) from the image.
  // A normal close would leave the active closer in TIME_WAIT holding the
  // pair; a reset (SO_LINGER {1, 0}) leaves nothing behind.
  for (int fd : {c, s, n, a, u, ua}) inet::close_rst(fd);
  close(l);
  close(b);
  inet::pass_if_clean();
}
