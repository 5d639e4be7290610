// Helpers that look at a task's mount namespace from inside it: a forked
// child of ckpt joins the namespace (setns) and the task's root (chroot),
// does the work and hands back fds or strings over a socket. ckpt itself
// never changes namespace. Internal to criu/ns/mnt_ns*.cc; TaskPaths is
// the public face (mnt_ns.h).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::ns {

// For each mount point (absolute, as the task sees it), a detached clone
// of the mount there (open_tree OPEN_TREE_CLONE, not recursive: no mount
// below it is crossed when walking the clone). Closing the fd dissolves
// the clone; the task's mount is untouched.
Result<std::vector<UniqueFd>> CloneMountsOf(pid_t pid, const std::vector<std::string>& mountpoints);

}  // namespace ckpt::ns
