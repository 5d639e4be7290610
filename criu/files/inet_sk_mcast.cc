// Multicast group memberships of inet datagram and raw sockets (see
// inet_sk.h). No interface lists a socket's groups; the kernel lists the
// groups joined on each device (/proc/net/igmp, /proc/net/igmp6), and
// getsockopt(MCAST_MSFILTER) for a (group, device) answers EADDRNOTAVAIL
// unless this socket joined it, and its source filter if it did.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstring>
#include <sstream>
#include <vector>

#include "base/io.h"
#include "criu/files/inet_sk.h"

namespace ckpt::files {
namespace {

struct Candidate {
  std::string group;  // 4 or 16 bytes
  uint32_t ifindex;
};

// /proc/net/igmp: a line per device ("1\tlo : 2 V3"), then one per group
// ("\t\t\t\t030201EF 1 0:00000000 0": the address as the u32 the kernel
// holds, printed in host order: its bytes as read back are network order).
std::vector<Candidate> GroupsV4() {
  std::vector<Candidate> out;
  auto text = io::ReadFile("/proc/net/igmp");
  if (!text.ok()) return out;
  std::istringstream in(*text);
  std::string line;
  uint32_t ifindex = 0;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line[0] != '\t') {
      ifindex = uint32_t(strtoul(line.c_str(), nullptr, 10));
      continue;
    }
    uint32_t v = uint32_t(strtoul(line.c_str(), nullptr, 16));
    out.push_back({std::string(reinterpret_cast<char*>(&v), 4), ifindex});
  }
  return out;
}

// /proc/net/igmp6: "1 lo ff020000000000000000000000010003 1 00000004 0".
std::vector<Candidate> GroupsV6() {
  std::vector<Candidate> out;
  auto text = io::ReadFile("/proc/net/igmp6");
  if (!text.ok()) return out;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    uint32_t idx;
    std::string dev, hex;
    if (!(l >> idx >> dev >> hex) || hex.size() != 32) continue;
    std::string g(16, '\0');
    for (int i = 0; i < 16; i++) g[i] = char(strtoul(hex.substr(i * 2, 2).c_str(), nullptr, 16));
    out.push_back({g, idx});
  }
  return out;
}

sockaddr_storage GroupAddr(int family, const std::string& g) {
  socklen_t len;
  return MakeInetAddr(family, g, 0, 0, &len);
}

// Room for this many sources in one MCAST_MSFILTER call.
constexpr size_t kMaxSources = 64;

struct FilterBuf {
  group_filter gf;
  sockaddr_storage more[kMaxSources];  // gf.gf_slist runs on into these
};
sockaddr_storage* Sources(FilterBuf& b) {
  return reinterpret_cast<sockaddr_storage*>(reinterpret_cast<char*>(&b) +
                                             offsetof(group_filter, gf_slist));
}

}  // namespace

Status ReadMcGroups(int fd, int family, pb::InetSkEntry* e) {
  int level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  for (const Candidate& c : family == AF_INET6 ? GroupsV6() : GroupsV4()) {
    FilterBuf b = {};
    b.gf.gf_interface = c.ifindex;
    b.gf.gf_group = GroupAddr(family, c.group);
    b.gf.gf_numsrc = kMaxSources;
    socklen_t len = sizeof(b);
    if (getsockopt(fd, level, MCAST_MSFILTER, &b, &len) < 0) {
      if (errno == EADDRNOTAVAIL || errno == ENODEV) continue;  // not this socket's
      return Error::Errno("MCAST_MSFILTER");
    }
    if (b.gf.gf_numsrc > kMaxSources)
      return Error("multicast group with more than " + std::to_string(kMaxSources) +
                   " sources in its filter is not supported");
    pb::InetMcGroup* g = e->add_mc_groups();
    g->set_group(c.group);
    g->set_ifindex(c.ifindex);
    g->set_fmode(b.gf.gf_fmode);
    for (uint32_t i = 0; i < b.gf.gf_numsrc; i++) {
      const sockaddr_storage& s = Sources(b)[i];
      if (family == AF_INET)
        g->add_sources(std::string(
            reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in*>(&s)->sin_addr), 4));
      else
        g->add_sources(std::string(
            reinterpret_cast<const char*>(&reinterpret_cast<const sockaddr_in6*>(&s)->sin6_addr),
            16));
    }
  }
  return Ok();
}

Status JoinMcGroups(int fd, const pb::InetSkEntry& e) {
  int family = int(e.family());
  int level = family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
  for (const pb::InetMcGroup& g : e.mc_groups()) {
    uint8_t a[16] = {};
    memcpy(a, g.group().data(), std::min<size_t>(g.group().size(), 16));
    char name[INET6_ADDRSTRLEN] = "?";
    inet_ntop(family, a, name, sizeof(name));
    std::string what =
        "multicast group " + std::string(name) + " on interface " + std::to_string(g.ifindex());
    group_req r = {};
    r.gr_interface = g.ifindex();
    r.gr_group = GroupAddr(family, g.group());
    if (setsockopt(fd, level, MCAST_JOIN_GROUP, &r, sizeof(r)) < 0)
      return Error::Errno("joining " + what);
    if (g.fmode() == MCAST_EXCLUDE && g.sources_size() == 0) continue;
    if (size_t(g.sources_size()) > kMaxSources) return Error(what + ": too many sources");
    FilterBuf b = {};
    b.gf.gf_interface = g.ifindex();
    b.gf.gf_group = r.gr_group;
    b.gf.gf_fmode = g.fmode();
    b.gf.gf_numsrc = uint32_t(g.sources_size());
    for (int i = 0; i < g.sources_size(); i++) {
      socklen_t len;
      Sources(b)[i] = MakeInetAddr(family, g.sources(i), 0, 0, &len);
    }
    if (setsockopt(fd, level, MCAST_MSFILTER, &b, socklen_t(GROUP_FILTER_SIZE(b.gf.gf_numsrc))) < 0)
      return Error::Errno(what + ": MCAST_MSFILTER");
  }
  return Ok();
}

}  // namespace ckpt::files
