// sk_netlink: netlink sockets of several protocols.
//   rt    NETLINK_ROUTE, autobound by bind() with nl_groups = RTMGRP_LINK
//         (its port is the pid), joined RTNLGRP_IPV4_IFADDR and RTNLGRP_BRVLAN
//         (group 33: past the legacy mask) with NETLINK_ADD_MEMBERSHIP;
//         NETLINK_PKTINFO, BROADCAST_ERROR, NO_ENOBUFS, CAP_ACK, EXT_ACK,
//         GET_STRICT_CHK; SO_RCVBUF forced; SO_PASSCRED
//   rt2   NETLINK_ROUTE, autobound again (the kernel picks a negative
//         port), O_NONBLOCK, NETLINK_LISTEN_ALL_NSID, SO_SNDBUF
//   ue    NETLINK_KOBJECT_UEVENT bound to group 1 with SO_PASSCRED and a
//         locked BPF filter that drops every event (so nothing queues)
//   gen   NETLINK_GENERIC, joined nlctrl's "notify" group (found by a
//         CTRL_CMD_GETFAMILY request)
//   ua/ub NETLINK_USERSOCK: ua bound to a chosen port, ub connect()ed to it
// After restore: port ids, nl_groups, memberships, options, buffer sizes,
// filters, file flags and peers as before; rt answers an RTM_GETLINK dump
// (lo is in it), gen a CTRL_CMD_GETFAMILY, and ub's send() reaches ua.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

namespace {

int nl_socket(int protocol, int flags = 0) {
  int fd = socket(AF_NETLINK, SOCK_RAW | flags, protocol);
  if (fd < 0) fail("socket(netlink %d): %s", protocol, strerror(errno));
  return fd;
}

void nl_bind(int fd, uint32_t port, uint32_t groups) {
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  sa.nl_pid = port;
  sa.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    fail("bind netlink fd %d to port %u: %s", fd, port, strerror(errno));
}

sockaddr_nl name_of(int fd, bool peer = false) {
  sockaddr_nl sa = {};
  socklen_t len = sizeof(sa);
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  if (r < 0) fail("fd %d: get%sname: %s", fd, peer ? "peer" : "sock", strerror(errno));
  return sa;
}

void set_nl(int fd, int opt, int v) {
  if (setsockopt(fd, SOL_NETLINK, opt, &v, sizeof(v)) < 0)
    fail("fd %d: setsockopt(SOL_NETLINK, %d): %s", fd, opt, strerror(errno));
}
void set_so(int fd, int opt, int v) {
  if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)) < 0)
    fail("fd %d: setsockopt(SOL_SOCKET, %d): %s", fd, opt, strerror(errno));
}

// Everything a socket shows about itself, for before/after comparison.
struct State {
  sockaddr_nl self = {}, peer = {};
  std::vector<uint32_t> groups;
  int nl_opts[13] = {};  // by SOL_NETLINK option number
  int rcvbuf = 0, sndbuf = 0, passcred = 0, fl = 0, lock = 0;
  std::vector<sock_filter> filter;
};

State state_of(int fd) {
  State s;
  s.self = name_of(fd);
  s.peer = name_of(fd, true);
  s.groups.resize(64);
  socklen_t len = socklen_t(s.groups.size() * 4);
  if (getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, s.groups.data(), &len) < 0)
    fail("fd %d: NETLINK_LIST_MEMBERSHIPS: %s", fd, strerror(errno));
  s.groups.resize(std::min<size_t>(len / 4, 64));
  for (int o :
       {NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS, NETLINK_LISTEN_ALL_NSID,
        NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK}) {
    len = sizeof(int);
    if (getsockopt(fd, SOL_NETLINK, o, &s.nl_opts[o], &len) < 0)
      fail("fd %d: getsockopt(SOL_NETLINK, %d): %s", fd, o, strerror(errno));
  }
  auto so = [&](int opt) {
    int v = 0;
    socklen_t l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0)
      fail("fd %d: getsockopt(SOL_SOCKET, %d): %s", fd, opt, strerror(errno));
    return v;
  };
  s.rcvbuf = so(SO_RCVBUF);
  s.sndbuf = so(SO_SNDBUF);
  s.passcred = so(SO_PASSCRED);
  s.lock = so(SO_LOCK_FILTER);
  s.fl = fcntl(fd, F_GETFL);
  socklen_t n = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, nullptr, &n) < 0)
    fail("fd %d: SO_GET_FILTER: %s", fd, strerror(errno));
  s.filter.resize(n);
  if (n && getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, s.filter.data(), &n) < 0)
    fail("fd %d: SO_GET_FILTER: %s", fd, strerror(errno));
  return s;
}

