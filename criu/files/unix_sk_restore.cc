// Restoring unix sockets (see unix_sk.h): every unix socket of the dump is
// built at once, when the first entry is opened, because sockets are made
// in pairs and groups (socketpair, listener + accept, clients waiting in
// an accept queue) and their queues are refilled from their peers.
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <set>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/sk_common.h"
#include "criu/files/sock_diag.h"
#include "criu/files/unix_sk.h"
#include "criu/ns/user_ns.h"
#include "images/image_dir.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif

namespace ckpt::files {
namespace {

std::string Key(uint64_t ino) { return "unix:" + std::to_string(ino); }

struct Sk {
  uint32_t id = 0;  // file entry
  pb::UnixSkEntry e;
  UniqueFd fd;
  UniqueFd partner;       // a stand-in peer, closed once the queue is refilled (peer gone)
  bool accepted = false;  // gets its name through accept() from a listener on it
  int type() const { return int(e.type()); }
  bool named() const { return !e.name().empty(); }
  std::string what() const {
    return std::string("unix ") + UnixTypeName(type()) + " socket " + PrintableName(e.name()) +
           " (file " + std::to_string(id) + ")";
  }
};

// Runs fn with the working directory at dir (for relative socket names),
// then goes back.
template <typename F>
Status InDir(const std::string& dir, F fn) {
  if (dir.empty()) return fn();
  UniqueFd here(open(".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!here) return Error::Errno("open current directory");
  if (chdir(dir.c_str()) < 0) return Error::Errno("chdir " + dir);
  Status s = fn();
  if (fchdir(here.get()) < 0) return Error::Errno("fchdir back");
  return s;
}

Result<UniqueFd> NewSocket(int type) {
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd) return Error::Errno("socket(AF_UNIX)");
  return fd;
}

Status SetNonblock(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
    return Error::Errno("fcntl O_NONBLOCK");
  return Ok();
}

// Connects fd to a name, without ever waiting: a listener with room takes
// the connection at once.
Status Connect(int fd, const std::string& name, const std::string& dir) {
  TRY(SetNonblock(fd, true));
  Status s = InDir(IsPathName(name) && name[0] != '/' ? dir : "", [&]() -> Status {
    UnixAddr a = MakeUnixAddr(name);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a.sa), a.len) < 0)
      return Error::Errno("connect to " + PrintableName(name));
    return Ok();
  });
  TRY(SetNonblock(fd, false));
  return s;
}

Status SetBuf(int fd, int opt, int force, uint32_t want, const char* name) {
  int cur = 0;
  socklen_t l = sizeof(cur);
  if (getsockopt(fd, SOL_SOCKET, opt, &cur, &l) == 0 && uint32_t(cur) == want) return Ok();
  (void)opt;
  int half = int(want / 2);  // the kernel doubles what it is given
  return SetBufForce(fd, force, half, name);
}

// Lets fd queue `bytes` more (in `count` messages) without blocking.
Status RoomToSend(int fd, uint64_t bytes, size_t count) {
  uint64_t need = 2 * (bytes + uint64_t(count) * 1024) + (1 << 20);
  int cur = 0;
  socklen_t l = sizeof(cur);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &l) == 0 && uint64_t(cur) >= need) return Ok();
  int half = int(std::min<uint64_t>(need / 2 + 1, INT_MAX / 2));
  return SetBufForce(fd, SO_SNDBUFFORCE, half, "SO_SNDBUFFORCE");
}

// Sends data as one message (or, on a stream, as many sends as it takes),
// with `files` attached to the first send (SCM_RIGHTS) when there are any.
Status SendAll(int fd, const std::string& data, const UnixAddr* to, bool one_message,
               const std::vector<int>& files = {}) {
  size_t off = 0;
  bool attach = !files.empty();
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 253)];
  if (files.size() > 253) return Error("more than 253 files in flight with one message");
  do {
    iovec iov = {const_cast<char*>(data.data()) + off, data.size() - off};
    msghdr m = {};
    m.msg_name = to ? const_cast<sockaddr_un*>(&to->sa) : nullptr;
    m.msg_namelen = to ? to->len : 0;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    if (attach) {
      memset(ctl, 0, sizeof(ctl));
      m.msg_control = ctl;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * files.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * files.size());
      memcpy(CMSG_DATA(c), files.data(), sizeof(int) * files.size());
    }
    ssize_t n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno(attach ? "send with files in flight" : "send");
    }
    attach = false;
    if (one_message && size_t(n) != data.size()) return Error("message sent in part");
    off += size_t(n);
  } while (off < data.size());
  return Ok();
}

