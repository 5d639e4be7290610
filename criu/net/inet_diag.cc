#include "criu/net/inet_diag.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <dirent.h>
#include <unistd.h>

#include <cstdio>

#include <cstring>
#include <vector>

#include "base/unique_fd.h"

namespace ckpt::net {
namespace {

void Parse(const nlmsghdr* h, int protocol, InetDiag* d) {
  const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
  d->ino = m->idiag_inode;
  d->family = m->idiag_family;
  d->protocol = protocol;
  d->state = m->idiag_state;
  size_t alen = d->family == AF_INET6 ? 16 : 4;
  memcpy(d->src, m->id.idiag_src, alen);
  memcpy(d->dst, m->id.idiag_dst, alen);
  d->sport = ntohs(m->id.idiag_sport);
  d->dport = ntohs(m->id.idiag_dport);
  d->ifindex = m->id.idiag_if;
  d->cookie[0] = m->id.idiag_cookie[0];
  d->cookie[1] = m->id.idiag_cookie[1];
  d->rqueue = m->idiag_rqueue;
  d->wqueue = m->idiag_wqueue;
  int len = int(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
  for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == INET_DIAG_SHUTDOWN && RTA_PAYLOAD(a) >= 1)
      d->shutdown = *static_cast<const uint8_t*>(RTA_DATA(a)) & 3;
  }
}

}  // namespace

