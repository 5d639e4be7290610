#include "criu/mem_tracker.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "base/log.h"

namespace ckpt {
namespace {

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

// The wire (SOCK_SEQPACKET, one message each):
//   client: Request
//   server: Reply, then ceil(count / kChunk) chunks: Chunk header with n
//           entries and n uffds as SCM_RIGHTS
//   client: one byte, once it holds them all; the server exits.
constexpr uint32_t kMagic = 0x4b52544d;  // "MTRK"
constexpr uint32_t kChunk = 128;         // below SCM_MAX_FD (253)
struct Request {
  uint32_t magic, root;
};
struct Reply {
  uint32_t magic, status, count;  // status 0: ok; 1: not this tree
};
struct Entry {
  uint32_t pid;
  uint32_t pad;
  uint64_t start_time;
};
struct Chunk {
  uint32_t n, pad;
  Entry e[kChunk];
};

sockaddr_un Address(const std::string& name, socklen_t* len) {
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path + 1, name.data(), name.size());  // abstract: leading NUL
  *len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

bool PeerIsUs(int sk) {
  struct ucred c = {};
  socklen_t l = sizeof(c);
  return getsockopt(sk, SOL_SOCKET, SO_PEERCRED, &c, &l) == 0 && c.uid == geteuid();
}

bool SendAll(int sk, int count, const std::vector<Entry>& entries, const std::vector<int>& fds) {
  Reply r = {kMagic, 0, uint32_t(count)};
  if (send(sk, &r, sizeof(r), MSG_NOSIGNAL) != ssize_t(sizeof(r))) return false;
  for (size_t at = 0; at < entries.size(); at += kChunk) {
    Chunk c = {};
    c.n = uint32_t(std::min<size_t>(kChunk, entries.size() - at));
    for (uint32_t i = 0; i < c.n; i++) c.e[i] = entries[at + i];
    alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kChunk)] = {};
    struct iovec iov = {&c, sizeof(c)};
    struct msghdr m = {};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * c.n);
    struct cmsghdr* h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * c.n);
    memcpy(CMSG_DATA(h), fds.data() + at, sizeof(int) * c.n);
    if (sendmsg(sk, &m, MSG_NOSIGNAL) != ssize_t(sizeof(c))) return false;
  }
  return true;
}

