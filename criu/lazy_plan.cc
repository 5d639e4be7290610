#include "criu/lazy_plan.h"

#include <algorithm>

namespace ckpt {
namespace {
constexpr uint64_t kPage = 4096;
constexpr uint32_t kMadvDroppable = 64;  // VmaEntry.madv, as abi::kVmaDroppable
}  // namespace

std::vector<PageRun> TaskPageRuns(const TaskImages& t) {
  std::vector<PageRun> out;
  uint64_t own_off = 0;
  for (const pb::PagemapEntry& p : t.pages) {
    PageRun r;
    r.vaddr = p.vaddr();
    r.nr_pages = p.nr_pages();
    if (p.has_src_pages_id()) {
      r.src = p.src_pages_id();
      r.off = p.src_off();
    } else {
      r.src = t.pages_id;
      r.off = own_off;
      own_off += uint64_t(p.nr_pages()) * kPage;
    }
    out.push_back(r);
  }
  return out;
}

LazyPlan PlanLazy(const TaskImages& t, bool lazy) {
  LazyPlan plan;
  std::vector<LazyPlan::Range> lazy_vmas;
  if (lazy)
    for (const pb::VmaEntry& v : t.mm.vmas())
      if (v.kind() == pb::VMA_ANON_PRIVATE && !(v.madv() & kMadvDroppable))
        lazy_vmas.push_back({v.start(), v.end()});
  std::sort(lazy_vmas.begin(), lazy_vmas.end(),
            [](const auto& a, const auto& b) { return a.start < b.start; });
  // The pages of each thread's rseq area stay eager: the restorer
  // registers rseq before the daemon serves anything, and the kernel
  // writes the area (cpu_id) on the way back from that rseq(2): a fault
  // there would wait for the daemon, which waits for the restore.
  std::vector<LazyPlan::Range> holes;
  for (const pb::ThreadEntry& th : t.core.threads())
    if (th.has_rseq() && th.rseq().ptr() && th.rseq().size())
      holes.push_back({th.rseq().ptr() & ~(kPage - 1),
                       (th.rseq().ptr() + th.rseq().size() + kPage - 1) & ~(kPage - 1)});
  std::sort(holes.begin(), holes.end(), [](const auto& a, const auto& b) { return a.start < b.start; });
  // Lazy parts: the lazy VMAs without the holes, each with its VMA.
  struct Part {
    uint64_t start, end;
    size_t vma;
  };
  std::vector<Part> parts;
  for (size_t i = 0; i < lazy_vmas.size(); i++) {
    uint64_t cur = lazy_vmas[i].start;
    for (const LazyPlan::Range& h : holes) {
      if (h.end <= cur || h.start >= lazy_vmas[i].end) continue;
      if (h.start > cur) parts.push_back({cur, h.start, i});
      cur = std::max(cur, h.end);
    }
    if (cur < lazy_vmas[i].end) parts.push_back({cur, lazy_vmas[i].end, i});
  }
  std::vector<bool> used(lazy_vmas.size(), false);
  for (const PageRun& r : TaskPageRuns(t)) {
    // Cut the run at the parts' edges: each piece is wholly lazy or wholly eager.
    uint64_t s = r.vaddr, e = r.vaddr + r.nr_pages * kPage;
    while (s < e) {
      auto it = std::upper_bound(parts.begin(), parts.end(), s,
                                 [](uint64_t a, const Part& v) { return a < v.start; });
      bool in = false;
      uint64_t cut = e;
      if (it != parts.begin() && std::prev(it)->end > s) {
        in = true;
        cut = std::min(e, std::prev(it)->end);
        used[std::prev(it)->vma] = true;
      } else if (it != parts.end()) {
        cut = std::min(e, it->start);
      }
      PageRun piece = r;
      piece.vaddr = s;
      piece.nr_pages = (cut - s) / kPage;
      piece.off = r.off + (s - r.vaddr);
      (in ? plan.lazy : plan.eager).push_back(piece);
      s = cut;
    }
  }
  for (size_t i = 0; i < lazy_vmas.size(); i++)
    if (used[i]) plan.vmas.push_back(lazy_vmas[i]);
  std::sort(plan.lazy.begin(), plan.lazy.end(),
            [](const PageRun& a, const PageRun& b) { return a.vaddr < b.vaddr; });
  return plan;
}

std::vector<LazyPlan::Range> NotInheritedByFork(const TaskImages& t) {
  constexpr uint32_t kDontFork = 1, kWipeOnFork = 32;  // VmaEntry.madv
  std::vector<LazyPlan::Range> out;
  for (const pb::VmaEntry& v : t.mm.vmas())
    if (v.madv() & (kDontFork | kWipeOnFork)) out.push_back({v.start(), v.end()});
  return out;
}

}  // namespace ckpt
