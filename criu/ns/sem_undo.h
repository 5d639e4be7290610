// SysV semaphore undo adjustments (SEM_UNDO): what each process would give
// back to the semaphores when it exits. The kernel keeps them in a list per
// process (shared by its threads, and by processes cloned with
// CLONE_SYSVSEM) and has no call that reads them. ckpt reads one anyway:
//
//   unshare(CLONE_SYSVSEM), run in the process as a remote system call,
//   applies its list exactly as its exit would and drops it; the change of
//   every semaphore's value is the adjustment. The same process then makes
//   the same list again with semop(-adj, SEM_UNDO | IPC_NOWAIT), which
//   puts every value back. The process is left as it was (its semaphores'
//   last-operation pid is itself, as an exit would make it).
//
// That is only exact and invisible when nobody else can see the values
// move or take from them meanwhile, and when the list is the process's
// alone. So a list is read only where:
//   - the tree has an IPC namespace of its own, and no process outside the
//     tree is in it (everyone who can touch the semaphores is frozen);
//   - the process has one thread and no other task of the tree shares its
//     list (kcmp KCMP_SYSVSEM); a shared list applies only when its last
//     holder drops it, and could not be shared again afterwards.
// Other lists are named in a warning and lost at restore, as before.
//
// Restore: each task, in its own process, once its IPC namespace is filled
// and before it forks, does for every saved adjustment one atomic semop
// of two operations (the positive one first): value += adj without undo,
// value -= adj with SEM_UNDO. The value stays as dumped and the task's list
// holds adj again; threads made later share it (CLONE_SYSVSEM).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "proto/core.pb.h"

namespace ckpt::ns {

// Which processes' lists a dump reads. `tasks`: each live process of the
// tree with its thread count. `own_ipc_ns`: the tree's IPC namespace is its
// own (namespaces.img has one). `root`: a task in that namespace.
struct SemUndoPlan {
  std::vector<pid_t> readable;              // read them with ReadSemUndo
  std::map<pid_t, std::string> unreadable;  // pid -> why its list is lost
};
Result<SemUndoPlan> PlanSemUndo(const std::map<pid_t, size_t>& tasks, bool own_ipc_ns, pid_t root);

// Reads the list of `pid` (seized and stopped; in the plan's `readable`)
// and puts it back, as described above. `mem_fd`: its /proc/PID/mem.
// On error after the list was applied, the message says which adjustments
// the process lost.
Result<std::vector<pb::SemUndoEntry>> ReadSemUndo(pid_t pid, int mem_fd, pid_t ipc_ns_pid);

// Checks saved adjustments (image input): semaphore numbers and values in
// the kernel's range.
Status CheckSemUndo(const pb::TaskCoreEntry& core);

// In the restored task, inside its filled IPC namespace: makes its list.
Status RestoreSemUndo(const pb::TaskCoreEntry& core);

}  // namespace ckpt::ns
