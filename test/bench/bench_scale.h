// The scaling sections of ckpt-bench (--only tree,threads,fds): how dump
// and restore time grow with the number of processes in a tree, threads in
// a process and fds in a process. One row per size N, each run a fresh
// victim (sizes interleaved per run), images on tmpfs: the cost measured is
// per object, not I/O. Before the dump ckpt-bench records what /proc shows
// (every pid and its parent; every tid; every fd number) and after the
// restore it must show exactly that again; then the SIGTERMed victim checks
// itself from inside (bench_victim.cc) and must exit 0. The tables show
// per-object cost, growth against the smallest N, the marginal cost between
// sizes, a least-squares line and a growth exponent; report() gets one
// "scale" record per row.
#pragma once

#include <string>
#include <vector>

namespace bench {

struct ScaleBenchOptions {
  std::string ckpt, victim;
  std::string tmpfs_dir;  // images go to TMPFS_DIR/images
  std::string work;       // logs, the victim's stdio, the fds victim's files
  int runs = 3;
  double timeout = 300;
  // Sizes of each section; an empty list skips that section.
  std::vector<long> tree_sizes, thread_counts, fd_counts;
  long tree_fanout = 8;
  long fd_files = 256;  // distinct files among the fds; the rest are dups
};

struct ScaleBenchResult {
  bool ok = true;                 // every row ran every run and verified
  std::string verified;           // "tree 15, threads 15, fds 9"
};

ScaleBenchResult RunScaleBench(const ScaleBenchOptions& o);

}  // namespace bench
