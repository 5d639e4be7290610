// sk_raw: raw sockets on loopback.
//   r4    IPv4 IPPROTO_ICMP, bound to 127.0.0.1: ICMP_FILTER passing echo
//         replies only, IP_TTL, IP_TOS, SO_RCVBUF
//   r4h   IPv4 IPPROTO_ICMP, unbound, IP_HDRINCL
//   r6    IPv6 IPPROTO_ICMPV6, bound to ::1: ICMP6_FILTER passing echo
//         replies only, IPV6_UNICAST_HOPS, IPV6_TCLASS
//   r6x   IPv6 protocol 253 (RFC 3692, for experiments), connected to ::1,
//         IPV6_CHECKSUM at offset 2
// After SIGTERM: protocol, addresses and options are what they were; an
// ICMP echo sent by r4 to 127.0.0.1 and by r6 to ::1 comes back as a
// reply to each; r6x receives its own packet (source ::1 matches its
// peer, and the kernel checks the checksum it put at offset 2).
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/ip.h>

#include "sk_inet.h"

namespace {

constexpr int kExpProto = 253;

struct Sock {
  int fd = -1;
  const char* what = "";
  inet::OptSnapshot opts;
  inet::Addr self, peer;
};

void record(Sock* k, int fd, const char* what, const std::vector<inet::OptSpec>& specs) {
  k->fd = fd;
  k->what = what;
  k->opts = inet::snapshot(fd, specs);
  k->self = inet::name_of(fd);
  k->peer = inet::name_of(fd, true);
}

void verify(const Sock& k) {
  inet::expect_name(k.fd, false, k.self, k.what);
  inet::expect_name(k.fd, true, k.peer, k.what);
  inet::expect_snapshot(k.fd, k.opts, k.what);
}

uint16_t csum(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(uint16_t(~sum));
}

// An echo request: type, code 0, checksum (v4 only: the kernel computes
// ICMPv6's), id, seq, payload.
std::string echo_request(int family, uint16_t id, uint16_t seq, const std::string& payload) {
  std::string pkt(8, '\0');
  pkt[0] = char(family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST);
  uint16_t nid = htons(id), nseq = htons(seq);
  memcpy(&pkt[4], &nid, 2);
  memcpy(&pkt[6], &nseq, 2);
  pkt += payload;
  if (family == AF_INET) {
    uint16_t c = csum(pkt.data(), pkt.size());
    memcpy(&pkt[2], &c, 2);
  }
  return pkt;
}

// Sends an echo request on fd to loopback and waits (at most 10 s and 64
// packets) for the matching reply.
void ping(int fd, int family, uint16_t id, uint16_t seq, const std::string& payload,
          const char* what) {
  const inet::Addr to = inet::loopback(family);
  std::string req = echo_request(family, id, seq, payload);
  if (sendto(fd, req.data(), req.size(), 0, to.sa(), to.len) != ssize_t(req.size()))
    fail("%s: send echo request: %s", what, strerror(errno));
  const uint8_t reply_type = family == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY;
  for (int i = 0; i < 64; i++) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) fail("%s: no echo reply within 10 s", what);
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) fail("%s: recv: %s", what, strerror(errno));
    size_t off = 0;  // IPv4 raw sockets see the IP header, IPv6 ones do not
    if (family == AF_INET) {
      if (n < 20) continue;
      off = size_t(buf[0] & 0xf) * 4;
    }
    if (size_t(n) < off + 8) continue;
    const uint8_t* icmp = reinterpret_cast<const uint8_t*>(buf + off);
    uint16_t rid, rseq;
    memcpy(&rid, icmp + 4, 2);
    memcpy(&rseq, icmp + 6, 2);
    if (icmp[0] != reply_type || ntohs(rid) != id || ntohs(rseq) != seq) continue;
    if (std::string(buf + off + 8, size_t(n) - off - 8) != payload)
      fail("%s: echo reply with a wrong payload", what);
    return;
  }
  fail("%s: 64 packets and none the reply", what);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const uint64_t seed = zdtm_seed();

  int r4 = inet::new_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  icmp_filter f4 = {~(1u << ICMP_ECHOREPLY)};  // set bits are dropped
  inet::setopt(r4, SOL_RAW, ICMP_FILTER, &f4, sizeof(f4), "ICMP_FILTER");
  inet::setopt_int(r4, IPPROTO_IP, IP_TTL, 21, "IP_TTL");
  inet::setopt_int(r4, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
  inet::setopt_int(r4, SOL_SOCKET, SO_RCVBUF, 100000, "SO_RCVBUF");
  inet::bind_to(r4, inet::loopback(AF_INET));
  int r4h = inet::new_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  inet::setopt_int(r4h, IPPROTO_IP, IP_HDRINCL, 1, "IP_HDRINCL");

  int r6 = inet::new_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  icmp6_filter f6;
  ICMP6_FILTER_SETBLOCKALL(&f6);
  ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f6);
  inet::setopt(r6, IPPROTO_ICMPV6, ICMP6_FILTER, &f6, sizeof(f6), "ICMP6_FILTER");
  inet::setopt_int(r6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 12, "IPV6_UNICAST_HOPS");
  inet::setopt_int(r6, IPPROTO_IPV6, IPV6_TCLASS, 0x20, "IPV6_TCLASS");
  inet::bind_to(r6, inet::loopback(AF_INET6));

  int r6x = inet::new_socket(AF_INET6, SOCK_RAW, kExpProto);
  inet::setopt_int(r6x, IPPROTO_IPV6, IPV6_CHECKSUM, 2, "IPV6_CHECKSUM");
  inet::connect_to(r6x, inet::loopback(AF_INET6));

  const std::vector<inet::OptSpec> common = {
      INET_OPT(SOL_SOCKET, SO_TYPE),      INET_OPT(SOL_SOCKET, SO_PROTOCOL),
      INET_OPT(SOL_SOCKET, SO_DOMAIN),    INET_OPT(SOL_SOCKET, SO_PRIORITY),
      INET_OPT(SOL_SOCKET, SO_BROADCAST), INET_OPT(SOL_SOCKET, SO_REUSEADDR),
  };
  const auto v4 =
      inet::with(common, {INET_OPT(IPPROTO_IP, IP_TOS), INET_OPT(IPPROTO_IP, IP_TTL),
                          INET_OPT(IPPROTO_IP, IP_HDRINCL), INET_OPT(IPPROTO_IP, IP_PKTINFO),
                          INET_OPT(SOL_RAW, ICMP_FILTER)});
  const auto v6 = inet::with(
      common, {INET_OPT(IPPROTO_IPV6, IPV6_UNICAST_HOPS), INET_OPT(IPPROTO_IPV6, IPV6_TCLASS),
               INET_OPT(IPPROTO_IPV6, IPV6_V6ONLY), INET_OPT(IPPROTO_IPV6, IPV6_CHECKSUM),
               INET_OPT(IPPROTO_IPV6, IPV6_RECVPKTINFO)});
  Sock k4, k4h, k6, k6x;
  record(&k4, r4, "r4", inet::with(v4, {INET_OPT(SOL_SOCKET, SO_RCVBUF)}));
  record(&k4h, r4h, "r4h", v4);
  record(&k6, r6, "r6", inet::with(v6, {INET_OPT(IPPROTO_ICMPV6, ICMP6_FILTER)}));
  record(&k6x, r6x, "r6x", v6);
  if (inet::getopt_int(r6x, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL") != kExpProto)
    fail("setup: r6x protocol");
  // One ping before the dump proves the checks below can pass at all.
  const uint16_t id = uint16_t(seed);
  ping(r4, AF_INET, id, 1, "before " + std::to_string(seed), "r4 (setup)");

  test_ready();
  test_wait();

  for (const Sock* k : {&k4, &k4h, &k6, &k6x}) verify(*k);
  const std::string tag = std::to_string(zdtm_mix(seed, 1));
  ping(r4, AF_INET, id, 2, "v4 " + tag, "r4");
  ping(r6, AF_INET6, id, 3, "v6 " + tag, "r6");

  // r6x: 4 bytes of our own header (checksum at 2, filled by the kernel),
  // then the payload; sent to ::1, seen again on the way in.
  std::string pkt(4, '\0');
  pkt[0] = 'Z';
  pkt += "x " + tag;
  const inet::Addr to = inet::loopback(AF_INET6);
  if (sendto(r6x, pkt.data(), pkt.size(), 0, to.sa(), to.len) != ssize_t(pkt.size()))
    fail("r6x: send: %s", strerror(errno));
  for (int i = 0;; i++) {
    if (i == 16) fail("r6x: its own packet did not come back");
    pollfd p = {r6x, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) fail("r6x: nothing received within 10 s");
    char buf[2048];
    ssize_t n = recv(r6x, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0) fail("r6x: recv: %s", strerror(errno));
    if (n == ssize_t(pkt.size()) && !memcmp(buf + 4, pkt.data() + 4, pkt.size() - 4)) break;
  }
  inet::pass_if_clean();
}
