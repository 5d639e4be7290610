// Incremental chains at restore (criu/page_chain.h): "in parent" pages are
// resolved through parent, parent/parent, ...; a broken, looping or foreign
// chain is refused with a clear error. Image directories are built here.
#include "criu/page_chain.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "images/image_dir.h"
#include "proto/memtrack.pb.h"
#include "test_util.h"

namespace ckpt {
namespace {

using images::ImageType;
constexpr uint32_t kPid = 4242;
constexpr uint64_t kBase = 0x10000;

struct Run {
  uint64_t vaddr;
  uint32_t pages;
  bool in_parent;
};

void Put(images::ImageDir& d, ImageType t, uint32_t id, const google::protobuf::Message& m) {
  auto w = d.OpenWriter(t, id);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write(m).ok());
  ASSERT_TRUE(w->Close().ok());
}

// A step of a chain for pid kPid started at `start`, pages file of `bytes`
// (default: exactly what the own runs need).
void MakeStep(const std::string& dir, const std::vector<Run>& runs, uint64_t start = 7,
              const std::string& parent = "", int64_t bytes = -1) {
  auto d = images::ImageDir::Create(dir);
  ASSERT_TRUE(d.ok());
  {
    auto w = (*d)->OpenWriter(ImageType::kPagemap, kPid);
    ASSERT_TRUE(w.ok());
    pb::PagemapHead h;
    h.set_pages_id(1);
    ASSERT_TRUE(w->Write(h).ok());
    for (const Run& r : runs) {
      pb::PagemapEntry e;
      e.set_vaddr(r.vaddr);
      e.set_nr_pages(r.pages);
      if (r.in_parent) e.set_in_parent(true);
      ASSERT_TRUE(w->Write(e).ok());
    }
    ASSERT_TRUE(w->Close().ok());
  }
  uint64_t own = 0;
  for (const Run& r : runs)
    if (!r.in_parent) own += r.pages * 4096ull;
  auto pf = (*d)->CreateRaw(images::PagesFileName(1));
  ASSERT_TRUE(pf.ok());
  ASSERT_EQ(ftruncate(pf->get(), bytes < 0 ? off_t(own) : off_t(bytes)), 0);
  pb::MemTrackEntry mt;
  mt.set_method("uffd-wp");
  mt.set_boot_id("boot");
  pb::MemTrackTask* t = mt.add_tasks();
  t->set_pid(kPid);
  t->set_start_time(start);
  Put(**d, ImageType::kMemTrack, 0, mt);
  if (!parent.empty()) std::filesystem::create_directory_symlink(parent, dir + "/parent");
  pb::InventoryEntry inv;
  inv.set_format_version(images::kFormatVersion);
  inv.set_kernel("k");
  inv.set_arch("x86_64");
  inv.set_root_pid(kPid);
  inv.set_page_size(4096);
  inv.set_pre_dump(true);
  ASSERT_TRUE((*d)->Commit(inv).ok());
}

// The dump at the top of the chain, as LoadTreeImages leaves it.
Result<TreeImages> Resolve(const std::string& top, const std::vector<Run>& runs) {
  auto d = images::ImageDir::Open(top);
  if (!d.ok()) return std::move(d.error());
  TreeImages tree;
  tree.inventory.set_root_pid(kPid);
  TaskImages t;
  t.pstree.set_pid(kPid);
  t.pages_id = 9;
  for (const Run& r : runs) {
    pb::PagemapEntry e;
    e.set_vaddr(r.vaddr);
    e.set_nr_pages(r.pages);
    if (r.in_parent) e.set_in_parent(true);
    t.pages.push_back(e);
  }
  tree.tasks.push_back(std::move(t));
  TRY(ResolveParentPages(**d, &tree));
  return tree;
}

std::string Err(const Result<TreeImages>& r) { return r.ok() ? "" : r.error().message(); }

TEST(PageChain, SourceNames) {
  EXPECT_EQ(PagesSourceName(3), "pages-3.img");
  EXPECT_EQ(PagesSourceName(2u << kChainDepthShift | 1), "parent/parent/pages-1.img");
}

TEST(PageChain, ResolvesThroughTwoSteps) {
  testing::TempDir tmp;
  // d1 saved 4 pages; d2 saved the third again; the top keeps all four.
  MakeStep(tmp / "d1", {{kBase, 4, false}});
  MakeStep(tmp / "d2", {{kBase, 2, true}, {kBase + 0x2000, 1, false}, {kBase + 0x3000, 1, true}}, 7,
           "../d1");
  MakeStep(tmp / "d3", {}, 7, "../d2");
  auto r = Resolve(tmp / "d3", {{kBase - 0x1000, 1, false}, {kBase, 4, true}});
  ASSERT_TRUE(r.ok()) << Err(r);
  const auto& p = r->tasks[0].pages;
  ASSERT_EQ(p.size(), 4u);
  EXPECT_FALSE(p[0].has_src_pages_id());  // its own pages stay as they are
  EXPECT_EQ(p[1].vaddr(), kBase);
  EXPECT_EQ(p[1].nr_pages(), 2u);
  EXPECT_EQ(PagesSourceName(p[1].src_pages_id()), "parent/parent/pages-1.img");
  EXPECT_EQ(p[1].src_off(), 0u);
  EXPECT_EQ(PagesSourceName(p[2].src_pages_id()), "parent/pages-1.img");
  EXPECT_EQ(p[2].src_off(), 0u);
  EXPECT_EQ(PagesSourceName(p[3].src_pages_id()), "parent/parent/pages-1.img");
  EXPECT_EQ(p[3].src_off(), 3 * 4096u);
  for (const auto& e : p) EXPECT_FALSE(e.in_parent());
}

TEST(PageChain, AnotherProcessIsRefused) {
  testing::TempDir tmp;
  MakeStep(tmp / "d1", {{kBase, 4, false}}, /*start=*/8);  // the pid, reused
  MakeStep(tmp / "d2", {}, 7, "../d1");
  auto r = Resolve(tmp / "d2", {{kBase, 4, true}});
  EXPECT_NE(Err(r).find("another process"), std::string::npos) << Err(r);
}

TEST(PageChain, PagesTheParentLacksAreRefused) {
  testing::TempDir tmp;
  MakeStep(tmp / "d1", {{kBase, 2, false}});
  MakeStep(tmp / "d2", {}, 7, "../d1");
  auto r = Resolve(tmp / "d2", {{kBase, 4, true}});
  EXPECT_NE(Err(r).find("do not hold them"), std::string::npos) << Err(r);
}

TEST(PageChain, LoopsAreRefused) {
  testing::TempDir tmp;
  MakeStep(tmp / "d1", {{kBase, 4, true}}, 7, "../d2");
  MakeStep(tmp / "d2", {{kBase, 4, true}}, 7, "../d1");
  MakeStep(tmp / "d3", {}, 7, "../d2");
  auto r = Resolve(tmp / "d3", {{kBase, 4, true}});
  EXPECT_NE(Err(r).find("loops"), std::string::npos) << Err(r);
}

TEST(PageChain, TruncatedParentPagesAreRefused) {
  testing::TempDir tmp;
  MakeStep(tmp / "d1", {{kBase, 4, false}}, 7, "", /*bytes=*/3 * 4096);
  MakeStep(tmp / "d2", {}, 7, "../d1");
  auto r = Resolve(tmp / "d2", {{kBase, 4, true}});
  EXPECT_NE(Err(r).find("truncated"), std::string::npos) << Err(r);
}

TEST(PageChain, MissingParentIsRefused) {
  testing::TempDir tmp;
  MakeStep(tmp / "d2", {}, 7, "../gone");
  auto r = Resolve(tmp / "d2", {{kBase, 4, true}});
  EXPECT_NE(Err(r).find("are missing"), std::string::npos) << Err(r);
}

TEST(PageChain, NoInParentNeedsNoChain) {
  testing::TempDir tmp;
  MakeStep(tmp / "d1", {});
  auto r = Resolve(tmp / "d1", {{kBase, 4, false}});
  EXPECT_TRUE(r.ok()) << Err(r);
}

}  // namespace
}  // namespace ckpt
