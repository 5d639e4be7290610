// The network lock as nf_tables netlink batches. See netlock.h for the
// table's layout and lifetime; this file says how it is sent.
#include "criu/net/netlock.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "base/io.h"
#include "base/log.h"
#include "criu/net/inet_diag.h"  // IsV4Mapped

namespace ckpt::net {
namespace {

// Set elements per NEWSETELEM message: the element list is one netlink
// attribute, whose length field is 16 bits. 512 IPv6 keys (~52 bytes each)
// stay well below 64 KiB.
constexpr size_t kElemsPerMessage = 512;

// How long to wait for nf_tables' answers. The kernel handles a batch
// inside sendmsg(), so the answers are normally queued when it returns.
constexpr int kAnswerTimeoutSec = 10;

// Base chain priority: NF_IP_PRI_RAW, before conntrack (-200) and every
// usual filter chain (0), so a dropped packet changes no other state.
constexpr int kChainPriority = -300;

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using TablePtr = std::unique_ptr<nftnl_table, Deleter<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Deleter<nftnl_chain_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Deleter<nftnl_set_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Deleter<nftnl_rule_free>>;

// One address family's part of the lock: its set and where its rule reads
// the addresses. A key is saddr . sport . daddr . dport, each field padded
// to a 4-byte register as nf_tables lays out concatenations.
struct FamilySpec {
  uint8_t nfproto;
  const char* set;
  uint32_t set_id;  // names the set inside the batch that creates it
  uint32_t alen;
  uint32_t saddr_off, daddr_off;  // in the network header
  uint32_t key_type;              // informational, for `nft list` only
};
// nft's datatype numbers (ipv4_addr 7, ipv6_addr 8, inet_service 13),
// concatenated 6 bits per field, first field highest; the kernel ignores them.
constexpr uint32_t Concat(uint32_t addr) { return (((addr << 6 | 13) << 6 | addr) << 6) | 13; }
constexpr FamilySpec kV4 = {NFPROTO_IPV4, "conns4", 1, 4, 12, 16, Concat(7)};
constexpr FamilySpec kV6 = {NFPROTO_IPV6, "conns6", 2, 16, 8, 24, Concat(8)};
constexpr uint32_t KeyLen(const FamilySpec& f) { return 2 * (f.alen + 4); }

using Key = std::vector<uint8_t>;
struct Keys {
  std::set<Key> v4, v6;  // both directions of every connection, no duplicates
};

Key MakeKey(uint32_t alen, const uint8_t* saddr, uint16_t sport, const uint8_t* daddr,
            uint16_t dport) {
  Key k(2 * (alen + 4), 0);
  memcpy(&k[0], saddr, alen);
  k[alen] = uint8_t(sport >> 8);  // ports as on the wire
  k[alen + 1] = uint8_t(sport);
  memcpy(&k[alen + 4], daddr, alen);
  k[2 * alen + 4] = uint8_t(dport >> 8);
  k[2 * alen + 5] = uint8_t(dport);
  return k;
}

Result<Keys> BuildKeys(const std::vector<LockedConn>& conns) {
  Keys keys;
  for (const LockedConn& c : conns) {
    if (c.family != AF_INET && c.family != AF_INET6)
      return Error("connection of address family " + std::to_string(c.family) +
                       " (only AF_INET and AF_INET6 can be locked)",
                   EINVAL);
    const FamilySpec& f = c.family == AF_INET ? kV4 : kV6;
    std::set<Key>& out = c.family == AF_INET ? keys.v4 : keys.v6;
    const uint8_t* l = c.local_addr.data();
    const uint8_t* r = c.remote_addr.data();
    out.insert(MakeKey(f.alen, l, c.local_port, r, c.remote_port));
    out.insert(MakeKey(f.alen, r, c.remote_port, l, c.local_port));
  }
  return keys;
}

bool ValidTag(const std::string& tag) {
  if (tag.empty() || tag.size() > 64) return false;
  for (char ch : tag)
    if (!isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.')
      return false;
  return true;
}

// Field 22 of /proc/PID/stat, in clock ticks since boot: with the pid it
// names one process for good (pids are reused, start times with them not).
Result<uint64_t> StartTime(pid_t pid) {
  TRY_ASSIGN(std::string stat, io::ReadFile("/proc/" + std::to_string(pid) + "/stat"));
  size_t p = stat.rfind(')');  // comm may hold spaces and parentheses
  if (p == std::string::npos) return Error("/proc/" + std::to_string(pid) + "/stat: bad format");
  const char* s = stat.c_str() + p + 1;
  for (int field = 3; field < 22; field++) {  // skip fields 3..21
    while (*s == ' ') s++;
    while (*s && *s != ' ') s++;
  }
  char* end = nullptr;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s) return Error("/proc/" + std::to_string(pid) + "/stat: no start time");
  return uint64_t(v);
}

// ---- The netlink side -------------------------------------------------

Result<UniqueFd> OpenNft() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) {
    if (errno == EPROTONOSUPPORT)
      return Error::Errno("nf_tables netlink socket (kernel without CONFIG_NETFILTER_NETLINK?)");
    return Error::Errno("nf_tables netlink socket");
  }
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;  // nl_pid 0: the kernel picks our port id
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    return Error::Errno("binding the nf_tables netlink socket");
  int one = 1;
  // Error answers without a copy of the (possibly large) request, but with
  // the kernel's extended message when it has one. Both optional.
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  timeval tv = {kAnswerTimeoutSec, 0};
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
    return Error::Errno("SO_RCVTIMEO on the nf_tables socket");
  return fd;
}

