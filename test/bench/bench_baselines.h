// The memory section's restore baseline and ckpt's own peak memory.
//
// Restore baseline: what a restore of SIZE bytes cannot avoid, measured
// on the same medium in the same run: reading the image (`cat FILE >
// /dev/null`, the real cat, from the page cache the dump left warm) plus
// the first touch of SIZE bytes of fresh anonymous memory (one write per
// 4 KiB page: the page faults, zeroing and, on this VM kind, the host
// handing the memory back). Each run times both; the sum of a run is one
// sample.
//
//   std::vector<double> rt = bench::ReadTouchBaseline(dir, bytes, runs);
//
// Peak memory: ru_maxrss of the ckpt process (wait4 of the dump and of
// `restore -d`; the restored tree is not ckpt's). Printed with the
// restore ratios by PrintMemoryExtras.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace bench {

// Seconds per run (cat + first touch); throws std::runtime_error on a
// setup failure. Leaves no file behind.
std::vector<double> ReadTouchBaseline(const std::string& dir, size_t bytes, int runs);

struct MemoryRow {
  std::string medium;                               // "tmpfs", "disk", ...
  std::vector<double> read_touch;                   // its baseline (may be empty: not measured)
  std::vector<double> restore;                      // ckpt restore -d, seconds
  std::vector<long> dump_rss_kib, restore_rss_kib;  // ru_maxrss of ckpt
};

// The restore-vs-baseline and peak-memory tables (after the main report).
void PrintMemoryExtras(const std::vector<MemoryRow>& rows, size_t bytes);

}  // namespace bench
