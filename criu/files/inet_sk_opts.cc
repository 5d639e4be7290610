// Socket options of inet sockets (see inet_sk.h): read at dump, set back
// at restore. Only options whose value differs from what a new socket of
// the same kind has are saved, so restore sets what the program set (and
// the kernel's auto-tuned buffer sizes of live connections, which the
// refilled queues need).
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>
#include <tuple>

#include "base/unique_fd.h"
#include "criu/files/inet_sk.h"
#include "criu/files/sk_common.h"

namespace ckpt::files {
namespace {

// Options not in the Debian 12 headers.
constexpr int kIpv6Transparent = 75, kIpv6Freebind = 78;
constexpr int kUdpliteSendCscov = 10, kUdpliteRecvCscov = 11;

enum Applies { kAll, kTcp, kDgram, kUdp, kUdplite, kRawV4, kRawV6 };
enum When { kAfterBind, kBeforeBind };

// One integer option: where it lives for IPv4 and IPv6 sockets (level -1:
// not for that family) and which field of pb::InetSkOpts holds it.
struct IntOpt {
  const char* field;
  Applies applies;
  int level4, opt4, level6, opt6;
  When when;
};

const IntOpt kIntOpts[] = {
    {"reuseaddr", kAll, SOL_SOCKET, SO_REUSEADDR, SOL_SOCKET, SO_REUSEADDR, kAfterBind},
    {"reuseport", kAll, SOL_SOCKET, SO_REUSEPORT, SOL_SOCKET, SO_REUSEPORT, kBeforeBind},
    {"keepalive", kTcp, SOL_SOCKET, SO_KEEPALIVE, SOL_SOCKET, SO_KEEPALIVE, kAfterBind},
    {"keepidle", kTcp, IPPROTO_TCP, TCP_KEEPIDLE, IPPROTO_TCP, TCP_KEEPIDLE, kAfterBind},
    {"keepintvl", kTcp, IPPROTO_TCP, TCP_KEEPINTVL, IPPROTO_TCP, TCP_KEEPINTVL, kAfterBind},
    {"keepcnt", kTcp, IPPROTO_TCP, TCP_KEEPCNT, IPPROTO_TCP, TCP_KEEPCNT, kAfterBind},
    {"nodelay", kTcp, IPPROTO_TCP, TCP_NODELAY, IPPROTO_TCP, TCP_NODELAY, kAfterBind},
    {"cork", kTcp, IPPROTO_TCP, TCP_CORK, IPPROTO_TCP, TCP_CORK, kAfterBind},
    {"user_timeout", kTcp, IPPROTO_TCP, TCP_USER_TIMEOUT, IPPROTO_TCP, TCP_USER_TIMEOUT,
     kAfterBind},
    {"oobinline", kTcp, SOL_SOCKET, SO_OOBINLINE, SOL_SOCKET, SO_OOBINLINE, kAfterBind},
    {"tos", kAll, IPPROTO_IP, IP_TOS, IPPROTO_IPV6, IPV6_TCLASS, kAfterBind},
    {"ttl", kAll, IPPROTO_IP, IP_TTL, IPPROTO_IPV6, IPV6_UNICAST_HOPS, kAfterBind},
    {"v6only", kAll, -1, 0, IPPROTO_IPV6, IPV6_V6ONLY, kBeforeBind},
    {"broadcast", kDgram, SOL_SOCKET, SO_BROADCAST, SOL_SOCKET, SO_BROADCAST, kAfterBind},
    {"priority", kAll, SOL_SOCKET, SO_PRIORITY, SOL_SOCKET, SO_PRIORITY, kAfterBind},
    {"mark", kAll, SOL_SOCKET, SO_MARK, SOL_SOCKET, SO_MARK, kAfterBind},
    {"freebind", kAll, IPPROTO_IP, IP_FREEBIND, IPPROTO_IPV6, kIpv6Freebind, kBeforeBind},
    {"transparent", kAll, IPPROTO_IP, IP_TRANSPARENT, IPPROTO_IPV6, kIpv6Transparent, kBeforeBind},
    {"recverr", kAll, IPPROTO_IP, IP_RECVERR, IPPROTO_IPV6, IPV6_RECVERR, kAfterBind},
    {"pktinfo", kDgram, IPPROTO_IP, IP_PKTINFO, IPPROTO_IPV6, IPV6_RECVPKTINFO, kAfterBind},
    {"peek_off", kAll, SOL_SOCKET, SO_PEEK_OFF, SOL_SOCKET, SO_PEEK_OFF, kAfterBind},
    {"mc_ttl", kDgram, IPPROTO_IP, IP_MULTICAST_TTL, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, kAfterBind},
    {"mc_loop", kDgram, IPPROTO_IP, IP_MULTICAST_LOOP, IPPROTO_IPV6, IPV6_MULTICAST_LOOP,
     kAfterBind},
    {"mc_if", kDgram, -1, 0, IPPROTO_IPV6, IPV6_MULTICAST_IF, kAfterBind},
    {"hdrincl", kRawV4, IPPROTO_IP, IP_HDRINCL, -1, 0, kAfterBind},
    {"ipv6_checksum", kRawV6, -1, 0, IPPROTO_IPV6, IPV6_CHECKSUM, kAfterBind},
    {"recvttl", kDgram, IPPROTO_IP, IP_RECVTTL, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, kAfterBind},
    {"recvtos", kDgram, IPPROTO_IP, IP_RECVTOS, IPPROTO_IPV6, IPV6_RECVTCLASS, kAfterBind},
    {"udp_cork", kUdp, IPPROTO_UDP, UDP_CORK, IPPROTO_UDP, UDP_CORK, kAfterBind},
    {"cscov_send", kUdplite, IPPROTO_UDPLITE, kUdpliteSendCscov, IPPROTO_UDPLITE, kUdpliteSendCscov,
     kAfterBind},
    {"cscov_recv", kUdplite, IPPROTO_UDPLITE, kUdpliteRecvCscov, IPPROTO_UDPLITE, kUdpliteRecvCscov,
     kAfterBind},
};

using google::protobuf::FieldDescriptor;

// The integer options (bool, int32, uint32 fields) as the int setsockopt takes.
int GetInt(const pb::InetSkOpts& o, const FieldDescriptor* f) {
  const auto* r = o.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(o, f);
    case FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(o, f);
    default:
      return int(r->GetUInt32(o, f));
  }
}

void SetFromInt(pb::InetSkOpts* o, const FieldDescriptor* f, int v) {
  const auto* r = o->GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_BOOL:
      r->SetBool(o, f, v != 0);
      break;
    case FieldDescriptor::CPPTYPE_INT32:
      r->SetInt32(o, f, v);
      break;
    default:
      r->SetUInt32(o, f, uint32_t(v));
      break;
  }
}

