// Dumping unix sockets (see unix_sk.h).
#include <dirent.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/sock_diag.h"
#include "criu/files/sk_common.h"
#include "criu/files/unix_sk.h"
#include "images/image_dir.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

namespace ckpt::files {
namespace {

constexpr size_t kStreamChunk = 1 << 20;  // bytes per record of stream data
constexpr size_t kMaxMessages = 1 << 20;  // a queue cannot really hold more

Result<UnixDiag> Diag(const FdContext& c) {
  auto d = UnixDiagByIno(uint32_t(c.st.st_ino));
  if (!d.ok() && d.error().err() == ENOENT)
    return Error("unix socket " + c.link +
                 " is not in ckpt's network namespace (sockets of other network namespaces are "
                 "not supported)");
  return d;
}

// "Key:\tvalue" of /proc/PID/status, as a number (-1 if absent).
long StatusField(const std::string& text, const char* key) {
  size_t p = text.find(std::string("\n") + key + ":");
  if (p == std::string::npos) return -1;
  return strtol(text.c_str() + p + strlen(key) + 2, nullptr, 10);
}

// The processes of the dumped tree: while dumping, ckpt has seized every
// one of them (zombies have no files), so the tree is the biggest set of
// processes traced by us around `member`: up through traced parents to
// the root, then all of its descendants.
Result<std::vector<pid_t>> DumpedTree(pid_t member) {
  const long me = getpid();
  auto parent_if_traced = [&](pid_t p) -> pid_t {
    auto st = io::ReadFile("/proc/" + std::to_string(p) + "/status");
    if (!st.ok()) return 0;
    long ppid = StatusField(*st, "PPid");
    if (ppid <= 1) return 0;
    auto pst = io::ReadFile("/proc/" + std::to_string(ppid) + "/status");
    if (!pst.ok() || StatusField(*pst, "TracerPid") != me) return 0;
    return pid_t(ppid);
  };
  pid_t root = member;
  for (pid_t p; (p = parent_if_traced(root)) != 0;) root = p;
  std::vector<pid_t> tree = {root};
  for (size_t i = 0; i < tree.size(); i++) {
    std::string task = "/proc/" + std::to_string(tree[i]) + "/task";
    DIR* d = opendir(task.c_str());
    if (!d) continue;  // gone or a zombie
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      auto kids = io::ReadFile(task + "/" + de->d_name + "/children");
      if (!kids.ok()) continue;
      for (const char* s = kids->c_str(); *s;) {
        char* end;
        long k = strtol(s, &end, 10);
        if (end == s) break;
        tree.push_back(pid_t(k));
        s = end;
      }
    }
    closedir(d);
  }
  return tree;
}

// Answers "does the dumped tree hold socket `ino`?", cheapest first: the
// fds of the task itself, then (once, on demand) every fd of the tree.
class TreeSockets {
 public:
  TreeSockets(const FdContext& c, const std::vector<FdContext>& all) : c_(c), all_(all) {}

  Result<bool> Holds(uint32_t ino) {
    for (const FdContext& f : all_)
      if (S_ISSOCK(f.st.st_mode) && f.st.st_ino == ino) return true;
    if (!scanned_) {
      // A socket in flight is ckpt's own fd: the tree is around the task
      // being dumped (whose fds are all_).
      pid_t member = all_.empty() ? c_.pid : all_[0].pid;
      TRY_ASSIGN(std::vector<pid_t> tree, DumpedTree(member));
      for (pid_t p : tree) {
        if (p == c_.pid) continue;
        std::string dir = "/proc/" + std::to_string(p) + "/fd";
        DIR* d = opendir(dir.c_str());
        if (!d) continue;
        while (dirent* de = readdir(d)) {
          if (de->d_name[0] == '.') continue;
          char link[64];
          ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
          if (n <= 0) continue;
          link[n] = 0;
          unsigned long v;
          if (sscanf(link, "socket:[%lu]", &v) == 1) inodes_.push_back(uint32_t(v));
        }
        closedir(d);
      }
      scanned_ = true;
    }
    for (uint32_t i : inodes_)
      if (i == ino) return true;
    return false;
  }

