// The unix socket handler (see unix_sk.h) and what dump and restore share.
#include "criu/files/unix_sk.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstring>

#include "criu/files/sk_common.h"

namespace ckpt::files {
namespace {


// Sockets answer the "system.sockprotoname" attribute with their protocol:
// "UNIX-STREAM" for stream unix sockets, "UNIX" for datagram and seqpacket.
bool MatchUnixSk(const FdContext& c) {
  return S_ISSOCK(c.st.st_mode) && SockProtoName(c.pid, c.fd).rfind("UNIX", 0) == 0;
}

Status ValidateUnixSk(const pb::FileEntry& e) {
  std::string what = "file " + std::to_string(e.id()) + ": unix socket";
  if (!e.has_unix_sk()) return Error(what + " entry missing");
  const pb::UnixSkEntry& u = e.unix_sk();
  int t = int(u.type());
  if (t != SOCK_STREAM && t != SOCK_DGRAM && t != SOCK_SEQPACKET)
    return Error(what + ": bad type " + std::to_string(t));
  if (u.state() != TCP_ESTABLISHED && u.state() != TCP_CLOSE && u.state() != TCP_LISTEN)
    return Error(what + ": bad state " + std::to_string(u.state()));
  if (u.state() == TCP_LISTEN && t == SOCK_DGRAM)
    return Error(what + ": listening datagram socket");
  if (u.name().size() > sizeof(sockaddr_un::sun_path) ||
      (IsPathName(u.name()) && u.name().find('\0') != std::string::npos))
    return Error(what + ": bad name");
  if (u.state() == TCP_LISTEN && u.name().empty())
    return Error(what + ": listening without a name");
  if (!u.path_dir().empty() && u.path_dir()[0] != '/') return Error(what + ": bad path_dir");
  if (IsPathName(u.name()) && u.name()[0] != '/' && u.path_dir().empty())
    return Error(what + ": relative name without a directory");
  int links = (u.peer_ino() != 0) + u.peer_gone() + !u.ext_peer_name().empty() + u.waiting();
  if (links > 1) return Error(what + ": more than one kind of peer");
  if (u.state() != TCP_ESTABLISHED && links) return Error(what + ": a peer but not connected");
  if (t != SOCK_DGRAM && u.state() == TCP_ESTABLISHED && !links)
    return Error(what + ": connected without a peer");
  if (!u.ext_peer_name().empty() && (t != SOCK_DGRAM || u.has_queue()))
    return Error(what + ": external peer on a socket that cannot have one");
  if (u.ext_peer_name().size() > sizeof(sockaddr_un::sun_path))
    return Error(what + ": bad peer name");
  if (u.pending_size() && u.state() != TCP_LISTEN)
    return Error(what + ": pending clients but not listening");
  if (u.shutdown() > 3) return Error(what + ": bad shutdown state");
  if (u.opts().peek_off() < -1) return Error(what + ": bad peek offset");
  return Ok();
}

}  // namespace


UnixAddr MakeUnixAddr(const std::string& name) {
  UnixAddr a;
  memset(&a.sa, 0, sizeof(a.sa));
  a.sa.sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof(a.sa.sun_path));
  memcpy(a.sa.sun_path, name.data(), n);
  // A path is NUL-terminated when it fits (the kernel names it that way).
  if (IsPathName(name) && n < sizeof(a.sa.sun_path)) n++;
  a.len = socklen_t(offsetof(sockaddr_un, sun_path) + n);
  return a;
}

std::string UnixNameOf(const sockaddr_un& sa, socklen_t len) {
  size_t off = offsetof(sockaddr_un, sun_path);
  if (len <= off) return "";
  size_t n = std::min(size_t(len) - off, sizeof(sa.sun_path));
  std::string s(sa.sun_path, n);
  if (IsPathName(s)) s = s.substr(0, s.find('\0'));  // up to its NUL
  return s;
}

std::string PrintableName(const std::string& n) {
  if (n.empty()) return "(unnamed)";
  if (IsPathName(n)) return n;
  std::string out = "@";
  for (size_t i = 1; i < n.size(); i++) {
    unsigned char ch = static_cast<unsigned char>(n[i]);
    if (ch >= 0x20 && ch < 0x7f) {
      out += char(ch);
    } else {
      char b[8];
      snprintf(b, sizeof(b), "\\x%02x", ch);
      out += b;
    }
  }
  return out;
}

const char* UnixTypeName(int type) {
  switch (type) {
    case SOCK_STREAM:
      return "stream";
    case SOCK_DGRAM:
      return "datagram";
    case SOCK_SEQPACKET:
      return "seqpacket";
    default:
      return "unknown-type";
  }
}

const FileHandler kUnixSkHandler = {.kind = pb::FILE_UNIX_SK,
                                    .name = "unix socket",
                                    .match = MatchUnixSk,
                                    .check = CheckUnixSk,
                                    .dump = DumpUnixSk,
                                    .open = OpenUnixSk,
                                    .validate = ValidateUnixSk,
                                    .deps = nullptr,
                                    .in_task = nullptr};

}  // namespace ckpt::files