// Whether field f holds the same value in a and b (both have it).
bool SameValue(const pb::InetSkOpts& a, const pb::InetSkOpts& b, const FieldDescriptor* f) {
  const auto* r = a.GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(a, f) == r->GetUInt64(b, f);
    case FieldDescriptor::CPPTYPE_STRING:
      return r->GetString(a, f) == r->GetString(b, f);
    default:
      return GetInt(a, f) == GetInt(b, f);
  }
}

bool AppliesTo(Applies a, int family, int type, int protocol) {
  switch (a) {
    case kAll:
      return true;
    case kTcp:
      return protocol == IPPROTO_TCP;
    case kDgram:
      return type == SOCK_DGRAM || type == SOCK_RAW;
    case kUdp:
      return protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE;
    case kUdplite:
      return protocol == IPPROTO_UDPLITE;
    case kRawV4:
      return type == SOCK_RAW && family == AF_INET;
    case kRawV6:
      return type == SOCK_RAW && family == AF_INET6 && protocol != IPPROTO_ICMPV6;
  }
  return false;
}

// Reads every applicable option of fd into o (reflection: the table names
// the field).
void ReadAll(int fd, int family, int type, int protocol, pb::InetSkOpts* o) {
  const auto* d = o->GetDescriptor();
  for (const IntOpt& io : kIntOpts) {
    if (!AppliesTo(io.applies, family, type, protocol)) continue;
    int level = family == AF_INET6 ? io.level6 : io.level4;
    int opt = family == AF_INET6 ? io.opt6 : io.opt4;
    if (level < 0) continue;
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, level, opt, &v, &len) < 0) continue;  // not on this socket
    SetFromInt(o, d->FindFieldByName(io.field), v);
  }
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0) o->set_sndbuf(uint32_t(v));
  len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0) o->set_rcvbuf(uint32_t(v));
  linger l = {};
  len = sizeof(l);
  if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) == 0) {
    o->set_linger_on(l.l_onoff != 0);
    o->set_linger_secs(uint32_t(l.l_linger));
  }
  timeval tv = {};
  len = sizeof(tv);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == 0)
    o->set_rcvtimeo_us(uint64_t(tv.tv_sec) * 1000000 + uint64_t(tv.tv_usec));
  len = sizeof(tv);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0)
    o->set_sndtimeo_us(uint64_t(tv.tv_sec) * 1000000 + uint64_t(tv.tv_usec));
  char name[IFNAMSIZ + 1] = {};
  len = IFNAMSIZ;
  if (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &len) == 0)
    o->set_bound_dev(std::string(name, strnlen(name, len)));
  if (protocol == IPPROTO_TCP) {
    char cc[16] = {};
    len = sizeof(cc);
    if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &len) == 0)
      o->set_congestion(std::string(cc, strnlen(cc, len)));
  }
  if (type == SOCK_RAW && (protocol == IPPROTO_ICMP || protocol == IPPROTO_ICMPV6)) {
    // ICMP_FILTER (SOL_RAW) is a 32-bit mask; ICMP6_FILTER eight of them.
    char f[32] = {};
    len = family == AF_INET ? 4 : 32;
    int level = family == AF_INET ? SOL_RAW : IPPROTO_ICMPV6;
    if (getsockopt(fd, level, 1 /* ICMP_FILTER, ICMP6_FILTER */, f, &len) == 0)
      o->set_icmp_filter(std::string(f, len));
  }
  if (family == AF_INET && (type == SOCK_DGRAM || type == SOCK_RAW)) {
    in_addr a = {};
    len = sizeof(a);
    if (getsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, &len) == 0)
      o->set_mc_if_addr(std::string(reinterpret_cast<char*>(&a), sizeof(a)));
  }
}

