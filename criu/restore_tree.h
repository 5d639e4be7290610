// The task side of a tree restore: every restored process starts as a
// clone of ckpt with its dumped pid, creates its own children (so parent
// links are right), takes its session and process group in two phases
// synchronised across the tree, then becomes its image (EnterRestorer) or,
// for a zombie, exits with its recorded status.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "criu/options.h"
#include "criu/restore_task.h"
#include "criu/task_images.h"
#include "images/image_dir.h"

namespace ckpt {

// Shared (MAP_SHARED) by every task of the restore and ckpt: barriers.
struct TreeSync {
  uint32_t created;  // tasks that exist, zombies included
  uint32_t grouped;  // tasks in their final session and process group
  uint32_t failed;   // set by any task that fails: the others give up
};

// Adds helper tasks for sessions and process groups whose leader had exited
// (their members must be born into them), or says why the layout cannot be
// restored. Call once after loading, before checking pids.
Status PlanHelpers(TreeImages& tree);

// Maps a fresh TreeSync shared with every future child.
Result<TreeSync*> CreateTreeSync();

// Creates pid `tree.tasks[idx]` with clone3(set_tid). Returns the pid in
// the parent; the child runs RunTask and never returns.
Result<pid_t> CloneTask(const TreeImages& tree, int idx, const images::ImageDir& dir,
                        const Options& o, TreeFds& fds, TreeSync* sync);

// user namespaces (criu/ns/user_ns.h): a root born in the tree's user
// namespace cannot act as the IPC objects' creators (ckpt's ids), so ckpt
// fills the root's IPC namespace from a child of its own that joins the
// root's IPC namespace and, for its children, its pid namespace (a
// semaphore's last pid). Call once the root exists, before it runs.
Status FillIpcNamespaceOf(const TreeImages& tree, const images::ImageDir& dir, pid_t root);

}  // namespace ckpt
