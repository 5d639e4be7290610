#include "criu/files/sk_common.h"

#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

namespace ckpt::files {
namespace {

Result<int> GetInt(int sk, int level, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(sk, level, opt, &v, &len) < 0) return Error::Errno(std::string("get ") + name);
  return v;
}

Status SetInt(int sk, int level, int opt, int v, const char* name) {
  if (setsockopt(sk, level, opt, &v, sizeof(v)) < 0)
    return Error::Errno(std::string("set ") + name);
  return Ok();
}

Result<uint64_t> GetTimeoUs(int sk, int opt, const char* name) {
  timeval tv = {};
  socklen_t len = sizeof(tv);
  if (getsockopt(sk, SOL_SOCKET, opt, &tv, &len) < 0)
    return Error::Errno(std::string("get ") + name);
  return uint64_t(tv.tv_sec) * 1000000 + uint64_t(tv.tv_usec);
}

Status SetTimeoUs(int sk, int opt, uint64_t us, const char* name) {
  timeval tv = {time_t(us / 1000000), suseconds_t(us % 1000000)};
  if (setsockopt(sk, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0)
    return Error::Errno(std::string("set ") + name);
  return Ok();
}

// SO_GET_FILTER measures in instructions, not bytes: optlen 0 asks for the
// count, then a buffer of that many sock_filters gets them. EACCES means
// an eBPF program, which keeps no classic original to hand back.
Result<std::vector<sock_filter>> GetFilter(int sk) {
  socklen_t n = 0;
  if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, nullptr, &n) < 0) {
    if (errno == EACCES)
      return Error("an eBPF socket filter (SO_ATTACH_BPF) cannot be read back", EACCES);
    return Error::Errno("get SO_GET_FILTER");
  }
  std::vector<sock_filter> f(n);
  if (n == 0) return f;
  socklen_t got = n;
  if (getsockopt(sk, SOL_SOCKET, SO_GET_FILTER, f.data(), &got) < 0)
    return Error::Errno("get SO_GET_FILTER");  // replaced between the two calls: retry the dump
  f.resize(got);
  return f;
}

}  // namespace

std::string SockProtoName(pid_t pid, int fd) {
  std::string p = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  char name[64];
  ssize_t n = getxattr(p.c_str(), "system.sockprotoname", name, sizeof(name) - 1);
  if (n <= 0) return "";
  return std::string(name, strnlen(name, size_t(n)));
}

Result<UniqueFd> GrabTaskSocket(pid_t pid, int fd) {
  UniqueFd pidfd(int(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return Error::Errno("pidfd_open");
  UniqueFd copy(int(syscall(SYS_pidfd_getfd, pidfd.get(), fd, 0)));
  if (!copy) return Error::Errno("pidfd_getfd");
  return copy;
}

// The cookie of a socket's network namespace (SO_NETNS_COOKIE, Linux
// 5.14; no privilege needed), 0 if unknown.
static uint64_t NetnsCookie(int sk) {
  constexpr int kSoNetnsCookie = 71;  // asm-generic/socket.h
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(sk, SOL_SOCKET, kSoNetnsCookie, &cookie, &len) < 0) return 0;
  return cookie;
}

Status CheckSameNetns(int sk, const std::string& what) {
  UniqueFd ns(ioctl(sk, SIOCGSKNS));
  // SIOCGSKNS needs CAP_NET_ADMIN (ckpt run by a plain user,
  // criu/security.h): then the namespaces' cookies are compared, ckpt's
  // read from a socket of its own.
  if (!ns && errno == EPERM) {
    UniqueFd own(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    uint64_t theirs = NetnsCookie(sk), ours = own ? NetnsCookie(own.get()) : 0;
    if (!theirs || !ours)
      return Error(what +
                       ": cannot tell its network namespace (SIOCGSKNS needs CAP_NET_ADMIN, "
                       "SO_NETNS_COOKIE Linux 5.14)",
                   EPERM);
    if (theirs == ours) return Ok();
    return Error(what +
                 " belongs to another network namespace than ckpt's: sockets of other "
                 "network namespaces are not supported");
  }
  if (!ns) return Error::Errno(what + ": SIOCGSKNS");
  struct stat a, b;
  if (fstat(ns.get(), &a) < 0) return Error::Errno(what + ": fstat of its network namespace");
  if (stat("/proc/self/ns/net", &b) < 0) return Error::Errno("stat /proc/self/ns/net");
  if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
    return Error(what + " belongs to another network namespace (net:[" + std::to_string(a.st_ino) +
                 "], ckpt runs in net:[" + std::to_string(b.st_ino) +
                 "]): sockets of other network namespaces are not supported");
  return Ok();
}

Result<SockOpts> ReadSockOpts(int sk) {
  SockOpts o;
  int v;
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"));
  o.rcvbuf = uint32_t(v);
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"));
  o.sndbuf = uint32_t(v);
  // Linux 6.x answers SO_PASSCRED only on families that pass credentials
  // (unix, netlink): EOPNOTSUPP elsewhere means it is off.
  auto passcred = GetInt(sk, SOL_SOCKET, SO_PASSCRED, "SO_PASSCRED");
  if (!passcred.ok() && passcred.error().err() != EOPNOTSUPP) return std::move(passcred.error());
  o.passcred = passcred.ok() && *passcred != 0;
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY"));
  o.priority = uint32_t(v);
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_MARK, "SO_MARK"));
  o.mark = uint32_t(v);
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_TIMESTAMP, "SO_TIMESTAMP"));
  o.timestamp = v != 0;
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_TIMESTAMPNS, "SO_TIMESTAMPNS"));
  o.timestampns = v != 0;
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_TIMESTAMPING, "SO_TIMESTAMPING"));
  if (v != 0) return Error("SO_TIMESTAMPING is set (not supported on this kind of socket)");
  TRY_ASSIGN(o.rcvtimeo_us, GetTimeoUs(sk, SO_RCVTIMEO, "SO_RCVTIMEO"));
  TRY_ASSIGN(o.sndtimeo_us, GetTimeoUs(sk, SO_SNDTIMEO, "SO_SNDTIMEO"));
  TRY_ASSIGN(o.filter, GetFilter(sk));
  TRY_ASSIGN(v, GetInt(sk, SOL_SOCKET, SO_LOCK_FILTER, "SO_LOCK_FILTER"));
  o.filter_locked = v != 0;
  return o;
}

