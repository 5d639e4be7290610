// sk_udp: UDP and UDP-Lite sockets on loopback, IPv4 and IPv6.
//   ub, vb   bound to 127.0.0.1:0 / [::1]:0: SO_BROADCAST, IP_TOS or
//            IPV6_TCLASS, IP_PKTINFO or IPV6_RECVPKTINFO, SO_RCVBUF
//            (vb: IPV6_V6ONLY)
//   uc, vc   connected to ub / vb (bound implicitly): TTL/hops, SO_SNDBUF
//   uf, vf   never bound or connected, with an option each
//   lb, lc   UDP-Lite (IPPROTO_UDPLITE): lb bound, lc connected to it,
//            both with UDPLITE_SEND_CSCOV / UDPLITE_RECV_CSCOV
//   m        bound to 127.0.0.1:0, member of an IPv4 multicast group on
//            lo (any source) and of another for one source only, with
//            IP_MULTICAST_IF/TTL/LOOP. Nothing is sent to the groups (lo
//            may lack the MULTICAST flag, and host interfaces are not
//            ours to change): the memberships are read back per socket
//            with getsockopt(IP_MSFILTER).
// Nothing is queued at the dump: datagrams waiting in a receive queue may
// be dropped by a checkpoint (like by the network), so a test relying on
// them would test luck.
// After SIGTERM: addresses, peers and options are what they were, the
// memberships hold with their filter modes and sources, and datagrams
// flow both ways between each pair (a connected socket still ignores
// other senders; IP_PKTINFO still delivers its control message).
#include <net/if.h>

#include "sk_inet.h"

#ifndef SOL_UDPLITE
#define SOL_UDPLITE 136  // udplite(7)
#endif
#ifndef UDPLITE_SEND_CSCOV
#define UDPLITE_SEND_CSCOV 10
#define UDPLITE_RECV_CSCOV 11
#endif

namespace {

struct Sock {
  int fd = -1;
  const char* what = "";
  inet::OptSnapshot opts;
  inet::Addr self, peer;
};

std::vector<inet::OptSpec> udp_opts(int family) {
  std::vector<inet::OptSpec> v = {
      INET_OPT(SOL_SOCKET, SO_TYPE),      INET_OPT(SOL_SOCKET, SO_PROTOCOL),
      INET_OPT(SOL_SOCKET, SO_DOMAIN),    INET_OPT(SOL_SOCKET, SO_REUSEADDR),
      INET_OPT(SOL_SOCKET, SO_REUSEPORT), INET_OPT(SOL_SOCKET, SO_BROADCAST),
      INET_OPT(SOL_SOCKET, SO_PRIORITY),  INET_OPT(SOL_SOCKET, SO_RCVLOWAT),
  };
  if (family == AF_INET) {
    for (auto o : {INET_OPT(IPPROTO_IP, IP_TOS), INET_OPT(IPPROTO_IP, IP_TTL),
                   INET_OPT(IPPROTO_IP, IP_PKTINFO), INET_OPT(IPPROTO_IP, IP_RECVTOS),
                   INET_OPT(IPPROTO_IP, IP_RECVTTL), INET_OPT(IPPROTO_IP, IP_MTU_DISCOVER),
                   INET_OPT(IPPROTO_IP, IP_MULTICAST_TTL), INET_OPT(IPPROTO_IP, IP_MULTICAST_LOOP),
                   INET_OPT(IPPROTO_IP, IP_MULTICAST_IF), INET_OPT(IPPROTO_IP, IP_MULTICAST_ALL)})
      v.push_back(o);
  } else {
    for (auto o :
         {INET_OPT(IPPROTO_IPV6, IPV6_V6ONLY), INET_OPT(IPPROTO_IPV6, IPV6_TCLASS),
          INET_OPT(IPPROTO_IPV6, IPV6_UNICAST_HOPS), INET_OPT(IPPROTO_IPV6, IPV6_RECVPKTINFO),
          INET_OPT(IPPROTO_IPV6, IPV6_RECVTCLASS), INET_OPT(IPPROTO_IPV6, IPV6_MULTICAST_HOPS),
          INET_OPT(IPPROTO_IPV6, IPV6_MULTICAST_LOOP), INET_OPT(IPPROTO_IPV6, IPV6_MULTICAST_IF)})
      v.push_back(o);
  }
  return v;
}

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

void send_dgram(int fd, const inet::Addr* to, const std::string& msg, const char* what) {
  ssize_t w = to ? sendto(fd, msg.data(), msg.size(), 0, to->sa(), to->len)
                 : send(fd, msg.data(), msg.size(), 0);
  if (w != ssize_t(msg.size()))
    fail("%s: send %s: %s", what, to ? to->str().c_str() : "(connected)",
         w < 0 ? strerror(errno) : "short");
}

// Receives one datagram within 10 s; checks payload and sender. Reports
// whether a packet-info control message came with it.
bool recv_dgram(int fd, const std::string& want, const inet::Addr& from, const char* what) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) fail("%s: no datagram within 10 s", what);
  char buf[2048], ctl[512];
  inet::Addr src;
  iovec iov = {buf, sizeof(buf)};
  msghdr mh = {};
  mh.msg_name = &src.ss;
  mh.msg_namelen = sizeof(src.ss);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof(ctl);
  ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
  if (n < 0) fail("%s: recvmsg: %s", what, strerror(errno));
  src.len = mh.msg_namelen;
  if (std::string(buf, size_t(n)) != want)
    fail("%s: got \"%.*s\", want \"%s\"", what, int(n), buf, want.c_str());
  if (!(src == from)) fail("%s: from %s, want %s", what, src.str().c_str(), from.str().c_str());
  bool info = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) ||
        (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO))
      info = true;
  return info;
}

