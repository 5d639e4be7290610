// Devices through libnl's link objects. The kernel shows where a veth's
// peer or a macvlan's lower device lives as IFLA_LINK_NETNSID, an id only
// meaningful inside the dumped namespace; we ask that namespace for the id
// it gives ckpt's own (RTM_GETNSID) to tell "in ckpt's namespace" apart.
#include "criu/ns/net_links.h"

#include <linux/if.h>
#include <linux/net_namespace.h>
#include <linux/rtnetlink.h>
#include <netlink/cache.h>
#include <netlink/msg.h>
#include <netlink/route/link.h>
#include <netlink/route/link/ipvlan.h>
#include <netlink/route/link/macvlan.h>
#include <netlink/route/link/veth.h>

#include <algorithm>
#include <memory>
#include <set>

#include "base/log.h"
#include "criu/ns/netlink_util.h"

namespace ckpt::ns {
namespace {

struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
struct VethFree {
  void operator()(rtnl_link* l) const { rtnl_link_veth_release(l); }
};
struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct AddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};

// Flags a program or an admin sets on a device; the rest (RUNNING,
// LOWER_UP, LOOPBACK, BROADCAST, ...) the kernel derives.
constexpr unsigned kSavedFlags =
    IFF_UP | IFF_NOARP | IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST | IFF_DEBUG | IFF_DYNAMIC;

// Kinds we can make again.
const std::set<std::string> kKinds = {"dummy", "veth", "bridge", "macvlan", "ipvlan"};
// Devices every new namespace gets by itself when their module is loaded
// (fallback tunnels): saved, and at restore changed where they exist.
const std::set<std::string> kFallbackNames = {"tunl0",   "sit0",    "ip6tnl0", "gre0",    "gretap0",
                                              "erspan0", "ip6gre0", "ip_vti0", "ip6_vti0"};

std::string Bytes(nl_addr* a) {
  if (!a || nl_addr_get_len(a) == 0) return "";
  return std::string(static_cast<const char*>(nl_addr_get_binary_addr(a)), nl_addr_get_len(a));
}

std::string Hex(const std::string& b) {
  std::string s;
  char buf[4];
  for (unsigned char ch : b) {
    snprintf(buf, sizeof(buf), s.empty() ? "%02x" : ":%02x", ch);
    s += buf;
  }
  return s;
}

std::string Dev(const pb::NetLinkEntry& e) {
  return "device " + e.name() + (e.kind().empty() ? "" : " (" + e.kind() + ")");
}

// The id the namespace of `inner` gives the namespace `fd`; -1 if none.
Result<int> PeerNsid(nl_sock* inner, int fd) {
  nl_msg* msg = nlmsg_alloc_simple(RTM_GETNSID, 0);
  if (!msg) return Error("out of memory", ENOMEM);
  rtgenmsg g = {};
  g.rtgen_family = AF_UNSPEC;
  if (nlmsg_append(msg, &g, sizeof(g), NLMSG_ALIGNTO) < 0 || nla_put_u32(msg, NETNSA_FD, fd) < 0) {
    nlmsg_free(msg);
    return Error("out of memory", ENOMEM);
  }
  int id = -1;
  std::function<Status(nlmsghdr*)> each = [&](nlmsghdr* h) -> Status {
    nlattr* tb[NETNSA_MAX + 1];
    if (h->nlmsg_type != RTM_NEWNSID) return Ok();
    if (nlmsg_parse(h, sizeof(rtgenmsg), tb, NETNSA_MAX, nullptr) < 0 || !tb[NETNSA_NSID])
      return Error("RTM_GETNSID: malformed answer", EPROTO);
    id = int(nla_get_s32(tb[NETNSA_NSID]));
    return Ok();
  };
  TRY(RtnlSend(inner, msg, "asking the namespace for ckpt's namespace id", &each));
  return id;
}

// Where a device's IFLA_LINK points: -1 no link; 0 this namespace; 1 ckpt's;
// 2 another one.
int LinkWhere(rtnl_link* l, int host_nsid) {
  if (rtnl_link_get_link(l) <= 0) return -1;
  int32_t nsid = 0;
  if (rtnl_link_get_link_netnsid(l, &nsid) < 0) return 0;
  return (host_nsid >= 0 && nsid == host_nsid) ? 1 : 2;
}

Result<LinkPtr> GetLink(nl_sock* sk, int ifindex, const char* name, const std::string& what) {
  rtnl_link* l = nullptr;
  int r = rtnl_link_get_kernel(sk, ifindex, name, &l);
  if (r < 0) return NlError(what, r);
  return LinkPtr(l);
}

Status SaveOne(rtnl_link* l, nl_sock* host, int host_nsid, pb::NetLinkEntry& e) {
  const char* kind = rtnl_link_get_type(l);
  unsigned flags = rtnl_link_get_flags(l);
  e.set_ifindex(uint32_t(rtnl_link_get_ifindex(l)));
  e.set_name(rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "");
  e.set_kind(kind ? kind : "");
  bool lo = (flags & IFF_LOOPBACK) && !kind;
  bool fallback = kind && kFallbackNames.count(e.name());
  if (!lo && !fallback && (!kind || !kKinds.count(kind))) {
    std::string k = kind ? kind : "no rtnetlink kind: a physical or driver device";
    return Error("device " + e.name() + " (" + k + ") is not supported", ENOTSUP);
  }
  e.set_flags(flags & kSavedFlags);
  e.set_mtu(rtnl_link_get_mtu(l));
  if (!lo) {
    e.set_address(Bytes(rtnl_link_get_addr(l)));
    e.set_broadcast(Bytes(rtnl_link_get_broadcast(l)));
  }
  e.set_txqlen(rtnl_link_get_txqlen(l));
  e.set_group(rtnl_link_get_group(l));
  if (rtnl_link_get_ifalias(l)) e.set_alias(rtnl_link_get_ifalias(l));
  if (rtnl_link_get_master(l) > 0) e.set_master(uint32_t(rtnl_link_get_master(l)));
  e.set_num_tx_queues(rtnl_link_get_num_tx_queues(l));
  e.set_num_rx_queues(rtnl_link_get_num_rx_queues(l));
  e.set_linkmode(rtnl_link_get_linkmode(l));
  if (lo || fallback) return Ok();

  std::string k = kind;
  int where = LinkWhere(l, host_nsid);
  int link = rtnl_link_get_link(l);
  if (k == "veth") {
    pb::NetVethPeer* p = e.mutable_veth();
    if (where == 0) {
      p->set_inside_ifindex(uint32_t(link));
    } else if (where == 1) {
      TRY_ASSIGN(LinkPtr peer, GetLink(host, link, nullptr, "its peer in ckpt's namespace"),
                 Dev(e));
      p->set_outer_name(rtnl_link_get_name(peer.get()));
      p->set_outer_address(Bytes(rtnl_link_get_addr(peer.get())));
      p->set_outer_mtu(rtnl_link_get_mtu(peer.get()));
      p->set_outer_up(rtnl_link_get_flags(peer.get()) & IFF_UP);
      if (int m = rtnl_link_get_master(peer.get()); m > 0) {
        TRY_ASSIGN(LinkPtr br, GetLink(host, m, nullptr, "the bridge of its peer"), Dev(e));
        p->set_outer_master(rtnl_link_get_name(br.get()));
      }
    } else {
      // Peer in a third namespace (or gone): restore needs an --external.
      LOG_WARN(Dev(e) +
               ": its peer is neither in the namespace nor in ckpt's; restore needs "
               "--external veth[" +
               e.name() + "]:NAME");
    }
  } else if (k == "macvlan" || k == "ipvlan") {
    if (where == 0) {
      e.set_lower_ifindex(uint32_t(link));
    } else if (where == 1) {
      TRY_ASSIGN(LinkPtr lower, GetLink(host, link, nullptr, "its lower device"), Dev(e));
      e.set_lower_outer(rtnl_link_get_name(lower.get()));
    } else {
      return Error(Dev(e) +
                       ": its lower device is in a namespace other than this one and "
                       "ckpt's: not supported",
                   ENOTSUP);
    }
    if (k == "macvlan") {
      e.set_mode(rtnl_link_macvlan_get_mode(l));
      e.set_macvlan_flags(rtnl_link_macvlan_get_flags(l));
    } else {
      uint16_t mode = 0;
      if (rtnl_link_ipvlan_get_mode(l, &mode) == 0) e.set_mode(mode);
    }
  }
  return Ok();
}

bool GoodName(const std::string& n) {
  if (n.empty() || n.size() >= IFNAMSIZ || n == "." || n == "..") return false;
  for (char ch : n)
    if (ch == '/' || ch == ':' || isspace(static_cast<unsigned char>(ch)) || ch == '\0')
      return false;
  return true;
}

// Fills what every device is made with: name, ifindex, mtu, addresses,
// queues.
void Describe(rtnl_link* l, const pb::NetLinkEntry& e) {
  rtnl_link_set_name(l, e.name().c_str());
  rtnl_link_set_ifindex(l, int(e.ifindex()));
  if (e.mtu()) rtnl_link_set_mtu(l, e.mtu());
  if (!e.address().empty()) {
    std::unique_ptr<nl_addr, AddrPut> a(
        nl_addr_build(AF_LLC, e.address().data(), e.address().size()));
    if (a) rtnl_link_set_addr(l, a.get());
  }
  if (!e.broadcast().empty()) {
    std::unique_ptr<nl_addr, AddrPut> a(
        nl_addr_build(AF_LLC, e.broadcast().data(), e.broadcast().size()));
    if (a) rtnl_link_set_broadcast(l, a.get());
  }
  if (e.txqlen()) rtnl_link_set_txqlen(l, e.txqlen());
  if (e.num_tx_queues()) rtnl_link_set_num_tx_queues(l, e.num_tx_queues());
  if (e.num_rx_queues()) rtnl_link_set_num_rx_queues(l, e.num_rx_queues());
}

const VethExternal* FindExternal(const std::vector<VethExternal>& ex, const std::string& inner) {
  for (const auto& v : ex)
    if (v.inner == inner) return &v;
  return nullptr;
}

void SetFlags(rtnl_link* l, unsigned flags) {
  unsigned want = flags & kSavedFlags & ~unsigned(IFF_UP);
  if (want) rtnl_link_set_flags(l, want);
  rtnl_link_unset_flags(l, kSavedFlags & ~want);
}

Status Send(nl_sock* sk, rtnl_link* l, int flags, const std::string& what) {
  nl_msg* msg = nullptr;
  int r = rtnl_link_build_add_request(l, flags, &msg);
  if (r < 0) return NlError(what + ": building the request", r);
  return RtnlSend(sk, msg, what);
}

Status Change(nl_sock* sk, int ifindex, rtnl_link* changes, const std::string& what) {
  LinkPtr orig(rtnl_link_alloc());
  if (!orig) return Error("out of memory", ENOMEM);
  rtnl_link_set_ifindex(orig.get(), ifindex);
  nl_msg* msg = nullptr;
  int r = rtnl_link_build_change_request(orig.get(), changes, 0, &msg);
  if (r < 0) return NlError(what + ": building the request", r);
  return RtnlSend(sk, msg, what);
}

Result<int> HostIfindex(nl_sock* host, const std::string& name, const std::string& what) {
  rtnl_link* l = nullptr;
  int r = rtnl_link_get_kernel(host, 0, name.c_str(), &l);
  if (r < 0) return Error(what + " " + name + " not found in ckpt's network namespace", ENODEV);
  LinkPtr p(l);
  return rtnl_link_get_ifindex(l);
}

constexpr int kCreate = NLM_F_CREATE | NLM_F_EXCL;

Status CreateVeth(const LinkRestoreCtx& c, const pb::NetLinkEntry& e,
                  const std::map<uint32_t, const pb::NetLinkEntry*>& by_index, OuterDevices& made) {
  std::unique_ptr<rtnl_link, VethFree> l(rtnl_link_veth_alloc());
  if (!l) return Error("out of memory", ENOMEM);
  Describe(l.get(), e);
  SetFlags(l.get(), e.flags());
  rtnl_link* peer = rtnl_link_veth_get_peer(l.get());
  LinkPtr peer_ref(peer);
  if (e.veth().has_inside_ifindex()) {
    const pb::NetLinkEntry& pe = *by_index.at(e.veth().inside_ifindex());
    Describe(peer, pe);
    SetFlags(peer, pe.flags());
    return Send(c.inner, l.get(), kCreate, "creating the pair " + e.name() + " / " + pe.name());
  }
  const VethExternal* ex = FindExternal(c.externals, e.name());
  std::string outer = ex ? ex->outer : e.veth().outer_name();
  if (outer.empty())
    return Error(
        "its peer was outside both this namespace and ckpt's at dump: give "
        "--external veth[" +
            e.name() + "]:NAME",
        EINVAL);
  rtnl_link_set_name(peer, outer.c_str());
  rtnl_link_set_ns_fd(peer, c.host_netns_fd);
  if (!ex || ex->outer == e.veth().outer_name()) {
    // The outer end as it was; under another name it may well be another
    // device of the host's, so it keeps the kernel's defaults.
    const std::string& a = e.veth().outer_address();
    if (!a.empty()) {
      std::unique_ptr<nl_addr, AddrPut> addr(nl_addr_build(AF_LLC, a.data(), a.size()));
      if (addr) rtnl_link_set_addr(peer, addr.get());
    }
    if (e.veth().outer_mtu()) rtnl_link_set_mtu(peer, e.veth().outer_mtu());
  }
  Status st = Send(c.inner, l.get(), kCreate,
                   "creating it with its outer end " + outer + " in ckpt's network namespace");
  if (!st.ok()) {
    if (st.error().err() == EEXIST)
      st.error().Context("(a device " + e.name() + " here, or " + outer +
                         " in ckpt's namespace, exists)");
    return st;
  }
  made.Add(outer);
  return Ok();
}

Status CreateVlan(const LinkRestoreCtx& c, const pb::NetLinkEntry& e) {
  LinkPtr l(e.kind() == "macvlan" ? rtnl_link_macvlan_alloc() : rtnl_link_ipvlan_alloc());
  if (!l) return Error("out of memory", ENOMEM);
  Describe(l.get(), e);
  SetFlags(l.get(), e.flags());
  if (e.kind() == "macvlan") {
    if (e.mode()) rtnl_link_macvlan_set_mode(l.get(), e.mode());
    if (e.macvlan_flags()) rtnl_link_macvlan_set_flags(l.get(), uint16_t(e.macvlan_flags()));
  } else {
    rtnl_link_ipvlan_set_mode(l.get(), uint16_t(e.mode()));
  }
  if (e.has_lower_ifindex()) {
    rtnl_link_set_link(l.get(), int(e.lower_ifindex()));
    return Send(c.inner, l.get(), kCreate, "creating it");
  }
  // Made from ckpt's namespace, where the lower device is, straight into
  // the new one (IFLA_NET_NS_FD).
  TRY_ASSIGN(int lower, HostIfindex(c.host, e.lower_outer(), "its lower device"));
  rtnl_link_set_link(l.get(), lower);
  rtnl_link_set_ns_fd(l.get(), c.inner_netns_fd);
  return Send(c.host, l.get(), kCreate, "creating it on " + e.lower_outer());
}

Status CreatePlain(const LinkRestoreCtx& c, const pb::NetLinkEntry& e) {
  LinkPtr l(rtnl_link_alloc());
  if (!l) return Error("out of memory", ENOMEM);
  int r = rtnl_link_set_type(l.get(), e.kind().c_str());
  if (r < 0) return NlError("kind " + e.kind(), r);
  Describe(l.get(), e);
  SetFlags(l.get(), e.flags());
  return Send(c.inner, l.get(), kCreate, "creating it");
}

// lo and fallback tunnels: already there in a fresh namespace.
Status Adjust(const LinkRestoreCtx& c, const pb::NetLinkEntry& e) {
  rtnl_link* found = nullptr;
  int r = rtnl_link_get_kernel(c.inner, 0, e.name().c_str(), &found);
  if (r < 0)
    return Error(
        "not in the fresh namespace (a device the kernel makes by itself, whose "
        "module is not loaded here?)",
        ENODEV);
  LinkPtr f(found);
  if (uint32_t(rtnl_link_get_ifindex(found)) != e.ifindex())
    return Error("has ifindex " + std::to_string(rtnl_link_get_ifindex(found)) +
                     " in the fresh namespace, " + std::to_string(e.ifindex()) + " in the image",
                 EEXIST);
  LinkPtr ch(rtnl_link_alloc());
  if (!ch) return Error("out of memory", ENOMEM);
  if (e.mtu() && e.mtu() != rtnl_link_get_mtu(found)) rtnl_link_set_mtu(ch.get(), e.mtu());
  if (e.txqlen() != rtnl_link_get_txqlen(found)) rtnl_link_set_txqlen(ch.get(), e.txqlen());
  SetFlags(ch.get(), e.flags());
  return Change(c.inner, int(e.ifindex()), ch.get(), "setting it up as it was");
}

// What the kernel only takes on an existing device; flags again, as the
// second end of a veth pair is made without its own.
Status Tune(const LinkRestoreCtx& c, const pb::NetLinkEntry& e) {
  LinkPtr ch(rtnl_link_alloc());
  if (!ch) return Error("out of memory", ENOMEM);
  SetFlags(ch.get(), e.flags());
  if (!e.alias().empty()) rtnl_link_set_ifalias(ch.get(), e.alias().c_str());
  if (e.group()) rtnl_link_set_group(ch.get(), e.group());
  if (e.linkmode()) rtnl_link_set_linkmode(ch.get(), uint8_t(e.linkmode()));
  return Change(c.inner, int(e.ifindex()), ch.get(), "setting flags, alias, group and link mode");
}

bool Existing(const pb::NetLinkEntry& e) {
  return e.kind().empty() || kFallbackNames.count(e.name());
}

}  // namespace