class Builder {
 public:
  explicit Builder(RestoreContext& ctx) : ctx_(ctx) {}
  Status Run();

 private:
  Status Load();
  Status Check();
  Status RemoveStale();
  Status Bind(Sk& s);
  Status BindAs(int fd, const std::string& name, const std::string& dir, bool alive,
                const pb::UnixSkEntry* owner);
  Sk* ListenerFor(int type, const std::string& name);
  Status PickAcceptedSides();
  Status MakeListeners();
  Status MakeAccepted();
  Status MakeWaiting();
  Status MakeRest();
  Status ConnectDgrams();
  Status Refill(Sk& s);
  Result<std::vector<int>> FilesOf(const Sk& s, const pb::UnixSkMessage& m);
  Status Finish();
  Status ApplyOpts(Sk& s);
  Sk& Get(uint64_t ino) { return sks_.at(ino); }
  Status Socket(Sk& s) {
    TRY_ASSIGN(s.fd, NewSocket(s.type()));
    return Ok();
  }

  // Paths we bound, so the path of a socket that lost its file at dump
  // can be removed again, and the one that kept it gets its mode back.
  struct PathUse {
    ino_t ino = 0;
    bool alive = false;
    const pb::UnixSkEntry* owner = nullptr;  // for mode and owner
  };

  RestoreContext& ctx_;
  std::map<uint64_t, Sk> sks_;  // by dumped inode
  std::map<std::string, PathUse> paths_;
};

std::string PathOf(const std::string& name, const std::string& dir) {
  return name[0] == '/' ? name : dir + "/" + name;
}

Status Builder::Load() {
  TRY_ASSIGN(images::ImageReader r, ctx_.dir().OpenReader(images::ImageType::kFiles));
  for (;;) {
    pb::FileEntry fe;
    TRY_ASSIGN(bool more, r.Read(fe));
    if (!more) break;
    if (fe.kind() != pb::FILE_UNIX_SK) continue;
    Sk s;
    s.id = fe.id();
    s.e = fe.unix_sk();
    uint64_t ino = s.e.ino();
    if (!sks_.emplace(ino, std::move(s)).second)
      return Error("unix socket " + std::to_string(ino) + " has two file entries");
  }
  return Ok();
}

// What single entries cannot show: peers and waiting clients are entries
// of this dump, of the same type, and agree with each other.
Status Builder::Check() {
  std::set<uint64_t> waiting;
  for (auto& [ino, s] : sks_) {
    const pb::UnixSkEntry& e = s.e;
    if (e.peer_ino()) {
      auto it = sks_.find(e.peer_ino());
      if (it == sks_.end() || it->second.type() != s.type())
        return Error(s.what() + ": its peer " + std::to_string(e.peer_ino()) +
                     " is not a socket of the dump of the same type");
      const pb::UnixSkEntry& pe = it->second.e;
      if (s.type() != SOCK_DGRAM && pe.peer_ino() != ino)
        return Error(s.what() + ": its peer is connected elsewhere");
      if (s.type() == SOCK_DGRAM && pe.peer_ino() != ino && e.peer_ino() != ino &&
          pe.name().empty())
        return Error(s.what() +
                     ": connected to a socket without a name that is not "
                     "connected back: not supported");
      if (s.type() == SOCK_DGRAM && e.has_queue() && pe.peer_ino() != ino && e.name().empty())
        return Error(s.what() +
                     ": unnamed, with unread messages from a peer that is not "
                     "connected back: they cannot be queued again");
    }
    for (uint64_t p : e.pending()) {
      if (!p) continue;
      auto it = sks_.find(p);
      if (it == sks_.end() || it->second.type() != s.type() || !it->second.e.waiting() ||
          !waiting.insert(p).second)
        return Error(s.what() + ": waiting client " + std::to_string(p) +
                     " is not a waiting socket of the dump");
    }
    if (s.type() == SOCK_DGRAM && e.has_queue() && !e.peer_ino() && !e.peer_gone() &&
        e.name().empty())
      return Error(s.what() +
                   ": unconnected and unnamed with unread messages: they cannot be "
                   "queued again");
    if (e.waiting() && e.has_queue())
      return Error(s.what() + ": waiting to be accepted, with unread data");
  }
  for (auto& [ino, s] : sks_)
    if (s.e.waiting() && !waiting.count(ino))
      return Error(s.what() + ": waits to be accepted by a listener that is not in the dump");
  return Ok();
}