Status Set(int fd, int level, int opt, const void* v, socklen_t len, const std::string& name) {
  if (setsockopt(fd, level, opt, v, len) < 0) return Error::Errno("setting " + name);
  return Ok();
}

Status SetInts(int fd, const pb::InetSkEntry& e, When when) {
  const pb::InetSkOpts& o = e.opts();
  const auto* d = o.GetDescriptor();
  const auto* r = o.GetReflection();
  int family = int(e.family());
  for (const IntOpt& io : kIntOpts) {
    if (io.when != when) continue;
    const auto* f = d->FindFieldByName(io.field);
    if (!r->HasField(o, f)) continue;
    int level = family == AF_INET6 ? io.level6 : io.level4;
    int opt = family == AF_INET6 ? io.opt6 : io.opt4;
    if (level < 0) continue;
    int v = GetInt(o, f);
    TRY(Set(fd, level, opt, &v, sizeof(v), io.field));
  }
  return Ok();
}

}  // namespace

const pb::InetSkOpts* InetOptDefaults::For(int family, int type, int protocol) {
  auto key = std::make_tuple(family, type, protocol);
  auto it = cache_.find(key);
  if (it == cache_.end()) {
    std::optional<pb::InetSkOpts> opts;
    UniqueFd n(socket(family, type | SOCK_CLOEXEC, protocol));
    if (n) ReadAll(n.get(), family, type, protocol, &opts.emplace());
    it = cache_.emplace(key, std::move(opts)).first;
  }
  return it->second ? &*it->second : nullptr;
}

