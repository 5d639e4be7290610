// The "precopy" section of ckpt-bench (bench_precopy.cc), issue 10's
// migration benchmark: a SIZE MiB process rewriting RATE MiB/s of pages at
// random (`ckpt-bench-victim precopy`), moved (on this machine) two ways:
//   cold:     ckpt dump to tmpfs, then ckpt restore -d from it; the pause
//             is dump + restore;
//   pre-copy: ckpt pre-dump rounds through a `ckpt page-server` on
//             127.0.0.1 while it runs (each round only what was written
//             since, until the dirty set stops shrinking, is under 4 MiB,
//             or max_rounds), then the final dump --prev-images-dir
//             --track-mem --page-server and the restore from the chain;
//             the pause is from the start of the final dump until the
//             restore returned with the process running;
//   post-copy: the same pre-copy with a new victim, then the final step
//             lazy: `dump --lazy-pages` keeps the pages and serves them on
//             127.0.0.1, `restore --lazy-pages` with `ckpt lazy-pages
//             --page-server` pulling them; the pause ends when the restore
//             returned, and "every page in" when the daemon exited 0.
// Every restored victim is SIGTERMed and must find every page right.
#pragma once

#include <cstdint>
#include <string>

struct PrecopyBenchOptions {
  std::string ckpt, victim;  // absolute paths
  std::string image_dir;     // a tmpfs: subdirectories are made and removed
  std::string work_dir;      // logs and the victims' stdio
  uint64_t size_mib = 1024;
  uint64_t rate_mib = 64;  // MiB/s rewritten
  int max_rounds = 6;
  int runs = 3;
  double timeout = 300;  // bound on each ckpt command and victim step
};

struct PrecopyBenchResult {
  bool ok = true;    // every run ran and verified
  int verified = 0;  // restored victims that found their memory right
};

// Prints a block per run and a summary to stdout, failures to stderr with
// the tails of the logs. The caller must be a child subreaper. Leaves no
// victim running and no images behind.
PrecopyBenchResult RunPrecopyBench(const PrecopyBenchOptions& o);
