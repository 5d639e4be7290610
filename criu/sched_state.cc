#include "criu/sched_state.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "compel/infect.h"

namespace ckpt {
namespace {

// struct sched_attr, SCHED_ATTR_SIZE_VER1 (with the utilization clamps).
struct SchedAttr {
  uint32_t size;
  uint32_t policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime, deadline, period;
  uint32_t util_min, util_max;
};
static_assert(sizeof(SchedAttr) == 56);
constexpr uint32_t kSchedAttrVer0 = 48;  // without the clamps

constexpr uint64_t kFlagResetOnFork = 0x01, kFlagReclaim = 0x02, kFlagDlOverrun = 0x04;
constexpr uint64_t kFlagUtilClampMin = 0x20, kFlagUtilClampMax = 0x40;
constexpr uint32_t kUtilMaxDefault = 1024;  // SCHED_CAPACITY_SCALE

constexpr int kIoprioWhoProcess = 1;  // IOPRIO_WHO_PROCESS: a single thread
constexpr int kIoprioClassShift = 13;

// membarrier(2) commands (linux/membarrier.h; GET_REGISTRATIONS: Linux 6.3).
constexpr long kMembarrierGetRegistrations = 1 << 9;
constexpr uint32_t kMembarrierRegisterCmds = (1 << 2) | (1 << 4) | (1 << 6) | (1 << 8);

constexpr size_t kAffinityBytes = 1024;  // 8192 CPUs

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }
std::string Who(pid_t pid, pid_t tid) {
  return pid == tid ? Who(pid) : Who(pid) + " thread " + std::to_string(tid);
}

Result<int64_t> ReadNumber(const std::string& path) {
  TRY_ASSIGN(std::string text, io::ReadFile(path));
  char* end = nullptr;
  long long v = strtoll(text.c_str(), &end, 10);
  if (end == text.c_str()) return Error(path + ": not a number: '" + text + "'");
  return int64_t(v);
}

Status WriteNumber(const std::string& path, int64_t v) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  std::string s = std::to_string(v);
  if (write(fd.get(), s.data(), s.size()) != ssize_t(s.size()))
    return Error::Errno("write " + s + " to " + path);
  return Ok();
}

Status DumpThread(pid_t pid, pid_t tid, pb::ThreadSchedEntry* e) {
  SchedAttr a = {};
  if (syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0) < 0)
    return Error::Errno(Who(pid, tid) + ": sched_getattr");
  e->set_tid(uint32_t(tid));
  e->set_policy(a.policy);
  e->set_flags(a.flags & (kFlagResetOnFork | kFlagReclaim | kFlagDlOverrun));
  // sched_getattr reports nice only for the fair policies; an RT task has
  // one too (it applies again if the task goes back to SCHED_OTHER).
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, id_t(tid));
  if (nice == -1 && errno) return Error::Errno(Who(pid, tid) + ": getpriority");
  e->set_nice(nice);
  e->set_rt_priority(a.priority);
  if (a.policy == SCHED_DEADLINE) {
    e->set_dl_runtime(a.runtime);
    e->set_dl_deadline(a.deadline);
    e->set_dl_period(a.period);
  }
  // The kernel fills the clamps only with CONFIG_UCLAMP_TASK; without it
  // both read 0 (as would a clamp to 0..0, the one setting taken for none).
  bool clamps = a.size >= sizeof(SchedAttr) && (a.util_min != 0 || a.util_max != 0);
  if (clamps && (a.util_min != 0 || a.util_max != kUtilMaxDefault)) {
    e->set_util_min(a.util_min);
    e->set_util_max(a.util_max);
  }
  std::vector<uint64_t> mask(kAffinityBytes / 8);
  long n = syscall(SYS_sched_getaffinity, tid, kAffinityBytes, mask.data());
  if (n < 0) return Error::Errno(Who(pid, tid) + ": sched_getaffinity");
  for (long w = 0; w < (n + 7) / 8; w++) e->add_affinity(mask[size_t(w)]);
  long prio = syscall(SYS_ioprio_get, kIoprioWhoProcess, tid);
  if (prio < 0) return Error::Errno(Who(pid, tid) + ": ioprio_get");
  if (prio >> kIoprioClassShift) e->set_ioprio(uint32_t(prio));  // class NONE: not set
  return Ok();
}