 private:
  const FdContext& c_;
  const std::vector<FdContext>& all_;
  bool scanned_ = false;
  std::vector<uint32_t> inodes_;
};

// Whom a socket is connected to, as far as the dump cares.
struct Peer {
  enum Kind { kNone, kInTree, kGone, kOutside, kWaiting } kind = kNone;
  uint32_t ino = 0;  // kInTree, kOutside: the peer; kWaiting: the listener
};

// A connected socket whose peer inode reads 0 is either connected to a
// closed peer, or a client whose connection waits in a listener's accept
// queue (the server side of it has no inode until accepted). Closing a
// stream peer shuts the survivor down both ways; a waiting client is not.
Result<Peer> PeerOf(const UnixDiag& d, TreeSockets& tree) {
  Peer p;
  if (!d.has_peer) return p;
  if (d.peer != 0) {
    TRY_ASSIGN(bool in, tree.Holds(d.peer));
    p.kind = in ? Peer::kInTree : Peer::kOutside;
    p.ino = d.peer;
    return p;
  }
  p.kind = Peer::kGone;
  if (d.type == SOCK_DGRAM || (d.shutdown & 3) == 3) return p;
  TRY_ASSIGN(std::vector<UnixDiag> ls, UnixDiagListeners());
  for (const UnixDiag& l : ls)
    for (uint32_t i : l.icons)
      if (i == d.ino) {
        TRY_ASSIGN(bool in, tree.Holds(l.ino));
        p.kind = in ? Peer::kWaiting : Peer::kOutside;
        p.ino = l.ino;
        return p;
      }
  return p;
}

Status RefuseOutside(const UnixDiag& d, const Peer& p, bool ext_unix_sk) {
  if (!ext_unix_sk)
    return Error("unix socket connected outside the dumped tree (use --ext-unix-sk)");
  if (d.type != SOCK_DGRAM)
    return Error(std::string("unix ") + UnixTypeName(d.type) +
                 " socket connected outside the dumped tree: only datagram sockets can be "
                 "connected again at restore, even with --ext-unix-sk");
  if (p.kind == Peer::kOutside) {
    TRY_ASSIGN(UnixDiag pd, UnixDiagByIno(p.ino), "its peer");
    if (pd.name.empty())
      return Error(
          "unix datagram socket connected outside the dumped tree to a socket without a "
          "name: it cannot be connected again at restore");
  }
  return Ok();
}

Status Check(const FdContext& c, const std::vector<FdContext>& all) {
  TRY_ASSIGN(UnixDiag d, Diag(c));
  TreeSockets tree(c, all);
  TRY_ASSIGN(Peer p, PeerOf(d, tree));
  if (p.kind == Peer::kOutside && p.ino && SocketInFlight(p.ino))
    return Error("unix " + std::string(UnixTypeName(d.type)) + " socket whose peer (socket:[" +
                 std::to_string(p.ino) +
                 "]) is held only by a message in flight in a unix socket queue (SCM_RIGHTS): "
                 "not supported");
  if (p.kind == Peer::kOutside) TRY(RefuseOutside(d, p, c.ext_unix_sk));
  if (p.kind == Peer::kWaiting && d.wqueue > 0)
    return Error(
        "unix socket waiting in the accept queue of a listener has sent data that "
        "cannot be read without accepting the connection: not supported");
  bool readable = d.state != TCP_LISTEN && (d.type == SOCK_DGRAM || d.state == TCP_ESTABLISHED);
  if (readable && (d.rqueue > 0 || d.type == SOCK_DGRAM)) {
    TRY_ASSIGN(UniqueFd fd, GrabTaskSocket(c.pid, c.fd));
    TRY(CheckQueueInFlight(fd.get(), d.type, d.shutdown & 1));
  }
  if (d.state == TCP_LISTEN && !c.ext_unix_sk)
    for (uint32_t i : d.icons) {
      if (i == 0) continue;
      TRY_ASSIGN(bool in, tree.Holds(i));
      if (!in)
        return Error(
            "unix socket listener has a connection from outside the dumped tree "
            "waiting to be accepted (use --ext-unix-sk to drop it)");
    }
  return Ok();
}

template <typename T>
Result<T> GetOpt(int fd, int opt, const char* name) {
  T v{};
  socklen_t l = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0)
    return Error::Errno(std::string("getsockopt ") + name);
  return v;
}

