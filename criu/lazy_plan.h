// Which pages of a task a lazy restore leaves to the lazy-pages daemon
// (criu/lazy_pages.h), computed the same way by the three parties that
// must agree: the restore (what the restorer reads now and what it
// registers with userfaultfd), the daemon (what it must fill) and a lazy
// dump's page holder (which bytes of the pages files it keeps back).
//
// Lazy: the dumped pages inside private anonymous VMAs (not
// MAP_DROPPABLE): userfaultfd's MISSING mode works on anonymous memory
// only, so pages of private file mappings are read eagerly, as always.
// The pages holding a thread's rseq area are eager too: the kernel writes
// that area when the restorer registers rseq, before the daemon serves.
//
//   LazyPlan p = PlanLazy(task);
//   p.eager  -> RestorePages for the restorer;  p.vmas -> UFFDIO_REGISTER
//   p.lazy   -> what the daemon copies in (source file and offset)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "criu/task_images.h"

namespace ckpt {

struct PageRun {
  uint64_t vaddr = 0;
  uint64_t nr_pages = 0;
  uint32_t src = 0;  // pages source id (criu/page_chain.h PagesSourceName)
  uint64_t off = 0;  // byte offset in that file
};

struct LazyPlan {
  std::vector<PageRun> eager;  // read by the restorer, in pagemap order
  std::vector<PageRun> lazy;   // left to the daemon, sorted by address
  struct Range {
    uint64_t start, end;
  };
  std::vector<Range> vmas;  // registered with userfaultfd (each holds lazy pages)
};

// Every page run of `t` with its source (own pages file: t.pages_id).
std::vector<PageRun> TaskPageRuns(const TaskImages& t);

// `lazy` false: everything eager, nothing registered.
LazyPlan PlanLazy(const TaskImages& t, bool lazy = true);

// The dumped VMAs a fork does not copy (MADV_DONTFORK) or leaves empty
// (MADV_WIPEONFORK): a forked child is owed nothing there.
std::vector<LazyPlan::Range> NotInheritedByFork(const TaskImages& t);

}  // namespace ckpt
