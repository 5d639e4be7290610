#include "criu/task_stop.h"

#include <signal.h>

#include <cstddef>

#include "base/log.h"
#include "parasite/abi.h"
#include "parasite/blobs.h"

namespace ckpt {

Status StopRestoredTask(pid_t real_pid, const pb::TaskCoreEntry& core) {
  if (!core.has_stop_signal() || core.stop_signal() == 0) return Ok();
  LOG_INFO("pid " + std::to_string(real_pid) + " was stopped (signal " +
           std::to_string(core.stop_signal()) + ") at dump: restored stopped");
  if (kill(real_pid, SIGSTOP) < 0)
    return Error::Errno("pid " + std::to_string(real_pid) + ": SIGSTOP (it was stopped at dump)");
  return Ok();
}

uint64_t IgnoredSigtrapAction(const pb::TaskCoreEntry& core, uint64_t region_start) {
  constexpr uint64_t kSigIgn = 1;
  bool ignored = false;
  for (const pb::SigactionEntry& s : core.sigactions())
    if (s.sig() == SIGTRAP) ignored = s.handler() == kSigIgn;
  if (!ignored) return 0;
  // Laid out by EnterRestorer: the blob, page aligned, then RestoreArgs.
  uint64_t blob_len = (blobs::Restorer().size + abi::kPageSize - 1) & ~(abi::kPageSize - 1);
  return region_start + blob_len + offsetof(abi::RestoreArgs, sigacts) +
         sizeof(abi::KSigaction) * (SIGTRAP - 1);
}

}  // namespace ckpt
