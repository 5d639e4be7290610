#include "criu/cgroup_freeze.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/log.h"
#include "base/unique_fd.h"
#include "compel/seize.h"
#include "criu/cgroup_fs.h"
#include "criu/cgroup_v1.h"

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

// Waits for the PTRACE_EVENT_STOP of a seized and interrupted thread; a
// signal that was on its way is reported first and delivered.
Status WaitInterruptStop(pid_t tid) {
  for (;;) {
    TRY_ASSIGN(int st, compel::WaitStop(tid));
    if (!WIFSTOPPED(st)) return Error("tid " + std::to_string(tid) + ": not stopped");
    if ((st >> 16) == PTRACE_EVENT_STOP) return Ok();
    if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)WSTOPSIG(st)) < 0)
      return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_CONT");
  }
}

}  // namespace

Status CgroupFreezer::WriteV1(const char* state) {
  return cgroupfs::WriteSetting(dir_, "freezer.state", state);
}

// v1: freezer.state reads FREEZING until every task of the cgroup and below
// is frozen; there is no notification, so it is read again every 5 ms.
Result<std::unique_ptr<CgroupFreezer>> CgroupFreezer::FreezeV1(const std::string& fs_dir,
                                                               int timeout_ms) {
  std::string what = "--freeze-cgroup " + fs_dir;
  auto state = cgroupfs::ReadSetting(fs_dir, "freezer.state");
  if (!state.ok())
    return Error(what +
                 ": no freezer.state (a cgroup v1 directory, but not of the freezer "
                 "hierarchy, or its root)");
  TRY_ASSIGN(std::vector<pid_t> procs, cgroupv1::Members(fs_dir, "cgroup.procs"), what);
  if (std::find(procs.begin(), procs.end(), getpid()) != procs.end())
    return Error(what + ": ckpt itself is in it and would freeze itself");
  std::unique_ptr<CgroupFreezer> f(new CgroupFreezer(fs_dir, fs_dir));
  f->v1_ = true;
  f->was_frozen_ = f->frozen_ = *state != "THAWED";
  if (!f->was_frozen_) {
    TRY(f->WriteV1("FROZEN"), what);
  } else {
    LOG_INFO("cgroup " + fs_dir + " is " + *state + " already; it is frozen again after the dump");
  }
  f->frozen_ = true;  // from here on the destructor puts it back
  int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    TRY_ASSIGN(std::string now, cgroupfs::ReadSetting(fs_dir, "freezer.state"), what);
    if (now == "FROZEN") break;
    if (NowMs() >= deadline)
      return Error(what + ": did not freeze within " + std::to_string(timeout_ms) +
                   " ms (a task in uninterruptible sleep?)");
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, nullptr);
  }
  LOG_INFO("cgroup v1 " + fs_dir + " frozen");
  // Hold every thread from this instant: seized and interrupted while
  // frozen, each reports its stop once thawed, before it runs user code.
  TRY_ASSIGN(std::vector<pid_t> tids, cgroupv1::Members(fs_dir, "tasks"), what);
  for (pid_t t : tids) {
    if (ptrace(PTRACE_SEIZE, t, nullptr, nullptr) < 0) {
      if (errno == ESRCH) continue;  // exited (a frozen task cannot: it was dying)
      return Error::Errno("--freeze-cgroup: tid " + std::to_string(t) + " of " + fs_dir +
                          ": PTRACE_SEIZE (traced by another process?)");
    }
    f->held_.push_back(t);
    if (ptrace(PTRACE_INTERRUPT, t, nullptr, nullptr) < 0)
      return Error::Errno("--freeze-cgroup: tid " + std::to_string(t) + ": PTRACE_INTERRUPT");
  }
  TRY(f->WriteV1("THAWED"), "thawing cgroup " + fs_dir);
  f->frozen_ = false;
  for (; f->waited_ < f->held_.size(); f->waited_++)
    TRY(WaitInterruptStop(f->held_[f->waited_]), what);
  LOG_INFO("cgroup v1 " + fs_dir + " thawed, its " + std::to_string(f->held_.size()) +
           " threads held by ptrace");
  return f;
}

void CgroupFreezer::ReleaseHeld(const std::vector<pid_t>& keep_tids) {
  std::set<pid_t> keep(keep_tids.begin(), keep_tids.end());
  for (pid_t t : held_)
    if (!keep.count(t)) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
  held_.clear();
}

Result<std::unique_ptr<CgroupFreezer>> CgroupFreezer::Freeze(const std::string& fs_dir,
                                                             int timeout_ms) {
  if (cgroupv1::IsV1Dir(fs_dir)) return FreezeV1(fs_dir, timeout_ms);
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

Status CgroupFreezer::CheckTasks(const std::vector<pid_t>& pids) {
  if (v1_) {
    TRY_ASSIGN(std::vector<pid_t> procs, cgroupv1::Members(dir_, "cgroup.procs"),
               "--freeze-cgroup");
    std::vector<pid_t> tree_tids;
    for (pid_t pid : pids) {
      if (std::find(procs.begin(), procs.end(), pid) == procs.end())
        return Error("pid " + std::to_string(pid) + " is not in the frozen cgroup " + dir_ +
                     " or below it (--freeze-cgroup must hold the whole tree)");
      std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
      if (DIR* d = opendir(task_dir.c_str())) {
        while (struct dirent* e = readdir(d))
          if (e->d_name[0] != '.') tree_tids.push_back(pid_t(atoi(e->d_name)));
        closedir(d);
      }
    }
    ReleaseHeld(tree_tids);  // the tree's threads are SeizeTree's now
    return Ok();
  }
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
  // v1, failed before CheckTasks: the held threads are let go (each is in
  // its ptrace stop, or frozen with the stop pending: thawed first).
  if (v1_ && frozen_ && !held_.empty() && WriteV1("THAWED").ok()) frozen_ = false;
  if (v1_) {
    for (; waited_ < held_.size(); waited_++)
      if (!WaitInterruptStop(held_[waited_]).ok()) continue;
    ReleaseHeld({});
  }
  if (frozen_ == was_frozen_) return;
  Status s = v1_ ? WriteV1(was_frozen_ ? "FROZEN" : "THAWED")
                 : cgroupfs::WriteSetting(dir_, "cgroup.freeze", was_frozen_ ? "1" : "0");
  if (!s.ok()) LOG_ERR("putting cgroup " + cgroup_ + " back: " + s.error().message());
}

}  // namespace ckpt
