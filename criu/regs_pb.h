// Conversion between compel's register state and the core image (arch code
// in arch/<arch>/regs_pb.cc).
#pragma once

#include "base/result.h"
#include "compel/regs.h"
#include "proto/core.pb.h"

namespace ckpt {

void RegsToProto(const compel::Regs& r, pb::ThreadCoreX86* out);
Result<compel::Regs> RegsFromProto(const pb::ThreadCoreX86& in);

}  // namespace ckpt