// One nf_tables transaction: messages between BATCH_BEGIN and BATCH_END,
// which the kernel applies all or nothing. Every message but the two
// delimiters asks for an answer.
class Batch {
 public:
  explicit Batch(uint32_t& seq) : seq_(seq) {
    Add(64, "starting the nf_tables batch", false,
        [](char* buf, uint32_t s) { return nftnl_batch_begin(buf, s); });
  }

  // Builds one message of at most `max` bytes with `build(buf, seq)`;
  // `what` names it in errors. Returns its sequence number.
  template <typename Build>
  uint32_t Add(size_t max, std::string what, Build build) {
    return Add(max, std::move(what), true, build);
  }

  void End() {
    Add(64, "ending the nf_tables batch", false,
        [](char* buf, uint32_t s) { return nftnl_batch_end(buf, s); });
  }

  const std::vector<char>& bytes() const { return buf_; }
  // seq -> message, for errors (the kernel may refuse a delimiter too, e.g.
  // EPERM without CAP_NET_ADMIN).
  const std::map<uint32_t, std::string>& what() const { return what_; }
  // The messages that are answered on success.
  const std::set<uint32_t>& acked() const { return acked_; }

 private:
  template <typename Build>
  uint32_t Add(size_t max, std::string what, bool ack, Build build) {
    size_t at = buf_.size();
    buf_.resize(at + max);
    uint32_t seq = seq_++;
    nlmsghdr* h = build(buf_.data() + at, seq);
    if (h->nlmsg_len > max) abort();  // an estimate below is wrong: memory is already corrupt
    buf_.resize(at + NLMSG_ALIGN(h->nlmsg_len));
    what_[seq] = std::move(what);
    if (ack) acked_.insert(seq);
    return seq;
  }

  uint32_t& seq_;
  std::vector<char> buf_;
  std::map<uint32_t, std::string> what_;
  std::set<uint32_t> acked_;
};