// Stale socket files where sockets will be bound are removed: only socket
// files, and only those no live socket is bound to.
Status Builder::RemoveStale() {
  std::set<std::string> done;
  std::vector<UnixDiag> bound;
  bool asked = false;
  for (auto& [ino, s] : sks_) {
    if (!IsPathName(s.e.name())) continue;
    std::string p = PathOf(s.e.name(), s.e.path_dir());
    if (!done.insert(p).second) continue;
    struct stat st;
    if (lstat(p.c_str(), &st) < 0) continue;
    if (!S_ISSOCK(st.st_mode)) return Error(s.what() + ": " + p + " exists and is not a socket");
    if (!asked) {
      TRY_ASSIGN(bound, UnixDiagBound());
      asked = true;
    }
    for (const UnixDiag& d : bound)
      if (d.vfs_ino == st.st_ino && (d.vfs_dev >> 20) == major(st.st_dev) &&
          (d.vfs_dev & 0xfffff) == minor(st.st_dev))
        return Error(s.what() + ": " + p + " belongs to a live socket (inode " +
                     std::to_string(d.ino) + ")");
    if (unlink(p.c_str()) < 0) return Error::Errno("unlink stale socket file " + p);
    LOG_DBG("removed stale socket file " + p);
  }
  return Ok();
}

// Binds fd to name. A path bound before by this build for a socket that
// had lost its file at dump is unlinked first (that socket keeps its name).
Status Builder::BindAs(int fd, const std::string& name, const std::string& dir, bool alive,
                       const pb::UnixSkEntry* owner) {
  if (!IsPathName(name)) {
    UnixAddr a = MakeUnixAddr(name);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a.sa), a.len) < 0)
      return Error::Errno("bind to " + PrintableName(name));
    return Ok();
  }
  std::string p = PathOf(name, dir);
  auto it = paths_.find(p);
  if (it != paths_.end()) {
    struct stat st;
    if (lstat(p.c_str(), &st) == 0 && st.st_ino == it->second.ino) {
      if (it->second.alive)
        return Error("two sockets of the dump need the file " + p + ": not supported");
      if (unlink(p.c_str()) < 0) return Error::Errno("unlink " + p);
    }
  }
  auto bind_it = [&]() -> Status {
    UnixAddr a = MakeUnixAddr(name);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a.sa), a.len) < 0)
      return Error::Errno("bind to " + p);
    return Ok();
  };
  // In the tree's user namespace the socket file is made with its owner's
  // fs ids (criu/ns/user_ns.h): one of ckpt's could not be given away.
  const pb::UserNsEntry* u = ctx_.user_ns();
  auto bind_as_owner = [&]() -> Status {
    if (!u) return bind_it();
    bool own = owner && owner->has_path_mode();
    return ns::WithFsIds(own ? ns::UidInside(u, owner->path_uid()) : u->uid_map(0).first(),
                         own ? ns::GidInside(u, owner->path_gid()) : u->gid_map(0).first(),
                         bind_it);
  };
  TRY(InDir(name[0] == '/' ? "" : dir, bind_as_owner));
  struct stat st;
  if (lstat(p.c_str(), &st) < 0) return Error::Errno("stat " + p);
  paths_[p] = PathUse{st.st_ino, alive, owner};
  return Ok();
}

Status Builder::Bind(Sk& s) {
  if (!s.named()) return Ok();
  TRY(BindAs(s.fd.get(), s.e.name(), s.e.path_dir(), s.e.path_alive(), &s.e), s.what());
  return Ok();
}

Sk* Builder::ListenerFor(int type, const std::string& name) {
  for (auto& [ino, s] : sks_)
    if (s.e.state() == TCP_LISTEN && s.type() == type && s.e.name() == name) return &s;
  return nullptr;
}