void expect_state(int fd, const State& want, const char* what) {
  State got = state_of(fd);
  if (got.self.nl_pid != want.self.nl_pid || got.self.nl_groups != want.self.nl_groups)
    fail("%s: port %d groups %#x, want port %d groups %#x", what, int(got.self.nl_pid),
         got.self.nl_groups, int(want.self.nl_pid), want.self.nl_groups);
  if (got.peer.nl_pid != want.peer.nl_pid || got.peer.nl_groups != want.peer.nl_groups)
    fail("%s: peer port %u groups %#x, want %u %#x", what, got.peer.nl_pid, got.peer.nl_groups,
         want.peer.nl_pid, want.peer.nl_groups);
  if (got.groups != want.groups) fail("%s: memberships differ", what);
  for (int o = 0; o < 13; o++)
    if (got.nl_opts[o] != want.nl_opts[o])
      fail("%s: SOL_NETLINK option %d is %d, want %d", what, o, got.nl_opts[o], want.nl_opts[o]);
  if (got.rcvbuf != want.rcvbuf || got.sndbuf != want.sndbuf)
    fail("%s: buffers %d/%d, want %d/%d", what, got.rcvbuf, got.sndbuf, want.rcvbuf, want.sndbuf);
  if (got.passcred != want.passcred) fail("%s: SO_PASSCRED %d", what, got.passcred);
  if (got.lock != want.lock) fail("%s: SO_LOCK_FILTER %d", what, got.lock);
  if ((got.fl & O_NONBLOCK) != (want.fl & O_NONBLOCK)) fail("%s: O_NONBLOCK changed", what);
  if (got.filter.size() != want.filter.size() ||
      (!got.filter.empty() &&
       memcmp(got.filter.data(), want.filter.data(), got.filter.size() * sizeof(sock_filter))))
    fail("%s: filter differs (%zu instructions, want %zu)", what, got.filter.size(),
         want.filter.size());
}

// Waits up to 10 s for fd to be readable, then reads one datagram.
ssize_t recv_wait(int fd, char* buf, size_t n, const char* what) {
  pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, 10000);
  if (r <= 0) fail("%s: no answer (poll %d: %s)", what, r, strerror(errno));
  ssize_t got = recv(fd, buf, n, 0);
  if (got < 0) fail("%s: recv: %s", what, strerror(errno));
  return got;
}

void send_to_kernel(int fd, const void* msg, size_t len, const char* what) {
  sockaddr_nl k = {};
  k.nl_family = AF_NETLINK;
  if (sendto(fd, msg, len, 0, reinterpret_cast<sockaddr*>(&k), sizeof(k)) != ssize_t(len))
    fail("%s: sendto: %s", what, strerror(errno));
}

