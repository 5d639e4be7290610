// Dumping a task's file descriptors: inspect every fd (before infection),
// refuse unsupported kinds, then write fdinfo-PID.img and files.img.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "criu/files/file_types.h"
#include "images/image_dir.h"

namespace ckpt::files {

struct TaskFds {
  pid_t pid = 0;
  std::vector<FdContext> fds;                 // sorted by fd
  std::vector<const FileHandler*> handlers;   // one per fd
};

// Reads every fd of pid and finds its handler; the first unsupported fd
// fails with "pid N fd M: <kind> is not supported".
Result<TaskFds> CollectFds(pid_t pid, bool shell_job);

// Writes the fds of one task. Fds sharing an open file description share
// one file entry (found with kcmp), so restore shares it again.
Status WriteFds(images::ImageDir& dir, const TaskFds& t);

}  // namespace ckpt::files
