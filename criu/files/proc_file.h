// Files a task of the tree opened under /proc/PID/ of a task of the tree
// (/proc/CHILD/stat, /proc/PID/status, ...; /proc/self resolves to the
// pid). Restore opens files in the root before the other tasks exist
// (fd_restore.h), so such a file cannot be opened then: the root opens a
// stand-in (/dev/null with the same access mode), and each task holding the
// file opens the path again once every task of the tree exists (its in_task
// stage), seeks to the saved offset and puts it over every fd number of
// that file (keeping close-on-exec). Each holder then has its own open
// file (offsets are no longer shared between holders). /proc/PID/task/TID
// of a thread other than a leader does not exist yet then (threads are
// made later): that open fails, naming the path.
// Used by regfile.cc (the RegFileEntry's proc_pid).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// Dump: the PID of a "/proc/PID/..." path if PID is a process of the dumped
// tree (held by this dump, or a zombie whose parent is), else 0.
pid_t TreeProcPid(const std::string& path);

// Restore, in the root: the stand-in for an entry with proc_pid.
Result<int> ProcFileStandIn(const pb::RegFileEntry& r);

// Restore, in a task holding the file at `fds`, once the tree exists.
Status ReopenProcFile(const pb::RegFileEntry& r, const std::vector<int>& fds);

}  // namespace ckpt::files
