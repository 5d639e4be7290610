// sk_packet: packet sockets on lo.
//   pd  SOCK_DGRAM bound to lo for ETH_P_IP, with a BPF filter taking only
//       UDP datagrams to this test's port; PACKET_AUXDATA, ORIGDEV,
//       VERSION (TPACKET_V2), RESERVE, TIMESTAMP, LOSS; SO_RCVBUF; lo
//       memberships: ALLMULTI, and a multicast address added twice
//   pr  SOCK_RAW for ETH_P_ALL bound to lo, O_NONBLOCK, a filter that drops
//       everything (locked), PACKET_VNET_HDR, IGNORE_OUTGOING,
//       QDISC_BYPASS, in a fanout group (hash, rollover, defrag)
//   pu  SOCK_DGRAM, never bound (protocol 0: receives nothing)
// After restore: bindings, options, filters, fanout and memberships (read
// with sock_diag) as before, and pd receives a UDP datagram sent to
// 127.0.0.1 with its payload.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <linux/packet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

const int kOpts[] = {PACKET_VERSION, PACKET_RESERVE,      PACKET_AUXDATA,
                     PACKET_ORIGDEV, PACKET_VNET_HDR,     PACKET_TIMESTAMP,
                     PACKET_LOSS,    PACKET_QDISC_BYPASS, PACKET_IGNORE_OUTGOING,
                     PACKET_FANOUT,  PACKET_TX_HAS_OFF};
constexpr int kNumOpts = sizeof(kOpts) / sizeof(kOpts[0]);

void set_pk(int fd, int opt, int v) {
  if (setsockopt(fd, SOL_PACKET, opt, &v, sizeof(v)) < 0)
    fail("fd %d: setsockopt(SOL_PACKET, %d): %s", fd, opt, strerror(errno));
}

void attach(int fd, std::vector<sock_filter> code) {
  sock_fprog prog = {uint16_t(code.size()), code.data()};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
    fail("fd %d: SO_ATTACH_FILTER: %s", fd, strerror(errno));
}

void bind_ll(int fd, int proto, int ifindex) {
  sockaddr_ll sa = {};
  sa.sll_family = AF_PACKET;
  sa.sll_protocol = htons(uint16_t(proto));
  sa.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    fail("fd %d: bind: %s", fd, strerror(errno));
}

// Memberships of socket `ino` as sock_diag lists them, as text.
std::string mclist_of(ino_t ino) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
  if (nl < 0) fail("socket(NETLINK_SOCK_DIAG): %s", strerror(errno));
  struct {
    nlmsghdr h;
    packet_diag_req r;
  } req = {};
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.r.sdiag_family = AF_PACKET;
  req.r.pdiag_show = PACKET_SHOW_MCLIST;
  if (send(nl, &req, sizeof(req), 0) < 0) fail("sock_diag send: %s", strerror(errno));
  std::string out;
  bool found = false;
  std::vector<char> buf(1 << 16);
  for (bool done = false; !done;) {
    ssize_t n = recv(nl, buf.data(), buf.size(), 0);
    if (n <= 0) fail("sock_diag recv: %s", strerror(errno));
    int left = int(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) done = true;
      if (h->nlmsg_type == NLMSG_ERROR) fail("sock_diag: error");
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      auto* m = static_cast<packet_diag_msg*>(NLMSG_DATA(h));
      if (m->pdiag_ino != ino) continue;
      found = true;
      int len = int(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
      for (auto* a = reinterpret_cast<rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type != PACKET_DIAG_MCLIST) continue;
        auto* ml = static_cast<packet_diag_mclist*>(RTA_DATA(a));
        for (size_t i = 0; i < RTA_PAYLOAD(a) / sizeof(*ml); i++) {
          out += "if" + std::to_string(ml[i].pdmc_index) + " type" +
                 std::to_string(ml[i].pdmc_type) + " x" + std::to_string(ml[i].pdmc_count) + " ";
          for (int j = 0; j < ml[i].pdmc_alen; j++) out += std::to_string(ml[i].pdmc_addr[j]) + ":";
          out += "; ";
        }
      }
    }
  }
  close(nl);
  if (!found) fail("sock_diag: socket %lu not found", (unsigned long)ino);
  return out;
}

struct State {
  sockaddr_ll self = {};
  int opts[kNumOpts] = {};
  int rcvbuf = 0, lock = 0, fl = 0;
  std::vector<sock_filter> filter;
  std::string mclist;
};

State state_of(int fd) {
  State s;
  socklen_t len = sizeof(s.self);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&s.self), &len) < 0)
    fail("fd %d: getsockname: %s", fd, strerror(errno));
  for (int i = 0; i < kNumOpts; i++) {
    len = sizeof(int);
    if (getsockopt(fd, SOL_PACKET, kOpts[i], &s.opts[i], &len) < 0)
      fail("fd %d: getsockopt(SOL_PACKET, %d): %s", fd, kOpts[i], strerror(errno));
  }
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &s.rcvbuf, &len);
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &s.lock, &len);
  s.fl = fcntl(fd, F_GETFL);
  socklen_t n = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, nullptr, &n) < 0)
    fail("fd %d: SO_GET_FILTER: %s", fd, strerror(errno));
  s.filter.resize(n);
  if (n && getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, s.filter.data(), &n) < 0)
    fail("fd %d: SO_GET_FILTER: %s", fd, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0) fail("fstat: %s", strerror(errno));
  s.mclist = mclist_of(st.st_ino);
  return s;
}

