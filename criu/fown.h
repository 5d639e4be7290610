// SIGIO owners of open files (issue 14 item 8): F_SETOWN / F_SETOWN_EX
// owner, F_SETSIG signal and O_ASYNC of the open file behind an fd, so
// that SIGIO (or the chosen signal) keeps coming after restore, to the
// restored owner.
//
// Dump (ckpt, tree seized; after the fds were collected):
//   std::set<pid_t> ids = FownTreeIds(tree);   // once per dump
//   TRY_ASSIGN(auto fown, DumpFowns(pid, fd_numbers, ids));
// reads each fd's file through ckpt's own copy of it (pidfd_getfd: the
// same open file description). An owner that is not a task, thread,
// process group or session of the tree is refused (its pid means nothing
// after restore).
//
// Restore, in the task (RestoreFownAsync, below), then in ckpt once every
// task and thread exists and is stopped before its return to the dumped
// code:
//   RestoreFowns(real_pid, core, real_tid_of)
// sets owner and signal through ckpt's copy of each fd;
// real_tid_of maps a tid of the dump to the restored one (pids in pid
// namespaces may differ). The owner's credentials the kernel records for
// the permission check of each SIGIO are ckpt's (root), not those of the
// task that called F_SETOWN: no interface sets them.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <vector>

#include "base/result.h"
#include "criu/pstree.h"
#include "proto/core.pb.h"

namespace ckpt {

std::set<pid_t> FownTreeIds(const std::vector<TreeTask>& tree);

Result<std::vector<pb::FownEntry>> DumpFowns(pid_t pid, const std::vector<int>& fds,
                                             const std::set<pid_t>& tree_ids);

Status RestoreFowns(pid_t real_pid, const pb::TaskCoreEntry& core,
                    const std::map<pid_t, pid_t>& real_tid_of);

// In the restoring task itself, once its fds are at their numbers (before
// the restorer): O_ASYNC again on each fd that had it. The kernel records
// the fd number of the F_SETFL call and puts it in every SIGIO's si_fd,
// so only the task can set it right.
Status RestoreFownAsync(const pb::TaskCoreEntry& core);

}  // namespace ckpt