// The kernel's answer to one failed message: errno and, with
// NETLINK_EXT_ACK, its explanation.
std::string ExtAckMessage(const nlmsghdr* h, const nlmsgerr* e) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  size_t off = sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
  const char* p = static_cast<const char*>(mnl_nlmsg_get_payload_offset(h, off));
  const char* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(h));
  for (auto* a = reinterpret_cast<const nlattr*>(p); mnl_attr_ok(a, int(tail - p));
       a = mnl_attr_next(a), p = reinterpret_cast<const char*>(a)) {
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG) return mnl_attr_get_str(a);
  }
  return "";
}

// Sends the batch and waits for every answer. On failure `failed_seq` (if
// given) is the sequence number of the first message the kernel refused.
Status Commit(int fd, Batch& b, uint32_t* failed_seq = nullptr) {
  b.End();
  const std::vector<char>& bytes = b.bytes();
  int sndbuf = 0;
  socklen_t len = sizeof(sndbuf);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 &&
      size_t(sndbuf) < bytes.size() + 4096) {
    // netlink refuses a message bigger than the send buffer (EMSGSIZE).
    int want = int(bytes.size() + 65536);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
  }
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0)
    return Error::Errno("sending the nf_tables batch (" + std::to_string(bytes.size()) + " bytes)");
  std::set<uint32_t> pending = b.acked();
  std::vector<char> buf(65536);
  while (!pending.empty()) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return Error("no answer from nf_tables within " + std::to_string(kAnswerTimeoutSec) +
                         " s (" + b.what().at(*pending.begin()) + ")",
                     ETIMEDOUT);
      return Error::Errno("reading nf_tables' answer");
    }
    int left = int(n);
    for (const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(h, left);
         h = mnl_nlmsg_next(h, &left)) {
      auto it = b.what().find(h->nlmsg_seq);
      if (it == b.what().end() || h->nlmsg_type != NLMSG_ERROR) continue;  // stale or not ours
      const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
      if (e->error != 0) {
        if (failed_seq) *failed_seq = h->nlmsg_seq;
        // Later answers of this batch stay queued; the next commit on this
        // socket skips them by sequence number.
        std::string ext = ExtAckMessage(h, e);
        if (it == b.what().begin() && -e->error == EPERM)
          ext = "nf_tables needs CAP_NET_ADMIN in this network namespace";
        return Error::Errno(it->second + (ext.empty() ? "" : " (" + ext + ")"), -e->error);
      }
      pending.erase(h->nlmsg_seq);
    }
  }
  return Ok();
}

TablePtr NewTable(const std::string& name, uint32_t flags) {
  TablePtr t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, flags);
  return t;
}

uint32_t AddDelTable(Batch& b, const std::string& name) {
  return b.Add(1024, "deleting the table", [&](char* buf, uint32_t seq) {
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
    nlmsghdr* h = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, seq);
    nftnl_table_nlmsg_build_payload(h, t.get());
    return h;
  });
}

void AddChain(Batch& b, const std::string& table, const char* name, uint32_t hook) {
  b.Add(1024, std::string("creating chain ") + name, [&](char* buf, uint32_t seq) {
    ChainPtr c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, kChainPriority);
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nlmsghdr* h = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_NEWCHAIN, NFPROTO_INET,
                                              NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, seq);
    nftnl_chain_nlmsg_build_payload(h, c.get());
    return h;
  });
}

SetPtr SetRef(const std::string& table, const FamilySpec& f) {
  SetPtr s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, f.set);
  nftnl_set_set_u32(s.get(), NFTNL_SET_ID, f.set_id);
  return s;
}

