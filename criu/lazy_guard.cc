#include "criu/lazy_guard.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/log.h"
#include "criu/lazy_plan.h"
#include "criu/uffd_lazy.h"

namespace ckpt {
namespace {

enum Kind : uint32_t { kAdd = 1, kFork = 2, kDrop = 3, kMove = 4, kFinish = 5 };
struct Msg {
  uint32_t kind, key;
  uint64_t a, b, c;  // kAdd: image pid; kFork: parent key; kDrop: start, end; kMove: from, to, len
};

Status SendMsg(int sk, const Msg& m, int fd) {
  iovec iov = {const_cast<Msg*>(&m), sizeof(m)};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr h = {};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  if (fd >= 0) {
    h.msg_control = ctl;
    h.msg_controllen = sizeof(ctl);
    cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  while (sendmsg(sk, &h, MSG_NOSIGNAL) < 0)
    if (errno != EINTR) return Error::Errno("lazy-pages guard: send");
  return Ok();
}

struct GuardMm {
  UniqueFd uffd;
  pid_t id = 0;  // pid in the images
  uffd::PendingPages owed;
};

// The guard's life. Returns the exit code.
int GuardMain(int sk, const TreeImages& tree) {
  std::map<uint32_t, GuardMm> mms;
  for (;;) {
    Msg m;
    iovec iov = {&m, sizeof(m)};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    msghdr h = {};
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    h.msg_control = ctl;
    h.msg_controllen = sizeof(ctl);
    ssize_t n = recvmsg(sk, &h, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    int fd = -1;
    cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&h) : nullptr;
    if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof(int));
    if (n <= 0) break;  // the daemon is gone
    if (n != ssize_t(sizeof(m))) continue;
    switch (m.kind) {
      case kAdd: {
        GuardMm& g = mms[m.key];
        g.uffd.reset(fd);
        g.id = pid_t(m.a);
        for (const TaskImages& t : tree.tasks)
          if (!t.zombie() && t.pid() == pid_t(m.a))
            for (const PageRun& r : PlanLazy(t).lazy) g.owed.Add(r);
        break;
      }
      case kFork: {
        GuardMm& g = mms[m.key];
        g.uffd.reset(fd);
        auto p = mms.find(uint32_t(m.a));
        if (p == mms.end()) break;
        g.id = p->second.id;
        for (const auto& [a, r] : p->second.owed.runs()) g.owed.Add(r);
        for (const TaskImages& t : tree.tasks)
          if (!t.zombie() && t.pid() == g.id)
            for (const LazyPlan::Range& v : NotInheritedByFork(t)) g.owed.Cut(v.start, v.end);
        break;
      }
      case kDrop:
        if (mms.count(m.key)) mms[m.key].owed.Cut(m.a, m.b);
        break;
      case kMove:
        if (mms.count(m.key)) mms[m.key].owed.Move(m.a, m.b, m.c);
        break;
      case kFinish:
        return 0;  // every fd closes with us: nothing owed
    }
  }
  // The daemon died with pages owed: those still missing raise SIGBUS.
  uint64_t poisoned = 0;
  for (auto& [key, g] : mms) {
    for (const auto& [start, r] : g.owed.runs()) {
      uint64_t addr = r.vaddr, end = r.vaddr + r.nr_pages * 4096;
      while (addr < end) {
        uint64_t done = 0;
        int e = uffd::Poison(g.uffd.get(), addr, end - addr, &done);
        if (e == 0) {
          poisoned += (end - addr) / 4096;
          break;
        }
        poisoned += done / 4096;
        addr += done;
        if (e == EAGAIN) continue;  // an event in flight: the mm is changing
        if (e == EEXIST) {
          addr += 4096;  // that page is in
          continue;
        }
        break;  // the mm or the VMA is gone
      }
    }
  }
  if (mms.empty()) return 2;
  LOG_ERR("lazy-pages guard: the daemon died; " + std::to_string(poisoned) +
          " pages never arrived and raise SIGBUS when touched");
  return 2;
}

}  // namespace

Result<LazyGuard> LazyGuard::Start(const TreeImages& tree) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return Error::Errno("lazy-pages guard: socketpair");
  pid_t pid = fork();
  if (pid < 0) return Error::Errno("lazy-pages guard: fork");
  if (pid == 0) {
    close(sv[0]);
    // Not the daemon's terminal signals: a ^C to the daemon must find the
    // guard alive to poison; it goes when the daemon's socket closes.
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    _exit(GuardMain(sv[1], tree));
  }
  close(sv[1]);
  LazyGuard g;
  g.sk_.reset(sv[0]);
  g.pid_ = pid;
  return g;
}

Status LazyGuard::Add(uint32_t key, pid_t image_pid, int uffd) {
  return SendMsg(sk_.get(), {kAdd, key, uint64_t(image_pid), 0, 0}, uffd);
}
Status LazyGuard::Fork(uint32_t parent_key, uint32_t child_key, int uffd) {
  return SendMsg(sk_.get(), {kFork, child_key, parent_key, 0, 0}, uffd);
}
Status LazyGuard::Drop(uint32_t key, uint64_t start, uint64_t end) {
  return SendMsg(sk_.get(), {kDrop, key, start, end, 0}, -1);
}
Status LazyGuard::Move(uint32_t key, uint64_t from, uint64_t to, uint64_t len) {
  return SendMsg(sk_.get(), {kMove, key, from, to, len}, -1);
}
Status LazyGuard::Finish() {
  if (pid_ < 0) return Ok();
  TRY(SendMsg(sk_.get(), {kFinish, 0, 0, 0, 0}, -1));
  sk_.reset();
  int st;
  while (waitpid(pid_, &st, 0) < 0)
    if (errno != EINTR) return Error::Errno("lazy-pages guard: waitpid");
  pid_ = -1;
  return Ok();
}

}  // namespace ckpt
