// Helpers the inet socket tests share (header-only): loopback addresses,
// option snapshots, TCP state, patterned streams, listener queues.
//
// Every test stays on loopback (127.0.0.0/8, ::1). A stream is a byte
// sequence where byte i is stream_byte(seed, i): a gap, a duplicate or a
// reordering shows as a mismatch at the first wrong offset.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace inet {

inline double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// ---- addresses ----

struct Addr {
  sockaddr_storage ss = {};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  uint16_t port() const {
    return ntohs(family() == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                     : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
  bool operator==(const Addr& o) const { return len == o.len && !memcmp(&ss, &o.ss, len); }
  // "127.0.0.1:80", "[::1]:80", "(none)" for an empty address.
  std::string str() const {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (len == 0) return "(none)";
    if (family() == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof(buf));
      return std::string(buf) + ":" + std::to_string(port());
    }
    if (family() == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof(buf));
      return "[" + std::string(buf) + "]:" + std::to_string(port());
    }
    return "family " + std::to_string(family());
  }
};

// An address of family with the given text address ("127.0.0.1", "::1").
inline Addr addr(int family, const char* text, uint16_t port) {
  Addr a;
  if (family == AF_INET) {
    auto& s = reinterpret_cast<sockaddr_in&>(a.ss);
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    if (inet_pton(AF_INET, text, &s.sin_addr) != 1) fail("bad IPv4 address %s", text);
    a.len = sizeof(s);
  } else {
    auto& s = reinterpret_cast<sockaddr_in6&>(a.ss);
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(port);
    if (inet_pton(AF_INET6, text, &s.sin6_addr) != 1) fail("bad IPv6 address %s", text);
    a.len = sizeof(s);
  }
  return a;
}
inline Addr loopback(int family, uint16_t port = 0) {
  return addr(family, family == AF_INET ? "127.0.0.1" : "::1", port);
}
inline const char* family_name(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

// getsockname / getpeername; an unconnected socket's peer is (none).
inline Addr name_of(int fd, bool peer = false) {
  Addr a;
  a.len = sizeof(a.ss);
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&a.ss), &a.len);
  if (r < 0 && peer && errno == ENOTCONN) return Addr{};
  if (r < 0) fail("fd %d: get%sname: %s", fd, peer ? "peer" : "sock", strerror(errno));
  return a;
}
inline void expect_name(int fd, bool peer, const Addr& want, const char* what) {
  Addr got = name_of(fd, peer);
  if (!(got == want))
    fail("%s: %s address %s, want %s", what, peer ? "peer" : "own", got.str().c_str(),
         want.str().c_str());
}

inline int new_socket(int family, int type, int protocol = 0) {
  int fd = socket(family, type, protocol);
  if (fd < 0) fail("socket(%s, %d, %d): %s", family_name(family), type, protocol, strerror(errno));
  return fd;
}
inline void bind_to(int fd, const Addr& a) {
  if (bind(fd, a.sa(), a.len)) fail("fd %d: bind %s: %s", fd, a.str().c_str(), strerror(errno));
}
inline void connect_to(int fd, const Addr& a) {
  if (connect(fd, a.sa(), a.len))
    fail("fd %d: connect %s: %s", fd, a.str().c_str(), strerror(errno));
}
// accept() with a bound wait (the listener may be non-blocking).
inline int accept_one(int l, const char* what, int timeout_ms = 10000) {
  pollfd p = {l, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) fail("%s: nothing to accept within %d ms", what, timeout_ms);
  int fd = accept(l, nullptr, nullptr);
  if (fd < 0) fail("%s: accept: %s", what, strerror(errno));
  return fd;
}

// ---- options ----

inline void setopt(int fd, int level, int name, const void* v, socklen_t len, const char* label) {
  if (setsockopt(fd, level, name, v, len))
    fail("fd %d: setsockopt %s: %s", fd, label, strerror(errno));
}
inline void setopt_int(int fd, int level, int name, int v, const char* label) {
  setopt(fd, level, name, &v, sizeof(v), label);
}
inline int getopt_int(int fd, int level, int name, const char* label) {
  int v = 0;
  socklen_t l = sizeof(v);
  if (getsockopt(fd, level, name, &v, &l))
    fail("fd %d: getsockopt %s: %s", fd, label, strerror(errno));
  return v;
}
inline void set_linger(int fd, int on, int secs) {
  linger l = {on, secs};
  setopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l), "SO_LINGER");
}