void expect_state(int fd, const State& want, const char* what) {
  State got = state_of(fd);
  if (got.self.sll_ifindex != want.self.sll_ifindex ||
      got.self.sll_protocol != want.self.sll_protocol)
    fail("%s: bound to if %d proto %#x, want if %d proto %#x", what, got.self.sll_ifindex,
         ntohs(got.self.sll_protocol), want.self.sll_ifindex, ntohs(want.self.sll_protocol));
  for (int i = 0; i < kNumOpts; i++)
    if (got.opts[i] != want.opts[i])
      fail("%s: SOL_PACKET option %d is %#x, want %#x", what, kOpts[i], got.opts[i], want.opts[i]);
  if (got.rcvbuf != want.rcvbuf) fail("%s: SO_RCVBUF %d, want %d", what, got.rcvbuf, want.rcvbuf);
  if (got.lock != want.lock) fail("%s: SO_LOCK_FILTER %d", what, got.lock);
  if ((got.fl & O_NONBLOCK) != (want.fl & O_NONBLOCK)) fail("%s: O_NONBLOCK changed", what);
  if (got.filter.size() != want.filter.size() ||
      (!got.filter.empty() &&
       memcmp(got.filter.data(), want.filter.data(), got.filter.size() * sizeof(sock_filter))))
    fail("%s: filter differs", what);
  if (got.mclist != want.mclist)
    fail("%s: memberships [%s], want [%s]", what, got.mclist.c_str(), want.mclist.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  int lo = int(if_nametoindex("lo"));
  if (!lo) fail("no lo");
  // A port of our own (pid-based: runs in parallel do not see each other).
  uint16_t port = uint16_t(20000 + getpid() % 40000);

  int pd = socket(AF_PACKET, SOCK_DGRAM, 0);
  if (pd < 0) fail("socket(AF_PACKET, SOCK_DGRAM): %s", strerror(errno));
  // SOCK_DGRAM: the filter sees the IP header at 0. UDP (9) to `port` (22).
  attach(pd, {
                 BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
                 BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 3),
                 BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 22),
                 BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1),
                 BPF_STMT(BPF_RET | BPF_K, 0xffff),
                 BPF_STMT(BPF_RET | BPF_K, 0),
             });
  set_pk(pd, PACKET_AUXDATA, 1);
  set_pk(pd, PACKET_ORIGDEV, 1);
  set_pk(pd, PACKET_VERSION, TPACKET_V2);
  set_pk(pd, PACKET_RESERVE, 128);
  set_pk(pd, PACKET_TIMESTAMP, SOF_TIMESTAMPING_RAW_HARDWARE);
  set_pk(pd, PACKET_LOSS, 1);
  int v = 200000;
  if (setsockopt(pd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) < 0)
    fail("SO_RCVBUF: %s", strerror(errno));
  bind_ll(pd, ETH_P_IP, lo);
  packet_mreq mr = {};
  mr.mr_ifindex = lo;
  mr.mr_type = PACKET_MR_ALLMULTI;
  if (setsockopt(pd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
    fail("PACKET_MR_ALLMULTI: %s", strerror(errno));
  mr.mr_type = PACKET_MR_MULTICAST;
  mr.mr_alen = 6;
  const unsigned char mac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};
  memcpy(mr.mr_address, mac, 6);
  for (int i = 0; i < 2; i++)
    if (setsockopt(pd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
      fail("PACKET_MR_MULTICAST: %s", strerror(errno));

  int pr = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0);
  if (pr < 0) fail("socket(AF_PACKET, SOCK_RAW): %s", strerror(errno));
  attach(pr, {BPF_STMT(BPF_RET | BPF_K, 0)});
  v = 1;
  if (setsockopt(pr, SOL_SOCKET, SO_LOCK_FILTER, &v, sizeof(v)) < 0)
    fail("SO_LOCK_FILTER: %s", strerror(errno));
  set_pk(pr, PACKET_VNET_HDR, 1);
  set_pk(pr, PACKET_IGNORE_OUTGOING, 1);
  set_pk(pr, PACKET_QDISC_BYPASS, 1);
  bind_ll(pr, ETH_P_ALL, lo);
  int fanout_id = int(getpid() & 0xffff);
  set_pk(pr, PACKET_FANOUT,
         fanout_id | (PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_ROLLOVER | PACKET_FANOUT_FLAG_DEFRAG)
                         << 16);

  int pu = socket(AF_PACKET, SOCK_DGRAM, 0);
  if (pu < 0) fail("socket(AF_PACKET, SOCK_DGRAM): %s", strerror(errno));

  const int fds[] = {pd, pr, pu};
  const char* names[] = {"pd", "pr", "pu"};
  State want[3];
  for (int i = 0; i < 3; i++) want[i] = state_of(fds[i]);

  test_ready();
  test_wait();

  for (int i = 0; i < 3; i++) expect_state(fds[i], want[i], names[i]);

  // A datagram to 127.0.0.1:port passes lo, where pd sees it (twice: out
  // and in), IP and UDP headers first.
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  if (u < 0) fail("socket(AF_INET): %s", strerror(errno));
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string payload = "packet " + std::to_string(seed);
  if (sendto(u, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) !=
      ssize_t(payload.size()))
    fail("sendto: %s", strerror(errno));
  char buf[2048];
  pollfd p = {pd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) fail("pd: no packet within 10 s");
  ssize_t n = recv(pd, buf, sizeof(buf), 0);
  if (n < 0) fail("pd recv: %s", strerror(errno));
  if (size_t(n) != 28 + payload.size() || memcmp(buf + 28, payload.data(), payload.size()))
    fail("pd: got %zd bytes, not our datagram", n);
  close(u);
  pass();
}