// A named end of a connection got its name from accept() (or bind() after
// socketpair(), which looks the same). Of two named ends, the one named
// like a listener, or like other connections, is the accepted one.
Status Builder::PickAcceptedSides() {
  std::map<std::pair<int, std::string>, int> uses;
  for (auto& [ino, s] : sks_)
    if (s.type() != SOCK_DGRAM && s.e.state() == TCP_ESTABLISHED && s.named() && !s.e.waiting())
      uses[{s.type(), s.e.name()}]++;
  for (auto& [ino, s] : sks_) {
    if (s.type() == SOCK_DGRAM || s.e.state() != TCP_ESTABLISHED || s.e.waiting() || !s.named())
      continue;
    if (s.e.peer_gone()) {
      s.accepted = true;
      continue;
    }
    Sk& p = Get(s.e.peer_ino());
    if (!p.named()) {
      s.accepted = true;
      continue;
    }
    if (p.accepted || ino > s.e.peer_ino()) continue;  // decided with the peer
    auto score = [&](Sk& x) {
      return (ListenerFor(x.type(), x.e.name()) ? 1000 : 0) + uses[{x.type(), x.e.name()}];
    };
    if (score(p) > score(s))
      p.accepted = true;
    else
      s.accepted = true;
  }
  return Ok();
}

Status Builder::MakeListeners() {
  for (auto& [ino, s] : sks_) {
    if (s.e.state() != TCP_LISTEN) continue;
    TRY(Socket(s));
    TRY(Bind(s));
    if (listen(s.fd.get(), int(s.e.backlog())) < 0) return Error::Errno(s.what() + ": listen");
  }
  return Ok();
}

// Connections whose accepted end has a name: through the listener of that
// name, or a temporary one (closed again; its file kept only if the
// connections' path still existed at dump).
Status Builder::MakeAccepted() {
  std::map<std::pair<int, std::string>, std::vector<Sk*>> groups;
  for (auto& [ino, s] : sks_)
    if (s.accepted) groups[{s.type(), s.e.name()}].push_back(&s);
  for (auto& [key, members] : groups) {
    const auto& [type, name] = key;
    const Sk& first = *members[0];
    Sk* real = ListenerFor(type, name);
    // A relative name means what it meant to the listener's process.
    const std::string& dir = real ? real->e.path_dir() : first.e.path_dir();
    UniqueFd temp;
    int lfd;
    if (real) {
      lfd = real->fd.get();
    } else {
      TRY_ASSIGN(temp, NewSocket(type));
      bool alive = false;
      for (Sk* m : members) alive |= m->e.path_alive();
      TRY(BindAs(temp.get(), name, dir, alive, &first.e), first.what() + ": temporary listener");
      if (listen(temp.get(), 16) < 0) return Error::Errno("listen");
      lfd = temp.get();
    }
    for (Sk* a : members) {
      UniqueFd client;
      Sk* peer = a->e.peer_gone() ? nullptr : &Get(a->e.peer_ino());
      if (peer) {
        TRY(Socket(*peer));
        TRY(Bind(*peer));
      } else {
        TRY_ASSIGN(client, NewSocket(type));
      }
      int cfd = peer ? peer->fd.get() : client.get();
      TRY(Connect(cfd, name, dir), a->what());
      a->fd.reset(accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!a->fd) return Error::Errno(a->what() + ": accept");
      TRY(SetNonblock(a->fd.get(), false));
      if (!peer) a->partner = std::move(client);
    }
    if (temp) {
      // Closing the temporary listener leaves its file, as a listener that
      // closed leaves its own.
      temp.reset();
      if (IsPathName(name)) {
        std::string p = PathOf(name, dir);
        if (!paths_[p].alive) {
          if (unlink(p.c_str()) < 0) return Error::Errno("unlink " + p);
          paths_.erase(p);
        }
      }
    }
  }
  return Ok();
}

// Clients waiting in accept queues, connected in queue order after the
// accepted ones have left the queue; a client that had closed is played by
// a socket closed right away.
Status Builder::MakeWaiting() {
  for (auto& [ino, l] : sks_) {
    if (l.e.state() != TCP_LISTEN) continue;
    for (uint64_t p : l.e.pending()) {
      if (p == 0) {
        TRY_ASSIGN(UniqueFd t, NewSocket(l.type()));
        TRY(Connect(t.get(), l.e.name(), l.e.path_dir()), l.what() + ": closed waiting client");
        continue;
      }
      Sk& c = Get(p);
      TRY(Socket(c));
      TRY(Bind(c));
      TRY(Connect(c.fd.get(), l.e.name(), l.e.path_dir()), c.what());
    }
  }
  return Ok();
}

