// Unit tests for images/: the type registry, record framing, ImageDir
// lifecycle (permissions, cleanup, commit) and every read error path.
#include <dirent.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "images/image_check.h"
#include "images/image_dir.h"
#include "images/image_types.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
#include "proto/pagemap.pb.h"
#include "proto/pstree.pb.h"
#include "test/unit/test_util.h"

// ---------------------------------------------------------------------------
// fsync interposer. The test executable's definition wins over libc's for the
// statically linked ckpt_images code, so we can see what was on disk at the
// moment each fsync ran (used to check Commit's durability ordering).
namespace {
struct FsyncRecord {
  bool regular;
  off_t size;
};
std::vector<FsyncRecord> g_fsyncs;
}  // namespace

extern "C" int fsync(int fd) {
  struct stat st;
  if (::fstat(fd, &st) == 0) g_fsyncs.push_back({S_ISREG(st.st_mode), st.st_size});
  return int(::syscall(SYS_fsync, fd));
}

namespace ckpt::images {
namespace {

using ckpt::testing::ModeOf;
using ckpt::testing::PathExists;
using ckpt::testing::TempDir;
using ckpt::testing::WriteFileOrDie;
using google::protobuf::util::MessageDifferencer;

// Every registered type. Keep in sync with the ImageType enum.
constexpr ImageType kAllTypes[] = {
    ImageType::kInventory, ImageType::kPstree, ImageType::kCore,  ImageType::kMm,
    ImageType::kPagemap,   ImageType::kFdinfo, ImageType::kFiles, ImageType::kFs,
    ImageType::kFileData,  ImageType::kUnixSkQueue, ImageType::kTcpStream,
    ImageType::kNamespaces, ImageType::kSeccomp, ImageType::kLsm, ImageType::kNetNsLinks,
    ImageType::kNetNsRtnl, ImageType::kNetNsSysctl, ImageType::kNetNsNft, ImageType::kIpcNs,
    ImageType::kCgroup, ImageType::kMntNs, ImageType::kTmpfs, ImageType::kMemTrack,
    ImageType::kChecksums,
};

std::string U32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string Header(ImageType t) { return U32(kImageMagic) + U32(Info(t).magic); }
std::string Slurp(const std::string& path) {
  std::string out;
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), f)) > 0;) out.append(buf, n);
  fclose(f);
  return out;
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) out.push_back(e->d_name);
  closedir(d);
  return out;
}

pb::PstreeEntry MakePstree(uint32_t pid) {
  pb::PstreeEntry e;
  e.set_pid(pid);
  e.set_ppid(pid > 1 ? pid - 1 : 0);
  e.set_pgid(pid);
  e.set_sid(1);
  for (uint32_t i = 0; i < pid % 5; i++) e.add_threads(pid * 100 + i);
  return e;
}

pb::InventoryEntry MakeInventory() {
  pb::InventoryEntry inv;
  inv.set_format_version(kFormatVersion);
  inv.set_kernel("6.18.0-test");
  inv.set_arch("x86_64");
  inv.set_root_pid(4242);
  inv.set_page_size(4096);
  inv.set_tool_version("unit");
  inv.set_dump_time_ns(1234567890123ull);
  return inv;
}

pb::TaskCoreEntry MakeCore(uint32_t pid, size_t xstate_bytes) {
  pb::TaskCoreEntry c;
  c.set_pid(pid);
  c.set_comm("a) (b with spaces");
  auto* t = c.add_threads();
  t->set_tid(pid);
  t->set_blk_sigset(0x8000000000000001ull);
  auto* regs = t->mutable_regs();
  auto* g = regs->mutable_gpregs();
  const auto* d = g->GetDescriptor();
  for (int i = 0; i < d->field_count(); i++)
    g->GetReflection()->SetUInt64(g, d->field(i), 0x1111111111111111ull * (i + 1));
  std::string xs(xstate_bytes, '\0');
  for (size_t i = 0; i < xs.size(); i++) xs[i] = char(i * 7 + 3);
  regs->set_xstate(xs);
  auto* sa = c.add_sigactions();
  sa->set_sig(10), sa->set_handler(0x401000), sa->set_flags(0x04000000);
  sa->set_restorer(0x7f0000001000), sa->set_mask(0);
  auto* cr = c.mutable_creds();
  cr->set_uid(1000), cr->set_euid(1000), cr->set_suid(1000), cr->set_fsuid(1000);
  cr->set_gid(100), cr->set_egid(100), cr->set_sgid(100), cr->set_fsgid(100);
  cr->add_groups(4), cr->add_groups(24);
  cr->set_cap_eff(0);
  c.set_umask(022);
  c.set_personality(0);
  return c;
}

