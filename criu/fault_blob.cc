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
    // Only the root is ckpt's child, and only in ckpt's pid namespace
    // does getppid() say so: elsewhere the pid would name another process.
    // The root kills ckpt (or, as the init of its own pid namespace, where
    // it cannot see ckpt, fails); the other tasks go on and die with ckpt
    // (PTRACE_O_EXITKILL), so none of them fails first.
    bool root = getppid() == g_ckpt_pid || getpid() == 1;
    if (!root) a->fault = 0;
    if (getppid() == g_ckpt_pid) a->fault_kill_pid = g_ckpt_pid;
    if (a->fault) a->fault |= abi::kFaultKill;
  }
}

}  // namespace ckpt