void AddSet(Batch& b, const std::string& table, const FamilySpec& f, const std::set<Key>& keys) {
  b.Add(1024, std::string("creating set ") + f.set, [&](char* buf, uint32_t seq) {
    SetPtr s = SetRef(table, f);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, KeyLen(f));
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, f.key_type);
    nlmsghdr* h = nftnl_set_nlmsg_build_hdr(buf, NFT_MSG_NEWSET, NFPROTO_INET,
                                            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, seq);
    nftnl_set_nlmsg_build_payload(h, s.get());
    return h;
  });
  auto it = keys.begin();
  while (it != keys.end()) {
    size_t n = std::min<size_t>(kElemsPerMessage, size_t(std::distance(it, keys.end())));
    b.Add(n * (KeyLen(f) + 32) + 1024, std::string("adding connections to set ") + f.set,
          [&](char* buf, uint32_t seq) {
            SetPtr s = SetRef(table, f);
            for (size_t i = 0; i < n; i++, ++it) {
              nftnl_set_elem* e = nftnl_set_elem_alloc();
              nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, it->data(), uint32_t(it->size()));
              nftnl_set_elem_add(s.get(), e);  // the set owns it now
            }
            nlmsghdr* h = nftnl_set_elem_nlmsg_build_hdr(buf, NFT_MSG_NEWSETELEM, NFPROTO_INET,
                                                         NLM_F_CREATE | NLM_F_ACK, seq);
            nftnl_set_elems_nlmsg_build_payload(h, s.get());
            return h;
          });
  }
}

// Expressions; nftnl_rule_add_expr takes ownership.
void Meta(nftnl_rule* r, uint32_t key, uint32_t dreg) {
  nftnl_expr* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, dreg);
  nftnl_rule_add_expr(r, e);
}
void Cmp(nftnl_rule* r, uint32_t sreg, uint32_t op, const void* data, uint32_t len) {
  nftnl_expr* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  nftnl_rule_add_expr(r, e);
}
void Payload(nftnl_rule* r, uint32_t base, uint32_t off, uint32_t len, uint32_t dreg) {
  nftnl_expr* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  nftnl_rule_add_expr(r, e);
}

// meta nfproto F meta l4proto tcp meta mark != bypass
// <saddr . sport . daddr . dport> @set drop
void AddRule(Batch& b, const std::string& table, const char* chain, const FamilySpec& f) {
  b.Add(4096, std::string("adding the ") + f.set + " rule to chain " + chain,
        [&](char* buf, uint32_t seq) {
          RulePtr r(nftnl_rule_alloc());
          nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
          nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
          nftnl_rule* rp = r.get();
          const uint32_t reg = NFT_REG32_00;
          Meta(rp, NFT_META_NFPROTO, reg);
          Cmp(rp, reg, NFT_CMP_EQ, &f.nfproto, 1);
          const uint8_t tcp = IPPROTO_TCP;
          Meta(rp, NFT_META_L4PROTO, reg);
          Cmp(rp, reg, NFT_CMP_EQ, &tcp, 1);
          const uint32_t mark = kLockBypassMark;  // meta mark loads it in host order
          Meta(rp, NFT_META_MARK, reg);
          Cmp(rp, reg, NFT_CMP_NEQ, &mark, sizeof(mark));
          // The key, one field per run of 4-byte registers (a 2-byte port
          // load zeroes the rest of its register, matching the key's padding).
          const uint32_t words = f.alen / 4;
          Payload(rp, NFT_PAYLOAD_NETWORK_HEADER, f.saddr_off, f.alen, reg);
          Payload(rp, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2, reg + words);
          Payload(rp, NFT_PAYLOAD_NETWORK_HEADER, f.daddr_off, f.alen, reg + words + 1);
          Payload(rp, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, reg + 2 * words + 1);
          nftnl_expr* lookup = nftnl_expr_alloc("lookup");
          nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SREG, reg);
          nftnl_expr_set_str(lookup, NFTNL_EXPR_LOOKUP_SET, f.set);
          nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SET_ID, f.set_id);
          nftnl_rule_add_expr(rp, lookup);
          nftnl_expr* drop = nftnl_expr_alloc("immediate");
          nftnl_expr_set_u32(drop, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
          nftnl_expr_set_u32(drop, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
          nftnl_rule_add_expr(rp, drop);
          nlmsghdr* h = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, NFPROTO_INET,
                                                   NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq);
          nftnl_rule_nlmsg_build_payload(h, rp);
          return h;
        });
}