pb::MmEntry MakeMm(int nvmas) {
  pb::MmEntry mm;
  mm.set_start_code(0x400000), mm.set_end_code(0x401000);
  mm.set_start_data(0x600000), mm.set_end_data(0x601000);
  mm.set_start_brk(0x602000), mm.set_brk(0x623000);
  mm.set_start_stack(0x7ffc00000000), mm.set_arg_start(0x7ffc00001000);
  mm.set_arg_end(0x7ffc00001100), mm.set_env_start(0x7ffc00001100);
  mm.set_env_end(0x7ffc00001200);
  mm.set_exe_path("/usr/bin/with space (deleted)");
  for (int i = 0; i < 10; i++) mm.add_auxv(uint64_t(i) << 40);
  for (int i = 0; i < nvmas; i++) {
    auto* v = mm.add_vmas();
    v->set_start(0x10000000ull + uint64_t(i) * 0x2000);
    v->set_end(v->start() + 0x1000);
    v->set_kind(i % 2 ? pb::VMA_FILE_PRIVATE : pb::VMA_ANON_PRIVATE);
    v->set_prot(3), v->set_flags(0x22);
    if (i % 2) v->set_path("/lib/libfoo.so." + std::to_string(i));
  }
  return mm;
}

// Writes `msgs` as one image of type t, then reads them back into fresh
// messages from the registry factory and checks they are identical.
void RoundTrip(ImageDir& dir, ImageType t, uint32_t id,
               const std::vector<const google::protobuf::Message*>& msgs) {
  {
    auto w = dir.OpenWriter(t, id);
    ASSERT_TRUE(w.ok()) << w.error().message();
    for (const auto* m : msgs) {
      auto st = w->Write(*m);
      ASSERT_TRUE(st.ok()) << st.error().message();
    }
    auto st = w->Close();
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  auto r = dir.OpenReader(t, id);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->info(), &Info(t));
  for (size_t i = 0; i < msgs.size(); i++) {
    std::unique_ptr<google::protobuf::Message> m(msgs[i]->New());
    auto got = r->Read(*m);
    ASSERT_TRUE(got.ok()) << got.error().message();
    ASSERT_TRUE(*got) << "record " << i << " missing";
    EXPECT_TRUE(MessageDifferencer::Equals(*m, *msgs[i])) << "record " << i << " differs";
  }
  auto pb = Info(t).factory();
  auto end = r->Read(*pb);
  ASSERT_TRUE(end.ok()) << end.error().message();
  EXPECT_FALSE(*end) << "extra record after the last one";
  // A clean EOF stays a clean EOF.
  auto again = r->Read(*pb);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

// ---------------------------------------------------------------------------
// Registry

TEST(ImageRegistry, InfoTypeMatchesItsKey) {
  for (ImageType t : kAllTypes) {
    const ImageTypeInfo& i = Info(t);
    EXPECT_EQ(i.type, t) << i.name;
    ASSERT_NE(i.name, nullptr);
    EXPECT_STRNE(i.name, "");
    ASSERT_NE(i.pattern, nullptr);
    EXPECT_NE(std::string(i.pattern).find(".img"), std::string::npos) << i.pattern;
    ASSERT_NE(i.factory, nullptr) << i.name;
    EXPECT_NE(i.factory(), nullptr) << i.name;
  }
}

TEST(ImageRegistry, MagicsAndNamesAndPatternsAreDistinct) {
  std::set<uint32_t> magics;
  std::set<std::string> names, patterns;
  for (ImageType t : kAllTypes) {
    const ImageTypeInfo& i = Info(t);
    EXPECT_NE(i.magic, kImageMagic) << i.name << " reuses the format magic";
    EXPECT_NE(i.magic, 0u) << i.name;
    EXPECT_TRUE(magics.insert(i.magic).second) << i.name << " magic reused";
    EXPECT_TRUE(names.insert(i.name).second) << i.name << " name reused";
    EXPECT_TRUE(patterns.insert(i.pattern).second) << i.pattern << " pattern reused";
  }
}

TEST(ImageRegistry, FindByMagic) {
  for (ImageType t : kAllTypes) EXPECT_EQ(FindByMagic(Info(t).magic), &Info(t));
  EXPECT_EQ(FindByMagic(0), nullptr);
  EXPECT_EQ(FindByMagic(kImageMagic), nullptr);
  EXPECT_EQ(FindByMagic(0xdeadbeef), nullptr);
}

TEST(ImageRegistry, FileNamePatterns) {
  EXPECT_EQ(FileName(ImageType::kInventory), "inventory.img");
  EXPECT_EQ(FileName(ImageType::kInventory, 77), "inventory.img");  // no id in the name
  EXPECT_EQ(FileName(ImageType::kPstree), "pstree.img");
  EXPECT_EQ(FileName(ImageType::kFiles), "files.img");
  EXPECT_EQ(FileName(ImageType::kCore, 42), "core-42.img");
  EXPECT_EQ(FileName(ImageType::kMm, 1), "mm-1.img");
  EXPECT_EQ(FileName(ImageType::kPagemap, 0), "pagemap-0.img");
  EXPECT_EQ(FileName(ImageType::kFdinfo, 7), "fdinfo-7.img");
  EXPECT_EQ(FileName(ImageType::kFs, 9), "fs-9.img");
  EXPECT_EQ(FileName(ImageType::kCore, 4294967295u), "core-4294967295.img");
  EXPECT_EQ(PagesFileName(3), "pages-3.img");
  EXPECT_EQ(PagesFileName(0), "pages-0.img");
}

TEST(ImageRegistry, OnlyPagemapHasAHead) {
  for (ImageType t : kAllTypes) {
    if (t == ImageType::kPagemap) {
      ASSERT_NE(Info(t).head_factory, nullptr);
      auto head = Info(t).head_factory();
      EXPECT_EQ(head->GetTypeName(), pb::PagemapHead().GetTypeName());
    } else {
      EXPECT_EQ(Info(t).head_factory, nullptr) << Info(t).name;
    }
  }
  EXPECT_EQ(Info(ImageType::kCore).factory()->GetTypeName(), pb::TaskCoreEntry().GetTypeName());
  EXPECT_EQ(Info(ImageType::kInventory).factory()->GetTypeName(),
            pb::InventoryEntry().GetTypeName());
}

// ---------------------------------------------------------------------------
// Framing round trips

class ImageDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = ImageDir::Create(tmp_ / "img");
    ASSERT_TRUE(d.ok()) << d.error().message();
    dir_ = std::move(*d);
  }
  std::string Path(const std::string& name) const { return tmp_ / ("img/" + name); }

  TempDir tmp_;
  std::unique_ptr<ImageDir> dir_;
};

