// Copy-on-write snapshots for `dump --leave-running`: the tree is frozen
// only while each process forks a copy of itself (its private memory as it
// was at that instant, shared copy-on-write); the private pages are then
// written from the copies while the tree runs again.
//
//   SnapshotSet snaps(enabled);  // declared before the tree: outlives it
//   ... per task, while the parasite is in, where DumpPages would run:
//   TRY_ASSIGN(bool taken, snaps.Take(inf, pid, maps, mm, pages_id, parent, index));
//   if (!taken) ... DumpPages as before (the task is not suitable)
//   ... every other image written, then the tree resumed ...
//   TRY(snaps.DumpAll(target, kf, stats));  // pagemap-N.img + pages, in Take order
//   snaps.Release();                         // children killed and reaped
//
// The snapshot child is made by the parasite with a raw clone3 (no libc:
// no atfork handler of the victim runs), exit signal 0 (no SIGCHLD; a plain
// wait(2) in the victim never sees it), untraced. It runs parasite code
// only: blocks every signal, closes every fd but a socket to ckpt, names
// itself "ckpt-snapshot" and sleeps in read(2) until the socket closes
// (ckpt done, or dead). ckpt reads its memory with process_vm_readv (and
// /proc/PID/mem for unreadable pages) and scans its pagemap: the PFNs
// there are the tree's at the freeze (the copy never writes), so the
// COW-sharing with a parent's pages (mem_dump.h PageIndex) stays right as
// long as every snapshot lives until DumpAll is over.
//
// Its parent is the victim, so only the victim can reap it: Release kills
// it and has the victim run wait4 (compel/remote_reap.h; one thread stops
// for a moment). If ckpt dies, the cure guard (compel/cure_guard.h) does
// the same. What the victim can notice: a child listed in
// /proc/PID/task/*/children while the pages are written, one process more
// against RLIMIT_NPROC / pids.max meanwhile, the snapshot's rusage in its
// RUSAGE_CHILDREN, and copy-on-write faults on the pages it writes before
// the snapshot is gone.
//
// A task is dumped the old way (while frozen) where a fork would not copy
// its memory or would change it: MADV_DONTFORK / MADV_WIPEONFORK /
// MAP_DROPPABLE private mappings, userfaultfd-registered ranges (a fork
// event would wait for its reader), a seccomp filter (the child could not
// be trusted to make its few calls), a pid or time namespace for children
// that differs from its own (the child would be their first process), or
// when the clone fails (RLIMIT_NPROC, pids.max, memory) or the child does
// not run (a frozen cgroup).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "compel/infect.h"
#include "criu/kerndat.h"
#include "criu/mem_dump.h"
#include "criu/page_xfer.h"
#include "criu/proc_parse.h"
#include "criu/stats.h"
#include "proto/mm.pb.h"

namespace ckpt {

// Why task `pid` cannot be snapshotted ("" if it can).
std::string SnapshotUnsuitable(pid_t pid, const std::vector<proc::MapEntry>& maps);

class SnapshotSet {
 public:
  explicit SnapshotSet(bool enabled) : enabled_(enabled) {}
  ~SnapshotSet() { Release(); }
  SnapshotSet(const SnapshotSet&) = delete;

  bool enabled() const { return enabled_; }
  bool empty() const { return snaps_.empty(); }

  // While `inf` is in task `pid`: forks its snapshot and remembers what
  // DumpAll needs (`mm` is copied; `parent` and `index` must outlive
  // DumpAll). False (logged) when the task is not suitable or the fork
  // failed: dump its pages now.
  Result<bool> Take(compel::Infection& inf, pid_t pid, const std::vector<proc::MapEntry>& maps,
                    const pb::MmEntry& mm, uint32_t pages_id, const PageIndex* parent,
                    PageIndex* index);

  // Once the tree runs: pagemap and pages of every snapshot, in Take order
  // (parents before children), counted into `total`.
  Status DumpAll(PageTarget& target, const KernelFeatures& kf, DumpStats& total);

  // Kills every snapshot child and has its parent reap it. Problems are
  // logged (the images do not depend on it).
  void Release();

 private:
  struct Snap {
    pid_t victim;      // the dumped task
    pid_t child = 0;   // the snapshot, in ckpt's pid namespace (0: unknown)
    pid_t nspid = 0;   // the snapshot, as the victim sees it
    UniqueFd channel;  // its socket: closing it ends the child
    UniqueFd pidfd;
    pb::MmEntry mm;
    uint32_t pages_id;
    const PageIndex* parent;
    PageIndex* index;
    bool usable = true;  // it said hello: its pages are read from it
  };
  bool enabled_;
  std::vector<std::unique_ptr<Snap>> snaps_;
};

}  // namespace ckpt