std::string PolicyName(uint32_t p) {
  switch (p) {
    case SCHED_OTHER: return "SCHED_OTHER";
    case SCHED_FIFO: return "SCHED_FIFO";
    case SCHED_RR: return "SCHED_RR";
    case SCHED_BATCH: return "SCHED_BATCH";
    case SCHED_IDLE: return "SCHED_IDLE";
    case SCHED_DEADLINE: return "SCHED_DEADLINE";
    default: return "policy " + std::to_string(p);
  }
}

Status RestoreThread(pid_t pid, pid_t tid, const pb::ThreadSchedEntry& e) {
  std::string who = Who(pid, tid);
  if (e.affinity_size() > 0) {
    std::vector<uint64_t> mask(e.affinity().begin(), e.affinity().end());
    if (syscall(SYS_sched_setaffinity, tid, mask.size() * 8, mask.data()) < 0)
      return Error::Errno(who + ": sched_setaffinity (no CPU of the dumped CPU affinity is "
                                "available here?)");
  }
  // Nice first: sched_setattr keeps it unchanged for the RT policies.
  if (setpriority(PRIO_PROCESS, id_t(tid), e.nice()) < 0)
    return Error::Errno(who + ": setpriority " + std::to_string(e.nice()));
  SchedAttr a = {};
  a.size = kSchedAttrVer0;
  a.policy = e.policy();
  a.flags = e.flags();
  a.nice = e.nice();
  a.priority = e.rt_priority();
  a.runtime = e.dl_runtime();
  a.deadline = e.dl_deadline();
  a.period = e.dl_period();
  if (e.has_util_min() || e.has_util_max()) {
    a.size = sizeof(SchedAttr);
    a.flags |= kFlagUtilClampMin | kFlagUtilClampMax;
    a.util_min = e.util_min();
    a.util_max = e.has_util_max() ? e.util_max() : kUtilMaxDefault;
  }
  // For the fair policies sched_runtime is a custom slice (EEVDF); 0 keeps
  // the default: a custom slice is not kept.
  if (syscall(SYS_sched_setattr, tid, &a, 0) < 0) {
    int err = errno;
    std::string why = PolicyName(e.policy());
    if (e.policy() == SCHED_FIFO || e.policy() == SCHED_RR)
      why += " priority " + std::to_string(e.rt_priority()) +
             (err == EPERM ? " (refused: RT throttling leaves this cgroup no RT runtime?)" : "");
    if (e.policy() == SCHED_DEADLINE)
      why += " runtime/deadline/period " + std::to_string(e.dl_runtime()) + "/" +
             std::to_string(e.dl_deadline()) + "/" + std::to_string(e.dl_period()) +
             " ns (refused by deadline admission control here?)";
    if (a.size == sizeof(SchedAttr))
      why += " with utilization clamps " + std::to_string(a.util_min) + ".." +
             std::to_string(a.util_max) + (err == EOPNOTSUPP ? " (no CONFIG_UCLAMP_TASK)" : "");
    return Error::Errno(who + ": sched_setattr " + why, err);
  }
  if (syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, e.ioprio()) < 0)
    return Error::Errno(who + ": ioprio_set " + std::to_string(e.ioprio()));
  return Ok();
}

}  // namespace