// Adds the whole lock table to `b`; returns the seq of the table message.
uint32_t AddLockTable(Batch& b, const std::string& name, uint32_t table_flags, const Keys& keys) {
  uint32_t seq = b.Add(1024, "creating the table", [&](char* buf, uint32_t s) {
    TablePtr t = NewTable(name, table_flags);
    nlmsghdr* h = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_NEWTABLE, NFPROTO_INET,
                                              NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, s);
    nftnl_table_nlmsg_build_payload(h, t.get());
    return h;
  });
  AddChain(b, name, "input", NF_INET_LOCAL_IN);
  AddChain(b, name, "output", NF_INET_LOCAL_OUT);
  for (const auto& [f, set] : {std::pair{&kV4, &keys.v4}, std::pair{&kV6, &keys.v6}}) {
    if (set->empty()) continue;
    AddSet(b, name, *f, *set);
    AddRule(b, name, "input", *f);
    AddRule(b, name, "output", *f);
  }
  return seq;
}

struct TableInfo {
  std::string name;
  bool owned = false;
};

int OnTable(const nlmsghdr* h, void* data) {
  auto* out = static_cast<std::vector<TableInfo>*>(data);
  TablePtr t(nftnl_table_alloc());
  if (nftnl_table_nlmsg_parse(h, t.get()) < 0) return MNL_CB_ERROR;
  TableInfo info;
  info.name = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
  uint32_t flags = nftnl_table_is_set(t.get(), NFTNL_TABLE_FLAGS)
                       ? nftnl_table_get_u32(t.get(), NFTNL_TABLE_FLAGS)
                       : 0;
  info.owned = (flags & NFT_TABLE_F_OWNER) != 0;
  out->push_back(std::move(info));
  return MNL_CB_OK;
}

Result<std::vector<TableInfo>> ListTables() {
  TRY_ASSIGN(UniqueFd fd, OpenNft());
  sockaddr_nl self = {};
  socklen_t len = sizeof(self);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&self), &len) < 0)
    return Error::Errno("getsockname on the nf_tables socket");
  char req[256];
  const uint32_t seq = 1;
  nlmsghdr* h = nftnl_table_nlmsg_build_hdr(req, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_DUMP, seq);
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd.get(), h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) <
      0)
    return Error::Errno("listing nftables tables");
  std::vector<TableInfo> out;
  std::vector<char> buf(65536);
  for (;;) {
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::Errno("listing nftables tables");
    int r = mnl_cb_run(buf.data(), size_t(n), seq, self.nl_pid, OnTable, &out);
    if (r < 0) return Error::Errno("listing nftables tables");
    if (r == MNL_CB_STOP) return out;
  }
}

std::string RunTableName(const std::string& tag) {
  auto start = StartTime(getpid());
  // Without a start time (no /proc) the name still carries the pid; 0
  // never matches a live process, so a leftover is cleaned once pid is gone
  // or reused.
  return kRunTablePrefix + std::to_string(getpid()) + "-" +
         std::to_string(start.ok() ? *start : 0) + "-" + tag;
}

// Parses ckpt-run-<pid>-<start>-<tag>.
bool ParseRunName(const std::string& name, pid_t* pid, uint64_t* start) {
  if (name.rfind(kRunTablePrefix, 0) != 0) return false;
  const char* s = name.c_str() + strlen(kRunTablePrefix);
  char* end = nullptr;
  unsigned long p = strtoul(s, &end, 10);
  if (end == s || *end != '-' || p == 0) return false;
  s = end + 1;
  unsigned long long st = strtoull(s, &end, 10);
  if (end == s || *end != '-') return false;
  *pid = pid_t(p);
  *start = st;
  return true;
}

}  // namespace

// ---- NetLock ------------------------------------------------------------