Result<std::vector<pb::NetLinkEntry>> DumpLinks(nl_sock* inner, nl_sock* host, int host_netns_fd) {
  nl_cache* raw = nullptr;
  int r = rtnl_link_alloc_cache(inner, AF_UNSPEC, &raw);
  if (r < 0) return NlError("reading the devices", r);
  std::unique_ptr<nl_cache, CacheFree> cache(raw);
  // After the link dump: it is what makes the kernel give ckpt's namespace
  // an id here if a device points there.
  TRY_ASSIGN(int host_nsid, PeerNsid(inner, host_netns_fd));
  std::vector<pb::NetLinkEntry> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    pb::NetLinkEntry e;
    TRY(SaveOne(reinterpret_cast<rtnl_link*>(o), host, host_nsid, e));
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.ifindex() < b.ifindex(); });
  for (const auto& e : out)
    LOG_DBG("netns: " + Dev(e) + " ifindex " + std::to_string(e.ifindex()) + " mtu " +
            std::to_string(e.mtu()) + " address " + Hex(e.address()));
  return out;
}

Status CheckLinks(const std::vector<pb::NetLinkEntry>& links) {
  std::map<uint32_t, const pb::NetLinkEntry*> by_index;
  std::set<std::string> names;
  for (const auto& e : links) {
    if (!GoodName(e.name())) return Error("device with a bad name '" + e.name() + "'", EINVAL);
    if (e.ifindex() == 0 || e.ifindex() > 0x7fffffff)
      return Error(Dev(e) + ": bad ifindex " + std::to_string(e.ifindex()), EINVAL);
    if (!by_index.emplace(e.ifindex(), &e).second || !names.insert(e.name()).second)
      return Error(Dev(e) + ": ifindex or name twice", EINVAL);
    if (!e.kind().empty() && !kKinds.count(e.kind()) && !kFallbackNames.count(e.name()))
      return Error(Dev(e) + " is not supported", EINVAL);
    if (e.kind().empty() && e.name() != "lo") return Error(Dev(e) + ": no kind", EINVAL);
    if (e.address().size() > 32 || e.broadcast().size() > 32)
      return Error(Dev(e) + ": bad link-layer address", EINVAL);
    if (e.has_veth() != (e.kind() == "veth"))
      return Error(Dev(e) + ": veth peer description does not match the kind", EINVAL);
    if (e.has_veth() && !e.veth().outer_name().empty() && !GoodName(e.veth().outer_name()))
      return Error(Dev(e) + ": bad outer name '" + e.veth().outer_name() + "'", EINVAL);
    if (!e.lower_outer().empty() && !GoodName(e.lower_outer()))
      return Error(Dev(e) + ": bad lower device name", EINVAL);
    if ((e.kind() == "macvlan" || e.kind() == "ipvlan") && !e.has_lower_ifindex() &&
        e.lower_outer().empty())
      return Error(Dev(e) + ": no lower device", EINVAL);
  }
  for (const auto& e : links) {
    auto missing = [&](uint32_t i) { return !by_index.count(i); };
    if (e.has_veth() && e.veth().has_inside_ifindex()) {
      uint32_t p = e.veth().inside_ifindex();
      if (missing(p) || p == e.ifindex() || !by_index[p]->has_veth() ||
          by_index[p]->veth().inside_ifindex() != e.ifindex())
        return Error(Dev(e) + ": its peer " + std::to_string(p) + " is not its veth peer", EINVAL);
    }
    if (e.has_lower_ifindex() && (missing(e.lower_ifindex()) || e.lower_ifindex() == e.ifindex()))
      return Error(Dev(e) + ": lower device " + std::to_string(e.lower_ifindex()) + " missing",
                   EINVAL);
    if (e.master() && (missing(e.master()) || by_index[e.master()]->kind() != "bridge"))
      return Error(Dev(e) + ": master " + std::to_string(e.master()) + " is not a bridge here",
                   EINVAL);
  }
  return Ok();
}

