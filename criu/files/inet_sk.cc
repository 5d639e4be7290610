// The inet socket handler (see inet_sk.h) and what dump and restore share.
#include "criu/files/inet_sk.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <cstring>

#include "criu/files/sk_common.h"
#include "criu/net/inet_diag.h"
#include "images/image_dir.h"

namespace ckpt::files {
namespace {

// Sockets answer the "system.sockprotoname" attribute with the name of
// their protocol in the kernel: "TCP", "TCPv6", "UDP", "UDPv6",
// "UDP-Lite", "UDPLITEv6", "RAW", "RAWv6", "PING", "PINGv6".
bool MatchInetSk(const FdContext& c) {
  if (!S_ISSOCK(c.st.st_mode)) return false;
  std::string s = SockProtoName(c.pid, c.fd);
  for (const char* k :
       {"TCP", "TCPv6", "UDP", "UDPv6", "UDP-Lite", "UDPLITEv6", "RAW", "RAWv6", "PING", "PINGv6"})
    if (s == k) return true;
  return false;
}

bool GoodAddr(uint32_t family, const std::string& a) {
  return a.size() == (family == AF_INET6 ? 16u : 4u);
}

Status ValidateInetSk(const pb::FileEntry& fe) {
  std::string what = "file " + std::to_string(fe.id()) + ": inet socket";
  if (!fe.has_inet_sk()) return Error(what + " entry missing");
  const pb::InetSkEntry& e = fe.inet_sk();
  if (e.family() != AF_INET && e.family() != AF_INET6)
    return Error(what + ": bad family " + std::to_string(e.family()));
  int t = int(e.type());
  if (t != SOCK_STREAM && t != SOCK_DGRAM && t != SOCK_RAW)
    return Error(what + ": bad type " + std::to_string(t));
  if (t == SOCK_STREAM && e.protocol() != IPPROTO_TCP)
    return Error(what + ": stream socket of protocol " + std::to_string(e.protocol()));
  if (t != SOCK_RAW && e.protocol() != IPPROTO_TCP && e.protocol() != IPPROTO_UDP &&
      e.protocol() != IPPROTO_UDPLITE && e.protocol() != IPPROTO_ICMP &&
      e.protocol() != IPPROTO_ICMPV6)
    return Error(what + ": bad protocol " + std::to_string(e.protocol()));
  if (e.protocol() > 255) return Error(what + ": bad protocol " + std::to_string(e.protocol()));
  if (e.state() < TCP_ESTABLISHED || e.state() > TCP_CLOSING)
    return Error(what + ": bad state " + std::to_string(e.state()));
  if (e.has_src_addr() && !GoodAddr(e.family(), e.src_addr()))
    return Error(what + ": bad local address");
  if (e.has_dst_addr() && !GoodAddr(e.family(), e.dst_addr()))
    return Error(what + ": bad peer address");
  if (e.src_port() > 65535 || e.dst_port() > 65535) return Error(what + ": bad port");
  if (e.has_stream() && (e.protocol() != IPPROTO_TCP || !e.has_dst_addr()))
    return Error(what + ": a TCP stream without a connection");
  if (e.state() == TCP_SYN_SENT && !e.has_dst_addr())
    return Error(what + ": connecting, but to no address");
  if (e.state() == TCP_LISTEN && e.type() != SOCK_STREAM)
    return Error(what + ": listening, but not a stream socket");
  if (e.opts().has_bound_dev() && e.opts().bound_dev().size() >= 16)
    return Error(what + ": bad device name");
  if (e.opts().has_congestion() && e.opts().congestion().size() >= 16)
    return Error(what + ": bad congestion control name");
  return Ok();
}

// The stream image of a live connection: there, one entry, lengths that
// match its bytes, a FIN only in a state that has one.
Status CheckStream(const pb::FileEntry& fe, const images::ImageDir& dir) {
  if (!fe.has_inet_sk() || !fe.inet_sk().has_stream()) return Ok();
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kTcpStream, fe.id()));
  pb::TcpStreamEntry s;
  TRY(r.ReadOne(s));
  std::string what = r.name();
  if (s.inq().size() != s.inq_len() || s.outq().size() != s.outq_len())
    return Error(what + ": queue lengths do not match the queued bytes");
  if (s.unsq_len() > s.outq_len()) return Error(what + ": more unsent bytes than queued");
  if (s.mss() == 0 || s.mss() > 65535) return Error(what + ": bad MSS " + std::to_string(s.mss()));
  if (s.snd_wscale() > 14 || s.rcv_wscale() > 14) return Error(what + ": bad window scale");
  int st = int(fe.inet_sk().state());
  bool fin_sent =
      st == TCP_FIN_WAIT1 || st == TCP_FIN_WAIT2 || st == TCP_CLOSING || st == TCP_LAST_ACK;
  bool fin_rcvd = st == TCP_CLOSE_WAIT || st == TCP_CLOSING || st == TCP_LAST_ACK;
  if (s.fin_sent() != fin_sent || s.fin_received() != fin_rcvd ||
      !(st == TCP_ESTABLISHED || fin_sent || fin_rcvd))
    return Error(what + ": FINs do not match the state " + std::to_string(st));
  return Ok();
}

}  // namespace

std::string InetProtoName(int type, int protocol) {
  if (type == SOCK_RAW) return "raw";
  switch (protocol) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_UDPLITE:
      return "UDP-Lite";
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return "ping";
    default:
      return "protocol " + std::to_string(protocol);
  }
}

sockaddr_storage MakeInetAddr(int family, const std::string& addr, uint32_t port, uint32_t scope,
                              socklen_t* len) {
  sockaddr_storage ss = {};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(uint16_t(port));
    if (addr.size() == 4) memcpy(&a->sin_addr, addr.data(), 4);
    *len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(uint16_t(port));
    if (addr.size() == 16) memcpy(&a->sin6_addr, addr.data(), 16);
    a->sin6_scope_id = scope;
    *len = sizeof(*a);
  }
  return ss;
}

std::string DescribeInetSk(const pb::InetSkEntry& e) {
  std::string s = InetProtoName(int(e.type()), int(e.protocol()));
  if (e.type() == SOCK_RAW) s += " (protocol " + std::to_string(e.protocol()) + ")";
  auto ep = [&e](const std::string& a, uint32_t port) {
    uint8_t b[16] = {};
    memcpy(b, a.data(), std::min<size_t>(a.size(), 16));
    return net::FormatEndpoint(int(e.family()), b, uint16_t(port));
  };
  if (e.has_src_addr()) s += " " + ep(e.src_addr(), e.src_port());
  if (e.has_dst_addr()) s += " -> " + ep(e.dst_addr(), e.dst_port());
  if (!e.has_src_addr() && !e.has_dst_addr())
    s += e.family() == AF_INET6 ? " (IPv6, unbound)" : " (IPv4, unbound)";
  return s;
}

const FileHandler kInetSkHandler = {.kind = pb::FILE_INET_SK,
                                    .name = "inet socket",
                                    .match = MatchInetSk,
                                    .check = CheckInetSk,
                                    .dump = DumpInetSk,
                                    .open = OpenInetSk,
                                    .validate = ValidateInetSk,
                                    .deps = nullptr,
                                    .in_task = nullptr,
                                    .check_images = CheckStream};

}  // namespace ckpt::files
