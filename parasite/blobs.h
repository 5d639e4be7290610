// The two blobs embedded in ckpt, as raw bytes. Entry is at offset 0.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ckpt::blobs {

struct Blob {
  const uint8_t* data;
  size_t size;
};

Blob Parasite();
Blob Restorer();

}  // namespace ckpt::blobs
