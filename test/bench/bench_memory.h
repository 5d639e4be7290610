// The memory section of ckpt-bench (--only memory): what the machine can do
// at all with SIZE MiB (memcpy, write(2) to tmpfs, write(2)+fsync to disk),
// and ckpt dump/restore of a victim holding SIZE MiB of random data, images
// on each medium: tmpfs, disk, through a page server on loopback, and
// restored lazily. Runs are interleaved across media so slow drifts hit all
// alike; the best run is reported, as a table on stdout and JSON records
// ("memory-baseline", "memory") in report().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bench_report.h"
#include "bench_util.h"

namespace bench {

struct Medium {
  const char* name = "";     // "tmpfs" / "disk" / "pgsrv" / "lazy"
  bool page_server = false;  // dump --page-server to a `ckpt page-server` on loopback
  bool lazy = false;         // restore --lazy-pages with a `ckpt lazy-pages` (images on tmpfs)
  bool fsync = false;        // its write baseline fsyncs (a disk)
  const Medium* same_as = nullptr;  // shares that medium's filesystem and write baseline
  std::string dir;           // our private temp dir on that medium
  std::string desc;          // how it was set up, for the header
  Timing write;              // write(2) baseline on this medium
  std::vector<double> read_touch;           // restore baseline (bench_baselines.h)
  std::vector<long> dump_rss, restore_rss;  // ckpt's ru_maxrss, KiB
  Timing dump, restore;
  Timing all_in;             // lazy: from restore start until the daemon has every page in
  std::optional<Usage> images;
  std::string error;  // first failure, if any
  int verified = 0;   // restores whose memory checksum matched
};

struct MemoryBenchOptions {
  std::string ckpt, victim;
  std::string work;  // logs and the victim's stdio files
  uint64_t size_mib = 1024;
  int runs = 3;
  double timeout = 300;
};

struct MemoryBenchResult {
  bool ok = true;    // every baseline and every round trip on every medium succeeded
  int verified = 0;  // restores whose memory checksum matched
};

MemoryBenchResult RunMemoryBench(const MemoryBenchOptions& o, std::vector<Medium>& media);

}  // namespace bench
