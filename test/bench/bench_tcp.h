// The "tcp" section of ckpt-bench (bench_tcp.cc): how long `ckpt dump
// --tcp-established` and `ckpt restore --tcp-established` take for a
// process holding N established loopback TCP connections.
#pragma once

#include <csignal>
#include <string>
#include <vector>

struct TcpBenchOptions {
  std::string ckpt, victim;                     // absolute paths
  std::string image_dir;                        // where images go (a tmpfs): a subdirectory is made
  std::string work_dir;                         // logs and the victim's stdio
  std::vector<long> counts;                     // N of each row, increasing
  int runs = 3;                                 // the best is reported
  double timeout = 300;                         // bound on each ckpt command and victim step
  const volatile sig_atomic_t* stop = nullptr;  // non-zero: give up (SIGINT)
};

struct TcpBenchResult {
  bool ok = true;    // every row ran every run and verified
  int verified = 0;  // restores the victim found right
};

// Runs every row (runs interleaved across rows) and prints the table to
// stdout, failures to stderr with the tails of the logs. The caller must
// be a child subreaper (restored victims come back to it). Leaves no
// victim running and no images behind.
TcpBenchResult RunTcpBench(const TcpBenchOptions& o);