TEST_F(ImageDirTest, RoundTripManySmallRecords) {
  // Enough records to cross the reader's 64 KiB refill boundary many times.
  std::vector<pb::PstreeEntry> entries;
  for (uint32_t i = 1; i <= 20000; i++) entries.push_back(MakePstree(i));
  std::vector<const google::protobuf::Message*> ptrs;
  for (auto& e : entries) ptrs.push_back(&e);
  RoundTrip(*dir_, ImageType::kPstree, 0, ptrs);
}

TEST_F(ImageDirTest, RoundTripVariousMessages) {
  pb::InventoryEntry inv = MakeInventory();
  RoundTrip(*dir_, ImageType::kInventory, 0, {&inv});

  pb::TaskCoreEntry core = MakeCore(123, 2696);
  RoundTrip(*dir_, ImageType::kCore, 123, {&core});

  pb::MmEntry mm = MakeMm(500);
  RoundTrip(*dir_, ImageType::kMm, 123, {&mm});

  pb::FsEntry fs;
  fs.set_cwd("/home/user/dir with spaces");
  fs.set_root("/");
  RoundTrip(*dir_, ImageType::kFs, 123, {&fs});

  std::vector<pb::FdinfoEntry> fds(3);
  for (uint32_t i = 0; i < 3; i++)
    fds[i].set_fd(i), fds[i].set_file_id(i + 10), fds[i].set_cloexec(i == 2);
  RoundTrip(*dir_, ImageType::kFdinfo, 123, {&fds[0], &fds[1], &fds[2]});

  pb::FileEntry reg, chr;
  reg.set_id(10), reg.set_kind(pb::FILE_REG);
  reg.mutable_reg()->set_path("/tmp/x"), reg.mutable_reg()->set_flags(02);
  reg.mutable_reg()->set_pos(1ull << 40);
  chr.set_id(11), chr.set_kind(pb::FILE_CHR);
  chr.mutable_chr()->set_path("/dev/null"), chr.mutable_chr()->set_flags(0);
  chr.mutable_chr()->set_rdev(0x103);
  RoundTrip(*dir_, ImageType::kFiles, 0, {&reg, &chr});
}