Result<NetLock> internal::LockWithOwnership(const std::string& tag,
                                            const std::vector<LockedConn>& conns, bool owned) {
  if (!ValidTag(tag))
    return Error("network lock: bad tag '" + tag + "' (1..64 of [A-Za-z0-9_.-])", EINVAL);
  TRY_ASSIGN(Keys keys, BuildKeys(conns), "network lock");
  NetLock lock;
  if (keys.v4.empty() && keys.v6.empty()) return lock;
  lock.tag_ = tag;
  lock.table_ = RunTableName(tag);
  lock.conns_ = conns;
  const std::string ctx = "network lock: table inet " + lock.table_;
  TRY_ASSIGN(lock.sock_, OpenNft(), ctx);
  lock.seq_ = 1;
  lock.owned_ = owned;
  Batch b(lock.seq_);
  uint32_t table_seq = AddLockTable(b, lock.table_, owned ? NFT_TABLE_F_OWNER : 0, keys);
  uint32_t failed = 0;
  Status s = Commit(lock.sock_.get(), b, &failed);
  if (!s.ok() && owned && failed == table_seq &&
      (s.error().err() == EOPNOTSUPP || s.error().err() == EINVAL)) {
    // A kernel before 5.12 knows no NFT_TABLE_F_OWNER (newer ones say
    // EOPNOTSUPP for unknown flags, older ones EINVAL): lock without it; the
    // pid in the name lets CleanStaleLocks() find it if we die.
    LOG_INFO("nftables: table ownership unsupported (" + s.error().message() +
             "); the lock is removed by the next ckpt if this one dies");
    lock.owned_ = false;
    Batch retry(lock.seq_);
    table_seq = AddLockTable(retry, lock.table_, 0, keys);
    failed = 0;
    s = Commit(lock.sock_.get(), retry, &failed);
  }
  if (!s.ok()) {
    lock.sock_.reset();  // nothing was created: the batch is all or nothing
    if (failed == table_seq && s.error().err() == EPERM)
      return Error(ctx + ": " + s.error().message() +
                       " (a table of this name exists, owned by another process's socket)",
                   EPERM);
    return std::move(s.error().Context(ctx));
  }
  return lock;
}

Result<NetLock> NetLock::Lock(const std::string& tag, const std::vector<LockedConn>& conns) {
  return internal::LockWithOwnership(tag, conns, true);
}

NetLock& NetLock::operator=(NetLock&& o) noexcept {
  if (this != &o) {
    if (active()) {
      Status s = Unlock();
      if (!s.ok()) LOG_WARN(s.error().message());
    }
    tag_ = std::move(o.tag_);
    table_ = std::move(o.table_);
    conns_ = std::move(o.conns_);
    sock_ = std::move(o.sock_);
    seq_ = o.seq_;
    owned_ = o.owned_;
  }
  return *this;
}

NetLock::~NetLock() {
  if (!active()) return;
  Status s = Unlock();
  if (!s.ok())
    LOG_WARN(s.error().message() + (owned_ ? " (the kernel removes it with our socket)"
                                           : " (left behind; the next ckpt removes it)"));
}

Status NetLock::Unlock() {
  if (!active()) return Ok();
  Batch b(seq_);
  AddDelTable(b, table_);
  Status s = Commit(sock_.get(), b);
  if (!s.ok() && s.error().err() != ENOENT)
    return std::move(s.error().Context("network unlock: table inet " + table_));
  sock_.reset();
  table_.clear();
  conns_.clear();
  return Ok();
}

LockedConn ConnOnTheWire(int family, const uint8_t* local, const uint8_t* remote,
                         uint16_t local_port, uint16_t remote_port) {
  LockedConn c;
  c.family = family;
  c.local_port = local_port;
  c.remote_port = remote_port;
  if (family == AF_INET6 && IsV4Mapped(local) && IsV4Mapped(remote)) {
    c.family = AF_INET;
    memcpy(c.local_addr.data(), local + 12, 4);
    memcpy(c.remote_addr.data(), remote + 12, 4);
  } else {
    memcpy(c.local_addr.data(), local, family == AF_INET6 ? 16 : 4);
    memcpy(c.remote_addr.data(), remote, family == AF_INET6 ? 16 : 4);
  }
  return c;
}

