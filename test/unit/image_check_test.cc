// Damage detection in image files (images/image_check.h): the CRC32C, the
// trailer of record images, the checksums.img list of raw files. Every
// kind of damage is refused with the file named.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "images/image_check.h"
#include "images/image_dir.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "test/unit/test_util.h"

namespace ckpt::images {
namespace {

using ckpt::testing::TempDir;
using ckpt::testing::WriteFileOrDie;

std::string Slurp(const std::string& path) {
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  char buf[4096];
  for (ssize_t n; fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, size_t(n));
  if (fd >= 0) close(fd);
  return out;
}

pb::InventoryEntry Inventory() {
  pb::InventoryEntry inv;
  inv.set_format_version(kFormatVersion);
  inv.set_kernel("6.18");
  inv.set_arch("x86_64");
  inv.set_root_pid(1);
  inv.set_page_size(4096);
  return inv;
}

TEST(Crc32c, KnownValuesAndChaining) {
  // The check value of CRC-32C (RFC 3720 appendix B.4 lists the same).
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xe3069283u);
  EXPECT_EQ(Crc32c(0, "", 0), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(0, zeros.data(), zeros.size()), 0x8a9136aau);
  // Any split of the input gives the same result chained.
  std::string text;
  for (int i = 0; i < 1000; i++) text += char(i * 7 + 3);
  uint32_t whole = Crc32c(0, text.data(), text.size());
  for (size_t cut : {size_t(0), size_t(1), size_t(7), size_t(8), size_t(9), size_t(500)})
    EXPECT_EQ(Crc32c(Crc32c(0, text.data(), cut), text.data() + cut, text.size() - cut), whole);
}

TEST(Crc32c, CombineEqualsChaining) {
  std::string text;
  for (int i = 0; i < 20000; i++) text += char(i * 13 + (i >> 7));
  uint32_t whole = Crc32c(0, text.data(), text.size());
  for (size_t cut : {size_t(0), size_t(1), size_t(3), size_t(4096), size_t(12345), text.size()}) {
    uint32_t a = Crc32c(0, text.data(), cut);
    uint32_t b = Crc32c(0, text.data() + cut, text.size() - cut);
    EXPECT_EQ(Crc32cCombine(a, b, text.size() - cut), whole) << "cut at " << cut;
  }
  // Three pieces, combined left to right.
  uint32_t a = Crc32c(0, text.data(), 100), b = Crc32c(0, text.data() + 100, 900),
           c = Crc32c(0, text.data() + 1000, text.size() - 1000);
  EXPECT_EQ(Crc32cCombine(Crc32cCombine(a, b, 900), c, text.size() - 1000), whole);
  // A changed byte in either piece changes the result.
  std::string bad = text;
  bad[17] ^= 1;
  EXPECT_NE(Crc32cCombine(Crc32c(0, bad.data(), 5000), Crc32c(0, bad.data() + 5000, 15000), 15000),
            whole);
}

TEST(SumFile, ABigFileReadByTwoThreadsSumsAsOne) {
  TempDir tmp;
  std::string bytes(40 << 20, '\0');  // above the split size
  for (size_t i = 0; i < bytes.size(); i += 4093) bytes[i] = char(i >> 12);
  std::string path = tmp / "big";
  WriteFileOrDie(path, bytes);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto one = SumFile(fd, "big", 1);
  auto two = SumFile(fd, "big", 2);
  close(fd);
  ASSERT_TRUE(one.ok()) << one.error().message();
  ASSERT_TRUE(two.ok()) << two.error().message();
  EXPECT_EQ(two->size, bytes.size());
  EXPECT_EQ(one->crc, Crc32c(0, bytes.data(), bytes.size()));
  EXPECT_EQ(two->crc, one->crc);
}

// Long inputs take the three-stream path (blocks of 3 x 4 KiB, joined by
// linearity): the same values as a plain bit-at-a-time CRC-32C, at any
// length and alignment around the block edges.
TEST(Crc32c, LongInputsMatchBitwise) {
  auto bitwise = [](const unsigned char* p, size_t n) {
    uint32_t c = ~0u;
    while (n--) {
      c ^= *p++;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
  };
  std::vector<unsigned char> buf(5 * 12288 + 64);
  uint32_t x = 12345;
  for (unsigned char& b : buf) {
    x = x * 1103515245u + 12345u;
    b = (unsigned char)(x >> 16);
  }
  for (size_t start : {size_t(0), size_t(1), size_t(7)})
    for (size_t len : {size_t(12287), size_t(12288), size_t(12289), size_t(3 * 12288 + 13),
                       size_t(5 * 12288)})
      EXPECT_EQ(Crc32c(0, buf.data() + start, len), bitwise(buf.data() + start, len))
          << "start " << start << " length " << len;
  // Chained across the fast path.
  uint32_t whole = Crc32c(0, buf.data(), 4 * 12288);
  EXPECT_EQ(Crc32c(Crc32c(0, buf.data(), 12288 + 5), buf.data() + 12288 + 5, 3 * 12288 - 5),
            whole);
}

class Sealed : public ::testing::Test {
 protected:
  // A dump of one fs image and one raw file, committed.
  void SetUp() override {
    auto d = ImageDir::Create(tmp_ / "img");
    ASSERT_TRUE(d.ok());
    pb::FsEntry fs;
    fs.set_cwd("/some/where"), fs.set_root("/");
    auto w = (*d)->OpenWriter(ImageType::kFs, 7);
    ASSERT_TRUE(w.ok());
    for (int i = 0; i < 3; i++) ASSERT_TRUE(w->Write(fs).ok());
    ASSERT_TRUE(w->Close().ok());
    auto raw = (*d)->CreateRaw(PagesFileName(1));
    ASSERT_TRUE(raw.ok());
    std::string pages(3 * 4096, 'p');
    ASSERT_EQ(write(raw->get(), pages.data(), pages.size()), ssize_t(pages.size()));
    ASSERT_TRUE((*d)->Commit(Inventory()).ok());
    fs_ = tmp_ / "img/fs-7.img";
    pages_ = tmp_ / "img/pages-1.img";
    good_fs_ = Slurp(fs_);
  }
  // Reads every fs record; the first error, or "" when all read.
  std::string ReadFs() {
    auto d = ImageDir::Open(tmp_ / "img");
    if (!d.ok()) return d.error().message();
    auto r = (*d)->OpenReader(ImageType::kFs, 7);
    if (!r.ok()) return r.error().message();
    pb::FsEntry e;
    for (;;) {
      auto got = r->Read(e);
      if (!got.ok()) return got.error().message();
      if (!*got) return "";
    }
  }
  std::string OpenPages() {
    auto d = ImageDir::Open(tmp_ / "img");
    if (!d.ok()) return d.error().message();
    auto r = (*d)->OpenRaw(PagesFileName(1));
    return r.ok() ? "" : r.error().message();
  }
  TempDir tmp_;
  std::string fs_, pages_, good_fs_;
};

TEST_F(Sealed, GoodImagesRead) {
  EXPECT_EQ(ReadFs(), "");
  EXPECT_EQ(OpenPages(), "");
  EXPECT_TRUE(CheckTrailer(open(fs_.c_str(), O_RDONLY | O_CLOEXEC), "fs").ok());
}

TEST_F(Sealed, EveryChangedByteIsRefusedNamingTheFile) {
  for (size_t i = 8; i < good_fs_.size(); i++) {
    std::string bad = good_fs_;
    bad[i] = char(bad[i] ^ 0x01);
    WriteFileOrDie(fs_, bad);
    std::string err = ReadFs();
    ASSERT_NE(err, "") << "byte " << i << " changed, accepted";
    EXPECT_NE(err.find("fs-7.img"), std::string::npos) << err;
  }
}

TEST_F(Sealed, AZeroedRangeIsRefused) {
  std::string bad = good_fs_;
  for (size_t i = 14; i < 24; i++) bad[i] = 0;
  WriteFileOrDie(fs_, bad);
  std::string err = ReadFs();
  EXPECT_NE(err.find("fs-7.img: damaged: checksum mismatch"), std::string::npos) << err;
}

TEST_F(Sealed, AppendedBytesAreRefused) {
  for (const std::string& extra : {std::string(1, '\0'), std::string("garbage"),
                                   std::string(16, '\xff'), good_fs_.substr(good_fs_.size() - 16)}) {
    WriteFileOrDie(fs_, good_fs_ + extra);
    std::string err = ReadFs();
    EXPECT_NE(err.find("fs-7.img: damaged"), std::string::npos) << extra.size() << ": " << err;
  }
}

TEST_F(Sealed, TruncatedImagesAreRefused) {
  for (size_t cut : {size_t(1), size_t(8), size_t(16), size_t(17), good_fs_.size() - 9}) {
    WriteFileOrDie(fs_, good_fs_.substr(0, good_fs_.size() - cut));
    std::string err = ReadFs();
    EXPECT_NE(err.find("fs-7.img"), std::string::npos) << cut << ": " << err;
    EXPECT_NE(err, "");
  }
}

TEST_F(Sealed, RawFilesAreCheckedAgainstTheList) {
  std::string good = Slurp(pages_);
  std::string bad = good;
  bad[5000] = 'q';
  WriteFileOrDie(pages_, bad);
  EXPECT_NE(OpenPages().find("pages-1.img: damaged: checksum mismatch"), std::string::npos)
      << OpenPages();
  WriteFileOrDie(pages_, good.substr(0, 4096));  // shorter
  EXPECT_NE(OpenPages().find("pages-1.img: damaged: 4096 bytes, 12288 when dumped"),
            std::string::npos)
      << OpenPages();
  WriteFileOrDie(pages_, good + std::string(4096, 'p'));  // longer
  EXPECT_NE(OpenPages().find("pages-1.img: damaged"), std::string::npos) << OpenPages();
  WriteFileOrDie(pages_, good);
  EXPECT_EQ(OpenPages(), "");
  // A raw file no list names.
  WriteFileOrDie(tmp_ / "img/pages-9.img", good);
  auto d = ImageDir::Open(tmp_ / "img");
  ASSERT_TRUE(d.ok());
  auto r = (*d)->OpenRaw(PagesFileName(9));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("pages-9.img: not listed"), std::string::npos);
}

TEST_F(Sealed, ADamagedListIsRefused) {
  std::string sums = tmp_ / "img/checksums.img";
  std::string s = Slurp(sums);
  s[12] = char(s[12] ^ 0x40);
  WriteFileOrDie(sums, s);
  std::string err = OpenPages();
  EXPECT_NE(err.find("checksums.img: damaged"), std::string::npos) << err;
}

TEST_F(Sealed, ParentPagesAreCheckedAgainstTheParentsList) {
  // A child dump whose pagemap reads "parent/pages-1.img" (criu/page_chain.h).
  auto d = ImageDir::Create(tmp_ / "child");
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE((*d)->Commit(Inventory()).ok());
  ASSERT_EQ(symlink("../img", (tmp_ / "child/parent").c_str()), 0);
  auto child = ImageDir::Open(tmp_ / "child");
  ASSERT_TRUE(child.ok());
  EXPECT_TRUE((*child)->OpenRaw("parent/pages-1.img").ok());
  std::string good = Slurp(pages_);
  WriteFileOrDie(pages_, good.substr(0, 8192));
  auto again = ImageDir::Open(tmp_ / "child");
  ASSERT_TRUE(again.ok());
  auto r = (*again)->OpenRaw("parent/pages-1.img");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("child/parent/pages-1.img: damaged"), std::string::npos)
      << r.error().message();
}

TEST(SealImage, ChecksumsImageOfAPageServerReads) {
  TempDir tmp;
  ASSERT_EQ(mkdir((tmp / "d").c_str(), 0700), 0);
  WriteFileOrDie(tmp / "d/pages-3.img", std::string(4096, 'z'));
  int fd = open((tmp / "d/pages-3.img").c_str(), O_RDONLY | O_CLOEXEC);
  auto s = SumFile(fd, "pages-3.img");
  close(fd);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size, 4096u);
  WriteFileOrDie(tmp / "d/checksums1.img", ChecksumsImage({*s}));
  auto d = ImageDir::Open(tmp / "d");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->OpenRaw("pages-3.img").ok());
}

}  // namespace
}  // namespace ckpt::images