TEST_F(ImageDirTest, RoundTripPagemapHeadThenEntries) {
  pb::PagemapHead head;
  head.set_pages_id(5);
  std::vector<pb::PagemapEntry> pm(100);
  std::vector<const google::protobuf::Message*> ptrs{&head};
  for (size_t i = 0; i < pm.size(); i++) {
    pm[i].set_vaddr(0x7f0000000000ull + i * 0x10000);
    pm[i].set_nr_pages(uint32_t(i + 1));
    ptrs.push_back(&pm[i]);
  }
  RoundTrip(*dir_, ImageType::kPagemap, 123, ptrs);
}

TEST_F(ImageDirTest, RoundTripRecordsLargerThanBuffers) {
  // 3 MiB records exceed both the writer's 1 MiB flush mark and the
  // reader's 64 KiB default fill; small ones in between.
  pb::TaskCoreEntry big1 = MakeCore(1, 3u << 20);
  pb::TaskCoreEntry small = MakeCore(2, 16);
  pb::TaskCoreEntry big2 = MakeCore(3, (3u << 20) + 17);
  RoundTrip(*dir_, ImageType::kCore, 1, {&small, &big1, &small, &big2, &small});
}

TEST_F(ImageDirTest, EmptyImageReadsAsCleanEof) {
  RoundTrip(*dir_, ImageType::kFdinfo, 1, {});
  auto r = dir_->OpenReader(ImageType::kFdinfo, 1);
  ASSERT_TRUE(r.ok());
  pb::FdinfoEntry e;
  auto st = r->ReadOne(e);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("no "), std::string::npos) << st.error().message();
}

TEST_F(ImageDirTest, OnDiskLayoutIsMagicsThenLengthPrefixedRecords) {
  pb::FsEntry fs;
  fs.set_cwd("/a"), fs.set_root("/");
  auto w = dir_->OpenWriter(ImageType::kFs, 5);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write(fs).ok());
  ASSERT_TRUE(w->Close().ok());
  std::string bytes = Slurp(Path("fs-5.img"));
  std::string body = fs.SerializeAsString();
  std::string records = Header(ImageType::kFs) + U32(uint32_t(body.size())) + body;
  // Then the trailer: mark, CRC32C of everything before, whole length.
  EXPECT_EQ(bytes, records + U32(kTrailerMark) + U32(Crc32c(0, records.data(), records.size())) +
                       U32(uint32_t(records.size() + 16)) + U32(0));
}

TEST_F(ImageDirTest, WriterRejectsOversizedRecord) {
  pb::FsEntry fs;
  fs.set_cwd(std::string(kMaxRecordSize + 1, 'x'));
  fs.set_root("/");
  auto w = dir_->OpenWriter(ImageType::kFs, 1);
  ASSERT_TRUE(w.ok());
  auto st = w->Write(fs);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("too large"), std::string::npos) << st.error().message();
}

// Regression (fixed): ImageWriter::Write hands a message that lacks proto2
// required fields to SerializeToArray, whose libprotobuf CHECK throws
// google::protobuf::FatalException ("missing required fields: ppid, ...")
// straight through the Status API; uncaught, it terminates ckpt mid-dump
// without unwinding the RAII that cures and resumes the victim. Expected: a
// Status error naming the missing fields, no exception.
TEST_F(ImageDirTest, BugWriterRejectsMessageMissingRequiredFields) {
  pb::PstreeEntry incomplete;
  incomplete.set_pid(5);  // ppid, pgid, sid missing
  auto w = dir_->OpenWriter(ImageType::kPstree, 0);
  ASSERT_TRUE(w.ok());
  Status st = Ok();
  EXPECT_NO_THROW(st = w->Write(incomplete));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("ppid"), std::string::npos) << st.error().message();
}

// ---------------------------------------------------------------------------
// ImageDir lifecycle

TEST(ImageDirLifecycle, CreateMakesDir0700AndFiles0600) {
  TempDir tmp;
  mode_t old = umask(0);  // so only ckpt's own modes count
  auto d = ImageDir::Create(tmp / "img");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(ModeOf(tmp / "img"), 0700);
  auto w = (*d)->OpenWriter(ImageType::kCore, 1);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Close().ok());
  auto raw = (*d)->CreateRaw(PagesFileName(1));
  ASSERT_TRUE(raw.ok());
  umask(old);
  EXPECT_EQ(ModeOf(tmp / "img/core-1.img"), 0600);
  EXPECT_EQ(ModeOf(tmp / "img/pages-1.img"), 0600);
  EXPECT_EQ((*d)->path(), tmp / "img");
  EXPECT_GE((*d)->dirfd(), 0);
}