Result<std::map<uint32_t, InetDiag>> InetDiagDump(int family, int protocol) {
  std::string what = std::string("inet_diag (") + (family == AF_INET6 ? "IPv6" : "IPv4") + " " +
                     (protocol == IPPROTO_TCP   ? "TCP"
                      : protocol == IPPROTO_UDP ? "UDP"
                                                : "UDP-Lite") +
                     ")";
  UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return Error::Errno(what + ": socket(NETLINK_SOCK_DIAG)");
  struct {
    nlmsghdr h;
    inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof(req));
  req.h.nlmsg_len = sizeof(req);
  req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r.sdiag_family = uint8_t(family);
  req.r.sdiag_protocol = uint8_t(protocol);
  req.r.idiag_states = ~0u;  // every state; INET_DIAG_SHUTDOWN comes with each answer
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (sendto(nl.get(), &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    return Error::Errno(what + ": send");
  std::map<uint32_t, InetDiag> out;
  std::vector<char> buf(256 * 1024);
  for (;;) {
    ssize_t n = recv(nl.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno(what + ": recv");
    }
    if (n == 0) return Error(what + ": unexpected end of answer");
    int left = int(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_type == NLMSG_DONE) return out;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        if (e->error == 0) return out;
        return Error::Errno(what, -e->error);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        continue;
      InetDiag d;
      Parse(h, protocol, &d);
      out[d.ino] = d;
    }
  }
}

Result<const InetDiag*> InetDiagCache::Find(int family, int protocol, uint32_t ino) {
  auto key = std::make_pair(family, protocol);
  auto it = dumps_.find(key);
  if (it == dumps_.end()) {
    TRY_ASSIGN(auto all, InetDiagDump(family, protocol));
    it = dumps_.emplace(key, std::move(all)).first;
  }
  auto s = it->second.find(ino);
  return s == it->second.end() ? nullptr : &s->second;
}

namespace {

// The process that has socket inode `ino` open, as "pid 42 (comm)", or "".
std::string ProcessWithSocket(uint32_t ino) {
  std::string want = "socket:[" + std::to_string(ino) + "]";
  DIR* proc = opendir("/proc");
  if (!proc) return "";
  std::string found;
  while (dirent* p = readdir(proc)) {
    if (p->d_name[0] < '1' || p->d_name[0] > '9') continue;
    std::string fddir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(fddir.c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      char link[64];
      ssize_t n = readlinkat(dirfd(fds), f->d_name, link, sizeof(link));
      if (n > 0 && want.compare(0, std::string::npos, link, size_t(n)) == 0) {
        found = std::string("pid ") + p->d_name;
        break;
      }
    }
    closedir(fds);
    if (!found.empty()) {
      char comm[64] = {};
      FILE* c = fopen((std::string("/proc/") + p->d_name + "/comm").c_str(), "r");
      if (c) {
        if (fgets(comm, sizeof(comm), c)) comm[strcspn(comm, "\n")] = 0;
        fclose(c);
        found += std::string(" (") + comm + ")";
      }
      break;
    }
  }
  closedir(proc);
  return found;
}

}  // namespace

std::string DescribePortHolders(int family, int protocol, uint16_t port, uint32_t self_ino) {
  auto all = InetDiagDump(family, protocol);
  if (!all.ok()) return "";
  int timewait = 0;
  for (const auto& [ino, d] : *all) {
    if (d.sport != port || (ino && ino == self_ino)) continue;
    if (d.state == TCP_TIME_WAIT) {
      timewait++;
      continue;
    }
    std::string who = ino ? ProcessWithSocket(ino) : "";
    return "by " + (who.empty() ? std::string("a socket") : who) + " in state " +
           TcpStateName(d.state);
  }
  if (timewait)
    return "by " + std::to_string(timewait) +
           " connection(s) in TIME_WAIT, which expire within a minute";
  return "";
}

Result<int> EndTimeWait(int family, const std::string& addr, uint16_t port) {
  TRY_ASSIGN(auto all, InetDiagDump(family, IPPROTO_TCP));
  size_t alen = family == AF_INET6 ? 16 : 4;
  bool any = addr.find_first_not_of('\0') == std::string::npos;
  int ended = 0;
  for (const auto& [ino, d] : all) {
    if (d.state != TCP_TIME_WAIT || d.sport != port) continue;
    if (!any && (addr.size() != alen || memcmp(addr.data(), d.src, alen) != 0)) continue;
    UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!nl) return Error::Errno("inet_diag: socket(NETLINK_SOCK_DIAG)");
    struct {
      nlmsghdr h;
      inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = sizeof(req);
    req.h.nlmsg_type = SOCK_DESTROY;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.r.sdiag_family = uint8_t(family);
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = 1u << TCP_TIME_WAIT;
    req.r.id.idiag_sport = htons(d.sport);
    req.r.id.idiag_dport = htons(d.dport);
    memcpy(req.r.id.idiag_src, d.src, alen);
    memcpy(req.r.id.idiag_dst, d.dst, alen);
    req.r.id.idiag_if = d.ifindex;
    req.r.id.idiag_cookie[0] = d.cookie[0];
    req.r.id.idiag_cookie[1] = d.cookie[1];
    sockaddr_nl sa = {};
    sa.nl_family = AF_NETLINK;
    if (sendto(nl.get(), &req, sizeof(req), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
      return Error::Errno("SOCK_DESTROY: send");
    char buf[512];
    ssize_t n = recv(nl.get(), buf, sizeof(buf), 0);
    if (n < ssize_t(NLMSG_LENGTH(sizeof(nlmsgerr)))) return Error::Errno("SOCK_DESTROY: recv");
    const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
    if (h->nlmsg_type == NLMSG_ERROR) {
      int e = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      if (e && e != ENOENT) return Error::Errno("SOCK_DESTROY " + FormatEndpoint(family, d.src, d.sport), e);
    }
    ended++;
  }
  return ended;
}

std::string FormatEndpoint(int family, const uint8_t* addr, uint16_t port) {
  char buf[INET6_ADDRSTRLEN] = "?";
  inet_ntop(family, addr, buf, sizeof(buf));
  if (family == AF_INET6) return "[" + std::string(buf) + "]:" + std::to_string(port);
  return std::string(buf) + ":" + std::to_string(port);
}

const char* TcpStateName(int state) {
  switch (state) {
    case TCP_ESTABLISHED: return "ESTABLISHED";
    case TCP_SYN_SENT: return "SYN_SENT";
    case TCP_SYN_RECV: return "SYN_RECV";
    case TCP_FIN_WAIT1: return "FIN_WAIT1";
    case TCP_FIN_WAIT2: return "FIN_WAIT2";
    case TCP_TIME_WAIT: return "TIME_WAIT";
    case TCP_CLOSE: return "CLOSE";
    case TCP_CLOSE_WAIT: return "CLOSE_WAIT";
    case TCP_LAST_ACK: return "LAST_ACK";
    case TCP_LISTEN: return "LISTEN";
    case TCP_CLOSING: return "CLOSING";
    default: return "UNKNOWN";
  }
}

}  // namespace ckpt::net
