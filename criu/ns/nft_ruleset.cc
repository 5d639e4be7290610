// nf_tables netlink by hand (libmnl for the socket and attributes,
// libnftnl for message headers and batch delimiters). Objects are kept as
// the kernel's dump messages minus what only names the present: handles
// (a request naming a handle means "that existing object"), use counts,
// rule positions (handles of the previous rule).
#include "criu/ns/nft_ruleset.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <map>
#include <memory>
#include <set>

#include "base/log.h"

namespace ckpt::ns {
namespace {

// Newer than the headers we build with: NFT_TABLE_F_PERSIST (Linux 6.9);
// NFTA_SET_TYPE (the set backend's name) and NFTA_SET_COUNT (its element
// count), which recent kernels put in dumps and refuse in requests.
constexpr uint32_t kTableFlagPersist = 0x4;
constexpr uint16_t kSetAttrType = 19;
constexpr uint16_t kSetAttrCount = 20;
constexpr uint32_t kTableFlagOwner = NFT_TABLE_F_OWNER;

// How long to wait for nf_tables' answers; the kernel answers inside
// sendmsg(), so this is only a guard against a lost answer.
constexpr int kAnswerTimeoutSec = 30;
// A dump message is at most 32 KiB by default, more for big objects;
// messages of a batch we refuse above this.
constexpr size_t kRecvBuf = 256 * 1024;
constexpr size_t kMaxAttrs = 1 << 20;
// Attempts at a consistent read while another process changes the ruleset.
constexpr int kDumpAttempts = 5;

// The order a batch creates objects in: a chain before the rules jumping
// to it, objects and flowtables before the sets and rules naming them,
// sets and their elements before the rules looking them up.
const int kOrder[] = {NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN,   NFT_MSG_NEWOBJ, NFT_MSG_NEWFLOWTABLE,
                      NFT_MSG_NEWSET,   NFT_MSG_NEWSETELEM, NFT_MSG_NEWRULE};

int Rank(uint32_t type) {
  for (int i = 0; i < int(std::size(kOrder)); i++)
    if (uint32_t(kOrder[i]) == type) return i;
  return -1;
}

const char* KindName(uint32_t type) {
  switch (type) {
    case NFT_MSG_NEWTABLE:
      return "table";
    case NFT_MSG_NEWCHAIN:
      return "chain";
    case NFT_MSG_NEWOBJ:
      return "object";
    case NFT_MSG_NEWFLOWTABLE:
      return "flowtable";
    case NFT_MSG_NEWSET:
      return "set";
    case NFT_MSG_NEWSETELEM:
      return "elements of set";
    case NFT_MSG_NEWRULE:
      return "rule in chain";
  }
  return "?";
}

const char* FamilyName(uint32_t f) {
  switch (f) {
    case NFPROTO_INET:
      return "inet";
    case NFPROTO_IPV4:
      return "ip";
    case NFPROTO_ARP:
      return "arp";
    case NFPROTO_NETDEV:
      return "netdev";
    case NFPROTO_BRIDGE:
      return "bridge";
    case NFPROTO_IPV6:
      return "ip6";
  }
  return nullptr;
}

// Top-level attributes dropped from each kind of message.
const std::map<uint32_t, std::set<uint16_t>> kDrop = {
    {NFT_MSG_NEWTABLE, {NFTA_TABLE_USE, NFTA_TABLE_HANDLE, NFTA_TABLE_OWNER}},
    {NFT_MSG_NEWCHAIN, {NFTA_CHAIN_HANDLE, NFTA_CHAIN_USE, NFTA_CHAIN_ID}},
    {NFT_MSG_NEWOBJ, {NFTA_OBJ_HANDLE, NFTA_OBJ_USE}},
    {NFT_MSG_NEWFLOWTABLE, {NFTA_FLOWTABLE_HANDLE, NFTA_FLOWTABLE_USE}},
    {NFT_MSG_NEWSET, {NFTA_SET_HANDLE, NFTA_SET_ID, kSetAttrType, kSetAttrCount}},
    {NFT_MSG_NEWSETELEM, {}},
    {NFT_MSG_NEWRULE,
     {NFTA_RULE_HANDLE, NFTA_RULE_POSITION, NFTA_RULE_ID, NFTA_RULE_POSITION_ID,
      NFTA_RULE_CHAIN_ID}},
};

// The attribute naming the object (after the table, always attribute 1).
uint16_t NameAttr(uint32_t type) {
  switch (type) {
    case NFT_MSG_NEWTABLE:
      return NFTA_TABLE_NAME;
    case NFT_MSG_NEWCHAIN:
      return NFTA_CHAIN_NAME;
    case NFT_MSG_NEWOBJ:
      return NFTA_OBJ_NAME;
    case NFT_MSG_NEWFLOWTABLE:
      return NFTA_FLOWTABLE_NAME;
    case NFT_MSG_NEWSET:
      return NFTA_SET_NAME;
    case NFT_MSG_NEWSETELEM:
      return NFTA_SET_ELEM_LIST_SET;
    case NFT_MSG_NEWRULE:
      return NFTA_RULE_CHAIN;
  }
  return 0;
}

// Walks attributes; false if they do not exactly fill `a`.
template <typename Fn>
bool ForEach(const std::string& a, Fn fn) {
  size_t off = 0;
  while (off < a.size()) {
    if (a.size() - off < sizeof(nlattr)) return false;
    const auto* at = reinterpret_cast<const nlattr*>(a.data() + off);
    if (at->nla_len < sizeof(nlattr) || at->nla_len > a.size() - off) return false;
    fn(at);
    off += MNL_ALIGN(at->nla_len);
  }
  return off == a.size() || (off > a.size() && off - a.size() < MNL_ALIGNTO);
}

std::string Str(const nlattr* at) {
  size_t n = at->nla_len - sizeof(nlattr);
  const char* p = reinterpret_cast<const char*>(at) + sizeof(nlattr);
  return std::string(p, strnlen(p, n));
}

std::map<uint16_t, const nlattr*> Index(const std::string& a) {
  std::map<uint16_t, const nlattr*> m;
  ForEach(a, [&](const nlattr* at) { m[at->nla_type & NLA_TYPE_MASK] = at; });
  return m;
}

std::string Describe(uint32_t type, uint32_t family, const std::string& attrs) {
  auto m = Index(attrs);
  const char* fam = FamilyName(family);
  std::string s = KindName(type);
  s += " ";
  s += fam ? fam : std::to_string(family);
  if (m.count(1)) s += " " + Str(m[1]);
  if (type != NFT_MSG_NEWTABLE && m.count(NameAttr(type))) s += " " + Str(m[NameAttr(type)]);
  return s;
}

uint32_t U32(const nlattr* at) {
  uint32_t v = 0;
  if (at->nla_len >= sizeof(nlattr) + 4)
    memcpy(&v, reinterpret_cast<const char*>(at) + sizeof(nlattr), 4);
  return v;
}

struct MnlClose {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};
using MnlSock = std::unique_ptr<mnl_socket, MnlClose>;

Result<MnlSock> Open() {
  MnlSock nl(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!nl) return Error::Errno("nf_tables netlink socket");
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return Error::Errno("binding the nf_tables netlink socket");
  int fd = mnl_socket_get_fd(nl.get());
  int one = 1;
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  int rcv = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  timeval tv = {kAnswerTimeoutSec, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
    return Error::Errno("SO_RCVTIMEO on the nf_tables socket");
  return nl;
}

std::string ExtAck(const nlmsghdr* h, const nlmsgerr* e) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  size_t off = sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
  if (MNL_NLMSG_HDRLEN + off > h->nlmsg_len) return "";
  std::string a(static_cast<const char*>(mnl_nlmsg_get_payload_offset(h, off)),
                h->nlmsg_len - MNL_NLMSG_HDRLEN - off);
  std::string msg;
  ForEach(a, [&](const nlattr* at) {
    if ((at->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) msg = Str(at);
  });
  return msg;
}

// Sends one request and calls `each` on every answer with its sequence
// number until the dump ends or the ack comes.
template <typename Each>
Status Request(mnl_socket* nl, uint32_t& seq, uint16_t type, uint16_t family, uint16_t flags,
               const std::string& attrs, const std::string& what, Each each) {
  std::vector<char> buf(MNL_ALIGN(sizeof(nlmsghdr)) + MNL_ALIGN(sizeof(nfgenmsg)) + attrs.size() +
                        64);
  uint32_t s = seq++;
  nlmsghdr* h = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags | NLM_F_ACK, s);
  memcpy(mnl_nlmsg_get_payload_tail(h), attrs.data(), attrs.size());
  h->nlmsg_len += MNL_ALIGN(attrs.size());
  if (mnl_socket_sendto(nl, h, h->nlmsg_len) < 0) return Error::Errno(what + ": sending");
  std::vector<char> rbuf(kRecvBuf);
  while (true) {
    ssize_t n = mnl_socket_recvfrom(nl, rbuf.data(), rbuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno(what + ": reading the answer");
    }
    int left = int(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left)) {
      if (m->nlmsg_seq != s) continue;  // stale
      if (m->nlmsg_type == NLMSG_DONE) return Ok();
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
        if (e->error == 0) return Ok();
        std::string ext = ExtAck(m, e);
        return Error::Errno(what + (ext.empty() ? "" : " (" + ext + ")"), -e->error);
      }
      TRY(each(m));
    }
  }
}

