// epoll(7). fdinfo lists the interest list, one target per line
// (ep_show_fdinfo in fs/eventpoll.c):
//   tfd:        3 events: 80000019 data:       1234567890  pos:0 ino:40e sdev:10
// An entry is keyed by (file, fd number) in the kernel, so a target must
// be added under the very fd number the task used: the task's later
// EPOLL_CTL_MOD/DEL name it by that number.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <set>

#include "base/unique_fd.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_context.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

bool Match(const FdContext& c) { return c.link == "anon_inode:[eventpoll]"; }

struct Target {
  int tfd;
  uint32_t events;
  uint64_t data;
};

Result<std::vector<Target>> Targets(const FdContext& c) {
  std::vector<Target> out;
  for (const std::string& line : FdinfoLines(c.fdinfo, "tfd:")) {
    auto tok = FdinfoTokens(line);
    TRY_ASSIGN(uint64_t tfd, TokenNumber(tok, "tfd", 10, "epoll target"));
    TRY_ASSIGN(uint64_t events, TokenNumber(tok, "events", 16, "epoll target"));
    TRY_ASSIGN(uint64_t data, TokenNumber(tok, "data", 16, "epoll target"));
    out.push_back({int(tfd), uint32_t(events), data});
  }
  return out;
}

// A target is found by the file it watches (kcmp KCMP_EPOLL_TFD), not by
// its fd number: the epoll may outlive the fd it was given (closed, reused,
// or held only by another task of the tree, e.g. after fork). Dump finds
// it among every file of the tree seen so far; Check only parses.
Status Check(const FdContext& c, const std::vector<FdContext>&) {
  TRY_ASSIGN(std::vector<Target> targets, Targets(c), Where(c));
  std::set<int> seen;
  for (const Target& t : targets)
    if (!seen.insert(t.tfd).second)
      return Error(Where(c) + ": epoll lists fd " + std::to_string(t.tfd) + " twice");
  return Ok();
}

Status Dump(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  TRY_ASSIGN(std::vector<Target> targets, Targets(c));
  pb::EpollEntry* d = e->mutable_epoll();
  d->set_flags(c.info.flags);
  for (const Target& t : targets) {
    kcmp_epoll_slot slot = {uint32_t(c.fd), uint32_t(t.tfd), 0};
    uint32_t id = syscall(SYS_kcmp, c.pid, c.pid, KCMP_EPOLL_TFD, t.tfd, &slot) == 0
                      ? ctx.FileIdOf(t.tfd)
                      : ctx.EpollTargetId(c.pid, c.fd, t.tfd);
    if (!id)
      return Error("epoll watching fd " + std::to_string(t.tfd) +
                   ", a file no task of the tree dumped so far holds, is not supported");
    pb::EpollTarget* pt = d->add_targets();
    pt->set_tfd(uint32_t(t.tfd));
    pt->set_events(t.events);
    pt->set_data(t.data);
    pt->set_file_id(id);
  }
  return Ok();
}

std::vector<uint32_t> Deps(const pb::FileEntry& e) {
  std::vector<uint32_t> out;
  for (const auto& t : e.epoll().targets()) out.push_back(t.file_id());
  return out;
}

// Adds `target` to ep under fd number tfd: the number briefly holds the
// target; whatever held it before (one of ckpt's own fds) is put back.
Status AddAt(int ep, int tfd, int target, epoll_event ev, int spare_from) {
  int flags = fcntl(tfd, F_GETFD);
  UniqueFd saved;
  if (flags >= 0) {
    saved.reset(fcntl(tfd, F_DUPFD_CLOEXEC, spare_from));
    if (!saved) return Error::Errno("move fd " + std::to_string(tfd) + " aside");
  }
  if (dup2(target, tfd) < 0) return Error::Errno("dup to fd " + std::to_string(tfd));
  int r = epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  int err = errno;
  if (saved) {
    if (dup3(saved.get(), tfd, (flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
      return Error::Errno("put fd " + std::to_string(tfd) + " back");
  } else {
    close(tfd);
  }
  if (r < 0) return Error::Errno("epoll_ctl add fd " + std::to_string(tfd), err);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("epoll needs a restore context (files::OpenFiles)");
  const pb::EpollEntry& d = e.epoll();
  int min_fd = o.ctx->min_fd();
  // Keep the epoll itself off the low numbers its targets borrow.
  UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return Error::Errno("epoll_create1");
  ep.reset(fcntl(ep.get(), F_DUPFD_CLOEXEC, min_fd));
  if (!ep) return Error::Errno("dup epoll");
  for (const pb::EpollTarget& t : d.targets()) {
    int target = o.ctx->Opened(t.file_id());
    if (target < 0)
      return Error("epoll target file " + std::to_string(t.file_id()) + " is not open");
    if (int(t.tfd()) == ep.get()) {  // cannot happen with min_fd above every tfd
      ep.reset(fcntl(ep.get(), F_DUPFD_CLOEXEC, ep.get() + 1));
      if (!ep) return Error::Errno("dup epoll");
    }
    epoll_event ev = {};
    ev.events = t.events();
    ev.data.u64 = t.data();
    TRY(AddAt(ep.get(), int(t.tfd()), target, ev, min_fd));
  }
  if ((d.flags() & O_NONBLOCK) && fcntl(ep.get(), F_SETFL, O_NONBLOCK) < 0)
    return Error::Errno("set O_NONBLOCK");
  return ep.release();
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_epoll()) return Error("file " + std::to_string(e.id()) + ": bad epoll entry");
  std::set<uint32_t> tfds;
  for (const auto& t : e.epoll().targets())
    if (t.tfd() >= (1u << 20) || !tfds.insert(t.tfd()).second || t.file_id() == e.id())
      return Error("file " + std::to_string(e.id()) + ": bad epoll target");
  return Ok();
}

}  // namespace

const FileHandler kEpollHandler = {.kind = pb::FILE_EPOLL,
                                   .name = "epoll",
                                   .match = Match,
                                   .check = Check,
                                   .dump = Dump,
                                   .open = Open,
                                   .validate = Validate,
                                   .deps = Deps};

}  // namespace ckpt::files