// b bound (with packet info on), c connected to b, f unconnected.
void check_pair(const Sock& b, const Sock& c, const Sock& f, uint64_t seed, bool pktinfo) {
  std::string tag = std::to_string(seed);
  // f, never bound, gets a port on its first send.
  if (inet::name_of(f.fd).port() != 0) fail("%s: bound before its first send", f.what);
  // A connected socket takes datagrams from its peer only: f's is dropped.
  send_dgram(f.fd, &c.self, "stray " + tag, f.what);
  send_dgram(c.fd, nullptr, "c->b " + tag, c.what);
  if (recv_dgram(b.fd, "c->b " + tag, c.self, b.what) != pktinfo)
    fail("%s: packet info control message %s", b.what, pktinfo ? "missing" : "unexpected");
  send_dgram(b.fd, &c.self, "b->c " + tag, b.what);
  recv_dgram(c.fd, "b->c " + tag, b.self, c.what);
  send_dgram(f.fd, &b.self, "f->b " + tag, f.what);
  // f is bound to the wildcard address now; its datagram comes from loopback.
  const inet::Addr f_from = inet::loopback(b.self.family(), inet::name_of(f.fd).port());
  recv_dgram(b.fd, "f->b " + tag, f_from, b.what);
  if (inet::inq(c.fd) != 0) fail("%s: a datagram from a stranger got through", c.what);
}

// ---- multicast ----

constexpr const char* kGroupAny = "239.255.77.1";
constexpr const char* kGroupSrc = "239.255.77.2";
constexpr const char* kSource = "127.0.0.7";

in_addr ip4(const char* s) {
  in_addr a;
  inet_pton(AF_INET, s, &a);
  return a;
}

// The membership of fd in group on lo: filter mode and sources
// (EADDRNOTAVAIL: not a member).
bool msfilter(int fd, const char* group, uint32_t* mode, std::vector<uint32_t>* sources) {
  union {
    ip_msfilter f;
    char buf[IP_MSFILTER_SIZE(8)];
  } u = {};
  u.f.imsf_multiaddr = ip4(group);
  u.f.imsf_interface = ip4("127.0.0.1");
  u.f.imsf_numsrc = 8;
  socklen_t len = sizeof(u);
  if (getsockopt(fd, IPPROTO_IP, IP_MSFILTER, &u, &len)) {
    if (errno == EADDRNOTAVAIL) return false;
    fail("getsockopt IP_MSFILTER %s: %s", group, strerror(errno));
  }
  *mode = u.f.imsf_fmode;
  sources->clear();
  for (uint32_t i = 0; i < u.f.imsf_numsrc && i < 8; i++)
    sources->push_back((&u.f.imsf_slist[0])[i].s_addr);
  return true;
}