Status Builder::MakeRest() {
  for (auto& [ino, s] : sks_) {
    if (s.fd) continue;
    const pb::UnixSkEntry& e = s.e;
    bool pair_peer = e.peer_ino() && e.peer_ino() != ino && !Get(e.peer_ino()).fd &&
                     Get(e.peer_ino()).e.peer_ino() == ino;
    if (pair_peer || e.peer_gone()) {
      // socketpair(): both ends of a connection (stream, seqpacket, or
      // datagram sockets connected to each other), or the socket and a
      // stand-in for its closed peer.
      int sv[2];
      if (socketpair(AF_UNIX, s.type() | SOCK_CLOEXEC, 0, sv) < 0)
        return Error::Errno(s.what() + ": socketpair");
      s.fd.reset(sv[0]);
      if (pair_peer) {
        Sk& p = Get(e.peer_ino());
        p.fd.reset(sv[1]);
        TRY(Bind(s));
        TRY(Bind(p));
      } else {
        s.partner.reset(sv[1]);
        TRY(Bind(s));
      }
      continue;
    }
    if (s.type() != SOCK_DGRAM && e.state() == TCP_ESTABLISHED)
      return Error(s.what() + ": connection left unmade");  // Check() should have said
    TRY(Socket(s));
    TRY(Bind(s));
  }
  return Ok();
}

// Datagram sockets connected to a peer that is not connected back (or to
// themselves): by the peer's name.
Status Builder::ConnectDgrams() {
  for (auto& [ino, s] : sks_) {
    if (s.type() != SOCK_DGRAM || !s.e.peer_ino()) continue;
    Sk& p = Get(s.e.peer_ino());
    if (&p != &s && p.e.peer_ino() == ino) continue;  // a socketpair
    TRY(Connect(s.fd.get(), p.e.name(), p.e.path_dir()), s.what());
  }
  return Ok();
}

// The fds of the files in flight with m: a unix socket of the dump is the
// one made here; any other file is opened now if it is not yet.
Result<std::vector<int>> Builder::FilesOf(const Sk& s, const pb::UnixSkMessage& m) {
  std::vector<int> out;
  for (uint32_t id : m.fds()) {
    std::string what = s.what() + ": file " + std::to_string(id) + " in flight";
    const pb::FileEntry* e = ctx_.EntryOf(id);
    if (!e) return Error(what + " is not in the image");
    if (e->kind() == pb::FILE_UNIX_SK) {
      auto it = sks_.find(e->unix_sk().ino());
      if (it == sks_.end() || !it->second.fd) return Error(what + ": its socket was not made");
      out.push_back(it->second.fd.get());
      continue;
    }
    TRY_ASSIGN(int fd, ctx_.OpenNow(id), what);
    out.push_back(fd);
  }
  return out;
}

