// Pid namespaces of a dumped tree.
//
// A task's pids form a chain, one per pid namespace level, from the
// outermost ckpt can see to the task's own (/proc/PID/status NSpid). The
// tree may live in ckpt's pid namespace, or its root may be the init
// (pid 1) of its own; either way tasks below may be inits of nested
// namespaces. The chains in pstree.img start at the level of the namespace
// the root's namespace was made in ("outer": ckpt's at restore), so a
// restore recreates the tree's namespaces under its own.
//
// Restore creates each task with clone3(set_tid) given its whole chain
// (CLONE_NEWPID for an init): the same pid at every level inside the
// tree's namespaces, and the same outer pid too when it is free; when it
// is not, the kernel picks the outer pid (the tree never sees it).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "proto/pstree.pb.h"

namespace ckpt {
struct TreeTask;  // criu/pstree.h
}

namespace ckpt::ns {

// Deepest nesting a restore handles (the kernel allows 32).
inline constexpr int kMaxPidLevels = 8;

// Checks the tree's pid namespace layout: the root in ckpt's namespace or
// the init of its own; each task at most one level deeper than its parent,
// and then the init of that level. Returns the level the chains start at,
// or -1 if every task lives in ckpt's pid namespace (no chains needed).
Result<int> PidNsBase(const std::vector<TreeTask>& tree);

// Fills ns_pid, ns_pgid, ns_sid and thread_ns_tids of `ps` (task `pid`
// with `threads`) from level `base` on.
Status FillNsPids(pid_t pid, const std::vector<pid_t>& threads, int base, pb::PstreeEntry* ps);

// The set_tid array for clone3: innermost first. Empty chain: {pid}.
std::vector<pid_t> SetTidOf(const pb::PstreeEntry& ps);
std::vector<pid_t> SetTidOfThread(const pb::PstreeEntry& ps, int thread);

// Checks the chains of a loaded pstree entry: all the same depth, at most
// kMaxPidLevels, no zero pids, threads consistent. Errors name the task.
Status CheckNsPids(const pb::PstreeEntry& ps);

}  // namespace ckpt::ns