Result<pb::ProcSchedEntry> DumpSchedState(pid_t pid, const std::vector<pid_t>& tids, int mem_fd) {
  pb::ProcSchedEntry e;
  for (pid_t tid : tids) TRY(DumpThread(pid, tid, e.add_threads()));
  std::string base = "/proc/" + std::to_string(pid) + "/";
  TRY_ASSIGN(int64_t adj, ReadNumber(base + "oom_score_adj"));
  e.set_oom_score_adj(int32_t(adj));
  // Without CONFIG_AUDIT these files do not exist: nothing to keep then.
  if (access((base + "loginuid").c_str(), F_OK) == 0) {
    TRY_ASSIGN(int64_t uid, ReadNumber(base + "loginuid"));
    e.set_loginuid(uint32_t(uid));
    auto sid = ReadNumber(base + "sessionid");
    if (sid.ok()) e.set_sessionid(uint32_t(*sid));
  }
  // membarrier registrations are the mm's: only the process can ask.
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(pid));
  TRY_ASSIGN(long regs, compel::RemoteSyscallRestoring(tids.at(0), mem_fd, exec, SYS_membarrier,
                                                       kMembarrierGetRegistrations, 0, 0));
  if (regs >= 0) {
    if (uint32_t(regs) & ~kMembarrierRegisterCmds)
      return Error(Who(pid) + ": unknown membarrier registrations " + std::to_string(regs));
    if (regs) e.set_membarrier(uint32_t(regs));
  } else {
    // Before Linux 6.3 there is no way to ask (EINVAL): none kept.
    LOG_DBG(Who(pid) + ": MEMBARRIER_CMD_GET_REGISTRATIONS: " + strerror(int(-regs)));
  }
  return e;
}

Status RestoreSchedInside(const pb::ProcSchedEntry& e, bool in_user_ns) {
  pid_t self = getpid();
  if (e.has_loginuid()) {
    TRY_ASSIGN(int64_t now, ReadNumber("/proc/self/loginuid"));
    if (uint32_t(now) != e.loginuid() && in_user_ns) {
      LOG_WARN(Who(self) + ": audit login uid " + std::to_string(e.loginuid()) +
               " not restored (it would be read in the tree's user namespace); it is " +
               std::to_string(now));
    } else if (uint32_t(now) != e.loginuid()) {
      Status st = WriteNumber("/proc/self/loginuid", int64_t(e.loginuid()));
      if (!st.ok())
        return std::move(st.error().Context(
            Who(self) + ": setting the audit login uid to " + std::to_string(e.loginuid()) +
            " (once set it needs CAP_AUDIT_CONTROL and kernel.loginuid_immutable off)"));
    }
  }
  for (uint32_t cmd = 1; cmd; cmd <<= 1) {
    if (!(e.membarrier() & cmd)) continue;
    if (syscall(SYS_membarrier, long(cmd), 0, 0) < 0)
      return Error::Errno(Who(self) + ": membarrier registration " + std::to_string(cmd));
  }
  return Ok();
}

Status RestoreSchedOutside(pid_t pid, const std::vector<pid_t>& tids,
                           const pb::ProcSchedEntry& e) {
  if (size_t(e.threads_size()) != tids.size())
    return Error(Who(pid) + ": scheduling state of " + std::to_string(e.threads_size()) +
                 " threads for " + std::to_string(tids.size()));
  for (size_t i = 0; i < tids.size(); i++) TRY(RestoreThread(pid, tids[i], e.threads(int(i))));
  if (e.has_oom_score_adj()) {
    std::string path = "/proc/" + std::to_string(pid) + "/oom_score_adj";
    TRY_ASSIGN(int64_t now, ReadNumber(path));
    if (now != e.oom_score_adj()) {
      Status st = WriteNumber(path, e.oom_score_adj());
      if (!st.ok())
        return std::move(st.error().Context(
            Who(pid) + ": oom_score_adj " + std::to_string(e.oom_score_adj()) +
            " (lowering it below what ckpt's own process allows needs CAP_SYS_RESOURCE)"));
    }
  }
  return Ok();
}

}  // namespace ckpt