Result<uint32_t> Generation(mnl_socket* nl, uint32_t& seq) {
  uint32_t gen = 0;
  bool got = false;
  TRY(Request(nl, seq, NFT_MSG_GETGEN, NFPROTO_UNSPEC, 0, "", "reading the nftables generation",
              [&](const nlmsghdr* m) -> Status {
                std::string a(
                    static_cast<const char*>(mnl_nlmsg_get_payload_offset(m, sizeof(nfgenmsg))),
                    m->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(nfgenmsg)));
                auto idx = Index(a);
                if (idx.count(NFTA_GEN_ID)) {
                  gen = ntohl(U32(idx[NFTA_GEN_ID]));
                  got = true;
                }
                return Ok();
              }));
  if (!got) return Error("nftables generation: no answer", EPROTO);
  return gen;
}

struct Dumper {
  mnl_socket* nl;
  uint32_t seq;
  std::vector<pb::NftMsgEntry> out;
  std::set<std::string> skipped;  // "family table" of ckpt's tables

  // One dump of `get`, answers kept as `type` messages.
  Status Dump(uint16_t get, uint32_t type, uint16_t family, const std::string& attrs) {
    return Request(nl, seq, get, family, NLM_F_DUMP, attrs,
                   std::string("reading nftables ") + KindName(type) + "s",
                   [&](const nlmsghdr* m) { return Keep(m, type); });
  }

