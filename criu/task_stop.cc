#include "criu/task_stop.h"

#include <signal.h>

#include "base/log.h"

namespace ckpt {

Status StopRestoredTask(pid_t real_pid, const pb::TaskCoreEntry& core) {
  if (!core.has_stop_signal() || core.stop_signal() == 0) return Ok();
  LOG_INFO("pid " + std::to_string(real_pid) + " was stopped (signal " +
           std::to_string(core.stop_signal()) + ") at dump: restored stopped");
  if (kill(real_pid, SIGSTOP) < 0)
    return Error::Errno("pid " + std::to_string(real_pid) + ": SIGSTOP (it was stopped at dump)");
  return Ok();
}

}  // namespace ckpt