OuterDevices::~OuterDevices() {
  for (const std::string& n : names_) {
    LinkPtr l(rtnl_link_alloc());
    if (!l) continue;
    rtnl_link_set_name(l.get(), n.c_str());
    nl_msg* msg = nullptr;
    if (rtnl_link_build_delete_request(l.get(), &msg) < 0) continue;
    Status st = RtnlSend(host_, msg, "removing " + n + " from ckpt's network namespace");
    if (!st.ok())
      LOG_WARN(st.error().message());
    else
      LOG_INFO("netns restore failed: removed " + n + " from ckpt's network namespace");
  }
}

Status CreateLinks(const LinkRestoreCtx& c, const std::vector<pb::NetLinkEntry>& links,
                   OuterDevices& made) {
  std::map<uint32_t, const pb::NetLinkEntry*> by_index;
  for (const auto& e : links) by_index[e.ifindex()] = &e;
  std::set<uint32_t> done;
  // Passes: a macvlan whose lower device is here waits for it. Each pass
  // makes at least one device, or the loop ends.
  for (bool progress = true; progress && done.size() < links.size();) {
    progress = false;
    for (const auto& e : links) {
      if (done.count(e.ifindex())) continue;
      if (e.has_lower_ifindex() && !done.count(e.lower_ifindex())) continue;
      Status st;
      if (Existing(e))
        st = Adjust(c, e);
      else if (e.kind() == "veth")
        st = CreateVeth(c, e, by_index, made);
      else if (e.kind() == "macvlan" || e.kind() == "ipvlan")
        st = CreateVlan(c, e);
      else
        st = CreatePlain(c, e);
      TRY(st, Dev(e));
      done.insert(e.ifindex());
      if (e.has_veth() && e.veth().has_inside_ifindex()) done.insert(e.veth().inside_ifindex());
      progress = true;
    }
  }
  if (done.size() < links.size()) return Error("devices whose lower devices form a loop", EINVAL);
  for (const auto& e : links) TRY(Tune(c, e), Dev(e));
  return Ok();
}

