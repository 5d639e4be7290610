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
  std::vector<bool> used(lazy_vmas.size(), false);
  for (const PageRun& r : TaskPageRuns(t)) {
    // Cut the run at VMA edges: each piece is wholly lazy or wholly eager.
    uint64_t s = r.vaddr, e = r.vaddr + r.nr_pages * kPage;
    while (s < e) {
      auto it = std::upper_bound(lazy_vmas.begin(), lazy_vmas.end(), s,
                                 [](uint64_t a, const LazyPlan::Range& v) { return a < v.start; });
      bool in = false;
      uint64_t cut = e;
      if (it != lazy_vmas.begin() && std::prev(it)->end > s) {
        in = true;
        cut = std::min(e, std::prev(it)->end);
        used[size_t(std::prev(it) - lazy_vmas.begin())] = true;
      } else if (it != lazy_vmas.end()) {
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
