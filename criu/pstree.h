// The process tree under `-t ROOT`: found through /proc/PID/task/TID/children
// and seized process by process, so no task can fork behind our back (a
// seized task is stopped; its children are read only after that).
#pragma once

#include <sys/types.h>

#include <memory>
#include <vector>

#include "base/result.h"
#include "compel/seize.h"

namespace ckpt {

struct TreeTask {
  pid_t pid = 0, ppid = 0, pgid = 0, sid = 0;
  bool zombie = false;
  int exit_status = 0;                          // zombies: the wait status their parent will see
  std::unique_ptr<compel::SeizedProcess> proc;  // live tasks only
};

// Root first, then every descendant in an order where each task comes
// after its parent. Destroying the vector resumes every seized task.
Result<std::vector<TreeTask>> SeizeTree(pid_t root);

}  // namespace ckpt