  Status Keep(const nlmsghdr* m, uint32_t type) {
    if (m->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg)))
      return Error("short nf_tables message", EPROTO);
    const auto* g = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(m));
    std::string in(static_cast<const char*>(mnl_nlmsg_get_payload_offset(m, sizeof(nfgenmsg))),
                   m->nlmsg_len - MNL_NLMSG_HDRLEN - MNL_ALIGN(sizeof(nfgenmsg)));
    auto idx = Index(in);
    std::string desc = Describe(type, g->nfgen_family, in);
    if (!idx.count(1)) return Error(desc + ": no table name", EPROTO);
    std::string table = Str(idx[1]);
    if (table.rfind("ckpt-", 0) == 0) {
      skipped.insert(std::to_string(g->nfgen_family) + " " + table);
      return Ok();
    }
    if (type == NFT_MSG_NEWCHAIN && idx.count(NFTA_CHAIN_FLAGS) &&
        (ntohl(U32(idx[NFTA_CHAIN_FLAGS])) & NFT_CHAIN_BINDING))
      return Error(desc + " is bound to a rule (an anonymous 'jump { ... }' chain): not supported",
                   ENOTSUP);
    if (type == NFT_MSG_NEWSETELEM && (!idx.count(NFTA_SET_ELEM_LIST_ELEMENTS) ||
                                       idx[NFTA_SET_ELEM_LIST_ELEMENTS]->nla_len <= sizeof(nlattr)))
      return Ok();  // an empty set
    const std::set<uint16_t>& drop = kDrop.at(type);
    std::string attrs;
    ForEach(in, [&](const nlattr* at) {
      uint16_t t = at->nla_type & NLA_TYPE_MASK;
      if (drop.count(t)) return;
      size_t at_off = attrs.size();
      attrs.append(reinterpret_cast<const char*>(at), at->nla_len);
      attrs.resize(MNL_ALIGN(attrs.size()), '\0');
      if (type == NFT_MSG_NEWTABLE && t == NFTA_TABLE_FLAGS && at->nla_len >= sizeof(nlattr) + 4) {
        uint32_t f = ntohl(U32(at));
        if (f & (kTableFlagOwner | kTableFlagPersist))
          LOG_WARN("netns: nftables " + desc +
                   ": owned by a process's netlink socket or persistent; restored as a plain "
                   "table");
        f = htonl(f & ~(kTableFlagOwner | kTableFlagPersist));
        memcpy(attrs.data() + at_off + sizeof(nlattr), &f, 4);
      }
    });
    pb::NftMsgEntry e;
    e.set_type(type);
    e.set_family(g->nfgen_family);
    e.set_attrs(attrs);
    e.set_desc(desc);
    out.push_back(std::move(e));
    return Ok();
  }

  Status All() {
    TRY(Dump(NFT_MSG_GETTABLE, NFT_MSG_NEWTABLE, NFPROTO_UNSPEC, ""));
    TRY(Dump(NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, NFPROTO_UNSPEC, ""));
    TRY(Dump(NFT_MSG_GETOBJ, NFT_MSG_NEWOBJ, NFPROTO_UNSPEC, ""));
    TRY(Dump(NFT_MSG_GETFLOWTABLE, NFT_MSG_NEWFLOWTABLE, NFPROTO_UNSPEC, ""));
    TRY(Dump(NFT_MSG_GETSET, NFT_MSG_NEWSET, NFPROTO_UNSPEC, ""));
    std::vector<pb::NftMsgEntry> sets;
    for (const auto& e : out)
      if (e.type() == NFT_MSG_NEWSET) sets.push_back(e);
    for (const auto& s : sets) {
      auto idx = Index(s.attrs());
      if (!idx.count(NFTA_SET_TABLE) || !idx.count(NFTA_SET_NAME))
        return Error(s.desc() + ": no name", EPROTO);
      std::vector<char> buf(1024);
      auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
      h->nlmsg_len = MNL_NLMSG_HDRLEN;
      mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_TABLE, Str(idx[NFTA_SET_TABLE]).c_str());
      mnl_attr_put_strz(h, NFTA_SET_ELEM_LIST_SET, Str(idx[NFTA_SET_NAME]).c_str());
      std::string attrs(buf.data() + MNL_NLMSG_HDRLEN, h->nlmsg_len - MNL_NLMSG_HDRLEN);
      TRY(Dump(NFT_MSG_GETSETELEM, NFT_MSG_NEWSETELEM, uint16_t(s.family()), attrs));
    }
    TRY(Dump(NFT_MSG_GETRULE, NFT_MSG_NEWRULE, NFPROTO_UNSPEC, ""));
    return Ok();
  }
};

}  // namespace