// Sends the dumped queue of s again, from the socket the kernel lets send
// to it: its peer (or stand-in) when connected, otherwise the original
// sender when it is a socket of the dump, or a temporary socket bound to
// the sender's name when that name is free.
Status Builder::Refill(Sk& s) {
  if (!s.e.has_queue()) return Ok();
  TRY_ASSIGN(images::ImageReader r, ctx_.dir().OpenReader(images::ImageType::kUnixSkQueue, s.id));
  std::vector<pb::UnixSkMessage> q;
  uint64_t bytes = 0;
  for (;;) {
    pb::UnixSkMessage m;
    TRY_ASSIGN(bool more, r.Read(m));
    if (!more) break;
    bytes += m.data().size();
    q.push_back(std::move(m));
  }
  bool packets = s.type() != SOCK_STREAM;
  UnixAddr self = MakeUnixAddr(s.e.name());
  int via = -1;
  const UnixAddr* to = nullptr;
  if (s.partner) {
    via = s.partner.get();
  } else if (s.e.peer_ino()) {
    Sk& p = Get(s.e.peer_ino());
    via = p.fd.get();
    if (s.type() == SOCK_DGRAM && p.e.peer_ino() != s.e.ino()) to = &self;
  }
  // A relative name is reached from its directory.
  return InDir(
      IsPathName(s.e.name()) && s.e.name()[0] != '/' ? s.e.path_dir() : "", [&]() -> Status {
        if (via >= 0) {
          TRY(RoomToSend(via, bytes, q.size()));
          for (const auto& m : q) {
            TRY_ASSIGN(std::vector<int> files, FilesOf(s, m));
            TRY(SendAll(via, m.data(), to, packets, files), s.what() + ": refill");
          }
          return Ok();
        }
        // An unconnected datagram socket: message by message, from its sender.
        for (const auto& m : q) {
          int from = -1;
          UniqueFd temp;
          std::string tmp_path;
          if (m.has_from() && !m.from().empty()) {
            for (auto& [ino, o] : sks_)
              if (o.type() == SOCK_DGRAM && o.e.name() == m.from() && o.fd) {
                from = o.fd.get();
                break;
              }
          }
          if (from < 0) {
            TRY_ASSIGN(temp, NewSocket(SOCK_DGRAM));
            if (m.has_from() && !m.from().empty() &&
                (!IsPathName(m.from()) || m.from()[0] == '/')) {
              struct stat st;
              UnixAddr a = MakeUnixAddr(m.from());
              if (IsPathName(m.from()) && lstat(m.from().c_str(), &st) == 0) {
                // taken: send unnamed
              } else if (bind(temp.get(), reinterpret_cast<sockaddr*>(&a.sa), a.len) == 0 &&
                         IsPathName(m.from())) {
                tmp_path = m.from();
              }
            }
            from = temp.get();
          }
          TRY(RoomToSend(from, m.data().size(), 1));
          TRY_ASSIGN(std::vector<int> files, FilesOf(s, m));
          Status st = SendAll(from, m.data(), &self, true, files);
          if (!tmp_path.empty()) unlink(tmp_path.c_str());
          if (!st.ok()) {
            if (st.error().err() == EAGAIN)
              return Error(s.what() + ": cannot queue " + std::to_string(q.size()) +
                           " datagrams again: more than net.unix.max_dgram_qlen allows");
            return std::move(st.error().Context(s.what() + ": refill"));
          }
        }
        return Ok();
      });
}

Status Builder::ApplyOpts(Sk& s) {
  const pb::UnixSkOpts& o = s.e.opts();
  int fd = s.fd.get();
  std::string w = s.what();
  TRY(SetBuf(fd, SO_SNDBUF, SO_SNDBUFFORCE, o.sndbuf(), "SO_SNDBUF"), w);
  TRY(SetBuf(fd, SO_RCVBUF, SO_RCVBUFFORCE, o.rcvbuf(), "SO_RCVBUF"), w);
  auto flag = [&](int opt, bool on, const char* name) -> Status {
    int v = on;
    if (!on) return Ok();
    if (setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v)) < 0)
      return Error::Errno(w + ": set " + name);
    return Ok();
  };
  TRY(flag(SO_PASSCRED, o.passcred(), "SO_PASSCRED"));
  TRY(flag(SO_PASSSEC, o.passsec(), "SO_PASSSEC"));
  TRY(flag(SO_REUSEADDR, o.reuseaddr(), "SO_REUSEADDR"));
  TRY(flag(SO_PASSPIDFD, o.passpidfd(), "SO_PASSPIDFD"));
  auto timeo = [&](int opt, uint64_t us, const char* name) -> Status {
    if (!us) return Ok();
    timeval t = {time_t(us / 1000000), suseconds_t(us % 1000000)};
    if (setsockopt(fd, SOL_SOCKET, opt, &t, sizeof(t)) < 0)
      return Error::Errno(w + ": set " + name);
    return Ok();
  };
  TRY(timeo(SO_RCVTIMEO, o.rcvtimeo_us(), "SO_RCVTIMEO"));
  TRY(timeo(SO_SNDTIMEO, o.sndtimeo_us(), "SO_SNDTIMEO"));
  if (o.has_peek_off() && o.peek_off() >= 0) {
    int v = o.peek_off();
    if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &v, sizeof(v)) < 0)
      return Error::Errno(w + ": set SO_PEEK_OFF");
  }
  return Ok();
}