Status SetBufForce(int sk, int force_opt, int half, const char* name) {
  if (setsockopt(sk, SOL_SOCKET, force_opt, &half, sizeof(half)) == 0) return Ok();
  int plain = force_opt == SO_SNDBUFFORCE ? SO_SNDBUF : SO_RCVBUF;
  if (errno != EPERM || setsockopt(sk, SOL_SOCKET, plain, &half, sizeof(half)) < 0)
    return Error::Errno(std::string("set ") + name);
  return Ok();
}

Status SetSockOpts(int sk, const SockOpts& o) {
  // A new socket's sizes come from net.core.[rw]mem_default; only a size
  // the program changed is forced (FORCE: beyond [rw]mem_max, as it may
  // have been set by a privileged program; the kernel doubles it again).
  TRY_ASSIGN(int rcv, GetInt(sk, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"));
  if (o.rcvbuf && uint32_t(rcv) != o.rcvbuf)
    TRY(SetBufForce(sk, SO_RCVBUFFORCE, int(o.rcvbuf / 2), "SO_RCVBUFFORCE"));
  TRY_ASSIGN(int snd, GetInt(sk, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"));
  if (o.sndbuf && uint32_t(snd) != o.sndbuf)
    TRY(SetBufForce(sk, SO_SNDBUFFORCE, int(o.sndbuf / 2), "SO_SNDBUFFORCE"));
  if (o.passcred) TRY(SetInt(sk, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED"));
  if (o.priority) TRY(SetInt(sk, SOL_SOCKET, SO_PRIORITY, int(o.priority), "SO_PRIORITY"));
  if (o.mark) TRY(SetInt(sk, SOL_SOCKET, SO_MARK, int(o.mark), "SO_MARK"));
  if (o.timestamp) TRY(SetInt(sk, SOL_SOCKET, SO_TIMESTAMP, 1, "SO_TIMESTAMP"));
  if (o.timestampns) TRY(SetInt(sk, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS"));
  if (o.rcvtimeo_us) TRY(SetTimeoUs(sk, SO_RCVTIMEO, o.rcvtimeo_us, "SO_RCVTIMEO"));
  if (o.sndtimeo_us) TRY(SetTimeoUs(sk, SO_SNDTIMEO, o.sndtimeo_us, "SO_SNDTIMEO"));
  if (!o.filter.empty()) {
    sock_fprog prog = {uint16_t(o.filter.size()), const_cast<sock_filter*>(o.filter.data())};
    if (setsockopt(sk, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
      return Error::Errno("attach the socket filter (SO_ATTACH_FILTER, " +
                          std::to_string(o.filter.size()) + " instructions)");
  }
  if (o.filter_locked) TRY(SetInt(sk, SOL_SOCKET, SO_LOCK_FILTER, 1, "SO_LOCK_FILTER"));
  return Ok();
}

Status ValidateSockOpts(const SockOpts& o) {
  if (o.filter.size() > BPF_MAXINSNS) return Error("socket filter too long");
  if (o.rcvbuf > INT32_MAX || o.sndbuf > INT32_MAX) return Error("bad buffer size");
  return Ok();
}

}  // namespace ckpt::files
