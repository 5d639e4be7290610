// Files that are not regular files but were unlinked while open: an empty
// directory removed while open (or while a task's working directory), a
// FIFO, a memory device node made with mknod. None has contents to save
// (a directory can only be removed empty and nothing can be made in it
// afterwards; a FIFO's bytes are saved as a pipe's), so restore makes a
// new node of the same kind at the old path, opens it (or enters it) and
// removes it again: the /proc link reads "PATH (deleted)" as before. The
// node is a new inode: two tasks that held the same deleted directory get
// one each when they are restored separately (a working directory), the
// same one when they held one open file (fds are shared as usual).
// Used by regfile.cc, pipe.cc, chrdev.cc and, for working directories,
// criu/restore_task.cc (EnterDeletedDir) and criu/dump.cc (IsDeletedLink).
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace ckpt::files {

// True if a /proc link names an unlinked file ("PATH (deleted)").
bool IsDeletedLink(const std::string& link);
// PATH without " (deleted)".
std::string StripDeleted(const std::string& link);

// Makes a node of kind `mode & S_IFMT` (S_IFDIR, S_IFIFO or S_IFCHR with
// `rdev`) with permissions `mode & 07777` at `path`, opens it with
// `flags` (O_CLOEXEC added) and removes it. Errors name the path.
Result<int> OpenDeletedNode(const std::string& path, mode_t mode, dev_t rdev, int flags);

// In a restored task: chdir into a new empty directory at `path` (made
// with `mode`), then removes it; the task's cwd reads "PATH (deleted)".
Status EnterDeletedDir(const std::string& path, mode_t mode);

}  // namespace ckpt::files
