// The "compress" section of ckpt-bench (bench_compress.cc), issue 11
// item 5: a SIZE MiB process whose heap is half text-like, half random
// (`ckpt-bench-victim compress`) dumped to a tmpfs without compression and
// with `--compress zstd:LEVEL` for each level asked, then restored from
// those images. Reports per level: dump time and throughput (MiB of
// memory per second), pages image bytes and the ratio to the raw pages,
// restore time. Every restored victim is SIGTERMed and must find its
// memory unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct CompressBenchOptions {
  std::string ckpt, victim;  // absolute paths
  std::string image_dir;     // a tmpfs: subdirectories are made and removed
  std::string work_dir;      // logs and the victims' stdio
  uint64_t size_mib = 1024;
  std::vector<long> levels{1, 3};  // 0: no compression (always measured first)
  int runs = 3;
  double timeout = 300;
};

struct CompressBenchResult {
  bool ok = true;
  int verified = 0;  // restored victims that found their memory right
};

// Prints a table (best of the runs per level) to stdout, failures to
// stderr with the tails of the logs. The caller must be a child
// subreaper. Leaves no victim running and no images behind.
CompressBenchResult RunCompressBench(const CompressBenchOptions& o);
