// Restoring inet sockets (see inet_sk.h).
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include "base/log.h"
#include "criu/files/file_context.h"
#include "criu/files/inet_sk.h"
#include "criu/net/inet_diag.h"
#include "criu/net/tcp_repair.h"
#include "images/image_dir.h"

namespace ckpt::files {
namespace {

// " (by pid 42 (nginx), in state LISTEN)", or "".
std::string Holders(int fd, const pb::InetSkEntry& e) {
  if (e.type() == SOCK_RAW) return "";
  struct stat st = {};
  fstat(fd, &st);
  std::string h = net::DescribePortHolders(int(e.family()), int(e.protocol()),
                                           uint16_t(e.src_port()), uint32_t(st.st_ino));
  return h.empty() ? "" : " (" + h + ")";
}

std::string Local(const pb::InetSkEntry& e) {
  pb::InetSkEntry l;
  l.set_family(e.family());
  l.set_type(e.type());
  l.set_protocol(e.protocol());
  l.set_src_addr(e.src_addr());
  l.set_src_port(e.src_port());
  return DescribeInetSk(l);
}

Status Bind(int fd, const pb::InetSkEntry& e, const std::string& what) {
  socklen_t len;
  uint32_t port = e.type() == SOCK_RAW ? 0 : e.src_port();
  std::string addr = e.src_addr();
  // bind() to an IPv6 address (not v4-mapped) makes the socket IPv6-only,
  // and IPV6_V6ONLY cannot change once bound. A dual-stack socket with such
  // an address got it from connect() (no bind of its own): bind only the
  // port; connect() picks the same address again by route.
  if (e.family() == AF_INET6 && e.type() != SOCK_RAW && !e.opts().v6only() && addr.size() == 16 &&
      !net::IsV4Mapped(reinterpret_cast<const uint8_t*>(addr.data())))
    addr.clear();
  sockaddr_storage a = MakeInetAddr(int(e.family()), addr, port, e.ifindex(), &len);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0) return Ok();
  int err = errno;
  if (err == EADDRINUSE)
    return Error::Errno(what + ": cannot bind: " + Local(e) + " is taken here" + Holders(fd, e),
                        err);
  if (err == EADDRNOTAVAIL)
    return Error::Errno(what + ": cannot bind: the address of " + Local(e) + " is not on this host",
                        err);
  return Error::Errno(what + ": bind", err);
}

Status Connect(int fd, const pb::InetSkEntry& e, bool nonblock, const std::string& what) {
  socklen_t len;
  sockaddr_storage a = MakeInetAddr(int(e.family()), e.dst_addr(), e.dst_port(), 0, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) == 0) return Ok();
  if (nonblock && errno == EINPROGRESS) return Ok();
  return Error::Errno(what + ": connect");
}

}  // namespace

Result<int> OpenInetSk(const pb::FileEntry& fe, const RestoreOpts& o) {
  const pb::InetSkEntry& e = fe.inet_sk();
  std::string what = DescribeInetSk(e);
  bool tcp = e.protocol() == IPPROTO_TCP;
  if (e.has_stream() && !o.tcp_established && !o.tcp_close)
    return Error(what +
                 " was a live connection at dump: restore with --tcp-established (or "
                 "--tcp-close to get it back closed)");
  UniqueFd s(socket(int(e.family()), int(e.type()) | SOCK_CLOEXEC, int(e.protocol())));
  if (!s) return Error::Errno(what + ": socket");
  int fd = s.get();
  bool live = e.has_stream() && o.tcp_established;
  if (e.has_stream() && !live) {
    // --tcp-close: the connection is gone; the program finds a socket that
    // is not connected (reads see EOF or ENOTCONN, writes EPIPE).
    TRY(SetInetOptsBeforeBind(fd, e), what);
    TRY(SetInetOpts(fd, e), what);
  } else {
    // In repair mode bind() may take a port a TIME_WAIT twin of this very
    // socket (or of its connection) still holds; a listener's port held
    // by a real listener is still refused, by listen().
    bool repair_bind = tcp && e.has_src_addr() && e.src_port();
    if (repair_bind) TRY(net::EnterRepair(fd, what));
    TRY(SetInetOptsBeforeBind(fd, e), what);
    if (e.has_src_addr()) TRY(Bind(fd, e, what));
    if (live) {
      TRY(SetInetOpts(fd, e), what);
      TRY_ASSIGN(images::ImageReader r,
                 o.ctx->dir().OpenReader(images::ImageType::kTcpStream, fe.id()));
      pb::TcpStreamEntry stream;
      TRY(r.ReadOne(stream));
      socklen_t len;
      sockaddr_storage dst = MakeInetAddr(int(e.family()), e.dst_addr(), e.dst_port(), 0, &len);
      TRY(net::RestoreTcpStream(fd, int(e.family()), reinterpret_cast<sockaddr*>(&dst), len, stream,
                                what));
    } else {
      if (repair_bind) TRY(net::LeaveRepair(fd, e.opts().reuseaddr(), false, what));
      TRY(SetInetOpts(fd, e), what);
      if (e.state() == TCP_LISTEN) {
        // SO_REUSEADDR for listen() only: connections of this listener
        // restored before it (still in repair mode) share its port.
        int one = 1, was = e.opts().reuseaddr() ? 1 : 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int r = listen(fd, int(e.backlog()));
        if (r < 0 && errno == EADDRINUSE) {
          // TIME_WAIT remnants of the program's own earlier connections
          // on its port (it ran on after a --leave-running dump, or was
          // restarted): end them, as a restarting server's SO_REUSEADDR
          // would let it ignore them.
          auto ended = net::EndTimeWait(int(e.family()), e.src_addr(), uint16_t(e.src_port()));
          if (ended.ok() && *ended > 0) {
            LOG_INFO(what + ": ended " + std::to_string(*ended) +
                     " TIME_WAIT connection(s) holding its port");
            r = listen(fd, int(e.backlog()));
          }
        }
        if (r < 0) {
          int err = errno;
          if (err == EADDRINUSE)
            return Error::Errno(
                what + ": cannot listen: " + Local(e) + " is taken here" + Holders(fd, e), err);
          return Error::Errno(what + ": listen", err);
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &was, sizeof(was));
      } else if (tcp && e.state() == TCP_SYN_SENT) {
        // The handshake starts again; a program blocked in connect()
        // restarts the call and waits for it as before.
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        TRY(Connect(fd, e, true, what));
      } else if (!tcp && e.has_dst_addr()) {
        TRY(Connect(fd, e, false, what));
      }
      TRY(JoinMcGroups(fd, e), what);
      if (!tcp && e.shutdown()) {
        int how = e.shutdown() == 3 ? SHUT_RDWR : e.shutdown() == 1 ? SHUT_RD : SHUT_WR;
        if (shutdown(fd, how) < 0) return Error::Errno(what + ": shutdown");
      }
    }
  }
  if (fcntl(fd, F_SETFL, int(e.flags())) < 0) return Error::Errno(what + ": F_SETFL");
  return s.release();
}

}  // namespace ckpt::files
