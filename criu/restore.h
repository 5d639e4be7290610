// `ckpt restore`: bring a dumped process back with its original pid.
#pragma once

#include "base/result.h"
#include "criu/kerndat.h"
#include "criu/options.h"

namespace ckpt {

// Returns the exit code for ckpt: 0 when detached (-d) and the process
// runs; otherwise the restored process's own exit status (128+signal if it
// was killed). On failure nothing of the restored process is left.
// `root_pid`, if given, receives the restored root's real pid (RPC answers
// with it). With o.rst_sibling the root is cloned with CLONE_PARENT: it is
// ckpt's parent's child (ckpt still traces it through the restore).
Result<int> Restore(const Options& o, const KernelFeatures& kf, pid_t* root_pid = nullptr);

}  // namespace ckpt