// An RTM_GETLINK dump on rt: every answer is addressed to rt's port, and
// lo (index 1 here as everywhere) is among the links.
void expect_getlink(int rt, uint32_t port) {
  struct {
    nlmsghdr h;
    ifinfomsg i;
  } req = {};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = RTM_GETLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 4242;
  req.i.ifi_family = AF_UNSPEC;
  send_to_kernel(rt, &req, sizeof(req), "RTM_GETLINK");
  std::vector<char> buf(1 << 16);
  bool lo = false;
  for (;;) {
    ssize_t n = recv_wait(rt, buf.data(), buf.size(), "RTM_GETLINK");
    int left = int(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != 4242) continue;  // a notification
      if (h->nlmsg_pid != port)
        fail("RTM_GETLINK answer for port %u, ours is %u", h->nlmsg_pid, port);
      if (h->nlmsg_type == NLMSG_ERROR)
        fail("RTM_GETLINK: error %d", static_cast<nlmsgerr*>(NLMSG_DATA(h))->error);
      if (h->nlmsg_type == NLMSG_DONE) {
        if (!lo) fail("RTM_GETLINK: lo not in the answer");
        return;
      }
      if (h->nlmsg_type == RTM_NEWLINK &&
          static_cast<ifinfomsg*>(NLMSG_DATA(h))->ifi_index == int(if_nametoindex("lo")))
        lo = true;
    }
  }
}

