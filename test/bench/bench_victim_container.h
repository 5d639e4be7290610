// The "container" mode of ckpt-bench-victim (bench_victim_container.cc):
// a tree of N processes whose root is pid 1 of new pid, uts, ipc and net
// namespaces (mode "ns") or, as the baseline, the same tree in ckpt-bench's
// own namespaces (mode "bare"). The shape below is shared with ckpt-bench's
// container section (bench_container.cc), which checks it from outside.
#pragma once

namespace container_shape {

// Node 0 is the root. Nodes 1..Direct(n) are its children; every later
// node i hangs under node (i - Direct(n) - 1) / kFanout + 1, so for n = 100:
// 20 children of the root, 60 grandchildren (3 under each), 19 great-
// grandchildren (under nodes 21..27).
constexpr long kFanout = 3;
constexpr long kMinProcs = 1, kMaxProcs = 5000;
inline long Direct(long n) {
  long d = n / 5 > 0 ? n / 5 : 1;
  return d < n - 1 ? d : n - 1;
}
inline long ParentOf(long i, long n) {
  return i <= Direct(n) ? 0 : (i - Direct(n) - 1) / kFanout + 1;
}
// How many levels below the root the deepest node is.
inline long Depth(long n) {
  long depth = 0;
  for (long i = n - 1; i > 0; i = ParentOf(i, n)) depth++;
  return depth;
}

// Every node with i % kThreadedEvery == 0 (the root among them) runs
// kExtraThreads threads besides its main thread.
constexpr long kThreadedEvery = 10, kExtraThreads = 3;
inline long ThreadsOf(long i) { return i % kThreadedEvery == 0 ? 1 + kExtraThreads : 1; }
inline long TotalThreads(long n) {
  long t = 0;
  for (long i = 0; i < n; i++) t += ThreadsOf(i);
  return t;
}

// Private anonymous memory of every process, filled with data that depends
// on the node and a per-run seed.
constexpr long kMemPages = 4;

// What the root sets up in mode "ns" (checked from inside and outside).
constexpr char kHostname[] = "ckpt-bench-ct";
constexpr char kDomainname[] = "bench.example";
constexpr int kMessages = 8;  // in one SysV queue; message k: type k+1, kMsgBase + kMsgStep*k bytes
constexpr int kMsgBase = 16, kMsgStep = 40;

}  // namespace container_shape

// argv: {"ckpt-bench-victim", "container", "N", "ns"|"bare"}. Returns or
// _exits with the victim's exit status (0 restored right, 1 wrong, 2 setup
// error).
int bench_container_victim_main(char** argv);
