// sk_tcp_ext: TCP connections to a server outside the dumped tree, kept
// busy across the dump (run by sk_tcp_ext_run, which owns the server).
//   sk_tcp_ext --port4 N --port6 M
// Connects to 127.0.0.1:N and [::1]:M. Each connection carries two
// patterned streams (sk_inet.h): ours starts with the header "ZDTMTCP1"
// and our 8-byte seed, the server's with its 8-byte seed. Both sides send
// 8 KiB every 2 ms and read only what exceeds 32 KiB, so each receive
// queue holds at least 32 KiB unread at any moment, the dump's included
// (READY waits until it does). Sending stops by itself after 256 MiB.
// After SIGTERM: addresses and state are what they were; we send 256 KiB
// more, shut down our side and read the server's stream to its end (the
// server ends it when it has seen ours end). A wrong, missing or repeated
// byte fails here or in the server, which reports to sk_tcp_ext_run.
#include "sk_inet.h"

namespace {

constexpr size_t kChunk = 8 * 1024, kLag = 32 * 1024;
constexpr uint64_t kCap = 256ull << 20;
constexpr char kMagic[] = "ZDTMTCP1";

struct Conn {
  int fd = -1;
  std::string what;
  inet::Stream up, down;  // to / from the server
  uint64_t hdr_sent = 0;
  bool have_seed = false;
  inet::Addr self, peer;
};

// Sends what is left of the header, then up to n stream bytes; never
// blocks.
void pump_out(Conn* c, size_t n) {
  char hdr[16];
  memcpy(hdr, kMagic, 8);
  memcpy(hdr + 8, &c->up.seed, 8);
  while (c->hdr_sent < sizeof(hdr)) {
    ssize_t w =
        send(c->fd, hdr + c->hdr_sent, sizeof(hdr) - c->hdr_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (w < 0) fail("%s: send: %s", c->what.c_str(), strerror(errno));
    c->hdr_sent += uint64_t(w);
  }
  char buf[kChunk];
  if (n > sizeof(buf)) n = sizeof(buf);
  inet::fill(c->up.seed, c->up.sent, buf, n);
  ssize_t w = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w > 0) c->up.sent += uint64_t(w);
  if (w < 0 && errno != EAGAIN && errno != EINTR)
    fail("%s: send at %llu: %s", c->what.c_str(), (unsigned long long)c->up.sent, strerror(errno));
}

// Reads and checks what exceeds `keep` unread bytes (all with keep 0).
// Returns false at EOF.
bool pump_in(Conn* c, size_t keep) {
  char buf[65536];
  for (;;) {
    size_t avail = size_t(inet::inq(c->fd));
    size_t want = sizeof(buf);
    if (keep) {
      if (avail <= keep) return true;
      want = avail - keep < sizeof(buf) ? avail - keep : sizeof(buf);
    }
    if (!c->have_seed) want = 8;
    ssize_t r = recv(c->fd, buf, want, MSG_DONTWAIT);
    if (r == 0) return false;
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (r < 0)
      fail("%s: recv at %llu: %s", c->what.c_str(), (unsigned long long)c->down.received,
           strerror(errno));
    if (!c->have_seed) {
      if (r != 8) fail("%s: short seed from the server", c->what.c_str());
      memcpy(&c->down.seed, buf, 8);
      c->have_seed = true;
      continue;
    }
    long long bad = inet::mismatch(c->down.seed, c->down.received, buf, size_t(r));
    if (bad >= 0)
      fail("%s: server stream byte %lld is wrong (lost or repeated data)", c->what.c_str(), bad);
    c->down.received += uint64_t(r);
  }
}

// One paced round: a chunk out (until the cap), the excess in.
void round(Conn* c) {
  if (c->up.sent < kCap) pump_out(c, kChunk);
  pump_in(c, kLag);
}

void finish(Conn* c) {
  const std::string& w = c->what;
  inet::expect_tcp_state(c->fd, TCP_ESTABLISHED, w.c_str());
  inet::expect_name(c->fd, false, c->self, w.c_str());
  inet::expect_name(c->fd, true, c->peer, w.c_str());
  const uint64_t before = c->down.received;
  test_msg("%s: at SIGTERM sent %llu, received %llu, %d bytes unread", w.c_str(),
           (unsigned long long)c->up.sent, (unsigned long long)before, inet::inq(c->fd));
  // Stall limits stay below zdtm-run's 60 s, so that a stall is reported.
  inet::send_stream(c->fd, &c->up, 256 * 1024, (w + " final burst").c_str(), 20);
  if (shutdown(c->fd, SHUT_WR)) fail("%s: shutdown: %s", w.c_str(), strerror(errno));
  double last = inet::now_s();
  for (uint64_t seen = c->down.received;;) {
    if (!pump_in(c, 0)) break;
    if (c->down.received != seen) seen = c->down.received, last = inet::now_s();
    if (inet::now_s() - last > 20)
      fail("%s: the server's stream stalled at %llu for 20 s", w.c_str(), (unsigned long long)seen);
    pollfd p = {c->fd, POLLIN, 0};
    poll(&p, 1, 100);
  }
  if (c->down.received < before + kLag)
    fail("%s: only %llu bytes after SIGTERM, want the %zu that were waiting", w.c_str(),
         (unsigned long long)(c->down.received - before), kLag);
  test_msg("%s: sent %llu, received %llu bytes", w.c_str(), (unsigned long long)c->up.sent,
           (unsigned long long)c->down.received);
  close(c->fd);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  int port4 = 0, port6 = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port4")) port4 = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--port6")) port6 = atoi(argv[i + 1]);
  }
  if (!port4 || !port6) fail("usage: sk_tcp_ext --port4 N --port6 M");
  const uint64_t seed = zdtm_seed();
  Conn conns[2];
  const int fams[2] = {AF_INET, AF_INET6};
  for (int i = 0; i < 2; i++) {
    Conn& c = conns[i];
    c.what = std::string(inet::family_name(fams[i])) + " connection";
    c.up.seed = zdtm_mix(seed, uint64_t(i));
    c.fd = inet::new_socket(fams[i], SOCK_STREAM);
    // Room for far more than the lag: a receive queue holding the lag in
    // a small buffer shrinks the window below what the sender will send
    // (silly window avoidance), and both sides would wait for ever.
    inet::setopt_int(c.fd, SOL_SOCKET, SO_RCVBUF, 1 << 20, "SO_RCVBUF");
    inet::connect_to(c.fd, inet::loopback(fams[i], uint16_t(i ? port6 : port4)));
    c.self = inet::name_of(c.fd);
    c.peer = inet::name_of(c.fd, true);
    test_msg("%s %s -> %s", c.what.c_str(), c.self.str().c_str(), c.peer.str().c_str());
  }

  // Warm up until both directions have data waiting.
  bool ready = false;
  const double t0 = inet::now_s();
  while (!test_stopped()) {
    for (Conn& c : conns) round(&c);
    if (!ready) {
      bool full = true;
      for (Conn& c : conns) full = full && c.up.sent >= 4 * kLag && size_t(inet::inq(c.fd)) >= kLag;
      if (full) {
        test_ready();
        ready = true;
      } else if (inet::now_s() - t0 > 30) {
        fail("setup: no backlog from the server within 30 s");
      }
    }
    poll(nullptr, 0, 2);
  }
  for (Conn& c : conns) finish(&c);
  pass();
}
