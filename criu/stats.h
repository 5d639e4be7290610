// --display-stats: what one dump or restore took, printed on stdout once it
// is done (CRIU's names for the lines; times in microseconds). Filled by
// criu/dump.cc and criu/restore.cc; nothing is saved in the images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ckpt {

// Microseconds of CLOCK_MONOTONIC.
int64_t NowUs();

struct DumpStats {
  int64_t freezing_us = 0;  // seizing the tree (and --freeze-cgroup)
  int64_t frozen_us = 0;    // from the tree held to it killed or let go
  int64_t memdump_us = 0;   // reading and writing memory, every task
  uint64_t pages_scanned = 0, pages_written = 0, pages_zero = 0, pages_in_parent = 0,
           pages_in_prev = 0;
  size_t tasks = 0;
};
std::string FormatDumpStats(const DumpStats& s);

struct RestoreStats {
  int64_t forking_us = 0;  // creating the tasks until every one is restored
  int64_t restore_us = 0;  // the whole restore, until the tree runs
  size_t tasks = 0;
};
std::string FormatRestoreStats(const RestoreStats& s);

}  // namespace ckpt
