// Helpers the sk_unix_* tests share (header-only): names, options, data.
#pragma once

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace sk {

// sun_path bytes: "" unnamed, "\0..." abstract, else a path (no NUL).
inline std::string from_addr(const sockaddr_un& a, socklen_t len) {
  size_t off = offsetof(sockaddr_un, sun_path);
  if (len <= off) return "";
  std::string s(a.sun_path, len - off);
  if (!s.empty() && s[0] != '\0') s = s.substr(0, s.find('\0'));
  return s;
}
inline sockaddr_un to_addr(const std::string& name, socklen_t* len) {
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, name.data(), name.size());
  *len =
      socklen_t(offsetof(sockaddr_un, sun_path) + name.size() + (name.empty() || name[0] ? 1 : 0));
  if (name.empty()) *len = sizeof(sa_family_t);
  return a;
}
inline std::string show(const std::string& n) {
  if (n.empty()) return "(unnamed)";
  if (n[0]) return n;
  return "@" + n.substr(1);
}
// An abstract name unique to this test run (the pid is kept by restore).
inline std::string abstract(const char* tag) {
  return std::string(1, '\0') + "zdtm-" + tag + "-" + std::to_string(getpid());
}

inline std::string name_of(int fd, bool peer = false) {
  sockaddr_un a = {};
  socklen_t l = sizeof(a);
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &l)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
  if (r < 0) fail("fd %d: get%sname: %s", fd, peer ? "peer" : "sock", strerror(errno));
  return from_addr(a, l);
}
inline void expect_name(int fd, bool peer, const std::string& want, const char* what) {
  std::string got = name_of(fd, peer);
  if (got != want)
    fail("%s: %s name %s, want %s", what, peer ? "peer" : "own", show(got).c_str(),
         show(want).c_str());
}
inline void bind_to(int fd, const std::string& name) {
  socklen_t l;
  sockaddr_un a = to_addr(name, &l);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), l))
    fail("bind %s: %s", show(name).c_str(), strerror(errno));
}
inline void connect_to(int fd, const std::string& name) {
  socklen_t l;
  sockaddr_un a = to_addr(name, &l);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), l))
    fail("connect %s: %s", show(name).c_str(), strerror(errno));
}
inline int new_socket(int type) {
  int fd = socket(AF_UNIX, type, 0);
  if (fd < 0) fail("socket: %s", strerror(errno));
  return fd;
}
inline void pair(int type, int sv[2]) {
  if (socketpair(AF_UNIX, type, 0, sv)) fail("socketpair: %s", strerror(errno));
}

inline int getopt_int(int fd, int opt) {
  int v = 0;
  socklen_t l = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, opt, &v, &l))
    fail("fd %d: getsockopt %d: %s", fd, opt, strerror(errno));
  return v;
}
inline void setopt_int(int fd, int opt, int v) {
  if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)))
    fail("fd %d: setsockopt %d: %s", fd, opt, strerror(errno));
}

// Socket options and flags a test records before READY and checks after.
struct Opts {
  int type, sndbuf, rcvbuf, passcred, reuse, acceptconn, peek_off, fl;
};
inline Opts opts_of(int fd) {
  return {getopt_int(fd, SO_TYPE),      getopt_int(fd, SO_SNDBUF),
          getopt_int(fd, SO_RCVBUF),    getopt_int(fd, SO_PASSCRED),
          getopt_int(fd, SO_REUSEADDR), getopt_int(fd, SO_ACCEPTCONN),
          getopt_int(fd, SO_PEEK_OFF),  fcntl(fd, F_GETFL)};
}
inline void expect_opts(int fd, const Opts& w, const char* what) {
  Opts g = opts_of(fd);
  if (g.type != w.type) fail("%s: SO_TYPE %d, want %d", what, g.type, w.type);
  if (g.sndbuf != w.sndbuf) fail("%s: SO_SNDBUF %d, want %d", what, g.sndbuf, w.sndbuf);
  if (g.rcvbuf != w.rcvbuf) fail("%s: SO_RCVBUF %d, want %d", what, g.rcvbuf, w.rcvbuf);
  if (g.passcred != w.passcred) fail("%s: SO_PASSCRED %d, want %d", what, g.passcred, w.passcred);
  if (g.reuse != w.reuse) fail("%s: SO_REUSEADDR %d, want %d", what, g.reuse, w.reuse);
  if (g.acceptconn != w.acceptconn)
    fail("%s: SO_ACCEPTCONN %d, want %d", what, g.acceptconn, w.acceptconn);
  if (g.peek_off != w.peek_off) fail("%s: SO_PEEK_OFF %d, want %d", what, g.peek_off, w.peek_off);
  if (g.fl != w.fl) fail("%s: F_GETFL %#o, want %#o", what, g.fl, w.fl);
}

inline std::string pattern(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = char(zdtm_mix(seed, i));
  return s;
}

inline void send_all(int fd, const std::string& s, const char* what) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) fail("%s: send: %s", what, strerror(errno));
    off += size_t(n);
  }
}
// One message of exactly the given contents (datagram, seqpacket).
inline void send_msg(int fd, const std::string& s, const char* what) {
  if (send(fd, s.data(), s.size(), MSG_NOSIGNAL) != ssize_t(s.size()))
    fail("%s: send %zu bytes: %s", what, s.size(), strerror(errno));
}
// Reads exactly n bytes of a stream (non-blocking: the data must be there).
inline std::string recv_exact(int fd, size_t n, const char* what) {
  std::string s(n, '\0');
  size_t off = 0;
  while (off < n) {
    ssize_t r = recv(fd, &s[off], n - off, MSG_DONTWAIT);
    if (r <= 0)
      fail("%s: got %zu of %zu bytes, then %s", what, off, n, r == 0 ? "EOF" : strerror(errno));
    off += size_t(r);
  }
  return s;
}
// The next message, its full length (MSG_TRUNC) checked against what was read.
inline std::string recv_msg(int fd, const char* what, std::string* from = nullptr) {
  static char buf[1 << 18];
  sockaddr_un a = {};
  socklen_t l = sizeof(a);
  ssize_t r =
      recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, reinterpret_cast<sockaddr*>(&a), &l);
  if (r < 0) fail("%s: recv: %s", what, strerror(errno));
  if (size_t(r) > sizeof(buf)) fail("%s: message of %zd bytes is too big", what, r);
  if (from) *from = from_addr(a, l);
  return std::string(buf, size_t(r));
}
inline void expect_eagain(int fd, const char* what) {
  char c;
  ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
  if (r != -1 || errno != EAGAIN)
    fail("%s: queue should be empty, recv gave %zd (%s)", what, r,
         r < 0 ? strerror(errno) : "data");
}
inline void expect_eof(int fd, const char* what) {
  char c;
  ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
  if (r != 0) fail("%s: want EOF, recv gave %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}
// Bytes queued for reading (SIOCINQ == FIONREAD).
inline int queued(int fd) {
  int n = -1;
  if (ioctl(fd, FIONREAD, &n)) fail("fd %d: FIONREAD: %s", fd, strerror(errno));
  return n;
}

}  // namespace sk