struct OptSpec {
  int level, name;
  const char* label;
};
#define INET_OPT(level, name) \
  inet::OptSpec { level, name, #name }

// What getsockopt answered for each spec (raw bytes), plus F_GETFL.
struct OptSnapshot {
  std::vector<OptSpec> specs;
  std::vector<std::string> values;
  int fl = 0;
};
inline OptSnapshot snapshot(int fd, const std::vector<OptSpec>& specs) {
  OptSnapshot s;
  s.specs = specs;
  for (const auto& o : specs) {
    char buf[256];
    socklen_t l = sizeof(buf);
    if (getsockopt(fd, o.level, o.name, buf, &l))
      fail("fd %d: getsockopt %s: %s", fd, o.label, strerror(errno));
    s.values.emplace_back(buf, l);
  }
  s.fl = fcntl(fd, F_GETFL);
  return s;
}
// Shows option bytes as the ints they are made of ("1" or "1,5").
inline std::string show_opt(const std::string& v) {
  std::string out;
  for (size_t i = 0; i + 4 <= v.size(); i += 4) {
    int x;
    memcpy(&x, v.data() + i, 4);
    out += (out.empty() ? "" : ",") + std::to_string(x);
  }
  return out.empty() ? "(" + std::to_string(v.size()) + " bytes)" : out;
}
// Option mismatches do not stop a test: each is printed ("INFO: FAILED
// CHECK: ...") and counted, so that one run shows all of them;
// pass_if_clean() then fails if any was seen.
inline int& soft_failures() {
  static int n = 0;
  return n;
}
#define INET_SOFT_FAIL(...)                 \
  do {                                      \
    test_msg("FAILED CHECK: " __VA_ARGS__); \
    inet::soft_failures()++;                \
  } while (0)
[[noreturn]] inline void pass_if_clean() {
  if (soft_failures())
    fail("%d option check(s) failed (FAILED CHECK lines above)", soft_failures());
  pass();
}

inline void expect_snapshot(int fd, const OptSnapshot& want, const char* what) {
  OptSnapshot got = snapshot(fd, want.specs);
  for (size_t i = 0; i < want.specs.size(); i++)
    if (got.values[i] != want.values[i])
      INET_SOFT_FAIL("%s: %s is %s, was %s before the dump", what, want.specs[i].label,
                     show_opt(got.values[i]).c_str(), show_opt(want.values[i]).c_str());
  if (got.fl != want.fl) INET_SOFT_FAIL("%s: F_GETFL %#o, was %#o", what, got.fl, want.fl);
}
// The options every TCP socket of family is checked for. Buffer sizes are
// not here: unless set (and so locked) they follow autotuning.
inline std::vector<OptSpec> tcp_opts(int family) {
  std::vector<OptSpec> v = {
      INET_OPT(SOL_SOCKET, SO_TYPE),       INET_OPT(SOL_SOCKET, SO_PROTOCOL),
      INET_OPT(SOL_SOCKET, SO_DOMAIN),     INET_OPT(SOL_SOCKET, SO_ACCEPTCONN),
      INET_OPT(SOL_SOCKET, SO_REUSEADDR),  INET_OPT(SOL_SOCKET, SO_REUSEPORT),
      INET_OPT(SOL_SOCKET, SO_KEEPALIVE),  INET_OPT(SOL_SOCKET, SO_LINGER),
      INET_OPT(SOL_SOCKET, SO_OOBINLINE),  INET_OPT(SOL_SOCKET, SO_PRIORITY),
      INET_OPT(SOL_SOCKET, SO_RCVLOWAT),   INET_OPT(IPPROTO_TCP, TCP_NODELAY),
      INET_OPT(IPPROTO_TCP, TCP_KEEPIDLE), INET_OPT(IPPROTO_TCP, TCP_KEEPINTVL),
      INET_OPT(IPPROTO_TCP, TCP_KEEPCNT),  INET_OPT(IPPROTO_TCP, TCP_USER_TIMEOUT),
      INET_OPT(IPPROTO_TCP, TCP_CORK),
  };
  if (family == AF_INET) {
    v.push_back(INET_OPT(IPPROTO_IP, IP_TOS));
    v.push_back(INET_OPT(IPPROTO_IP, IP_TTL));
  } else {
    v.push_back(INET_OPT(IPPROTO_IPV6, IPV6_TCLASS));
    v.push_back(INET_OPT(IPPROTO_IPV6, IPV6_UNICAST_HOPS));
    v.push_back(INET_OPT(IPPROTO_IPV6, IPV6_V6ONLY));
  }
  return v;
}
inline std::vector<OptSpec> with(std::vector<OptSpec> v, std::initializer_list<OptSpec> more) {
  v.insert(v.end(), more);
  return v;
}

// ---- TCP state ----

inline int tcp_state(int fd) {
  tcp_info ti = {};
  socklen_t l = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
    fail("fd %d: TCP_INFO: %s", fd, strerror(errno));
  return ti.tcpi_state;
}
inline const char* tcp_state_name(int s) {
  switch (s) {
    case TCP_ESTABLISHED:
      return "ESTABLISHED";
    case TCP_SYN_SENT:
      return "SYN_SENT";
    case TCP_SYN_RECV:
      return "SYN_RECV";
    case TCP_FIN_WAIT1:
      return "FIN_WAIT1";
    case TCP_FIN_WAIT2:
      return "FIN_WAIT2";
    case TCP_TIME_WAIT:
      return "TIME_WAIT";
    case TCP_CLOSE:
      return "CLOSE";
    case TCP_CLOSE_WAIT:
      return "CLOSE_WAIT";
    case TCP_LAST_ACK:
      return "LAST_ACK";
    case TCP_LISTEN:
      return "LISTEN";
    case TCP_CLOSING:
      return "CLOSING";
    default:
      return "?";
  }
}
inline void expect_tcp_state(int fd, int want, const char* what) {
  int s = tcp_state(fd);
  if (s != want) fail("%s: TCP state %s, want %s", what, tcp_state_name(s), tcp_state_name(want));
}
inline int inq(int fd) {
  int n = 0;
  if (ioctl(fd, FIONREAD, &n)) fail("fd %d: FIONREAD: %s", fd, strerror(errno));
  return n;
}
// Closes a connected TCP socket with a reset (SO_LINGER {1, 0}): no
// TIME_WAIT is left holding its address pair.
inline void close_rst(int fd) {
  set_linger(fd, 1, 0);
  close(fd);
}

// A listener's accept queue length and backlog, from sock_diag
// (inet_diag: idiag_rqueue / idiag_wqueue of a LISTEN socket). Returns
// false if no listener on that local address was found.
inline bool listener_queue(const Addr& local, uint32_t* queued, uint32_t* backlog) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) fail("socket(NETLINK_SOCK_DIAG): %s", strerror(errno));
  struct {
    nlmsghdr h;
    inet_diag_req_v2 r;
  } req = {};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = uint8_t(local.family());
  req.r.sdiag_protocol = IPPROTO_TCP;
  req.r.idiag_states = 1u << TCP_LISTEN;
  if (send(nl, &req, sizeof(req), 0) != ssize_t(sizeof(req)))
    fail("sock_diag request: %s", strerror(errno));
  bool found = false, done = false;
  static char buf[32768];
  while (!done) {
    ssize_t n = recv(nl, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("sock_diag recv: %s", n < 0 ? strerror(errno) : "EOF");
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, size_t(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        done = true;
        break;
      }
      auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (ntohs(m->id.idiag_sport) != local.port()) continue;
      const void* want =
          local.family() == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in&>(local.ss).sin_addr)
              : &reinterpret_cast<const sockaddr_in6&>(local.ss).sin6_addr;
      if (memcmp(m->id.idiag_src, want, local.family() == AF_INET ? 4 : 16)) continue;
      *queued = m->idiag_rqueue;
      *backlog = m->idiag_wqueue;
      found = true;
    }
  }
  close(nl);
  return found;
}
inline void expect_listener_queue(const Addr& local, uint32_t want_queued, uint32_t want_backlog,
                                  const char* what) {
  uint32_t q = 0, b = 0;
  if (!listener_queue(local, &q, &b))
    fail("%s: sock_diag shows no listener on %s", what, local.str().c_str());
  if (q != want_queued)
    fail("%s: accept queue holds %u connection(s), want %u", what, q, want_queued);
  if (b != want_backlog) fail("%s: backlog %u, want %u", what, b, want_backlog);
}

