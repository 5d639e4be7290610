// Fd tables and fs structs (cwd, root, umask) shared between tasks
// (issue 14 item 8), found with kcmp(2) KCMP_FILES / KCMP_FS.
//
// What restores: the threads of one process share both, as clone(2) of a
// thread (CLONE_FILES | CLONE_FS) made them; the restorer creates threads
// that way. What is refused at dump, before anything is touched, instead
// of being restored apart silently:
//   - a thread that unshared its fd table or fs struct (unshare(2));
//   - two processes sharing one (clone(2) with CLONE_FILES or CLONE_FS
//     but without CLONE_VM, e.g. a fork-like clone): the restore creates
//     every process with a table of its own.
// Call CheckSharedTables(tree) in the dump after the seize, before the
// parasite goes in.
#pragma once

#include <vector>

#include "base/result.h"
#include "criu/pstree.h"

namespace ckpt {

Status CheckSharedTables(const std::vector<TreeTask>& tree);

}  // namespace ckpt