void expect_member(int fd, const char* group, uint32_t mode, const std::vector<uint32_t>& srcs,
                   const char* when) {
  uint32_t m;
  std::vector<uint32_t> s;
  if (!msfilter(fd, group, &m, &s)) fail("m %s: not a member of %s on lo", when, group);
  if (m != mode)
    fail("m %s: %s filter mode %s, want %s", when, group,
         m == MCAST_INCLUDE ? "include" : "exclude", mode == MCAST_INCLUDE ? "include" : "exclude");
  if (s != srcs) fail("m %s: %s has %zu source(s), want %zu", when, group, s.size(), srcs.size());
}

// Joins the groups; false (with an INFO line) if lo takes no memberships.
bool join_groups(int m, int lo) {
  ip_mreqn any = {};
  any.imr_multiaddr = ip4(kGroupAny);
  any.imr_address = ip4("127.0.0.1");
  any.imr_ifindex = lo;
  if (setsockopt(m, IPPROTO_IP, IP_ADD_MEMBERSHIP, &any, sizeof(any))) {
    test_msg("multicast part skipped: joining %s on lo: %s", kGroupAny, strerror(errno));
    return false;
  }
  ip_mreq_source one = {};
  one.imr_multiaddr = ip4(kGroupSrc);
  one.imr_interface = ip4("127.0.0.1");
  one.imr_sourceaddr = ip4(kSource);
  inet::setopt(m, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &one, sizeof(one),
               "IP_ADD_SOURCE_MEMBERSHIP");
  ip_mreqn ifc = {};
  ifc.imr_address = ip4("127.0.0.1");
  ifc.imr_ifindex = lo;
  inet::setopt(m, IPPROTO_IP, IP_MULTICAST_IF, &ifc, sizeof(ifc), "IP_MULTICAST_IF");
  inet::setopt_int(m, IPPROTO_IP, IP_MULTICAST_TTL, 3, "IP_MULTICAST_TTL");
  inet::setopt_int(m, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const uint64_t seed = zdtm_seed();
  const int lo = int(if_nametoindex("lo"));
  if (lo <= 0) fail("no lo interface: %s", strerror(errno));

  int ub = inet::new_socket(AF_INET, SOCK_DGRAM);
  inet::setopt_int(ub, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
  inet::setopt_int(ub, IPPROTO_IP, IP_TOS, 0x28, "IP_TOS");
  inet::setopt_int(ub, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
  inet::setopt_int(ub, SOL_SOCKET, SO_RCVBUF, 200000, "SO_RCVBUF");
  inet::bind_to(ub, inet::loopback(AF_INET));
  int uc = inet::new_socket(AF_INET, SOCK_DGRAM);
  inet::setopt_int(uc, IPPROTO_IP, IP_TTL, 9, "IP_TTL");
  inet::setopt_int(uc, SOL_SOCKET, SO_SNDBUF, 150000, "SO_SNDBUF");
  inet::connect_to(uc, inet::name_of(ub));
  int uf = inet::new_socket(AF_INET, SOCK_DGRAM);
  inet::setopt_int(uf, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");

  int vb = inet::new_socket(AF_INET6, SOCK_DGRAM);
  inet::setopt_int(vb, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
  inet::setopt_int(vb, IPPROTO_IPV6, IPV6_TCLASS, 0x30, "IPV6_TCLASS");
  inet::setopt_int(vb, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
  inet::setopt_int(vb, SOL_SOCKET, SO_RCVBUF, 180000, "SO_RCVBUF");
  inet::bind_to(vb, inet::loopback(AF_INET6));
  int vc = inet::new_socket(AF_INET6, SOCK_DGRAM);
  inet::setopt_int(vc, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7, "IPV6_UNICAST_HOPS");
  inet::connect_to(vc, inet::name_of(vb));
  int vf = inet::new_socket(AF_INET6, SOCK_DGRAM);
  inet::setopt_int(vf, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 5, "IPV6_MULTICAST_HOPS");

  const std::vector<inet::OptSpec> cscov = {INET_OPT(SOL_UDPLITE, UDPLITE_SEND_CSCOV),
                                            INET_OPT(SOL_UDPLITE, UDPLITE_RECV_CSCOV)};
  int lb = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
  int lc = -1;
  if (lb < 0) {
    test_msg("UDP-Lite part skipped: socket(IPPROTO_UDPLITE): %s", strerror(errno));
  } else {
    inet::setopt_int(lb, SOL_UDPLITE, UDPLITE_RECV_CSCOV, 20, "UDPLITE_RECV_CSCOV");
    inet::setopt_int(lb, SOL_UDPLITE, UDPLITE_SEND_CSCOV, 24, "UDPLITE_SEND_CSCOV");
    inet::bind_to(lb, inet::loopback(AF_INET));
    lc = inet::new_socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
    inet::setopt_int(lc, SOL_UDPLITE, UDPLITE_SEND_CSCOV, 20, "UDPLITE_SEND_CSCOV");
    inet::setopt_int(lc, SOL_UDPLITE, UDPLITE_RECV_CSCOV, 16, "UDPLITE_RECV_CSCOV");
    inet::connect_to(lc, inet::name_of(lb));
  }

  int m = inet::new_socket(AF_INET, SOCK_DGRAM);
  inet::bind_to(m, inet::loopback(AF_INET));
  const bool mcast = join_groups(m, lo);
  const uint32_t source = ip4(kSource).s_addr;
  if (mcast) {
    expect_member(m, kGroupAny, MCAST_EXCLUDE, {}, "(setup)");
    expect_member(m, kGroupSrc, MCAST_INCLUDE, {source}, "(setup)");
  }

  const auto o4 = udp_opts(AF_INET), o6 = udp_opts(AF_INET6);
  Sock kub, kuc, kuf, kvb, kvc, kvf, klb, klc, km;
  record(&kub, ub, "ub", inet::with(o4, {INET_OPT(SOL_SOCKET, SO_RCVBUF)}));
  record(&kuc, uc, "uc", inet::with(o4, {INET_OPT(SOL_SOCKET, SO_SNDBUF)}));
  record(&kuf, uf, "uf", o4);
  record(&kvb, vb, "vb", inet::with(o6, {INET_OPT(SOL_SOCKET, SO_RCVBUF)}));
  record(&kvc, vc, "vc", o6);
  record(&kvf, vf, "vf", o6);
  record(&km, m, "m", o4);
  if (lb >= 0) {
    std::vector<inet::OptSpec> lo4 = o4;
    lo4.insert(lo4.end(), cscov.begin(), cscov.end());
    record(&klb, lb, "lb (UDP-Lite)", lo4);
    record(&klc, lc, "lc (UDP-Lite)", lo4);
  }
  test_msg("ub %s, uc %s, vb %s, vc %s", kub.self.str().c_str(), kuc.self.str().c_str(),
           kvb.self.str().c_str(), kvc.self.str().c_str());

  test_ready();
  test_wait();

  for (const Sock* k : {&kub, &kuc, &kuf, &kvb, &kvc, &kvf, &km}) verify(*k);
  if (lb >= 0) {
    verify(klb);
    verify(klc);
  }
  if (mcast) {
    expect_member(m, kGroupAny, MCAST_EXCLUDE, {}, "after restore");
    expect_member(m, kGroupSrc, MCAST_INCLUDE, {source}, "after restore");
  }

  check_pair(kub, kuc, kuf, zdtm_mix(seed, 1), true);
  check_pair(kvb, kvc, kvf, zdtm_mix(seed, 2), true);
  if (lb >= 0) {
    // lb's receive coverage (20) rejects anything covered less: lc's 20 passes.
    std::string tag = std::to_string(zdtm_mix(seed, 3));
    send_dgram(lc, nullptr, "lc->lb " + tag, "lc");
    recv_dgram(lb, "lc->lb " + tag, klc.self, "lb");
    send_dgram(lb, &klc.self, "lb->lc " + tag, "lb");
    recv_dgram(lc, "lb->lc " + tag, klb.self, "lc");
  }
  // m still receives unicast on its port.
  std::string tag = std::to_string(zdtm_mix(seed, 4));
  send_dgram(ub, &km.self, "ub->m " + tag, "ub");
  recv_dgram(m, "ub->m " + tag, kub.self, "m");
  inet::pass_if_clean();
}