TEST(ImageDirLifecycle, CreateTightensAnExistingDirAndKeepsItsFiles) {
  TempDir tmp;
  std::string p = tmp / "img";
  ASSERT_EQ(mkdir(p.c_str(), 0755), 0);
  ASSERT_EQ(chmod(p.c_str(), 0755), 0);
  WriteFileOrDie(p + "/unrelated.txt", "keep me");
  WriteFileOrDie(p + "/inventory.img", Header(ImageType::kInventory));
  WriteFileOrDie(p + "/core-1.img", "stale", 0644);
  ASSERT_EQ(chmod((p + "/core-1.img").c_str(), 0644), 0);
  {
    auto d = ImageDir::Create(p);
    ASSERT_TRUE(d.ok()) << d.error().message();
    EXPECT_EQ(ModeOf(p), 0700);
    // An old inventory would make a half-written dump look complete.
    EXPECT_FALSE(PathExists(p + "/inventory.img"));
    EXPECT_FALSE((*d)->Exists(ImageType::kInventory));
    auto w = (*d)->OpenWriter(ImageType::kPstree);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Close().ok());
    EXPECT_TRUE((*d)->Exists(ImageType::kPstree));
    // A reused name is tightened to 0600 too, whatever mode it had.
    auto c = (*d)->OpenWriter(ImageType::kCore, 1);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->Close().ok());
    EXPECT_EQ(ModeOf(p + "/core-1.img"), 0600);
  }
  // Not committed: what it wrote is gone, the directory and others' files stay.
  EXPECT_TRUE(PathExists(p));
  EXPECT_TRUE(PathExists(p + "/unrelated.txt"));
  EXPECT_FALSE(PathExists(p + "/pstree.img"));
}

TEST(ImageDirLifecycle, UncommittedDirIsRemovedEntirely) {
  TempDir tmp;
  std::string p = tmp / "img";
  {
    auto d = ImageDir::Create(p);
    ASSERT_TRUE(d.ok());
    for (uint32_t pid : {1u, 2u}) {
      auto w = (*d)->OpenWriter(ImageType::kCore, pid);
      ASSERT_TRUE(w.ok());
      pb::TaskCoreEntry c = MakeCore(pid, 64);
      ASSERT_TRUE(w->Write(c).ok());
      ASSERT_TRUE(w->Close().ok());
    }
    auto raw = (*d)->CreateRaw(PagesFileName(1));
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(ListDir(p).size(), 3u);
  }
  EXPECT_FALSE(PathExists(p));
  EXPECT_TRUE(ListDir(tmp.path()).empty());
}

TEST(ImageDirLifecycle, CommitWritesInventoryAndKeepsEverything) {
  TempDir tmp;
  std::string p = tmp / "img";
  pb::InventoryEntry inv = MakeInventory();
  {
    auto d = ImageDir::Create(p);
    ASSERT_TRUE(d.ok());
    auto w = (*d)->OpenWriter(ImageType::kPstree);
    ASSERT_TRUE(w.ok());
    pb::PstreeEntry e = MakePstree(7);
    ASSERT_TRUE(w->Write(e).ok());
    ASSERT_TRUE(w->Close().ok());
    EXPECT_FALSE((*d)->Exists(ImageType::kInventory));
    auto st = (*d)->Commit(inv);
    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_TRUE((*d)->Exists(ImageType::kInventory));
  }
  // Committed: nothing is removed, no temp file is left, mode is 0600.
  auto names = ListDir(p);
  std::set<std::string> got(names.begin(), names.end());
  EXPECT_EQ(got, (std::set<std::string>{"inventory.img", "pstree.img"}));
  EXPECT_EQ(ModeOf(p + "/inventory.img"), 0600);

  auto d = ImageDir::Open(p);
  ASSERT_TRUE(d.ok());
  auto r = (*d)->OpenReader(ImageType::kInventory);
  ASSERT_TRUE(r.ok()) << r.error().message();
  pb::InventoryEntry back;
  auto st = r->ReadOne(back);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(MessageDifferencer::Equals(back, inv));
}

