// Lazy restore's bookkeeping (criu/lazy_plan.h, criu/uffd_lazy.h): which
// pages are left to the daemon, and the owed-pages map that follows
// faults, prefetch, fork, mremap, munmap and MADV_DONTNEED.
#include "criu/lazy_plan.h"

#include <gtest/gtest.h>

#include "criu/uffd_lazy.h"

namespace ckpt {
namespace {

constexpr uint64_t kP = 4096;

uint64_t Owed(const uffd::PendingPages& p) {
  uint64_t n = 0;
  for (const auto& [a, r] : p.runs()) n += r.nr_pages;
  EXPECT_EQ(n, p.pages());
  return n;
}

// A thread's rseq area is written by the kernel when the restorer
// registers it, before the daemon serves: its page is eager, the rest of
// the VMA lazy (and the VMA still registered).
TEST(LazyPlan, RseqAreaPagesAreEager) {
  TaskImages t;
  t.pages_id = 1;
  auto* anon = t.mm.add_vmas();
  anon->set_start(0x10000), anon->set_end(0x20000), anon->set_kind(pb::VMA_ANON_PRIVATE);
  pb::PagemapEntry e;
  e.set_vaddr(0x10000), e.set_nr_pages(16);
  t.pages.push_back(e);
  auto* th = t.core.add_threads();
  th->mutable_rseq()->set_ptr(0x14ff0);  // 32 bytes across the 0x15000 page edge
  th->mutable_rseq()->set_size(32);
  th->mutable_rseq()->set_signature(0x53053053);
  t.core.add_threads();  // a thread without rseq

  LazyPlan p = PlanLazy(t);
  ASSERT_EQ(p.eager.size(), 1u);
  EXPECT_EQ(p.eager[0].vaddr, 0x14000u);
  EXPECT_EQ(p.eager[0].nr_pages, 2u);
  EXPECT_EQ(p.eager[0].off, 4 * kP);
  ASSERT_EQ(p.lazy.size(), 2u);
  EXPECT_EQ(p.lazy[0].vaddr, 0x10000u);
  EXPECT_EQ(p.lazy[0].nr_pages, 4u);
  EXPECT_EQ(p.lazy[1].vaddr, 0x16000u);
  EXPECT_EQ(p.lazy[1].nr_pages, 10u);
  EXPECT_EQ(p.lazy[1].off, 6 * kP);
  ASSERT_EQ(p.vmas.size(), 1u);
  EXPECT_EQ(p.vmas[0].start, 0x10000u);
  EXPECT_EQ(p.vmas[0].end, 0x20000u);
}

TEST(LazyPlan, AnonymousPagesAreLazyFilePagesEager) {
  TaskImages t;
  t.pages_id = 3;
  auto* anon = t.mm.add_vmas();
  anon->set_start(0x10000), anon->set_end(0x20000), anon->set_kind(pb::VMA_ANON_PRIVATE);
  auto* file = t.mm.add_vmas();
  file->set_start(0x20000), file->set_end(0x30000), file->set_kind(pb::VMA_FILE_PRIVATE);
  auto* drop = t.mm.add_vmas();
  drop->set_start(0x40000), drop->set_end(0x50000), drop->set_kind(pb::VMA_ANON_PRIVATE);
  drop->set_madv(64);  // MAP_DROPPABLE: never registered
  auto* empty = t.mm.add_vmas();
  empty->set_start(0x60000), empty->set_end(0x70000), empty->set_kind(pb::VMA_ANON_PRIVATE);
  // One run across the anon/file edge, one in the droppable VMA, one
  // shared with a parent task's file.
  pb::PagemapEntry e;
  e.set_vaddr(0x1e000), e.set_nr_pages(4);
  t.pages.push_back(e);
  e.set_vaddr(0x40000), e.set_nr_pages(1);
  t.pages.push_back(e);
  e.set_vaddr(0x10000), e.set_nr_pages(2), e.set_src_pages_id(9), e.set_src_off(8 * kP);
  t.pages.push_back(e);

  LazyPlan p = PlanLazy(t);
  ASSERT_EQ(p.lazy.size(), 2u);
  EXPECT_EQ(p.lazy[0].vaddr, 0x10000u);  // sorted by address
  EXPECT_EQ(p.lazy[0].src, 9u);
  EXPECT_EQ(p.lazy[0].off, 8 * kP);
  EXPECT_EQ(p.lazy[1].vaddr, 0x1e000u);
  EXPECT_EQ(p.lazy[1].nr_pages, 2u);
  EXPECT_EQ(p.lazy[1].src, 3u);
  EXPECT_EQ(p.lazy[1].off, 0u);
  ASSERT_EQ(p.eager.size(), 2u);
  EXPECT_EQ(p.eager[0].vaddr, 0x20000u);  // the file half of the first run
  EXPECT_EQ(p.eager[0].off, 2 * kP);
  EXPECT_EQ(p.eager[1].vaddr, 0x40000u);
  EXPECT_EQ(p.eager[1].off, 4 * kP);  // own file offsets run on
  ASSERT_EQ(p.vmas.size(), 1u);       // only the VMA holding lazy pages
  EXPECT_EQ(p.vmas[0].start, 0x10000u);

  LazyPlan none = PlanLazy(t, false);
  EXPECT_TRUE(none.lazy.empty() && none.vmas.empty());
  EXPECT_EQ(none.eager.size(), 3u);
}

TEST(PendingPages, CutTakeMove) {
  uffd::PendingPages p;
  p.Add({0x10000, 16, 1, 0});
  p.Add({0x40000, 4, 2, 100 * kP});
  EXPECT_EQ(Owed(p), 20u);
  EXPECT_TRUE(p.Contains(0x10000 + 15 * kP));
  EXPECT_FALSE(p.Contains(0x20000));

  // A fault in the middle takes the page and what follows, within its run.
  auto got = p.TakeAround(0x10000 + 14 * kP + 5, 16);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].vaddr, 0x10000 + 14 * kP);
  EXPECT_EQ(got[0].nr_pages, 2u);
  EXPECT_EQ(got[0].off, 14 * kP);
  EXPECT_EQ(Owed(p), 18u);

  // MADV_DONTNEED across both runs' neighbourhood.
  auto cut = p.Cut(0x10000 + 2 * kP, 0x10000 + 4 * kP);
  ASSERT_EQ(cut.size(), 1u);
  EXPECT_EQ(Owed(p), 16u);
  EXPECT_FALSE(p.Contains(0x10000 + 3 * kP));
  EXPECT_TRUE(p.Contains(0x10000 + 4 * kP));

  // mremap of the second run elsewhere keeps its source offsets.
  p.Move(0x40000, 0x90000, 4 * kP);
  EXPECT_FALSE(p.Contains(0x40000));
  auto moved = p.TakeAround(0x90000 + kP, 1);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].src, 2u);
  EXPECT_EQ(moved[0].off, 101 * kP);

  // Prefetch drains from the lowest address.
  uint64_t total = 0;
  for (int i = 0; i < 100 && !p.empty(); i++)
    for (const PageRun& r : p.TakeFirst(3)) total += r.nr_pages;
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(total, 15u);
}

}  // namespace
}  // namespace ckpt
