// Fd tables and fs structs (cwd, root, umask) shared between tasks
// (issue 14 item 8), found with kcmp(2) KCMP_FILES / KCMP_FS.
//
// What restores:
//   - the threads of one process share both, as clone(2) of a thread
//     (CLONE_FILES | CLONE_FS) made them; the restorer creates threads
//     that way;
//   - processes sharing one fs struct along parent links (a child cloned
//     with CLONE_FS, its own CLONE_FS children, ...): each such child is
//     recreated by its parent with CLONE_FS (TaskCoreEntry.
//     fs_shared_with_parent), so a chdir, chroot or umask in one is seen
//     by the others again.
// What is refused at dump, before anything is touched, instead of being
// restored apart silently:
//   - a thread that unshared its fd table or fs struct (unshare(2));
//   - processes sharing one fd table (clone with CLONE_FILES but without
//     CLONE_VM): each restored process gets a table of its own, and the
//     restore lays out every task's fds in its own table;
//   - processes sharing an fs struct other than along parent links (e.g.
//     siblings whose parent does not share it).
//
// Dump: TRY_ASSIGN(TreeSharing s, CheckSharedTables(tree)) after the
// seize, before the parasite; core.set_fs_shared_with_parent(true) for the
// pids in s.fs_with_parent.
// Restore: RawClone (restore_tree.cc) adds FsCloneFlag(tree, idx) to the
// clone flags of task idx, in its creator.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <vector>

#include "base/result.h"
#include "criu/pstree.h"
#include "criu/task_images.h"

namespace ckpt {

struct TreeSharing {
  std::set<pid_t> fs_with_parent;  // processes sharing their parent's fs struct
};

Result<TreeSharing> CheckSharedTables(const std::vector<TreeTask>& tree);

// CLONE_FS if task idx shared its parent's fs struct, else 0. An error if
// its creator in this restore is not that parent (a helper task standing
// in for an exited session or group leader).
Result<uint64_t> FsCloneFlag(const TreeImages& tree, int idx);

}  // namespace ckpt