// Regression (fixed): ImageDir::Commit fsyncs the temporary inventory
// before ImageWriter::Close flushes the buffered record, so only the 8-byte
// header is durable when the file is renamed into place; after a crash the
// "complete" marker can be an empty inventory. Expected: the inventory is
// fsynced with its record in it.
TEST(ImageDirLifecycle, BugCommitFsyncsTheInventoryRecord) {
  TempDir tmp;
  std::string p = tmp / "img";
  auto d = ImageDir::Create(p);
  ASSERT_TRUE(d.ok());
  g_fsyncs.clear();
  ASSERT_TRUE((*d)->Commit(MakeInventory()).ok());
  struct stat st;
  ASSERT_EQ(stat((p + "/inventory.img").c_str(), &st), 0);
  bool synced_full = false;
  for (const auto& f : g_fsyncs)
    if (f.regular && f.size == st.st_size) synced_full = true;
  EXPECT_TRUE(synced_full) << "no fsync saw the inventory at its final size " << st.st_size;
}

TEST(ImageDirLifecycle, ReadOnlyOpenNeverRemovesAnything) {
  TempDir tmp;
  std::string p = tmp / "img";
  ASSERT_EQ(mkdir(p.c_str(), 0700), 0);
  WriteFileOrDie(p + "/pstree.img", Header(ImageType::kPstree));
  {
    auto d = ImageDir::Open(p);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE((*d)->Exists(ImageType::kPstree));
    EXPECT_FALSE((*d)->Exists(ImageType::kCore, 1));
  }
  EXPECT_TRUE(PathExists(p + "/pstree.img"));
}

TEST(ImageDirLifecycle, CreateAndOpenErrors) {
  TempDir tmp;
  auto a = ImageDir::Create(tmp / "no/such/parent");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().err(), ENOENT);
  WriteFileOrDie(tmp / "file", "x");
  EXPECT_FALSE(ImageDir::Create(tmp / "file").ok());
  EXPECT_TRUE(PathExists(tmp / "file"));  // not clobbered
  auto b = ImageDir::Open(tmp / "missing");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("missing"), std::string::npos) << b.error().message();
  EXPECT_FALSE(ImageDir::Open(tmp / "file").ok());
}

TEST_F(ImageDirTest, RawFilesRoundTrip) {
  {
    auto w = dir_->CreateRaw(PagesFileName(2));
    ASSERT_TRUE(w.ok());
    ASSERT_EQ(write(w->get(), "pagebytes", 9), 9);
  }
  ASSERT_TRUE(dir_->Commit(MakeInventory()).ok());  // lists it in checksums.img
  auto opened = ImageDir::Open(tmp_ / "img");
  ASSERT_TRUE(opened.ok());
  dir_ = std::move(*opened);
  auto r = dir_->OpenRaw(PagesFileName(2));
  ASSERT_TRUE(r.ok());
  char buf[16] = {};
  EXPECT_EQ(read(r->get(), buf, sizeof(buf)), 9);
  EXPECT_STREQ(buf, "pagebytes");
  auto missing = dir_->OpenRaw(PagesFileName(3));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err(), ENOENT);
}