Status DumpOpts(int fd, pb::UnixSkOpts* o) {
  TRY_ASSIGN(int sndbuf, GetOpt<int>(fd, SO_SNDBUF, "SO_SNDBUF"));
  TRY_ASSIGN(int rcvbuf, GetOpt<int>(fd, SO_RCVBUF, "SO_RCVBUF"));
  TRY_ASSIGN(int passcred, GetOpt<int>(fd, SO_PASSCRED, "SO_PASSCRED"));
  TRY_ASSIGN(int passsec, GetOpt<int>(fd, SO_PASSSEC, "SO_PASSSEC"));
  TRY_ASSIGN(int reuse, GetOpt<int>(fd, SO_REUSEADDR, "SO_REUSEADDR"));
  TRY_ASSIGN(timeval rcvtimeo, GetOpt<timeval>(fd, SO_RCVTIMEO, "SO_RCVTIMEO"));
  TRY_ASSIGN(timeval sndtimeo, GetOpt<timeval>(fd, SO_SNDTIMEO, "SO_SNDTIMEO"));
  o->set_sndbuf(uint32_t(sndbuf));
  o->set_rcvbuf(uint32_t(rcvbuf));
  if (passcred) o->set_passcred(true);
  if (passsec) o->set_passsec(true);
  if (reuse) o->set_reuseaddr(true);
  auto us = [](const timeval& t) { return uint64_t(t.tv_sec) * 1000000 + uint64_t(t.tv_usec); };
  if (us(rcvtimeo)) o->set_rcvtimeo_us(us(rcvtimeo));
  if (us(sndtimeo)) o->set_sndtimeo_us(us(sndtimeo));
  auto pidfd = GetOpt<int>(fd, SO_PASSPIDFD, "SO_PASSPIDFD");  // Linux 6.5+
  if (pidfd.ok() && *pidfd) o->set_passpidfd(true);
  return Ok();
}

// Takes the files a peek received in flight (SCM_RIGHTS: the kernel gave
// us our own copies) into *fds, and closes pidfds (SCM_PIDFD: made again
// by the kernel for the receiver).
Status TakeControl(msghdr& m, std::vector<UniqueFd>* fds) {
  Status st = Ok();
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != SCM_PIDFD) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (c->cmsg_type == SCM_RIGHTS)
        fds->emplace_back(fd);
      else
        close(fd);
    }
  }
  if (m.msg_flags & MSG_CTRUNC) return Error("unix socket queue: control data truncated");
  return st;
}

// One datagram or packet at the peek position, without data: its length
// (MSG_TRUNC with no buffer, which does not move the peek offset) and
// sender.
Result<ssize_t> PeekLength(int fd, std::string* from, bool* ctrunc = nullptr) {
  sockaddr_un sa;
  iovec iov0 = {nullptr, 0};
  msghdr m0 = {};
  m0.msg_name = &sa;
  m0.msg_namelen = sizeof(sa);
  m0.msg_iov = &iov0;
  m0.msg_iovlen = 1;
  for (;;) {
    ssize_t len = recvmsg(fd, &m0, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    if (len >= 0) {
      *from = UnixNameOf(sa, m0.msg_namelen);
      if (ctrunc) *ctrunc = m0.msg_flags & MSG_CTRUNC;
      return len;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return -1;
    return Error::Errno("peek unix socket queue");
  }
}

// Reads the receive queue without consuming it. SO_PEEK_OFF makes each
// MSG_PEEK continue where the previous one stopped: a stream is read in
// chunks, datagrams and packets one by one (length first, then the
// message). The socket's peek offset is put back as it was.
//
// A zero-length datagram is marked "peeked" by the kernel the first time
// a peek returns it, and peeks at an offset skip marked ones from then on.
// So one at the head of the queue is looked for first with the peek offset
// off (that always shows the head); further in, one that was peeked before
// (by an earlier dump with --leave-running, or by the task) is not seen.
// A zero-length message cannot be peeked twice, so one carrying files in
// flight (its length peek reports control data cut off, on a socket that
// asks for no credentials) is refused.
}  // namespace

Result<std::vector<QueuedMessage>> PeekUnixQueue(int fd, int type, bool rcv_shut) {
  TRY_ASSIGN(int orig, GetOpt<int>(fd, SO_PEEK_OFF, "SO_PEEK_OFF"));
  struct PutBack {
    int fd, v;
    ~PutBack() { setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof(v)); }
  } put_back{fd, orig};
  std::vector<QueuedMessage> out;
  bool asks_creds = false;
  for (int opt : {SO_PASSCRED, SO_PASSSEC, SO_PASSPIDFD}) {
    auto v = GetOpt<int>(fd, opt, "SO_PASS*");
    asks_creds |= !v.ok() || *v;
  }
  auto empty_with_files = [&](ssize_t len, bool ctrunc) -> Status {
    if (len == 0 && ctrunc && !asks_creds)
      return Error(
          "unix socket queue holds a zero-length message carrying files in flight: not "
          "supported");
    return Ok();
  };
  if (type != SOCK_STREAM) {
    int off = -1;
    if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) < 0)
      return Error::Errno("set SO_PEEK_OFF");
    std::string from;
    bool ctrunc = false;
    TRY_ASSIGN(ssize_t head, PeekLength(fd, &from, &ctrunc));
    if (!(type == SOCK_SEQPACKET && rcv_shut)) TRY(empty_with_files(head, ctrunc));
    if (head == 0 && !(type == SOCK_SEQPACKET && rcv_shut)) {
      out.emplace_back();
      out.back().from = from;
    }
  }
  int zero = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)) < 0)
    return Error::Errno("set SO_PEEK_OFF");
  alignas(cmsghdr) char ctl[4096];
  if (type == SOCK_STREAM) {
    char oob;
    if (recv(fd, &oob, 1, MSG_OOB | MSG_PEEK | MSG_DONTWAIT) >= 0)
      return Error("unix socket has an out-of-band byte queued (MSG_OOB): not supported");
    std::string buf(kStreamChunk, '\0');
    for (;;) {
      iovec iov = {buf.data(), buf.size()};
      msghdr m = {};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      ssize_t n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        return Error::Errno("peek unix socket queue");
      }
      std::vector<UniqueFd> fds;
      TRY(TakeControl(m, &fds));
      if (n == 0) break;  // end of stream: the peer shut down or closed
      out.emplace_back();
      out.back().data = buf.substr(0, size_t(n));
      out.back().fds = std::move(fds);
    }
    return out;
  }
  for (;;) {
    if (out.size() >= kMaxMessages) return Error("unix socket queue: too many messages");
    QueuedMessage msg;
    bool ctrunc = false;
    TRY_ASSIGN(ssize_t len, PeekLength(fd, &msg.from, &ctrunc));
    if (len < 0) break;
    // A seqpacket socket shut down for reading reads 0 at its end, which
    // looks like an empty packet: take it as the end there.
    if (len == 0 && type == SOCK_SEQPACKET && rcv_shut) break;
    TRY(empty_with_files(len, ctrunc));
    if (len > 0) {
      msg.data.resize(size_t(len));
      iovec iov = {msg.data.data(), msg.data.size()};
      msghdr m = {};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctl;
      m.msg_controllen = sizeof(ctl);
      ssize_t n;
      do {
        n = recvmsg(fd, &m, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      } while (n < 0 && errno == EINTR);
      if (n < 0) return Error::Errno("peek unix socket message");
      TRY(TakeControl(m, &msg.fds));
      if (n != len)
        return Error("unix socket queue changed while it was read (" + std::to_string(n) +
                     " bytes, want " + std::to_string(len) + ")");
    }
    out.push_back(std::move(msg));
  }
  return out;
}