Result<std::vector<pb::NftMsgEntry>> DumpNftRuleset() {
  TRY_ASSIGN(MnlSock nl, Open());
  uint32_t seq = 1;
  for (int attempt = 0; attempt < kDumpAttempts; attempt++) {
    TRY_ASSIGN(uint32_t before, Generation(nl.get(), seq));
    Dumper d{nl.get(), seq, {}, {}};
    TRY(d.All());
    seq = d.seq;
    TRY_ASSIGN(uint32_t after, Generation(nl.get(), seq));
    if (before != after) {
      LOG_INFO("netns: the nftables ruleset changed while read; reading it again");
      continue;
    }
    for (const auto& t : d.skipped) LOG_DBG("netns: skipped ckpt's nftables table " + t);
    return std::move(d.out);
  }
  return Error("the nftables ruleset kept changing while read (" + std::to_string(kDumpAttempts) +
                   " attempts)",
               EAGAIN);
}

Status CheckNftRuleset(const std::vector<pb::NftMsgEntry>& msgs) {
  int last = 0;
  for (size_t i = 0; i < msgs.size(); i++) {
    const auto& e = msgs[i];
    std::string what = "nftables entry " + std::to_string(i) + " (" + e.desc() + ")";
    int r = Rank(e.type());
    if (r < 0) return Error(what + ": unknown message type " + std::to_string(e.type()), EINVAL);
    if (r < last) return Error(what + ": out of order", EINVAL);
    last = r;
    if (!FamilyName(e.family()))
      return Error(what + ": unknown family " + std::to_string(e.family()), EINVAL);
    if (e.attrs().size() > kMaxAttrs) return Error(what + ": too big", EINVAL);
    if (!ForEach(e.attrs(), [](const nlattr*) {}))
      return Error(what + ": malformed attributes", EINVAL);
    if (!Index(e.attrs()).count(1)) return Error(what + ": no table", EINVAL);
  }
  return Ok();
}