// ---- patterned streams ----

inline char stream_byte(uint64_t seed, uint64_t i) {
  // One mix per 8 bytes keeps 1 MiB cheap to generate and check.
  return char(zdtm_mix(seed, i / 8) >> (8 * (i % 8)));
}
inline void fill(uint64_t seed, uint64_t off, char* buf, size_t n) {
  for (size_t i = 0; i < n; i++) buf[i] = stream_byte(seed, off + i);
}
// The first offset where buf differs from the stream, or -1.
inline long long mismatch(uint64_t seed, uint64_t off, const char* buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (buf[i] != stream_byte(seed, off + i)) return (long long)(off + i);
  return -1;
}

// One direction of a stream: what was sent and what was received so far.
struct Stream {
  uint64_t seed = 0;
  uint64_t sent = 0, received = 0;
};

// Sends stream bytes [s->sent, s->sent + n) on fd, blocking or not,
// waiting (poll) while the socket is full. Fails after `stall_s` seconds
// without progress (a hang guard, not a speed check).
inline void send_stream(int fd, Stream* s, size_t n, const char* what, double stall_s = 30) {
  char buf[65536];
  double last = now_s();
  while (n > 0) {
    size_t chunk = n < sizeof(buf) ? n : sizeof(buf);
    fill(s->seed, s->sent, buf, chunk);
    ssize_t w = send(fd, buf, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w > 0) {
      s->sent += uint64_t(w);
      n -= size_t(w);
      last = now_s();
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) fail("%s: send: %s", what, strerror(errno));
    if (now_s() - last > stall_s)
      fail("%s: send stalled for %.0f s with %zu bytes to go", what, stall_s, n);
    pollfd p = {fd, POLLOUT, 0};
    poll(&p, 1, 100);
  }
}
// Receives exactly n stream bytes on fd and checks them.
inline void recv_stream(int fd, Stream* s, size_t n, const char* what, double stall_s = 30) {
  char buf[65536];
  double last = now_s();
  while (n > 0) {
    size_t chunk = n < sizeof(buf) ? n : sizeof(buf);
    ssize_t r = recv(fd, buf, chunk, MSG_DONTWAIT);
    if (r > 0) {
      long long bad = mismatch(s->seed, s->received, buf, size_t(r));
      if (bad >= 0)
        fail("%s: stream byte %lld is wrong (lost, duplicated or foreign data)", what, bad);
      s->received += uint64_t(r);
      n -= size_t(r);
      last = now_s();
      continue;
    }
    if (r == 0)
      fail("%s: EOF after %llu bytes, %zu more expected", what, (unsigned long long)s->received, n);
    if (errno != EAGAIN && errno != EINTR) fail("%s: recv: %s", what, strerror(errno));
    if (now_s() - last > stall_s)
      fail("%s: nothing received for %.0f s with %zu bytes to go (at %llu)", what, stall_s, n,
           (unsigned long long)s->received);
    pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 100);
  }
}
// Sends n bytes a->b and n bytes b->a at once (both ends are ours, so
// neither may block waiting for the other), checking both.
inline void exchange(int a, Stream* ab, int b, Stream* ba, size_t n, const char* what,
                     double stall_s = 30) {
  const uint64_t ab_end = ab->sent + n, ba_end = ba->sent + n;
  // Everything ever sent must arrive, including what was queued before.
  const uint64_t ab_rend = ab_end, ba_rend = ba_end;
  char buf[65536];
  double last = now_s();
  while (ab->sent < ab_end || ba->sent < ba_end || ab->received < ab_rend ||
         ba->received < ba_rend) {
    bool progress = false;
    auto out = [&](int fd, Stream* s, uint64_t end, const char* dir) {
      if (s->sent >= end) return;
      size_t chunk = size_t(end - s->sent) < sizeof(buf) ? size_t(end - s->sent) : sizeof(buf);
      fill(s->seed, s->sent, buf, chunk);
      ssize_t w = send(fd, buf, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0)
        s->sent += uint64_t(w), progress = true;
      else if (w < 0 && errno != EAGAIN && errno != EINTR)
        fail("%s: send %s: %s", what, dir, strerror(errno));
    };
    auto in = [&](int fd, Stream* s, uint64_t end, const char* dir) {
      if (s->received >= end) return;
      size_t chunk =
          size_t(end - s->received) < sizeof(buf) ? size_t(end - s->received) : sizeof(buf);
      ssize_t r = recv(fd, buf, chunk, MSG_DONTWAIT);
      if (r > 0) {
        long long bad = mismatch(s->seed, s->received, buf, size_t(r));
        if (bad >= 0)
          fail("%s: %s stream byte %lld is wrong (lost or duplicated data)", what, dir, bad);
        s->received += uint64_t(r);
        progress = true;
      } else if (r == 0) {
        fail("%s: %s: EOF at %llu", what, dir, (unsigned long long)s->received);
      } else if (errno != EAGAIN && errno != EINTR) {
        fail("%s: recv %s: %s", what, dir, strerror(errno));
      }
    };
    out(a, ab, ab_end, "a->b");
    out(b, ba, ba_end, "b->a");
    in(b, ab, ab_rend, "a->b");
    in(a, ba, ba_rend, "b->a");
    if (progress) {
      last = now_s();
      continue;
    }
    if (now_s() - last > stall_s)
      fail("%s: no progress for %.0f s (a->b %llu/%llu, b->a %llu/%llu received)", what, stall_s,
           (unsigned long long)ab->received, (unsigned long long)ab_rend,
           (unsigned long long)ba->received, (unsigned long long)ba_rend);
    short ea = short((ab->sent < ab_end ? POLLOUT : 0) | (ba->received < ba_rend ? POLLIN : 0));
    short eb = short((ba->sent < ba_end ? POLLOUT : 0) | (ab->received < ab_rend ? POLLIN : 0));
    pollfd p[2] = {{a, ea, 0}, {b, eb, 0}};
    poll(p, 2, 50);
  }
}

}  // namespace inet