namespace {

// Kernel dev_t (as sock_diag gives it) against a stat st_dev.
bool SameDev(uint32_t kdev, dev_t d) {
  return (kdev >> 20) == major(d) && (kdev & 0xfffff) == minor(d);
}

void DumpPath(const FdContext& c, const UnixDiag& d, const std::string& name, pb::UnixSkEntry* u) {
  std::string path = name;
  if (name[0] != '/') {
    auto cwd = io::ReadLink("/proc/" + std::to_string(c.pid) + "/cwd");
    if (!cwd.ok()) return;
    u->set_path_dir(*cwd);
    path = *cwd + "/" + name;
  }
  // Through the task's root, in case it is chrooted.
  struct stat st;
  std::string p = "/proc/" + std::to_string(c.pid) + "/root" + path;
  if (!d.has_vfs || stat(p.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != d.vfs_ino ||
      !SameDev(d.vfs_dev, st.st_dev))
    return;  // the file was removed or replaced since bind()
  u->set_path_alive(true);
  u->set_path_mode(st.st_mode & 07777);
  u->set_path_uid(st.st_uid);
  u->set_path_gid(st.st_gid);
}

Status Dump(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  TRY_ASSIGN(UnixDiag d, Diag(c));
  TRY_ASSIGN(UniqueFd fd, GrabTaskSocket(c.pid, c.fd));
  TreeSockets tree(c, ctx.task_fds());
  TRY_ASSIGN(Peer p, PeerOf(d, tree));
  pb::UnixSkEntry* u = e->mutable_unix_sk();
  u->set_ino(c.st.st_ino);
  u->set_type(uint32_t(d.type));
  u->set_state(uint32_t(d.state));
  u->set_flags(c.info.flags);
  sockaddr_un sa;
  socklen_t sl = sizeof(sa);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &sl) < 0)
    return Error::Errno("getsockname");
  std::string name = UnixNameOf(sa, sl);
  if (!name.empty()) u->set_name(name);
  if (IsPathName(name)) DumpPath(c, d, name, u);
  switch (p.kind) {
    case Peer::kNone:
      break;
    case Peer::kInTree:
      u->set_peer_ino(p.ino);
      break;
    case Peer::kGone:
      u->set_peer_gone(true);
      break;
    case Peer::kWaiting:
      u->set_waiting(true);
      break;
    case Peer::kOutside: {
      TRY(RefuseOutside(d, p, c.ext_unix_sk));  // the check ran before; the tree may have changed since
      TRY_ASSIGN(UnixDiag pd, UnixDiagByIno(p.ino), "its peer");
      std::string ext = pd.name;
      if (IsPathName(ext)) {
        ext = ext.substr(0, ext.find('\0'));
        if (ext[0] != '/') {
          TRY_ASSIGN(std::string cwd, io::ReadLink("/proc/" + std::to_string(c.pid) + "/cwd"));
          ext = cwd + "/" + ext;
        }
      }
      u->set_ext_peer_name(ext);
      LOG_INFO(Where(c) + ": unix socket connected outside the tree, to " + PrintableName(ext) +
               ": it will be connected to that name again at restore (--ext-unix-sk)");
      break;
    }
  }
  if (d.state == TCP_LISTEN) {
    u->set_backlog(d.wqueue);
    for (uint32_t i : d.icons) {
      bool in = false;
      if (i != 0) {
        TRY_ASSIGN(in, tree.Holds(i));
      }
      if (i != 0 && !in) {
        LOG_WARN(Where(c) + ": a connection from outside the dumped tree waiting to be accepted " +
                 "is dropped (--ext-unix-sk)");
        continue;
      }
      u->add_pending(i);
    }
  }
  u->set_shutdown(d.shutdown);
  TRY(DumpOpts(fd.get(), u->mutable_opts()));
  TRY_ASSIGN(int peek_off, GetOpt<int>(fd.get(), SO_PEEK_OFF, "SO_PEEK_OFF"));
  u->mutable_opts()->set_peek_off(peek_off);