// Planted entries (criu/security.h, ckpt run as root on a user's directory):
// images are never read or written through a symlink, nor read from a fifo.
TEST(ImageDirPlanted, SymlinkIsNeverFollowed) {
  TempDir tmp;
  WriteFileOrDie(tmp / "secret", "do not touch");
  ASSERT_EQ(::mkdir((tmp / "img").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((tmp / "secret").c_str(), (tmp / "img/core-1.img").c_str()), 0);
  ASSERT_EQ(::symlink((tmp / "secret").c_str(), (tmp / "img/pages-1.img").c_str()), 0);
  {
    auto d = ImageDir::Open(tmp / "img");
    ASSERT_TRUE(d.ok());
    auto r = (*d)->OpenReader(ImageType::kCore, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find("core-1.img: is a symbolic link"), std::string::npos)
        << r.error().message();
    EXPECT_FALSE((*d)->OpenRaw(PagesFileName(1)).ok());
  }
  {
    auto d = ImageDir::Create(tmp / "img");
    ASSERT_TRUE(d.ok());
    auto w = (*d)->OpenWriter(ImageType::kCore, 1);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().err(), ELOOP) << w.error().message();
    EXPECT_FALSE((*d)->CreateRaw(PagesFileName(1)).ok());
  }
  struct stat st;
  ASSERT_EQ(::stat((tmp / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 12);  // not truncated through the link
}

TEST(ImageDirPlanted, FifoIsRefusedWithoutBlocking) {
  TempDir tmp;
  ASSERT_EQ(::mkfifo((tmp / "pages-1.img").c_str(), 0600), 0);
  auto d = ImageDir::Open(tmp.path());
  ASSERT_TRUE(d.ok());
  auto r = (*d)->OpenRaw(PagesFileName(1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a regular file"), std::string::npos)
      << r.error().message();
}

// ---------------------------------------------------------------------------
// Reading bad input: every case is an error with a message, never a crash.

class ImageReadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = ImageDir::Open(tmp_.path());
    ASSERT_TRUE(d.ok());
    dir_ = std::move(*d);
  }
  // Writes raw bytes (sealed with a valid trailer, so the record reader
  // sees them) as `t`'s file and returns the first Read's result.
  Result<bool> ReadFirst(ImageType t, const std::string& bytes, bool seal = true) {
    WriteFileOrDie(tmp_ / FileName(t, 1), seal ? SealImage(bytes) : bytes);
    auto r = dir_->OpenReader(t, 1);
    if (!r.ok()) return std::move(r.error());
    auto m = Info(t).factory();
    return r->Read(*m);
  }
  static std::string Msg(const Result<bool>& r) { return r.ok() ? "(ok)" : r.error().message(); }

  TempDir tmp_;
  std::unique_ptr<ImageDir> dir_;
};

TEST_F(ImageReadErrors, MissingFile) {
  auto r = dir_->OpenReader(ImageType::kCore, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err(), ENOENT);
  EXPECT_NE(r.error().message().find("core-99.img"), std::string::npos) << r.error().message();
  auto any = OpenAnyImage(tmp_ / "nothing.img");
  ASSERT_FALSE(any.ok());
  EXPECT_EQ(any.error().err(), ENOENT);
}

TEST_F(ImageReadErrors, BadFormatMagic) {
  auto r = ReadFirst(ImageType::kCore, U32(0x12345678) + U32(Info(ImageType::kCore).magic));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r).find("bad magic"), std::string::npos) << Msg(r);
}

TEST_F(ImageReadErrors, UnknownTypeMagic) {
  auto r = ReadFirst(ImageType::kCore, U32(kImageMagic) + U32(0xdeadbeef));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r).find("unknown image type"), std::string::npos) << Msg(r);
}

TEST_F(ImageReadErrors, WrongType) {
  // A pstree image renamed to core-1.img.
  auto r = ReadFirst(ImageType::kCore, Header(ImageType::kPstree));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r).find("pstree"), std::string::npos) << Msg(r);
  EXPECT_NE(Msg(r).find("core"), std::string::npos) << Msg(r);
}

TEST_F(ImageReadErrors, TruncatedHeader) {
  for (size_t n : {0, 1, 4, 7}) {
    auto r = ReadFirst(ImageType::kCore, Header(ImageType::kCore).substr(0, n), false);
    ASSERT_FALSE(r.ok()) << n << " header bytes accepted";
    EXPECT_NE(Msg(r).find("truncated"), std::string::npos) << Msg(r);
  }
}

TEST_F(ImageReadErrors, TruncatedRecordLength) {
  for (size_t n : {1, 2, 3}) {
    auto r = ReadFirst(ImageType::kPstree, Header(ImageType::kPstree) + std::string(n, '\x05'));
    ASSERT_FALSE(r.ok()) << n << " length bytes accepted";
    EXPECT_NE(Msg(r).find("truncated"), std::string::npos) << Msg(r);
  }
}

TEST_F(ImageReadErrors, TruncatedRecordBody) {
  std::string body = MakePstree(3).SerializeAsString();
  auto r = ReadFirst(ImageType::kPstree, Header(ImageType::kPstree) + U32(uint32_t(body.size())) +
                                             body.substr(0, body.size() - 1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r).find("truncated"), std::string::npos) << Msg(r);
}

TEST_F(ImageReadErrors, TruncatedSecondRecordAfterAGoodOne) {
  std::string body = MakePstree(3).SerializeAsString();
  WriteFileOrDie(tmp_ / "pstree.img", SealImage(Header(ImageType::kPstree) +
                                                U32(uint32_t(body.size())) + body + U32(1000) +
                                                "short"));
  auto r = dir_->OpenReader(ImageType::kPstree);
  ASSERT_TRUE(r.ok());
  pb::PstreeEntry e;
  auto first = r->Read(e);
  ASSERT_TRUE(first.ok() && *first);
  EXPECT_EQ(e.pid(), 3u);
  auto second = r->Read(e);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("truncated"), std::string::npos);
}

