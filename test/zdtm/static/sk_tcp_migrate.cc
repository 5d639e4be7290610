// sk_tcp_migrate: the victim of the two-host migration test (run by
// sk_tcp_migrate_run, which owns the peer and the network namespaces).
//
//   sk_tcp_migrate --local ADDR --peer ADDR --port N
//
// Connects from ADDR (--local, port chosen by the kernel) to --peer:N and
// streams numbered records both ways (sk_tcp_migrate.h), checking each
// record that arrives is the peer's next. Every millisecond we offer 256
// records (2 KiB) and read at most 128, and so does the peer: both
// directions stay backlogged, so at any moment (the dump's included) each
// side has data unread, unacknowledged and not yet sent. READY once 4096
// records went each way. Between READY and SIGTERM the runner dumps us in one network
// namespace and restores us in another, where the same local address now
// lives.
// After SIGTERM: both addresses of the socket are what they were and no
// error is pending; we finish a partly sent record, shut down our side,
// read the peer's stream to its end (the peer ends it when it has seen
// ours end), print "INFO: totals sent=S received=R" for the runner to
// compare with what the peer counted, and pass.
// Bounded: connecting, warming up, flushing and draining each have a
// deadline; sending stops by itself after kMaxRecords.
#include "sk_tcp_migrate.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

constexpr size_t kBurst = 256;                // records offered per millisecond
constexpr size_t kReadBurst = 128;            // records read per millisecond at most
constexpr uint64_t kWarm = 4096;              // records each way before READY
constexpr uint64_t kMaxRecords = 1ull << 30;  // 8 GiB: sending stops there
constexpr double kConnectS = 10, kWarmS = 30, kFlushS = 30, kDrainS = 60;

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

sockaddr_in parse_addr(const char* s, uint16_t port) {
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, s, &a.sin_addr) != 1) fail("bad IPv4 address '%s'", s);
  return a;
}

std::string str(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
  return std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
}

sockaddr_in name_of(int fd, bool peer) {
  sockaddr_in a = {};
  socklen_t len = sizeof(a);
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  if (r < 0) fail("%s: %s", peer ? "getpeername" : "getsockname", strerror(errno));
  return a;
}

int connect_to(const sockaddr_in& local, const sockaddr_in& peer) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) fail("socket: %s", strerror(errno));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) < 0)
    fail("bind %s: %s", str(local).c_str(), strerror(errno));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof(peer)) < 0 &&
      errno != EINPROGRESS)
    fail("connect %s: %s", str(peer).c_str(), strerror(errno));
  pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, int(kConnectS * 1000)) != 1)
    fail("connect %s: no answer within %.0f s", str(peer).c_str(), kConnectS);
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) fail("connect %s: %s", str(peer).c_str(), strerror(err));
  return fd;
}

struct Conn {
  int fd = -1;
  tcpm::Sender tx{tcpm::kVictimTag};
  tcpm::Receiver rx{tcpm::kPeerTag};
};

std::string counts(const Conn& c) {
  return "sent " + std::to_string(c.tx.sent()) + ", received " + std::to_string(c.rx.received());
}

// One step of the exchange: out, the rest of a partly sent record (a
// send(2) may take part of one) and, unless capped, a burst; then in.
void step(Conn* c, bool send_more) {
  if (int e = c->tx.Pump(c->fd, send_more ? kBurst : 0))
    fail("send: %s (%s)", strerror(e), counts(*c).c_str());
  switch (c->rx.Pump(c->fd, kReadBurst * 8)) {
    case tcpm::Receiver::kOk:
      return;
    case tcpm::Receiver::kEof:
      fail("the peer ended its stream before we ended ours (%s)", counts(*c).c_str());
    case tcpm::Receiver::kError:
      fail("%s (%s)", c->rx.error().c_str(), counts(*c).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const char *local_s = nullptr, *peer_s = nullptr;
  long port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--local"))
      local_s = argv[i + 1];
    else if (!strcmp(argv[i], "--peer"))
      peer_s = argv[i + 1];
    else if (!strcmp(argv[i], "--port"))
      port = atol(argv[i + 1]);
  }
  if (!local_s || !peer_s || port <= 0 || port > 65535)
    fail("usage: sk_tcp_migrate --local ADDR --peer ADDR --port N");

  Conn c;
  c.fd = connect_to(parse_addr(local_s, 0), parse_addr(peer_s, uint16_t(port)));
  const sockaddr_in self = name_of(c.fd, false), peer = name_of(c.fd, true);
  test_msg("connected %s -> %s", str(self).c_str(), str(peer).c_str());

  double deadline = now_s() + kWarmS;
  while (c.tx.sent() < kWarm || c.rx.received() < kWarm) {
    if (now_s() > deadline)
      fail("no %llu records each way within %.0f s (%s)", (unsigned long long)kWarm, kWarmS,
           counts(c).c_str());
    step(&c, true);
    usleep(1000);
  }
  test_ready();

  // Until SIGTERM: the runner dumps and restores us somewhere in here.
  while (!test_stopped()) {
    step(&c, c.tx.sent() < kMaxRecords);
    usleep(1000);
  }

  const sockaddr_in self2 = name_of(c.fd, false), peer2 = name_of(c.fd, true);
  if (memcmp(&self, &self2, sizeof(self)) || memcmp(&peer, &peer2, sizeof(peer)))
    fail("the connection was %s -> %s, now it is %s -> %s", str(self).c_str(), str(peer).c_str(),
         str(self2).c_str(), str(peer2).c_str());
  int err = 0;
  socklen_t elen = sizeof(err);
  if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err)
    fail("SO_ERROR: %s (%s)", strerror(err), counts(c).c_str());

  // Finish a partly sent record, then end our stream.
  deadline = now_s() + kFlushS;
  while (!c.tx.Flushed()) {
    if (now_s() > deadline) fail("could not finish the last record within %.0f s", kFlushS);
    step(&c, false);
    pollfd p = {c.fd, POLLOUT, 0};
    poll(&p, 1, 10);
  }
  if (shutdown(c.fd, SHUT_WR) < 0) fail("shutdown: %s (%s)", strerror(errno), counts(c).c_str());

  // The peer's stream to its end.
  deadline = now_s() + kDrainS;
  for (;;) {
    tcpm::Receiver::Result r = c.rx.Pump(c.fd);
    if (r == tcpm::Receiver::kError) fail("%s (%s)", c.rx.error().c_str(), counts(c).c_str());
    if (r == tcpm::Receiver::kEof) {
      if (!c.rx.error().empty()) fail("%s", c.rx.error().c_str());
      break;
    }
    if (now_s() > deadline)
      fail("the peer's stream did not end within %.0f s of ours (%s)", kDrainS, counts(c).c_str());
    pollfd p = {c.fd, POLLIN, 0};
    poll(&p, 1, 10);
  }
  test_msg("totals sent=%llu received=%llu", (unsigned long long)c.tx.sent(),
           (unsigned long long)c.rx.received());
  close(c.fd);
  pass();
}
