// Fault injection inside the restorer blob (base/fault.h): the blob cannot
// read the environment, so ckpt hands it the armed points as flags.
//
//   FillRestorerFaults(a);   // in the restoring task, while filling RestoreArgs
//
// With `restorer-before-unmap:kill` (or after-unmap) the blob of the root
// task SIGKILLs ckpt when ckpt is its parent in the same pid namespace
// (getppid() is ckpt's pid), and fails when it is the init of its own pid
// namespace; the other tasks skip the point (they die with ckpt).
#pragma once

#include "parasite/abi.h"

namespace ckpt {

void FillRestorerFaults(abi::RestoreArgs* a);

}  // namespace ckpt