Status RestoreNftRuleset(const std::vector<pb::NftMsgEntry>& msgs) {
  if (msgs.empty()) return Ok();
  TRY_ASSIGN(MnlSock nl, Open());
  int fd = mnl_socket_get_fd(nl.get());
  uint32_t seq = 1;
  std::vector<char> batch;
  std::map<uint32_t, std::string> what;
  auto add = [&](size_t max, auto build) {
    size_t at = batch.size();
    batch.resize(at + max);
    nlmsghdr* h = build(batch.data() + at, seq);
    batch.resize(at + MNL_ALIGN(h->nlmsg_len));
    return seq++;
  };
  what[add(64, [](char* b, uint32_t s) { return nftnl_batch_begin(b, s); })] = "starting the batch";
  uint32_t set_id = 0;
  for (const auto& e : msgs) {
    uint16_t flags = NLM_F_CREATE | (e.type() == NFT_MSG_NEWRULE ? NLM_F_APPEND : 0);
    uint32_t s =
        add(MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg)) + MNL_ALIGN(e.attrs().size()) + 16,
            [&](char* b, uint32_t sq) {
              nlmsghdr* h =
                  nftnl_nlmsg_build_hdr(b, uint16_t(e.type()), uint16_t(e.family()), flags, sq);
              memcpy(mnl_nlmsg_get_payload_tail(h), e.attrs().data(), e.attrs().size());
              h->nlmsg_len += MNL_ALIGN(e.attrs().size());
              // Linux 6.18 refuses (EINVAL) a new set without
              // an id for the batch, though dumps carry none.
              if (e.type() == NFT_MSG_NEWSET) mnl_attr_put_u32(h, NFTA_SET_ID, htonl(++set_id));
              return h;
            });
    what[s] = e.desc();
  }
  what[add(64, [](char* b, uint32_t s) { return nftnl_batch_end(b, s); })] = "ending the batch";
  int want = int(batch.size() + 65536);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
  // No acks for the batch's messages (thousands of rules would overflow the
  // receive buffer): the kernel answers only what it refuses. A request
  // after it, answered after the batch was handled, tells when to stop.
  if (mnl_socket_sendto(nl.get(), batch.data(), batch.size()) < 0)
    return Error::Errno("sending the nftables batch (" + std::to_string(batch.size()) + " bytes)");
  std::vector<char> req(256);
  uint32_t g = seq++;
  nlmsghdr* gh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETGEN, NFPROTO_UNSPEC, NLM_F_ACK, g);
  if (mnl_socket_sendto(nl.get(), gh, gh->nlmsg_len) < 0)
    return Error::Errno("asking nf_tables for its generation after the batch");
  Status refused;
  std::vector<char> rbuf(kRecvBuf);
  while (true) {
    ssize_t n = mnl_socket_recvfrom(nl.get(), rbuf.data(), rbuf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("reading nf_tables' answer to the batch");
    }
    int left = int(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(m, left);
         m = mnl_nlmsg_next(m, &left)) {
      if (m->nlmsg_type != NLMSG_ERROR) continue;  // the generation itself
      const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(m));
      if (m->nlmsg_seq == g) {
        if (!refused.ok()) return refused;
        if (e->error) return Error::Errno("nf_tables generation after the batch", -e->error);
        return Ok();
      }
      auto it = what.find(m->nlmsg_seq);
      if (e->error == 0 || it == what.end() || !refused.ok()) continue;
      std::string ext = ExtAck(m, e);
      refused =
          Error::Errno("nftables " + it->second + (ext.empty() ? "" : " (" + ext + ")"), -e->error);
    }
  }
}

}  // namespace ckpt::ns
