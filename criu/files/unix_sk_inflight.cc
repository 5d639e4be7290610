// Files in flight in the unix socket queues of the dumped tree (unix_sk.h):
// which kinds are dumped in flight; a pipe end held by the tree whose other
// end is in flight is not "held outside the tree" (pipe.cc asks before it
// calls a pipe external); a socket whose peer is only in flight is refused
// as such rather than as connected outside.
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <fcntl.h>
#include <unistd.h>

#include "criu/files/flock.h"
#include "criu/files/sk_common.h"
#include "criu/files/unix_sk.h"

namespace ckpt::files {

Result<const FileHandler*> ClassifyInFlight(const FdContext& c, const std::string& what) {
  auto h = Classify(c);
  if (!h.ok()) {  // "pid <ckpt> fd N: <kind> is not supported": ckpt's own fd means nothing
    std::string m = h.error().message();
    size_t p = m.find(": ");
    return Error(what + ": a file in flight (" + c.link +
                 "): " + (p == std::string::npos ? m : m.substr(p + 2)));
  }
  pb::FileKind k = (*h)->kind;
  if (k != pb::FILE_REG && k != pb::FILE_GHOST && k != pb::FILE_PIPE && k != pb::FILE_UNIX_SK &&
      k != pb::FILE_EVENTFD && k != pb::FILE_MEMFD)
    return Error(what + ": a " + (*h)->name + " (" + c.link +
                 ") in flight is not supported (only regular files, pipes, unix sockets, "
                 "eventfds and memfds are)");
  return *h;
}

Status CheckQueueInFlight(int fd, int type, bool rcv_shut) {
  TRY_ASSIGN(std::vector<QueuedMessage> q, PeekUnixQueue(fd, type, rcv_shut));
  for (size_t i = 0; i < q.size(); i++)
    for (size_t k = 0; k < q[i].fds.size(); k++) {
      std::string what = "unix socket queue message " + std::to_string(i + 1) +
                         ", file in flight " + std::to_string(k + 1);
      auto c = InspectFd(getpid(), q[i].fds[k].get(), FdOptions{});
      if (!c.ok()) return Error(what + ": " + c.error().message());
      TRY(ClassifyInFlight(*c, what));
    }
  return Ok();
}

namespace {

// Whether match() says yes to one of the files in flight in the unix
// socket queues of the seized tree (ckpt's own copies, closed again).
bool AnyInFlight(const std::function<bool(int fd, const struct stat& st)>& match) {
  DIR* d = opendir("/proc");
  if (!d) return false;
  bool found = false;
  while (dirent* p = readdir(d)) {
    if (found) break;
    if (p->d_name[0] < '1' || p->d_name[0] > '9') continue;
    pid_t pid = pid_t(atoi(p->d_name));
    if (!SeizedByUs(pid)) continue;
    std::string dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      if (found) break;
      if (f->d_name[0] == '.') continue;
      char buf[64];
      ssize_t n = readlinkat(dirfd(fds), f->d_name, buf, sizeof(buf) - 1);
      if (n < 8 || memcmp(buf, "socket:[", 8) != 0) continue;
      auto sk = GrabTaskSocket(pid, atoi(f->d_name));
      if (!sk.ok()) continue;
      int dom = 0, type = 0;
      socklen_t l = sizeof(int);
      if (getsockopt(sk->get(), SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0 || dom != AF_UNIX) continue;
      l = sizeof(int);
      if (getsockopt(sk->get(), SOL_SOCKET, SO_TYPE, &type, &l) < 0) continue;
      auto q = PeekUnixQueue(sk->get(), type, false);
      if (!q.ok()) continue;  // a listener, or a queue the dump refuses itself
      for (const QueuedMessage& m : *q)
        for (const UniqueFd& h : m.fds) {
          struct stat st;
          if (fstat(h.get(), &st) == 0 && match(h.get(), st)) found = true;
        }
    }
    closedir(fds);
  }
  closedir(d);
  return found;
}

}  // namespace

bool PipeSideInFlight(uint64_t ino, bool write_side) {
  return AnyInFlight([&](int fd, const struct stat& st) {
    if (!S_ISFIFO(st.st_mode) || st.st_ino != ino) return false;
    int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
    return acc == O_RDWR || (acc == O_WRONLY) == write_side;
  });
}

bool SocketInFlight(uint64_t ino) {
  return AnyInFlight(
      [&](int, const struct stat& st) { return S_ISSOCK(st.st_mode) && st.st_ino == ino; });
}

}  // namespace ckpt::files
