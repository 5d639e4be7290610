// The "container" section of ckpt-bench (bench_container.cc): how long
// `ckpt dump` and `ckpt restore` take for a 100-process container, a tree
// whose root is pid 1 of new pid, uts, ipc and net namespaces (lo up, a
// hostname, a SysV message queue, some threads, private memory in every
// process; see bench_victim_container.h for the shape), next to the same
// tree without namespaces measured in the same run.
#pragma once

#include <string>

struct ContainerBenchOptions {
  std::string ckpt, victim;  // absolute paths
  std::string image_dir;     // where images go (a tmpfs): a subdirectory is made and removed
  std::string work_dir;      // logs and the victims' stdio (removed on success)
  int runs = 3;              // best and median are reported
  double timeout = 300;      // bound on each ckpt command and victim step
  long procs = 100;          // processes in the container, the root included
  bool baseline = true;      // also run the same tree in ckpt-bench's own namespaces
};

struct ContainerBenchResult {
  bool ok = true;    // every run of every row dumped, restored and verified
  int verified = 0;  // restores found whole
};

// Runs every row (runs interleaved across rows) and prints the table to
// stdout, failures to stderr with the tails of the logs. A restore is
// verified from outside (every process with its pid in the namespace and
// its parent, every thread id, all in the container's namespaces; the
// hostname, lo up and the queue's messages, read from a helper that joins
// the namespaces) and from inside (every process checks its pids, memory
// and threads, the root its names, lo and the queue's contents, on
// SIGTERM). Needs root; the caller must be a child subreaper (restored
// roots come back to it) and may have no other children while it runs.
// Leaves no process, namespace, image or log behind, also on failure.
// Throws bench::Interrupted once bench::g_stop is set (after cleaning up).
ContainerBenchResult RunContainerBench(const ContainerBenchOptions& o);
