#include "criu/fault_blob.h"

#include <unistd.h>

#include "base/fault.h"

namespace ckpt {
namespace {
// ckpt's own pid, taken before any restoring task is forked.
const pid_t g_ckpt_pid = getpid();
}  // namespace

void FillRestorerFaults(abi::RestoreArgs* a) {
  a->fault = 0;
  a->fault_kill_pid = 0;
  bool kill = false;
  if (fault::Armed("restorer-before-unmap")) {
    a->fault |= abi::kFaultBeforeUnmap;
    kill |= fault::KillMode("restorer-before-unmap");
  }
  if (fault::Armed("restorer-after-unmap")) {
    a->fault |= abi::kFaultAfterUnmap;
    kill |= fault::KillMode("restorer-after-unmap");
  }
  if (kill) {
    a->fault |= abi::kFaultKill;
    // Only the root is ckpt's child, and only in ckpt's pid namespace
    // does getppid() say so: elsewhere the pid would name another process.
    if (getppid() == g_ckpt_pid) a->fault_kill_pid = g_ckpt_pid;
  }
}

}  // namespace ckpt