Status ReadInetOpts(int fd, int family, int type, int protocol, InetOptDefaults& defaults,
                    pb::InetSkOpts* o) {
  pb::InetSkOpts now;
  ReadAll(fd, family, type, protocol, &now);
  // What a new socket of the same kind has needs no setting back.
  const pb::InetSkOpts* fresh_p = defaults.For(family, type, protocol);
  const pb::InetSkOpts& fresh = fresh_p ? *fresh_p : pb::InetSkOpts::default_instance();
  const auto* d = now.GetDescriptor();
  const auto* r = now.GetReflection();
  for (int i = 0; i < d->field_count(); i++) {
    const auto* f = d->field(i);
    if (!r->HasField(now, f)) continue;
    bool same = fresh_p && r->HasField(fresh, f) && SameValue(now, fresh, f);
    if (!same) r->SwapFields(&now, o, {f});
  }
  // Whether an IPv6 socket takes IPv4 too decides how restore binds it.
  // (SwapFields moved the value into o if it differed from a new socket's;
  // raw sockets cannot change it.)
  if (family == AF_INET6 && type != SOCK_RAW && !o->has_v6only()) o->set_v6only(now.v6only());
  // The linger pair goes together.
  if (o->has_linger_on() || o->has_linger_secs()) {
    o->set_linger_on(now.linger_on() || o->linger_on());
    o->set_linger_secs(o->has_linger_secs() ? o->linger_secs() : now.linger_secs());
  }
  return Ok();
}

Status SetInetOptsBeforeBind(int fd, const pb::InetSkEntry& e) {
  const pb::InetSkOpts& o = e.opts();
  if (o.has_bound_dev() && !o.bound_dev().empty())
    TRY(Set(fd, SOL_SOCKET, SO_BINDTODEVICE, o.bound_dev().data(), socklen_t(o.bound_dev().size()),
            "SO_BINDTODEVICE " + o.bound_dev()));
  return SetInts(fd, e, kBeforeBind);
}

Status SetInetOpts(int fd, const pb::InetSkEntry& e) {
  const pb::InetSkOpts& o = e.opts();
  // SO_*BUFFORCE doubles the value, as SO_*BUF does; getsockopt read the
  // doubled one. FORCE passes the rmem_max/wmem_max caps (we are root).
  if (o.has_sndbuf()) {
    TRY(SetBufForce(fd, SO_SNDBUFFORCE, int(o.sndbuf() / 2), "SO_SNDBUFFORCE"));
  }
  if (o.has_rcvbuf()) {
    TRY(SetBufForce(fd, SO_RCVBUFFORCE, int(o.rcvbuf() / 2), "SO_RCVBUFFORCE"));
  }
  TRY(SetInts(fd, e, kAfterBind));
  if (o.has_linger_on()) {
    linger l = {o.linger_on() ? 1 : 0, int(o.linger_secs())};
    TRY(Set(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l), "SO_LINGER"));
  }
  for (auto [has, us, opt, name] :
       {std::tuple{o.has_rcvtimeo_us(), o.rcvtimeo_us(), SO_RCVTIMEO, "SO_RCVTIMEO"},
        std::tuple{o.has_sndtimeo_us(), o.sndtimeo_us(), SO_SNDTIMEO, "SO_SNDTIMEO"}}) {
    if (!has) continue;
    timeval tv = {time_t(us / 1000000), suseconds_t(us % 1000000)};
    TRY(Set(fd, SOL_SOCKET, opt, &tv, sizeof(tv), name));
  }
  if (o.has_congestion())
    TRY(Set(fd, IPPROTO_TCP, TCP_CONGESTION, o.congestion().data(),
            socklen_t(o.congestion().size()), "TCP_CONGESTION " + o.congestion()));
  if (o.has_icmp_filter()) {
    int level = e.family() == AF_INET ? SOL_RAW : IPPROTO_ICMPV6;
    TRY(Set(fd, level, 1, o.icmp_filter().data(), socklen_t(o.icmp_filter().size()),
            e.family() == AF_INET ? "ICMP_FILTER" : "ICMP6_FILTER"));
  }
  if (o.has_mc_if_addr() && o.mc_if_addr().size() == 4)
    TRY(Set(fd, IPPROTO_IP, IP_MULTICAST_IF, o.mc_if_addr().data(), 4, "IP_MULTICAST_IF"));
  return Ok();
}

}  // namespace ckpt::files
