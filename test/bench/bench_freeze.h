// The "freeze" section of ckpt-bench (bench_freeze.cc), issue 11 item 3:
// how long `ckpt dump --leave-running` stops a SIZE MiB process
// (`ckpt-bench-victim freeze`, 4 KiB pages and THP-backed), with the
// copy-on-write snapshot (the default) and with --no-cow-snapshot. Per
// row: the dump's wall time, the freeze ckpt logs ("frozen for N ms", from
// the start of the seize until the tree runs again), and the longest stall
// the victim saw from inside (a 100 us ticker). Best of the runs. The
// victim checks its memory at the end and must exit 0.
#pragma once

#include <cstdint>
#include <string>

struct FreezeBenchOptions {
  std::string ckpt, victim;  // absolute paths
  std::string image_dir;     // a tmpfs: subdirectories are made and removed
  std::string work_dir;      // logs and the victims' stdio
  uint64_t size_mib = 1024;
  int runs = 3;
  double timeout = 300;
};

struct FreezeBenchResult {
  bool ok = true;
  int verified = 0;  // victims that found their memory intact
};

// Prints a table to stdout, failures to stderr. The caller must be a child
// subreaper. Leaves no victim running and no images behind.
FreezeBenchResult RunFreezeBench(const FreezeBenchOptions& o);
