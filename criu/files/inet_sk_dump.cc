// Dumping inet sockets (see inet_sk.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <cstring>

#include "base/log.h"
#include "criu/files/file_context.h"
#include "criu/files/inet_sk.h"
#include "criu/files/sk_common.h"
#include "criu/net/inet_diag.h"
#include "criu/net/net_dump.h"
#include "criu/net/tcp_repair.h"

namespace ckpt::files {
namespace {

// What the socket itself tells through ckpt's copy of it.
struct SockView {
  int family = 0, type = 0, protocol = 0;
  int state = TCP_CLOSE;
  sockaddr_storage local = {}, peer = {};
  bool has_peer = false;
  tcp_info ti = {};  // TCP only
};

Result<int> IntOpt(int fd, int level, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, level, opt, &v, &len) < 0) return Error::Errno(name);
  return v;
}

Result<SockView> View(int fd) {
  SockView v;
  TRY_ASSIGN(v.family, IntOpt(fd, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"));
  TRY_ASSIGN(v.type, IntOpt(fd, SOL_SOCKET, SO_TYPE, "SO_TYPE"));
  TRY_ASSIGN(v.protocol, IntOpt(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"));
  socklen_t len = sizeof(v.local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&v.local), &len) < 0)
    return Error::Errno("getsockname");
  len = sizeof(v.peer);
  v.has_peer = getpeername(fd, reinterpret_cast<sockaddr*>(&v.peer), &len) == 0;
  if (v.protocol == IPPROTO_TCP && v.type == SOCK_STREAM) {
    len = sizeof(v.ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &v.ti, &len) < 0) return Error::Errno("TCP_INFO");
    v.state = v.ti.tcpi_state;
  } else {
    v.state = v.has_peer ? TCP_ESTABLISHED : TCP_CLOSE;
  }
  return v;
}

// Address bytes and port of a sockaddr_in/in6.
void Split(const sockaddr_storage& ss, std::string* addr, uint32_t* port, uint32_t* scope) {
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    addr->assign(reinterpret_cast<const char*>(&a->sin_addr), 4);
    *port = ntohs(a->sin_port);
    *scope = 0;
  } else {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    addr->assign(reinterpret_cast<const char*>(&a->sin6_addr), 16);
    *port = ntohs(a->sin6_port);
    *scope = a->sin6_scope_id;
  }
}

std::string Endpoint(const sockaddr_storage& ss) {
  std::string a;
  uint32_t port, scope;
  Split(ss, &a, &port, &scope);
  return net::FormatEndpoint(ss.ss_family, reinterpret_cast<const uint8_t*>(a.data()),
                             uint16_t(port));
}

std::string Describe(const SockView& v) {
  std::string s = InetProtoName(v.type, v.protocol) + " " + Endpoint(v.local);
  if (v.has_peer) s += " -> " + Endpoint(v.peer);
  return s;
}

bool IsAny(const std::string& a) { return a.find_first_not_of('\0') == std::string::npos; }

}  // namespace

Status CheckInetSk(const FdContext& c, const std::vector<FdContext>& all) {
  std::string where = Where(c);
  TRY_ASSIGN(UniqueFd sk, GrabTaskSocket(c.pid, c.fd), where);
  TRY_ASSIGN(SockView v, View(sk.get()), where);
  TRY(CheckSameNetns(sk.get(), Describe(v)), where);
  // A socket filter would silently vanish: refuse (SO_GET_FILTER with no
  // buffer answers the length of a classic filter, EACCES for eBPF).
  socklen_t flen = 0;
  if (getsockopt(sk.get(), SOL_SOCKET, SO_GET_FILTER, nullptr, &flen) < 0 || flen > 0)
    return Error(where + ": " + Describe(v) +
                 " with a socket filter (SO_ATTACH_FILTER/BPF) is not supported");
  if (v.protocol != IPPROTO_TCP) return Ok();
  if (v.state == TCP_LISTEN && v.ti.tcpi_unacked > 0 && !c.skip_in_flight)
    return Error(where + ": TCP listener " + Endpoint(v.local) + " has " +
                 std::to_string(v.ti.tcpi_unacked) +
                 " connection(s) not yet accepted (use --skip-in-flight to drop them)");
  if (net::IsRepairableState(v.state) && !c.tcp_established) {
    std::string how = v.state == TCP_ESTABLISHED
                          ? "is established"
                          : std::string("is in ") + net::TcpStateName(v.state);
    return Error(where + ": " + Describe(v) + " " + how + " (use --tcp-established)");
  }
  if (v.state != TCP_CLOSE && v.state != TCP_LISTEN && v.state != TCP_SYN_SENT &&
      !net::IsRepairableState(v.state))
    return Error(where + ": " + Describe(v) + " in state " + net::TcpStateName(v.state) +
                 " is not supported");
  (void)all;
  return Ok();
}