  // Unread data: connected sockets, and datagram sockets in any state.
  bool readable = d.state != TCP_LISTEN && (d.type == SOCK_DGRAM || d.state == TCP_ESTABLISHED);
  if (!readable) return Ok();
  TRY_ASSIGN(std::vector<QueuedMessage> q, PeekUnixQueue(fd.get(), d.type, d.shutdown & 1));
  if (q.empty()) return Ok();
  if (p.kind == Peer::kOutside)
    return Error("unix datagram socket connected outside the dumped tree holds " +
                 std::to_string(q.size()) +
                 " unread messages; only its peer could queue them again at restore: not "
                 "supported");
  uint64_t bytes = 0;
  size_t in_flight = 0;
  // Files in flight first: each is a file entry of its own (written as
  // it is dumped), which the message names.
  std::vector<pb::UnixSkMessage> recs(q.size());
  for (size_t i = 0; i < q.size(); i++) {
    QueuedMessage& m = q[i];
    for (size_t k = 0; k < m.fds.size(); k++) {
      std::string what = "unix socket queue message " + std::to_string(i + 1) +
                         ", file in flight " + std::to_string(k + 1);
      TRY_ASSIGN(uint32_t id, ctx.DumpHeldFile(std::move(m.fds[k]), what));
      recs[i].add_fds(id);
      in_flight++;
    }
  }
  TRY_ASSIGN(images::ImageWriter w, ctx.dir().OpenWriter(images::ImageType::kUnixSkQueue, e->id()));
  for (size_t i = 0; i < q.size(); i++) {
    pb::UnixSkMessage& r = recs[i];
    r.set_data(q[i].data);
    if (!q[i].from.empty()) r.set_from(q[i].from);
    TRY(w.Write(r));
    bytes += q[i].data.size();
  }
  TRY(w.Close());
  // Stream and seqpacket: sock_diag counts the bytes of the whole queue.
  if (d.type != SOCK_DGRAM && bytes != d.rqueue)
    return Error("unix socket queue holds " + std::to_string(d.rqueue) + " bytes, read " +
                 std::to_string(bytes));
  u->set_has_queue(true);
  LOG_DBG(Where(c) + ": " + std::to_string(q.size()) + " queued messages, " +
          std::to_string(bytes) + " bytes, " + std::to_string(in_flight) + " files in flight");
  return Ok();
}

}  // namespace

Status CheckUnixSk(const FdContext& c, const std::vector<FdContext>& all) {
  TRY(Check(c, all), Where(c));
  return Ok();
}

Status DumpUnixSk(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  return Dump(c, ctx, e);
}

}  // namespace ckpt::files
