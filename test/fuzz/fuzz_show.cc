// libFuzzer target: one image file as `ckpt show FILE` reads it: the file
// header (magic, type), the record framing, each record parsed as its
// type's proto, and printed as JSON. Must end in an error or success, never
// a crash, a hang or a leak. The input is sealed with a checksum trailer
// unless it has one (fuzz_util.h).
#include <cstddef>
#include <cstdint>

#include "criu/show.h"
#include "test/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckpt::fuzz::MemFile f(ckpt::fuzz::SealedImage(data, size));
  (void)ckpt::Show(f.path());
  return 0;
}
