// libFuzzer target: one compressed pages file (images/zpages.h, dump
// --compress) as restore and `ckpt lazy-pages` read it: the header and
// index parsed, then every byte of the contents read through the frame
// decoder, by offset in uneven pieces and whole into a memfd. Must end in
// an error or the contents, never a crash, a hang, a leak or a huge
// allocation.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "images/zpages.h"
#include "test/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(reinterpret_cast<const char*>(data), size);
  ckpt::images::ZPread pread = [&file](uint64_t off, void* buf, size_t len) -> ckpt::Status {
    if (off > file.size() || len > file.size() - off) return ckpt::Error("short read");
    memcpy(buf, file.data() + off, len);
    return ckpt::Ok();
  };
  auto r = ckpt::images::ZReader::Open(pread, file.size(), "pages-1.img");
  if (!r.ok()) return 0;
  // Contents of at most 64 MiB are read (a valid index may claim more: a
  // frame is read only when asked for, so only time is bounded here).
  uint64_t n = std::min<uint64_t>(r->raw_size(), 64u << 20);
  std::string buf(size_t(std::min<uint64_t>(n, 1 << 20)), '\0');
  for (uint64_t off = 0, step = 4096; off < n; off += step, step = step * 2 + 4096) {
    size_t len = size_t(std::min<uint64_t>({step, n - off, buf.size()}));
    if (!r->ReadAt(off, buf.data(), len).ok()) return 0;
  }
  if (r->raw_size() <= (64u << 20)) {
    int fd = memfd_create("fuzz-zpages", MFD_CLOEXEC);
    if (fd >= 0) {
      (void)r->CopyTo(fd, 2);
      close(fd);
    }
  }
  return 0;
}
