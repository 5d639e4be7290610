// Damage detection for image files: a restore is either exact or refused
// with the file named.
//
// Record images (everything ImageWriter writes) end with a 16-byte
// trailer: u32 kTrailerMark (0xffffffff, never a valid record length),
// u32 CRC32C of every byte before the trailer (magics and records), u64
// the file's whole length. ImageDir::OpenReader and OpenAnyImage check it
// before the first record is read: a file cut short, with bytes appended
// or with any byte changed is refused ("core-42.img: damaged: ...").
//
// Raw files (pages-N.img, shmem-*.img, sysvshm-*.img: read by offset,
// also by the restorer blob) carry no trailer. ImageDir::Commit reads each
// one it created back (from the page cache) and lists its name, size and
// CRC32C in checksums.img before the inventory; a page server lists the
// files it received in checksums1.img (the sums are of the bytes stored:
// compressed ones for a zpages file, images/zpages.h, whose entry says
// so in `encoding`). ImageDir::OpenRaw refuses a raw
// file no list names, or whose size or checksum differ (checked once per
// file and process).
//
//   uint32_t c = Crc32c(0, buf, n);  c = Crc32c(c, more, m);  // chained
//   std::string sealed = SealImage(header_and_records);       // + trailer
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::images {

inline constexpr uint32_t kTrailerMark = 0xffffffffu;
inline constexpr size_t kTrailerSize = 16;

// CRC32C (Castagnoli), as iSCSI and ext4 use it; SSE4.2 when the CPU has
// it. Chained: pass the previous result (0 to start).
uint32_t Crc32c(uint32_t crc, const void* data, size_t len);
// The CRC32C of A then B, from crc_a = Crc32c(0, A), crc_b = Crc32c(0, B)
// and B's length: pieces checksummed apart (by several threads, or as they
// pass) make the checksum of the whole. O(log len_b).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

// The trailer of a file whose bytes before it have checksum `crc` and
// which is `body_len` + kTrailerSize bytes long.
std::string Trailer(uint32_t crc, uint64_t body_len);
// bytes + its trailer: a whole record image (a pagemap built in memory).
std::string SealImage(const std::string& bytes);

// Checks the trailer and checksum of the record image open as fd;
// returns the length of its records (after the 8 bytes of magics).
Result<uint64_t> CheckTrailer(int fd, const std::string& name);

struct FileSum {
  std::string name;
  uint64_t size = 0;
  uint32_t crc = 0;
  bool zpages = false;  // compressed (images/zpages.h); not set by SumFile
};
// Size and CRC32C of a whole file (read with pread; the offset stays).
// With `threads` 2, a big file is read by two threads, a half each (both
// cores); the caller must be free to start a thread (a restored task is
// not: a thread takes a pid that clone3 may be about to ask for).
Result<FileSum> SumFile(int fd, const std::string& name, int threads = 1);
// A sealed checksums image listing `sums` (for a page server).
std::string ChecksumsImage(const std::vector<FileSum>& sums);

}  // namespace ckpt::images