Status ConnectAndRaiseLinks(const LinkRestoreCtx& c, const std::vector<pb::NetLinkEntry>& links) {
  for (const auto& e : links) {
    if (!e.master()) continue;
    LinkPtr ch(rtnl_link_alloc());
    rtnl_link_set_master(ch.get(), int(e.master()));
    TRY(Change(c.inner, int(e.ifindex()), ch.get(), "joining its bridge"), Dev(e));
  }
  for (const auto& e : links) {
    if (!(e.flags() & IFF_UP)) continue;
    LinkPtr ch(rtnl_link_alloc());
    rtnl_link_set_flags(ch.get(), IFF_UP);
    TRY(Change(c.inner, int(e.ifindex()), ch.get(), "setting it up"), Dev(e));
  }
  // Outer ends of veths, in ckpt's namespace.
  for (const auto& e : links) {
    if (!e.has_veth() || e.veth().has_inside_ifindex()) continue;
    const VethExternal* ex = FindExternal(c.externals, e.name());
    std::string outer = ex ? ex->outer : e.veth().outer_name();
    std::string bridge = ex ? ex->bridge : e.veth().outer_master();
    bool up = ex ? true : e.veth().outer_up();
    std::string what = Dev(e) + ": its outer end " + outer;
    TRY_ASSIGN(int idx, HostIfindex(c.host, outer, "the outer end"), what);
    if (!bridge.empty()) {
      TRY_ASSIGN(int br, HostIfindex(c.host, bridge, "the bridge"), what);
      LinkPtr ch(rtnl_link_alloc());
      rtnl_link_set_master(ch.get(), br);
      TRY(Change(c.host, idx, ch.get(), "joining bridge " + bridge), what);
    }
    if (up) {
      LinkPtr ch(rtnl_link_alloc());
      rtnl_link_set_flags(ch.get(), IFF_UP);
      TRY(Change(c.host, idx, ch.get(), "setting it up"), what);
    }
  }
  return Ok();
}

}  // namespace ckpt::ns