TEST_F(ImageReadErrors, HostileLengthIsRefusedWithoutAllocating) {
  for (uint32_t len : {kMaxRecordSize + 1, 0x80000000u, 0xffffffffu}) {
    auto r = ReadFirst(ImageType::kCore, Header(ImageType::kCore) + U32(len) + "xyz");
    ASSERT_FALSE(r.ok()) << "length " << len << " accepted";
    EXPECT_NE(Msg(r).find("corrupt record length"), std::string::npos) << Msg(r);
  }
}

TEST_F(ImageReadErrors, MaxLengthButShortFileIsTruncated) {
  auto r = ReadFirst(ImageType::kCore, Header(ImageType::kCore) + U32(kMaxRecordSize) + "xyz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Msg(r).find("truncated"), std::string::npos) << Msg(r);
}

TEST_F(ImageReadErrors, GarbageThatFailsToParse) {
  // 0xff... is an invalid varint tag; the empty record lacks required fields.
  std::string junk(16, '\xff');
  auto r1 = ReadFirst(ImageType::kPstree, Header(ImageType::kPstree) + U32(16) + junk);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(Msg(r1).find("corrupt"), std::string::npos) << Msg(r1);
  auto r2 = ReadFirst(ImageType::kPstree, Header(ImageType::kPstree) + U32(0));
  ASSERT_FALSE(r2.ok()) << "a record without required fields was accepted";
  // A valid message of the wrong type: field numbers/types do not satisfy it.
  std::string fs;
  {
    pb::FsEntry f;
    f.set_cwd("/"), f.set_root("/");
    fs = f.SerializeAsString();
  }
  auto r3 =
      ReadFirst(ImageType::kPstree, Header(ImageType::kPstree) + U32(uint32_t(fs.size())) + fs);
  ASSERT_FALSE(r3.ok());
}

TEST_F(ImageReadErrors, FuzzedPrefixesNeverCrash) {
  // Every prefix and every single-byte corruption of a valid image either
  // reads or fails cleanly.
  std::string good = Header(ImageType::kCore);
  for (uint32_t pid : {1u, 2u}) {
    std::string b = MakeCore(pid, 600).SerializeAsString();
    good += U32(uint32_t(b.size())) + b;
  }
  auto drain = [&](const std::string& bytes) {
    WriteFileOrDie(tmp_ / "core-1.img", SealImage(bytes));
    auto r = dir_->OpenReader(ImageType::kCore, 1);
    if (!r.ok()) return;
    pb::TaskCoreEntry c;
    for (int i = 0; i < 10; i++) {
      auto got = r->Read(c);
      if (!got.ok() || !*got) return;
    }
  };
  for (size_t n = 0; n < good.size(); n += 7) drain(good.substr(0, n));
  for (size_t i = 0; i < good.size(); i += 13) {
    std::string bad = good;
    bad[i] = char(bad[i] ^ 0xa5);
    drain(bad);
  }
  SUCCEED();
}

TEST_F(ImageReadErrors, OpenAnyImageIdentifiesEveryType) {
  for (ImageType t : kAllTypes) {
    std::string path = tmp_ / (std::string("any-") + Info(t).name + ".img");
    WriteFileOrDie(path, SealImage(Header(t)));
    auto r = OpenAnyImage(path);
    ASSERT_TRUE(r.ok()) << Info(t).name << ": " << r.error().message();
    ASSERT_NE(r->info(), nullptr);
    EXPECT_EQ(r->info()->type, t);
    EXPECT_EQ(r->name(), path);
  }
  WriteFileOrDie(tmp_ / "bad.img", U32(0) + U32(0));
  EXPECT_FALSE(OpenAnyImage(tmp_ / "bad.img").ok());
  WriteFileOrDie(tmp_ / "pages.img", std::string(4096, '\0'));  // raw pages: no header
  EXPECT_FALSE(OpenAnyImage(tmp_ / "pages.img").ok());
}

TEST_F(ImageReadErrors, OpenAnyImageReadsRecords) {
  pb::FsEntry f;
  f.set_cwd("/x y"), f.set_root("/");
  std::string b = f.SerializeAsString();
  WriteFileOrDie(tmp_ / "fs-3.img", SealImage(Header(ImageType::kFs) + U32(uint32_t(b.size())) + b));
  auto r = OpenAnyImage(tmp_ / "fs-3.img");
  ASSERT_TRUE(r.ok());
  auto m = r->info()->factory();
  auto st = r->ReadOne(*m);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(MessageDifferencer::Equals(*m, f));
}

}  // namespace
}  // namespace ckpt::images