std::string NetLock::KeptName() const {
  if (!active()) return "";
  return kKeptTablePrefix + std::to_string(getpid()) + "-" + tag_;
}

Result<std::string> NetLock::TryPersist() {
  if (!active()) return std::string();
  const std::string kept = KeptName();
  const std::string ctx = "network lock: keeping inet " + table_ + " as " + kept;
  TRY_ASSIGN(Keys keys, BuildKeys(conns_), ctx);
  // One transaction: the copy and its rules exist from the same instant
  // the owned table disappears.
  Batch b(seq_);
  AddLockTable(b, kept, 0, keys);
  AddDelTable(b, table_);
  TRY(Commit(sock_.get(), b), ctx);
  sock_.reset();
  table_.clear();
  conns_.clear();
  return kept;
}

std::string NetLock::Persist() {
  Result<std::string> r = TryPersist();
  if (r.ok()) return std::move(r).value();
  LOG_ERR(r.error().message());
  return std::string();
}

// ---- Free functions -------------------------------------------------------

Status RemoveLockTable(const std::string& name) {
  if (name.empty()) return Error("removing a network lock: no table name", EINVAL);
  const std::string ctx = "removing network lock table inet " + name;
  TRY_ASSIGN(UniqueFd fd, OpenNft(), ctx);
  uint32_t seq = 1;
  Batch b(seq);
  AddDelTable(b, name);
  Status s = Commit(fd.get(), b);
  if (!s.ok() && s.error().err() == ENOENT) return Ok();
  if (!s.ok() && s.error().err() == EPERM)
    return std::move(s.error().Context(ctx + " (owned by another live process's socket?)"));
  if (!s.ok()) return std::move(s.error().Context(ctx));
  return Ok();
}

Status CleanStaleLocks() {
  TRY_ASSIGN(std::vector<TableInfo> tables, ListTables(), "looking for stale network locks");
  for (const TableInfo& t : tables) {
    pid_t pid;
    uint64_t start;
    if (!ParseRunName(t.name, &pid, &start)) continue;
    if (t.owned) continue;  // goes with its socket
    auto now = StartTime(pid);
    if (now.ok() && *now == start) continue;  // that ckpt is still running
    Status s = RemoveLockTable(t.name);
    if (!s.ok()) {
      if (s.error().err() == EPERM) continue;  // became owned: not stale
      return s;
    }
    LOG_INFO("Removed the stale network lock " + t.name + " (ckpt pid " + std::to_string(pid) +
             " is gone)");
  }
  return Ok();
}

Result<std::vector<std::string>> ListInetTables() {
  TRY_ASSIGN(std::vector<TableInfo> tables, ListTables());
  std::vector<std::string> names;
  for (TableInfo& t : tables) names.push_back(std::move(t.name));
  return names;
}

bool NftablesUsable() {
  LockedConn v4;
  v4.family = AF_INET;
  v4.local_addr = {192, 0, 2, 1};  // TEST-NET-1 (RFC 5737)
  v4.remote_addr = {192, 0, 2, 2};
  v4.local_port = 9;
  v4.remote_port = 9;
  LockedConn v6 = v4;
  v6.family = AF_INET6;
  v6.local_addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};  // RFC 3849
  v6.remote_addr = v6.local_addr;
  v6.remote_addr[15] = 2;
  auto lock = NetLock::Lock("probe", {v4, v6});
  if (!lock.ok()) {
    LOG_DBG("nftables probe: " + lock.error().message());
    return false;
  }
  Status s = lock->Unlock();
  if (!s.ok()) LOG_DBG("nftables probe: " + s.error().message());
  return s.ok();
}

}  // namespace ckpt::net
