// `ckpt dump`: checkpoint a process into an image directory.
#pragma once

#include "base/result.h"
#include "criu/kerndat.h"
#include "criu/options.h"

namespace ckpt {

// On success the images are complete (inventory written last) and the
// process is killed, or left running with --leave-running. On failure the
// process runs on exactly as before and no inventory exists.
Status Dump(const Options& o, const KernelFeatures& kf);

}  // namespace ckpt