Status Builder::Finish() {
  // Datagram sockets whose peer is outside the tree: by its name. Not
  // fatal if that socket is gone: the socket stays unconnected.
  for (auto& [ino, s] : sks_) {
    if (s.e.ext_peer_name().empty()) continue;
    Status st = Connect(s.fd.get(), s.e.ext_peer_name(), "");
    if (!st.ok())
      LOG_WARN(s.what() + ": its peer outside the tree is gone (" + st.error().message() +
               "): left unconnected");
  }
  // Stand-ins for closed peers go, which shuts connections down as the
  // peer's close did.
  for (auto& [ino, s] : sks_) s.partner.reset();
  for (auto& [ino, s] : sks_) {
    uint32_t sh = s.e.shutdown();
    if (!sh || s.e.state() == TCP_LISTEN) continue;
    int how = sh == 3 ? SHUT_RDWR : sh == 1 ? SHUT_RD : SHUT_WR;
    if (shutdown(s.fd.get(), how) < 0 && errno != ENOTCONN)
      return Error::Errno(s.what() + ": shutdown");
  }
  for (auto& [p, u] : paths_) {
    struct stat st;
    if (lstat(p.c_str(), &st) < 0 || st.st_ino != u.ino) continue;  // not ours any more
    if (!u.alive) {
      if (unlink(p.c_str()) < 0) return Error::Errno("unlink " + p);
      continue;
    }
    if (u.owner && u.owner->has_path_mode()) {
      if (chmod(p.c_str(), u.owner->path_mode()) < 0) return Error::Errno("chmod " + p);
      const pb::UserNsEntry* un = ctx_.user_ns();
      if (lchown(p.c_str(), ns::UidInside(un, u.owner->path_uid()),
                 ns::GidInside(un, u.owner->path_gid())) < 0)
        return Error::Errno("chown " + p);
    }
  }
  for (auto& [ino, s] : sks_) TRY(ApplyOpts(s));
  return Ok();
}

Status Builder::Run() {
  TRY(Load());
  TRY(Check());
  TRY(RemoveStale());
  TRY(PickAcceptedSides());
  TRY(MakeListeners());
  TRY(MakeAccepted());
  TRY(MakeWaiting());
  TRY(MakeRest());
  TRY(ConnectDgrams());
  for (auto& [ino, s] : sks_) TRY(Refill(s));
  TRY(Finish());
  for (auto& [ino, s] : sks_)
    if (!s.fd) return Error(s.what() + ": not made");
  // Each socket goes to its home number (fd_install.h) when that is free;
  // a socket may sit on another's home, so passes repeat while they move
  // any, and one goes above the restored numbers when none can.
  std::vector<uint64_t> left;
  for (auto& [ino, s] : sks_) left.push_back(ino);
  while (!left.empty()) {
    std::vector<uint64_t> next;
    for (uint64_t ino : left) {
      Sk& s = sks_.at(ino);
      if (ctx_.FreeHome(s.id, s.fd.get()) >= 0)
        TRY(ctx_.Keep(Key(ino), s.fd.release(), s.id));
      else
        next.push_back(ino);
    }
    if (next.size() == left.size()) {
      Sk& s = sks_.at(next.back());
      TRY(ctx_.Keep(Key(next.back()), s.fd.release()));
      next.pop_back();
    }
    left = std::move(next);
  }
  LOG_INFO("restored " + std::to_string(sks_.size()) + " unix sockets");
  return Ok();
}

}  // namespace

Result<int> OpenUnixSk(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("unix socket needs a restore context (files::OpenFiles)");
  const pb::UnixSkEntry& u = e.unix_sk();
  // One file entry per socket: it takes the socket the builder made.
  if (o.ctx->Find(Key(u.ino())) < 0) {
    Builder b(*o.ctx);
    TRY(b.Run(), "unix sockets");
  }
  UniqueFd d(o.ctx->Hand(Key(u.ino())));
  if (!d) return Error("unix socket " + std::to_string(u.ino()) + " was not made, or taken twice");
  if (fcntl(d.get(), F_SETFL, int(u.flags()) & O_NONBLOCK) < 0)
    return Error::Errno("unix socket flags");
  return d.release();
}

}  // namespace ckpt::files
