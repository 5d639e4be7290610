#include "parasite/blobs.h"

extern "C" const uint8_t ckpt_blob_parasite[], ckpt_blob_parasite_end[];
extern "C" const uint8_t ckpt_blob_restorer[], ckpt_blob_restorer_end[];

namespace ckpt::blobs {

Blob Parasite() {
  return {ckpt_blob_parasite, size_t(ckpt_blob_parasite_end - ckpt_blob_parasite)};
}
Blob Restorer() {
  return {ckpt_blob_restorer, size_t(ckpt_blob_restorer_end - ckpt_blob_restorer)};
}

}  // namespace ckpt::blobs