// CTRL_CMD_GETFAMILY "nlctrl" on gen; returns the id of its "notify"
// multicast group.
uint32_t nlctrl_notify_group(int gen) {
  struct {
    nlmsghdr h;
    genlmsghdr g;
    char attrs[64];
  } req = {};
  const char name[] = "nlctrl";
  auto* a = reinterpret_cast<nlattr*>(req.attrs);
  a->nla_type = CTRL_ATTR_FAMILY_NAME;
  a->nla_len = uint16_t(NLA_HDRLEN + sizeof(name));
  memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, name, sizeof(name));
  req.h.nlmsg_len = uint32_t(NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(a->nla_len));
  req.h.nlmsg_type = GENL_ID_CTRL;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.h.nlmsg_seq = 77;
  req.g.cmd = CTRL_CMD_GETFAMILY;
  req.g.version = 1;
  send_to_kernel(gen, &req, req.h.nlmsg_len, "CTRL_CMD_GETFAMILY");
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = recv_wait(gen, buf.data(), buf.size(), "CTRL_CMD_GETFAMILY");
    auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
    if (!NLMSG_OK(h, int(n))) fail("CTRL_CMD_GETFAMILY: bad answer");
    if (h->nlmsg_seq != 77) continue;
    if (h->nlmsg_type == NLMSG_ERROR)
      fail("CTRL_CMD_GETFAMILY: error %d", static_cast<nlmsgerr*>(NLMSG_DATA(h))->error);
    // Attributes after the genl header; the groups are nested twice:
    // CTRL_ATTR_MCAST_GROUPS { n { CTRL_ATTR_MCAST_GRP_NAME, _ID } }.
    auto walk = [](const char* p, size_t len, auto&& fn) {
      while (len >= NLA_HDRLEN) {
        const auto* at = reinterpret_cast<const nlattr*>(p);
        if (at->nla_len < NLA_HDRLEN || at->nla_len > len) break;
        fn(at->nla_type & NLA_TYPE_MASK, p + NLA_HDRLEN, at->nla_len - NLA_HDRLEN);
        size_t step = NLA_ALIGN(at->nla_len);
        if (step >= len) break;
        p += step;
        len -= step;
      }
    };
    const char* p = static_cast<const char*>(NLMSG_DATA(h)) + GENL_HDRLEN;
    size_t len = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
    uint32_t id = 0;
    walk(p, len, [&](int t, const char* d, size_t l) {
      if (t != CTRL_ATTR_MCAST_GROUPS) return;
      walk(d, l, [&](int, const char* g, size_t gl) {
        uint32_t gid = 0;
        std::string gname;
        walk(g, gl, [&](int gt, const char* v, size_t vl) {
          if (gt == CTRL_ATTR_MCAST_GRP_ID && vl >= 4) memcpy(&gid, v, 4);
          if (gt == CTRL_ATTR_MCAST_GRP_NAME) gname.assign(v, strnlen(v, vl));
        });
        if (gname == "notify") id = gid;
      });
    });
    if (!id) fail("CTRL_CMD_GETFAMILY: nlctrl has no notify group");
    return id;
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();

  int rt = nl_socket(NETLINK_ROUTE);
  nl_bind(rt, 0, RTMGRP_LINK);
  int g = RTNLGRP_IPV4_IFADDR;
  set_nl(rt, NETLINK_ADD_MEMBERSHIP, g);
  g = RTNLGRP_BRVLAN;
  set_nl(rt, NETLINK_ADD_MEMBERSHIP, g);
  for (int o : {NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS, NETLINK_CAP_ACK,
                NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK})
    set_nl(rt, o, 1);
  set_so(rt, SO_RCVBUFFORCE, 300000);
  set_so(rt, SO_PASSCRED, 1);

  int rt2 = nl_socket(NETLINK_ROUTE, SOCK_NONBLOCK);
  nl_bind(rt2, 0, 0);
  set_nl(rt2, NETLINK_LISTEN_ALL_NSID, 1);
  set_so(rt2, SO_SNDBUF, 50000);

  int ue = nl_socket(NETLINK_KOBJECT_UEVENT, SOCK_NONBLOCK);
  set_so(ue, SO_PASSCRED, 1);
  // "ld len; jgt #1000000 ? accept : drop": no uevent is that long.
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 1000000, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
  if (setsockopt(ue, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
    fail("SO_ATTACH_FILTER: %s", strerror(errno));
  set_so(ue, SO_LOCK_FILTER, 1);
  nl_bind(ue, 0, 1);

  int gen = nl_socket(NETLINK_GENERIC);
  uint32_t notify = nlctrl_notify_group(gen);  // autobinds gen
  g = int(notify);
  set_nl(gen, NETLINK_ADD_MEMBERSHIP, g);

  int ua = nl_socket(NETLINK_USERSOCK);
  uint32_t ua_port = 0x40000000u | uint32_t(getpid());  // not a pid, not negative
  nl_bind(ua, ua_port, 0);
  int ub = nl_socket(NETLINK_USERSOCK);
  sockaddr_nl to = {};
  to.nl_family = AF_NETLINK;
  to.nl_pid = ua_port;
  if (connect(ub, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0)
    fail("connect ub: %s", strerror(errno));

  if (int32_t(name_of(rt2).nl_pid) >= 0)
    test_msg("rt2 got port %u (expected a negative one)", name_of(rt2).nl_pid);
  const int fds[] = {rt, rt2, ue, gen, ua, ub};
  const char* names[] = {"rt", "rt2", "ue", "gen", "ua", "ub"};
  State want[6];
  for (int i = 0; i < 6; i++) want[i] = state_of(fds[i]);

  test_ready();
  test_wait();

  for (int i = 0; i < 6; i++) expect_state(fds[i], want[i], names[i]);
  expect_getlink(rt, want[0].self.nl_pid);
  if (nlctrl_notify_group(gen) != notify) fail("nlctrl's notify group changed");
  // ub's default destination is ua: a send without address reaches it.
  std::string msg = "hello " + std::to_string(seed);
  if (send(ub, msg.data(), msg.size(), 0) != ssize_t(msg.size()))
    fail("ub send: %s", strerror(errno));
  char buf[256];
  sockaddr_nl from = {};
  socklen_t fl = sizeof(from);
  pollfd p = {ua, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) fail("ua: nothing from ub");
  ssize_t n = recvfrom(ua, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fl);
  if (n != ssize_t(msg.size()) || memcmp(buf, msg.data(), msg.size()))
    fail("ua: got %zd bytes, not ub's message", n);
  if (from.nl_pid != want[5].self.nl_pid) fail("ua: message from port %u", from.nl_pid);
  pass();
}
