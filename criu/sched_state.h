// Scheduling and accounting state of a task (issue 14 item 6): per thread
// the scheduling policy and its parameters (sched_getattr(2): nice, RT
// priority, SCHED_DEADLINE runtime/deadline/period, reset-on-fork,
// utilization clamps), CPU affinity and I/O priority; per process
// oom_score_adj, the audit login uid and membarrier registrations.
//
// Dump (ckpt, tree seized, before the parasite):
//   TRY_ASSIGN(pb::ProcSchedEntry s, DumpSchedState(pid, threads, mem_fd));
// reads everything from outside (/proc, the *_get* syscalls on each tid)
// except the membarrier registrations, which only the process itself can
// ask for (one remote MEMBARRIER_CMD_GET_REGISTRATIONS in a stopped thread).
//
// Restore, in two places because of who may set what:
//   RestoreSchedInside(e)   in the restoring task itself, before the
//       restorer blob (same mm, before its threads exist so they inherit
//       the login uid): /proc/self/loginuid can only be written by the task
//       itself, and membarrier registers the caller's mm.
//   RestoreSchedOutside(pid, tids, e)  in ckpt once every thread exists and
//       is stopped before its return to the dumped code: sched_setattr,
//       sched_setaffinity, setpriority, ioprio_set on each tid and
//       /proc/PID/oom_score_adj. `tids` are the real tids in the order of
//       e.threads().
// Errors name the task, the thread and the reason (e.g. an affinity mask
// with no CPU of this machine, SCHED_FIFO refused by the RT throttling of
// this cgroup, a negative oom_score_adj without CAP_SYS_RESOURCE).
// Not restorable: the audit session id (the kernel hands out a new one on
// each loginuid write and has no way to choose it): recorded only.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "proto/pstate.pb.h"

namespace ckpt {

Result<pb::ProcSchedEntry> DumpSchedState(pid_t pid, const std::vector<pid_t>& tids, int mem_fd);

// in_user_ns: the task restores inside the tree's own user namespace,
// where a login uid written means that namespace's uid: not set there (a
// warning says so).
Status RestoreSchedInside(const pb::ProcSchedEntry& e, bool in_user_ns);

Status RestoreSchedOutside(pid_t pid, const std::vector<pid_t>& tids, const pb::ProcSchedEntry& e);

}  // namespace ckpt
