// rtnetlink messages kept as the kernel sent them, edited only where the
// kernel would refuse its own words as a request:
//   - routes: rtm_flags and each nexthop's flags may carry RTNH_F_DEAD /
//     RTNH_F_LINKDOWN (a route via a down device), which a request must not
//     hold; RTA_CACHEINFO only describes the cache. Only RTNH_F_ONLINK is
//     kept.
//   - rules: fib_rule_hdr.flags carries FIB_RULE_UNRESOLVED and
//     *_DETACHED, which the kernel computes; only FIB_RULE_INVERT is kept.
//   - addresses: IFA_CACHEINFO holds the remaining lifetimes, which is what
//     a request sets, so they go back unchanged.
#include "criu/ns/net_rtnl.h"

#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <functional>
#include <set>

#include "base/log.h"
#include "criu/ns/netlink_util.h"

namespace ckpt::ns {
namespace {

using Kind = pb::NetRtnlEntry::Kind;

size_t HeaderLen(Kind k) {
  switch (k) {
    case pb::NetRtnlEntry::ADDR:
      return sizeof(ifaddrmsg);
    case pb::NetRtnlEntry::ROUTE:
      return sizeof(rtmsg);
    case pb::NetRtnlEntry::RULE:
      return sizeof(fib_rule_hdr);
  }
  return 0;
}

int NewType(Kind k) {
  switch (k) {
    case pb::NetRtnlEntry::ADDR:
      return RTM_NEWADDR;
    case pb::NetRtnlEntry::ROUTE:
      return RTM_NEWROUTE;
    case pb::NetRtnlEntry::RULE:
      return RTM_NEWRULE;
  }
  return 0;
}

// Calls fn on every top-level attribute after the family header; false if
// they do not exactly fill the message.
bool ForEachAttr(const std::string& m, size_t hdr, const std::function<void(const nlattr*)>& fn) {
  if (m.size() < hdr) return false;
  size_t off = NLMSG_ALIGN(hdr);
  if (off >= m.size()) return off == m.size() || m.size() == hdr;
  int left = int(m.size() - off);
  const auto* a = reinterpret_cast<const nlattr*>(m.data() + off);
  for (; nla_ok(a, left); a = nla_next(a, &left)) fn(a);
  return left == 0;
}

std::string Ip(int family, const nlattr* a) {
  if (!a) return "";
  char buf[INET6_ADDRSTRLEN] = "?";
  size_t want = family == AF_INET ? 4 : 16;
  if (size_t(nla_len(a)) == want) inet_ntop(family, nla_data(a), buf, sizeof(buf));
  return buf;
}

std::string Dev(const IfNames& n, uint32_t i) {
  auto it = n.find(i);
  return it != n.end() ? it->second : "ifindex " + std::to_string(i);
}

// The attributes by type (last wins), for descriptions.
std::map<int, const nlattr*> Attrs(const std::string& m, size_t hdr) {
  std::map<int, const nlattr*> out;
  ForEachAttr(m, hdr, [&](const nlattr* a) { out[nla_type(a)] = a; });
  return out;
}

std::string DescribeAddr(const std::string& m, const IfNames& n) {
  const auto* h = reinterpret_cast<const ifaddrmsg*>(m.data());
  auto at = Attrs(m, sizeof(*h));
  const nlattr* a = at.count(IFA_LOCAL) ? at[IFA_LOCAL] : at[IFA_ADDRESS];
  return "address " + Ip(h->ifa_family, a) + "/" + std::to_string(h->ifa_prefixlen) + " on " +
         Dev(n, h->ifa_index);
}

std::string DescribeRoute(const std::string& m, const IfNames& n) {
  const auto* h = reinterpret_cast<const rtmsg*>(m.data());
  auto at = Attrs(m, sizeof(*h));
  std::string s = "route ";
  s += h->rtm_dst_len ? Ip(h->rtm_family, at[RTA_DST]) + "/" + std::to_string(h->rtm_dst_len)
                      : std::string("default");
  uint32_t table = at.count(RTA_TABLE) && nla_len(at[RTA_TABLE]) == 4
                       ? nla_get_u32(const_cast<nlattr*>(at[RTA_TABLE]))
                       : h->rtm_table;
  s += " table " + std::to_string(table);
  if (at.count(RTA_GATEWAY)) s += " via " + Ip(h->rtm_family, at[RTA_GATEWAY]);
  if (at.count(RTA_OIF) && nla_len(at[RTA_OIF]) == 4)
    s += " dev " + Dev(n, nla_get_u32(const_cast<nlattr*>(at[RTA_OIF])));
  if (at.count(RTA_MULTIPATH)) s += " multipath";
  return s;
}

std::string DescribeRule(const std::string& m) {
  const auto* h = reinterpret_cast<const fib_rule_hdr*>(m.data());
  auto at = Attrs(m, sizeof(*h));
  std::string s = std::string("rule ") + (h->family == AF_INET ? "v4" : "v6");
  if (at.count(FRA_PRIORITY) && nla_len(at[FRA_PRIORITY]) == 4)
    s += " " + std::to_string(nla_get_u32(const_cast<nlattr*>(at[FRA_PRIORITY])));
  if (at.count(FRA_SRC))
    s += " from " + Ip(h->family, at[FRA_SRC]) + "/" + std::to_string(h->src_len);
  if (at.count(FRA_DST))
    s += " to " + Ip(h->family, at[FRA_DST]) + "/" + std::to_string(h->dst_len);
  uint32_t table = at.count(FRA_TABLE) && nla_len(at[FRA_TABLE]) == 4
                       ? nla_get_u32(const_cast<nlattr*>(at[FRA_TABLE]))
                       : h->table;
  s += " lookup " + std::to_string(table);
  return s;
}

// Copies the message keeping the attributes `keep` accepts.
std::string Filter(const std::string& m, size_t hdr,
                   const std::function<bool(const nlattr*)>& keep) {
  std::string out = m.substr(0, hdr);
  out.resize(NLMSG_ALIGN(hdr), '\0');
  ForEachAttr(m, hdr, [&](const nlattr* a) {
    if (!keep(a)) return;
    out.append(reinterpret_cast<const char*>(a), a->nla_len);
    out.resize(NLA_ALIGN(out.size()), '\0');
  });
  return out;
}

// Nexthop flags a request may hold.
constexpr unsigned kNhFlags = RTNH_F_ONLINK;

Result<bool> CleanRoute(std::string& m, const IfNames& n) {
  auto* h = reinterpret_cast<rtmsg*>(m.data());
  if ((h->rtm_flags & RTM_F_CLONED) || h->rtm_protocol == RTPROT_KERNEL) return false;
  bool nhid = false;
  m = Filter(m, sizeof(rtmsg), [&](const nlattr* a) {
    if (nla_type(a) == RTA_NH_ID) nhid = true;
    return nla_type(a) != RTA_CACHEINFO;
  });
  if (nhid) return Error(DescribeRoute(m, n) + " uses a nexthop object: not supported", ENOTSUP);
  h = reinterpret_cast<rtmsg*>(m.data());
  h->rtm_flags &= kNhFlags;
  // Each rtnexthop of RTA_MULTIPATH.
  ForEachAttr(m, sizeof(rtmsg), [&](const nlattr* a) {
    if (nla_type(a) != RTA_MULTIPATH) return;
    auto* p = const_cast<char*>(static_cast<const char*>(nla_data(a)));
    int left = nla_len(a);
    auto* nh = reinterpret_cast<rtnexthop*>(p);
    while (left >= int(sizeof(rtnexthop)) && nh->rtnh_len >= sizeof(rtnexthop) &&
           int(nh->rtnh_len) <= left) {
      nh->rtnh_flags &= kNhFlags;
      left -= RTNH_ALIGN(nh->rtnh_len);
      nh = RTNH_NEXT(nh);
    }
  });
  return true;
}

std::string Payload(nlmsghdr* h) {
  return std::string(static_cast<const char*>(nlmsg_data(h)), size_t(nlmsg_datalen(h)));
}

Status DumpKind(nl_sock* sk, Kind kind, int type, const IfNames& names,
                std::vector<pb::NetRtnlEntry>& out) {
  for (int family : {AF_INET, AF_INET6}) {
    TRY(RtnlDump(sk, type, family, [&](nlmsghdr* h) -> Status {
      if (h->nlmsg_type != NewType(kind)) return Ok();
      std::string m = Payload(h);
      if (m.size() < HeaderLen(kind)) return Error("short rtnetlink message", EPROTO);
      // A dump request for one family may still answer with another's.
      if (reinterpret_cast<const uint8_t*>(m.data())[0] != family) return Ok();
      std::string desc;
      if (kind == pb::NetRtnlEntry::ROUTE) {
        TRY_ASSIGN(bool keep, CleanRoute(m, names));
        if (!keep) return Ok();
        desc = DescribeRoute(m, names);
      } else if (kind == pb::NetRtnlEntry::RULE) {
        reinterpret_cast<fib_rule_hdr*>(m.data())->flags &= FIB_RULE_INVERT;
        desc = DescribeRule(m);
      } else {
        desc = DescribeAddr(m, names);
      }
      pb::NetRtnlEntry e;
      e.set_kind(kind);
      e.set_msg(m);
      e.set_desc(desc);
      LOG_DBG("netns: " + desc);
      out.push_back(std::move(e));
      return Ok();
    }));
  }
  return Ok();
}

// family, device, prefix length and address of an RTM_NEWADDR payload.
std::string AddrKey(const std::string& m) {
  if (m.size() < sizeof(ifaddrmsg)) return "";
  const auto* h = reinterpret_cast<const ifaddrmsg*>(m.data());
  auto at = Attrs(m, sizeof(*h));
  const nlattr* a = at.count(IFA_LOCAL) ? at[IFA_LOCAL] : at[IFA_ADDRESS];
  std::string k = std::to_string(h->ifa_family) + " " + std::to_string(h->ifa_index) + " " +
                  std::to_string(h->ifa_prefixlen) + " ";
  if (a) k.append(static_cast<const char*>(nla_data(a)), size_t(nla_len(a)));
  return k;
}

bool IsOk(const Status& st) { return st.ok() || st.error().err() == EEXIST; }

}  // namespace

Result<std::vector<pb::NetRtnlEntry>> DumpRtnl(nl_sock* inner, const IfNames& names) {
  std::vector<pb::NetRtnlEntry> out;
  TRY(DumpKind(inner, pb::NetRtnlEntry::ADDR, RTM_GETADDR, names, out), "reading addresses");
  TRY(DumpKind(inner, pb::NetRtnlEntry::ROUTE, RTM_GETROUTE, names, out), "reading routes");
  TRY(DumpKind(inner, pb::NetRtnlEntry::RULE, RTM_GETRULE, names, out), "reading rules");
  return out;
}

Status CheckRtnl(const std::vector<pb::NetRtnlEntry>& entries) {
  int last = 0;
  for (size_t i = 0; i < entries.size(); i++) {
    const auto& e = entries[i];
    std::string what = "entry " + std::to_string(i) + " (" + e.desc() + ")";
    if (!pb::NetRtnlEntry::Kind_IsValid(e.kind()))
      return Error(what + ": unknown kind " + std::to_string(e.kind()), EINVAL);
    if (e.kind() < last) return Error(what + ": out of order", EINVAL);
    last = e.kind();
    size_t hdr = HeaderLen(e.kind());
    if (e.msg().size() < hdr || e.msg().size() > 65000)
      return Error(what + ": bad message size " + std::to_string(e.msg().size()), EINVAL);
    uint8_t family = uint8_t(e.msg()[0]);
    if (family != AF_INET && family != AF_INET6)
      return Error(what + ": address family " + std::to_string(family), EINVAL);
    if (!ForEachAttr(e.msg(), hdr, [](const nlattr*) {}))
      return Error(what + ": malformed attributes", EINVAL);
  }
  return Ok();
}

Status RestoreRtnl(nl_sock* sk, const std::vector<pb::NetRtnlEntry>& entries) {
  // Addresses the kernel made by itself once the devices came up (lo's,
  // IPv6 link-local ones) are left as they are: replacing them would add
  // prefix routes the kernel did not make for its own.
  std::set<std::string> present;
  for (int family : {AF_INET, AF_INET6}) {
    TRY(RtnlDump(sk, RTM_GETADDR, family,
                 [&](nlmsghdr* h) -> Status {
                   if (h->nlmsg_type == RTM_NEWADDR) present.insert(AddrKey(Payload(h)));
                   return Ok();
                 }),
        "reading the new namespace's addresses");
  }
  std::vector<const pb::NetRtnlEntry*> routes, rules;
  for (const auto& e : entries) {
    if (e.kind() == pb::NetRtnlEntry::ADDR) {
      if (present.count(AddrKey(e.msg()))) continue;
      Status st = RtnlRequest(sk, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, e.msg().data(),
                              e.msg().size(), e.desc());
      if (!IsOk(st)) return st;
    } else if (e.kind() == pb::NetRtnlEntry::ROUTE) {
      routes.push_back(&e);
    } else {
      rules.push_back(&e);
    }
  }
  // A route may need another (its gateway reached through it): retry the
  // failed ones while a pass makes progress.
  while (!routes.empty()) {
    std::vector<const pb::NetRtnlEntry*> failed;
    Status first;
    for (const auto* e : routes) {
      Status st = RtnlRequest(sk, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, e->msg().data(),
                              e->msg().size(), e->desc());
      if (IsOk(st)) continue;
      if (first.ok()) first = st;
      failed.push_back(e);
    }
    if (failed.size() == routes.size()) return first;
    routes = std::move(failed);
  }
  if (rules.empty()) return Ok();
  // The fresh namespace's default rules go; the image has the ones the
  // namespace kept.
  std::vector<std::string> fresh;
  for (int family : {AF_INET, AF_INET6}) {
    TRY(RtnlDump(sk, RTM_GETRULE, family,
                 [&](nlmsghdr* h) -> Status {
                   if (h->nlmsg_type == RTM_NEWRULE) fresh.push_back(Payload(h));
                   return Ok();
                 }),
        "reading the fresh namespace's rules");
  }
  for (std::string& m : fresh) {
    if (m.size() < sizeof(fib_rule_hdr)) continue;
    reinterpret_cast<fib_rule_hdr*>(m.data())->flags &= FIB_RULE_INVERT;
    Status st = RtnlRequest(sk, RTM_DELRULE, 0, m.data(), m.size(),
                            "removing the fresh namespace's " + DescribeRule(m));
    if (!st.ok() && st.error().err() != ENOENT) return st;
  }
  for (const auto* e : rules) {
    Status st = RtnlRequest(sk, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, e->msg().data(),
                            e->msg().size(), e->desc());
    if (!IsOk(st)) return st;
  }
  return Ok();
}

}  // namespace ckpt::ns
