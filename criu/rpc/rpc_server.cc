// Packets in and out, swrk and the listening service.
#include "criu/rpc/rpc_server.h"

#include <fcntl.h>
#include <google/protobuf/unknown_field_set.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/rpc/rpc_session.h"

namespace ckpt::rpc {
namespace {

// The request type a client sent, even when the schema does not know it
// (proto2 keeps an unknown enum value as an unknown field).
int UnknownType(const criu_req& req) {
  const google::protobuf::UnknownFieldSet& u = req.GetReflection()->GetUnknownFields(req);
  for (int i = 0; i < u.field_count(); i++)
    if (u.field(i).number() == 1 &&
        u.field(i).type() == google::protobuf::UnknownField::TYPE_VARINT)
      return int(u.field(i).varint());
  return -1;
}

}  // namespace

Result<Peer> PeerOf(int sk) {
  struct ucred c;
  socklen_t len = sizeof(c);
  if (getsockopt(sk, SOL_SOCKET, SO_PEERCRED, &c, &len) < 0)
    return Error::Errno("SO_PEERCRED of the RPC socket");
  if (c.pid <= 0) return Error("the RPC socket's peer has no process (SO_PEERCRED pid 0)");
  return Peer{c.pid, c.uid, c.gid};
}

Result<bool> RecvRequest(int sk, criu_req* req, int* unknown_type) {
  *unknown_type = -1;
  ssize_t n;
  do {
    n = recv(sk, nullptr, 0, MSG_PEEK | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return false;
    return Error::Errno("receiving a request");
  }
  if (n == 0) {
    // End of stream and an empty packet both read as 0 bytes. Consume one
    // empty packet (nothing at the end of the stream) and look again: more
    // to read, or a peer still there, means it was a packet.
    char c;
    (void)!recv(sk, &c, 0, MSG_DONTWAIT);
    ssize_t m = recv(sk, &c, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (m > 0 || (m < 0 && errno == EAGAIN)) return Error("an empty packet is not a request");
    struct pollfd p = {sk, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP))) return false;
    return Error("an empty packet is not a request");
  }
  if (size_t(n) > kMaxMessageSize) {
    char c;
    (void)!recv(sk, &c, 1, MSG_TRUNC);  // drops the packet
    return Error("a request of " + std::to_string(n) + " bytes is over the limit of " +
                 std::to_string(kMaxMessageSize));
  }
  std::string buf(size_t(n), '\0');
  ssize_t got;
  do {
    got = recv(sk, buf.data(), buf.size(), MSG_TRUNC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) return Error::Errno("receiving a request");
  if (got != n) return Error("the request changed size while read");
  req->Clear();
  if (!req->ParsePartialFromString(buf)) return Error("the request does not parse as criu_req");
  if (!req->has_type()) {
    *unknown_type = UnknownType(*req);
    if (*unknown_type < 0) return Error("the request has no type");
    return true;
  }
  if (!req->IsInitialized())
    return Error("the request lacks required fields: " + req->InitializationErrorString());
  return true;
}

Status SendResponse(int sk, const criu_resp& resp, int pass_fd) {
  std::string buf;
  if (!resp.SerializeToString(&buf)) return Error("serializing a response");
  struct iovec iov = {buf.data(), buf.size()};
  struct msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    memset(cbuf, 0, sizeof(cbuf));
    m.msg_control = cbuf;
    m.msg_controllen = sizeof(cbuf);
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sk, &m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::Errno("sending a response");
  if (size_t(n) != buf.size()) return Error("a response was cut short");
  return Ok();
}

int RunSwrk(const Options& o) {
  int sk = atoi(o.args[0].c_str());
  int type = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(sk, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET) {
    fprintf(stderr, "ckpt swrk: fd %d is not a SOCK_SEQPACKET socket\n", sk);
    return 1;
  }
  auto peer = PeerOf(sk);
  if (!peer.ok()) {
    fprintf(stderr, "ckpt swrk: %s\n", peer.error().message().c_str());
    return 1;
  }
  // Not inherited by the trees ckpt creates.
  fcntl(sk, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  ServeSession(sk, {*peer, true});
  return 0;
}

namespace {

volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }

Result<UniqueFd> Listen(const std::string& path) {
  struct sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) return Error("--address " + path + ": path too long");
  memcpy(a.sun_path, path.c_str(), path.size());
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error("--address " + path + ": exists and is not a socket");
    // A socket nobody listens on any more (a service that died) is replaced.
    UniqueFd probe(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (probe && connect(probe.get(), (struct sockaddr*)&a, sizeof(a)) == 0)
      return Error("--address " + path + ": a service already listens there");
    unlink(path.c_str());
  }
  UniqueFd s(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) return Error::Errno("socket");
  // Made 0600 from the start: no window in which others could connect.
  mode_t old = umask(0177);
  int r = bind(s.get(), (struct sockaddr*)&a, sizeof(a));
  umask(old);
  if (r < 0) return Error::Errno("bind " + path);
  if (listen(s.get(), 16) < 0) {
    unlink(path.c_str());
    return Error::Errno("listen " + path);
  }
  return s;
}

}  // namespace

int RunService(const Options& o) {
  auto lsk = Listen(o.address);
  if (!lsk.ok()) {
    fprintf(stderr, "ckpt service: %s\n", lsk.error().message().c_str());
    return 1;
  }
  if (o.daemon) {
    pid_t p = fork();
    if (p < 0) {
      perror("ckpt service: fork");
      unlink(o.address.c_str());
      return 1;
    }
    if (p > 0) _exit(0);  // the caller goes on: the socket listens already
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      if (log::Fd() < 0 || log::Fd() == 2) dup2(null, 2);
      close(null);
    }
  }
  if (!o.pidfile.empty()) {
    std::string s = std::to_string(getpid());
    UniqueFd f(open(o.pidfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!f || !io::WriteFull(f.get(), s.data(), s.size()).ok()) {
      LOG_ERR("cannot write the pidfile " + o.pidfile);
      unlink(o.address.c_str());
      return 1;
    }
  }
  struct sigaction sa = {};
  sa.sa_handler = OnStop;  // no SA_RESTART: poll returns
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  LOG_INFO("ckpt service listening on " + o.address);
  while (!g_stop) {
    int st;
    while (waitpid(-1, &st, WNOHANG) > 0) {
    }
    struct pollfd p = {lsk->get(), POLLIN, 0};
    int r = poll(&p, 1, 1000);
    if (r <= 0) continue;
    UniqueFd c(accept4(lsk->get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    auto peer = PeerOf(c.get());
    if (!peer.ok()) {
      LOG_WARN("refused a connection: " + peer.error().message());
      continue;
    }
    pid_t child = fork();
    if (child < 0) {
      LOG_WARN(std::string("cannot serve a connection: fork: ") + strerror(errno));
      continue;
    }
    if (child == 0) {
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      lsk->reset();
      ServeSession(c.get(), {*peer, false});
      _exit(0);
    }
  }
  unlink(o.address.c_str());
  if (!o.pidfile.empty()) unlink(o.pidfile.c_str());
  LOG_INFO("ckpt service on " + o.address + " stopped");
  return 0;
}

}  // namespace ckpt::rpc
