#include "criu/cgroup_freeze.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/cgroup_fs.h"

namespace ckpt {
namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// cgroup.events holds "populated N\nfrozen N\n".
Result<bool> IsFrozen(int fd, const std::string& path) {
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n < 0) return Error::Errno("read " + path);
  buf[n] = 0;
  const char* f = strstr(buf, "frozen ");
  if (!f) return Error(path + " has no 'frozen' line");
  return f[7] == '1';
}

}  // namespace

Result<std::unique_ptr<CgroupFreezer>> CgroupFreezer::Freeze(const std::string& fs_dir,
                                                             int timeout_ms) {
  TRY_ASSIGN(std::string cgroup, cgroupfs::CgroupOfDir(fs_dir), "--freeze-cgroup");
  TRY_ASSIGN(std::string own, cgroupfs::TaskCgroup(getpid()), "ckpt's own cgroup");
  if (cgroupfs::IsAncestorOrSelf(cgroup, own))
    return Error("--freeze-cgroup " + fs_dir + ": ckpt itself is in cgroup " + own +
                 ", inside it, and would freeze itself");
  std::unique_ptr<CgroupFreezer> f(new CgroupFreezer(fs_dir, cgroup));
  auto was = cgroupfs::ReadSetting(fs_dir, "cgroup.freeze");
  if (!was.ok()) {
    if (was.error().err() == ENOENT)
      return Error("--freeze-cgroup " + fs_dir +
                   ": no cgroup.freeze (the root cgroup cannot "
                   "be frozen; kernel 5.2 or later needed)");
    return std::move(was.error());
  }
  std::string events = fs_dir + "/cgroup.events";
  UniqueFd ev(open(events.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ev) return Error::Errno("open " + events);
  f->was_frozen_ = f->frozen_ = *was == "1";
  if (!f->was_frozen_) {
    TRY(cgroupfs::WriteSetting(fs_dir, "cgroup.freeze", "1"), "--freeze-cgroup");
    f->frozen_ = true;  // from here on the destructor thaws
  } else {
    LOG_INFO("cgroup " + cgroup + " is frozen already; it is frozen again after the dump");
  }
  // The kernel notifies cgroup.events pollers (POLLPRI) when "frozen"
  // changes; the poll is bounded in slices so a missed wakeup only costs a
  // slice.
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    TRY_ASSIGN(bool frozen, IsFrozen(ev.get(), events));
    if (frozen) break;
    int64_t left = deadline - NowMs();
    if (left <= 0)
      return Error("--freeze-cgroup: cgroup " + cgroup + " did not freeze within " +
                   std::to_string(timeout_ms) + " ms (a task in uninterruptible sleep?)");
    struct pollfd p = {ev.get(), POLLPRI, 0};
    if (poll(&p, 1, int(left < 100 ? left : 100)) < 0 && errno != EINTR)
      return Error::Errno("poll " + events);
  }
  LOG_INFO("cgroup " + cgroup + " frozen");
  return f;
}

Status CgroupFreezer::CheckTasks(const std::vector<pid_t>& pids) const {
  for (pid_t pid : pids) {
    TRY_ASSIGN(std::string cg, cgroupfs::TaskCgroup(pid), "pid " + std::to_string(pid));
    if (!cgroupfs::IsAncestorOrSelf(cgroup_, cg))
      return Error("pid " + std::to_string(pid) + " is in cgroup " + cg +
                   ", outside the frozen cgroup " + cgroup_ +
                   " (--freeze-cgroup must hold the whole tree)");
  }
  return Ok();
}

Status CgroupFreezer::Thaw() {
  if (!frozen_) return Ok();
  TRY(cgroupfs::WriteSetting(dir_, "cgroup.freeze", "0"), "thawing cgroup " + cgroup_);
  frozen_ = false;
  LOG_INFO("cgroup " + cgroup_ + " thawed");
  return Ok();
}

CgroupFreezer::~CgroupFreezer() {
  if (frozen_ == was_frozen_) return;
  const char* v = was_frozen_ ? "1" : "0";
  Status s = cgroupfs::WriteSetting(dir_, "cgroup.freeze", v);
  if (!s.ok()) LOG_ERR("putting cgroup " + cgroup_ + " back: " + s.error().message());
}

}  // namespace ckpt
