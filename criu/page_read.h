// Reading many page runs from pages files into memory with few system
// calls: the fill of a restore from an incremental chain, whose resolved
// pagemap (criu/page_chain.h) is tens of thousands of short runs scattered
// over several files (the last step's pages are dense in its file but
// scattered in memory; the first step's are dense in both, cut by the pages
// later steps hold).
//
//   std::vector<PageRead> reads = {{fd, vaddr, len, file_off}, ...};
//   TRY(ReadPageRuns(reads));   // every byte in place, or an error
//
// How: the runs of each file are sorted by file offset and gathered into
// preadv(2) calls of up to IOV_MAX iovecs over one contiguous file range;
// a gap of up to kMaxGap bytes between two runs is read into a scratch
// buffer instead of starting another call (reading a few pages too many is
// cheaper than a system call per run). Runs may come in any order; they
// must not overlap in memory (which one would win is unspecified).
// Errors name the address: "reading pages into ADDR: ...".
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"

namespace ckpt {

struct PageRead {
  int fd;
  uint64_t vaddr;  // destination in this process's memory
  uint64_t len;    // bytes
  uint64_t off;    // offset in fd
};

inline constexpr uint64_t kMaxGap = 256 << 10;

// `reads` is reordered.
Status ReadPageRuns(std::vector<PageRead>& reads);

}  // namespace ckpt