// The tracker's life, in the grandchild. Never returns.
[[noreturn]] void Serve(int listen_fd, int ctl, pid_t root, const std::vector<Entry>& entries,
                        const std::vector<int>& fds, int timeout_s) {
  prctl(PR_SET_NAME, "ckpt-memtrack");
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  int pidfd = int(syscall(SYS_pidfd_open, root, 0));
  if (pidfd < 0) _exit(1);
  // Hold nothing of ckpt's: only what is listed here stays open.
  std::set<int> keep(fds.begin(), fds.end());
  keep.insert({listen_fd, ctl, pidfd});
  if (DIR* d = opendir("/proc/self/fd")) {
    std::vector<int> close_these;
    while (struct dirent* e = readdir(d)) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] != '.' && fd != dirfd(d) && !keep.count(fd)) close_these.push_back(fd);
    }
    closedir(d);
    for (int fd : close_these) close(fd);
  }
  int null = open("/dev/null", O_RDWR);
  for (int i = 0; i < 3; i++)
    if (!keep.count(i) && null >= 0) dup2(null, i);
  if (null > 2 && !keep.count(null)) close(null);

  pid_t me = getpid();
  if (send(ctl, &me, sizeof(me), MSG_NOSIGNAL) != ssize_t(sizeof(me))) _exit(1);
  // Until the pre-dump commits, the tracking is only on loan.
  for (;;) {
    struct pollfd p[2] = {{ctl, POLLIN, 0}, {pidfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (p[1].revents) _exit(0);
    char c = 0;
    if (read(ctl, &c, 1) != 1 || c != 'C') _exit(0);
    break;
  }
  close(ctl);
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  int64_t deadline = int64_t(now.tv_sec) + timeout_s;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = deadline - int64_t(now.tv_sec);
    if (left <= 0) _exit(0);
    struct pollfd p[2] = {{listen_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = poll(p, 2, int(std::min<int64_t>(left, 3600) * 1000));
    if (n < 0 && errno != EINTR) _exit(1);
    if (n <= 0) continue;
    if (p[1].revents) _exit(0);  // the tree's root is gone
    int sk = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (sk < 0) continue;
    struct timeval tv = {10, 0};
    setsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sk, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Request rq = {};
    if (!PeerIsUs(sk) || recv(sk, &rq, sizeof(rq), 0) != ssize_t(sizeof(rq)) ||
        rq.magic != kMagic) {
      close(sk);
      continue;
    }
    if (rq.root != uint32_t(root)) {
      Reply r = {kMagic, 1, 0};
      send(sk, &r, sizeof(r), MSG_NOSIGNAL);
      close(sk);
      continue;
    }
    char ack = 0;
    if (SendAll(sk, int(entries.size()), entries, fds) && recv(sk, &ack, 1, 0) == 1 && ack == 'A')
      _exit(0);  // the next step owns the tracking now
    close(sk);
  }
}

}  // namespace

Result<std::unique_ptr<Tracker>> Tracker::Start(pid_t root, const std::vector<TrackedUffd>& tasks,
                                                int timeout_s) {
  std::unique_ptr<Tracker> t(new Tracker());
  uint64_t rnd[2];
  if (getrandom(rnd, sizeof(rnd), 0) != ssize_t(sizeof(rnd))) return Error::Errno("getrandom");
  char name[80];
  snprintf(name, sizeof(name), "ckpt-memtrack-%d-%016llx%016llx", int(root),
           (unsigned long long)rnd[0], (unsigned long long)rnd[1]);
  t->name_ = name;
  UniqueFd lsk(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!lsk) return Error::Errno("tracker: socket");
  socklen_t len;
  sockaddr_un a = Address(t->name_, &len);
  if (bind(lsk.get(), reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(lsk.get(), 4) < 0)
    return Error::Errno("tracker: bind @" + t->name_);
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
    return Error::Errno("tracker: socketpair");
  UniqueFd mine(sp[0]), theirs(sp[1]);
  std::vector<Entry> entries;
  std::vector<int> fds;
  for (const TrackedUffd& u : tasks) {
    entries.push_back({uint32_t(u.pid), 0, u.start_time});
    fds.push_back(u.uffd.get());
  }
  pid_t child = fork();
  if (child < 0) return Error::Errno("tracker: fork");
  if (child == 0) {
    // A session of its own, and not ckpt's child: ckpt's exit is no event.
    setsid();
    pid_t gc = fork();
    if (gc != 0) _exit(gc < 0 ? 1 : 0);
    close(mine.release());
    Serve(lsk.get(), theirs.get(), root, entries, fds, timeout_s);
  }
  theirs.reset();
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return Error("tracker: could not start it");
  struct timeval tv = {10, 0};
  setsockopt(mine.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  pid_t pid = 0;
  if (read(mine.get(), &pid, sizeof(pid)) != ssize_t(sizeof(pid)) || pid <= 0)
    return Error("tracker: it did not start (the tree's root may have exited)");
  t->pid_ = pid;
  t->ctl_ = std::move(mine);
  LOG_INFO("memory tracker " + std::to_string(pid) + " at @" + t->name_);
  return t;
}

Tracker::~Tracker() = default;  // closing ctl_ before Commit makes it exit

Status Tracker::Commit() {
  char c = 'C';
  // MSG_NOSIGNAL: a tracker gone meanwhile (the root exited) is an error, not SIGPIPE.
  if (send(ctl_.get(), &c, 1, MSG_NOSIGNAL) != 1)
    return Error::Errno("memory tracker " + std::to_string(pid_) + " is gone");
  ctl_.reset();
  return Ok();
}

Result<std::vector<TrackedUffd>> CollectFromTracker(const std::string& name, pid_t root) {
  std::string who = "memory tracker @" + name;
  if (name.empty() || name.size() > 100) return Error("no memory tracker was left by that step");
  UniqueFd sk(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sk) return Error::Errno("socket");
  socklen_t len;
  sockaddr_un a = Address(name, &len);
  if (connect(sk.get(), reinterpret_cast<sockaddr*>(&a), len) < 0)
    return Error::Errno(who + " is gone (timed out, killed, or its process exited)");
  if (!PeerIsUs(sk.get())) return Error(who + " belongs to another user");
  struct timeval tv = {10, 0};
  setsockopt(sk.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  Request rq = {kMagic, uint32_t(root)};
  if (send(sk.get(), &rq, sizeof(rq), MSG_NOSIGNAL) != ssize_t(sizeof(rq)))
    return Error::Errno(who + ": request");
  Reply r = {};
  if (recv(sk.get(), &r, sizeof(r), 0) != ssize_t(sizeof(r)) || r.magic != kMagic)
    return Error(who + ": bad reply");
  if (r.status != 0) return Error(who + " tracks another tree, not pid " + std::to_string(root));
  if (r.count > (1u << 16)) return Error(who + ": bad reply");
  std::vector<TrackedUffd> out;
  while (out.size() < r.count) {
    Chunk c = {};
    alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kChunk)] = {};
    struct iovec iov = {&c, sizeof(c)};
    struct msghdr m = {};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof(ctl);
    ssize_t n = recvmsg(sk.get(), &m, MSG_CMSG_CLOEXEC);
    if (n != ssize_t(sizeof(c))) return Error::Errno(who + ": receiving the userfaultfds");
    // Own whatever arrived first, so an error closes it.
    std::vector<UniqueFd> got;
    for (struct cmsghdr* h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
      if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int fd;
          memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
          got.emplace_back(fd);
        }
      }
    if ((m.msg_flags & MSG_CTRUNC) || c.n == 0 || c.n > kChunk || got.size() != c.n ||
        out.size() + c.n > r.count)
      return Error(who + ": bad reply");
    for (uint32_t i = 0; i < c.n; i++) {
      TrackedUffd u;
      u.pid = pid_t(c.e[i].pid);
      u.start_time = c.e[i].start_time;
      u.uffd = std::move(got[i]);
      out.push_back(std::move(u));
    }
  }
  char ack = 'A';
  if (send(sk.get(), &ack, 1, MSG_NOSIGNAL) != 1) return Error::Errno(who + ": ack");
  LOG_INFO("took " + std::to_string(out.size()) + " write-tracking userfaultfd(s) from " + who);
  return out;
}

}  // namespace ckpt
