#include "criu/net/inet_diag.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "criu/net/sock_diag.h"

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

Result<std::vector<InetDiag>> InetDiagList(int family, int protocol) {
  std::string what = std::string("inet_diag (") + (family == AF_INET6 ? "IPv6" : "IPv4") + " " +
                     (protocol == IPPROTO_TCP   ? "TCP"
                      : protocol == IPPROTO_UDP ? "UDP"
                                                : "UDP-Lite") +
                     ")";
  inet_diag_req_v2 r = {};
  r.sdiag_family = uint8_t(family);
  r.sdiag_protocol = uint8_t(protocol);
  r.idiag_states = ~0u;  // every state; INET_DIAG_SHUTDOWN comes with each answer
  std::vector<InetDiag> out;
  TRY(SockDiagDump(&r, sizeof(r),
                   [&](const nlmsghdr* h) -> Status {
                     if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
                       return Error("short answer");
                     InetDiag d;
                     Parse(h, protocol, &d);
                     out.push_back(d);
                     return Ok();
                   }),
      what);
  return out;
}

Result<std::map<uint32_t, InetDiag>> InetDiagDump(int family, int protocol) {
  TRY_ASSIGN(std::vector<InetDiag> all, InetDiagList(family, protocol));
  std::map<uint32_t, InetDiag> out;
  for (const InetDiag& d : all)
    if (d.ino) out[d.ino] = d;
  return out;
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
  auto all = InetDiagList(family, protocol);
  if (!all.ok()) return "";
  int timewait = 0;
  for (const InetDiag& d : *all) {
    uint32_t ino = d.ino;
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
  TRY_ASSIGN(auto all, InetDiagList(family, IPPROTO_TCP));
  size_t alen = family == AF_INET6 ? 16 : 4;
  bool any = addr.find_first_not_of('\0') == std::string::npos;
  int ended = 0;
  for (const InetDiag& d : all) {
    // TIME_WAIT, or an orphan still closing (FIN_WAIT1/2, CLOSING,
    // LAST_ACK with no file: inode 0) after its process was killed.
    bool orphan = d.ino == 0 && d.state != TCP_LISTEN && d.state != TCP_CLOSE &&
                  d.state != TCP_SYN_SENT && d.state != TCP_SYN_RECV;
    if ((d.state != TCP_TIME_WAIT && !orphan) || d.sport != port) continue;
    if (!any && (addr.size() != alen || memcmp(addr.data(), d.src, alen) != 0)) continue;
    inet_diag_req_v2 r = {};
    r.sdiag_family = uint8_t(family);
    r.sdiag_protocol = IPPROTO_TCP;
    r.idiag_states = 1u << d.state;
    r.id.idiag_sport = htons(d.sport);
    r.id.idiag_dport = htons(d.dport);
    memcpy(r.id.idiag_src, d.src, alen);
    memcpy(r.id.idiag_dst, d.dst, alen);
    r.id.idiag_if = d.ifindex;
    r.id.idiag_cookie[0] = d.cookie[0];
    r.id.idiag_cookie[1] = d.cookie[1];
    Status s =
        SockDiagRequest(SOCK_DESTROY, false, &r, sizeof(r), [](const nlmsghdr*) { return Ok(); });
    if (!s.ok() && s.error().err() != ENOENT)  // gone by itself meanwhile: fine
      return std::move(s.error().Context("ending " + FormatEndpoint(family, d.src, d.sport) +
                                         " in " + TcpStateName(d.state)));
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
      return "UNKNOWN";
  }
}

}  // namespace ckpt::net