Status DumpInetSk(const FdContext& c, DumpContext& ctx, pb::FileEntry* fe) {
  TRY_ASSIGN(UniqueFd sk, GrabTaskSocket(c.pid, c.fd));
  TRY_ASSIGN(SockView v, View(sk.get()));
  pb::InetSkEntry* e = fe->mutable_inet_sk();
  e->set_ino(c.st.st_ino);
  e->set_family(uint32_t(v.family));
  e->set_type(uint32_t(v.type));
  e->set_protocol(uint32_t(v.protocol));
  e->set_state(uint32_t(v.state));
  e->set_flags(c.info.flags & (O_NONBLOCK | O_ASYNC));
  std::string addr;
  uint32_t port, scope;
  Split(v.local, &addr, &port, &scope);
  // A raw socket's "port" is its protocol: only its address is bound.
  if ((port != 0 && v.type != SOCK_RAW) || !IsAny(addr)) {
    e->set_src_addr(addr);
    e->set_src_port(port);
    if (scope) e->set_ifindex(scope);
  }
  if (v.has_peer) {
    Split(v.peer, &addr, &port, &scope);
    e->set_dst_addr(addr);
    e->set_dst_port(port);
  }
  if (v.state == TCP_LISTEN) e->set_backlog(v.ti.tcpi_sacked);
  if (v.type != SOCK_RAW && v.protocol != IPPROTO_ICMP && v.protocol != IPPROTO_ICMPV6) {
    TRY_ASSIGN(const net::InetDiag* d,
               ctx.net().diag().Find(v.family, v.protocol, uint32_t(c.st.st_ino)));
    if (d) {
      if (d->shutdown) e->set_shutdown(uint32_t(d->shutdown));
      // getpeername() answers ENOTCONN while the handshake is on; diag
      // knows where the SYNs go.
      if (v.state == TCP_SYN_SENT && !e->has_dst_addr()) {
        e->set_dst_addr(
            std::string(reinterpret_cast<const char*>(d->dst), v.family == AF_INET6 ? 16 : 4));
        e->set_dst_port(d->dport);
      }
      if (v.protocol != IPPROTO_TCP && d->rqueue > 0)
        LOG_WARN(Where(c) + ": " + Describe(v) + ": " + std::to_string(d->rqueue) +
                 " bytes of queued datagrams are dropped");
    }
  }
  TRY(ReadInetOpts(sk.get(), v.family, v.type, v.protocol, ctx.inet_defaults(), e->mutable_opts()),
      Describe(v));
  if (v.type != SOCK_STREAM) TRY(ReadMcGroups(sk.get(), v.family, e), Describe(v));
  if (v.protocol == IPPROTO_TCP && net::IsRepairableState(v.state)) {
    std::string what = Describe(v);
    TRY_ASSIGN(pb::TcpStreamEntry stream, ctx.net().ReadConnection(std::move(sk), v.state, what));
    TRY_ASSIGN(images::ImageWriter w,
               ctx.dir().OpenWriter(images::ImageType::kTcpStream, fe->id()));
    TRY(w.Write(stream));
    TRY(w.Close());
    e->set_has_stream(true);
  }
  LOG_DBG(Where(c) + ": " + DescribeInetSk(*e) + " " +
          (v.protocol == IPPROTO_TCP ? net::TcpStateName(v.state) : ""));
  return Ok();
}

}  // namespace ckpt::files
