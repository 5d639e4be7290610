// Unit tests for images/zpages.h (the compressed pages layout) and how
// ImageDir reads such files: round trips at frame edges, reads at any
// offset, and hostile input (truncation, flipped bytes, forged indexes,
// lengths that would overflow or allocate gigabytes) ending in an error
// that names the file, never a crash.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>

#include "base/io.h"
#include "images/image_dir.h"
#include "images/zpages.h"
#include "proto/inventory.pb.h"
#include "test/unit/test_util.h"

namespace ckpt::images {
namespace {

constexpr uint32_t kFrame = 16384;  // small frames: many of them in little data

// Half text-like (compressible), half random, like a real heap.
std::string Heap(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  static const char* words[] = {"alpha ", "beta ", "gamma ", "delta ", "{\"key\": ", "42, "};
  size_t i = 0;
  while (i < n / 2) {
    const char* w = words[rng() % 6];
    for (const char* p = w; *p && i < n / 2; p++) s[i++] = *p;
  }
  for (; i < n; i++) s[i] = char(rng());
  return s;
}

std::string Compress(const std::string& raw, uint32_t frame = kFrame, int workers = 0) {
  std::string out;
  ZWriter w({.level = 1, .workers = workers, .frame_size = frame},
            [&](const void* p, size_t n) -> Status {
              out.append(static_cast<const char*>(p), n);
              return Ok();
            });
  // Uneven writes: frames must not depend on how the bytes arrive.
  size_t off = 0, step = 1;
  while (off < raw.size()) {
    size_t k = std::min(raw.size() - off, step);
    EXPECT_TRUE(w.Write(raw.data() + off, k).ok());
    off += k;
    step = step * 3 + 7;
  }
  EXPECT_TRUE(w.Finish().ok());
  EXPECT_EQ(w.raw_bytes(), raw.size());
  EXPECT_EQ(w.out_bytes(), out.size());
  return out;
}

ZPread FromString(const std::string& s) {
  return [&s](uint64_t off, void* buf, size_t len) -> Status {
    if (off > s.size() || len > s.size() - off) return Error("short");
    memcpy(buf, s.data() + off, len);
    return Ok();
  };
}

Result<std::string> Decompress(const std::string& file) {
  TRY_ASSIGN(ZReader r, ZReader::Open(FromString(file), file.size(), "pages-1.img"));
  std::string out(size_t(r.raw_size()), '\0');
  if (!out.empty()) TRY(r.ReadAt(0, out.data(), out.size()));
  return out;
}

TEST(ZPages, RoundTripAtFrameEdges) {
  for (size_t n : {size_t(0), size_t(1), size_t(4095), size_t(kFrame), size_t(kFrame + 1),
                   size_t(3 * kFrame), size_t(5 * kFrame + 4096)}) {
    std::string raw = Heap(n, uint32_t(n));
    std::string z = Compress(raw);
    auto back = Decompress(z);
    ASSERT_TRUE(back.ok()) << n << ": " << back.error().message();
    EXPECT_EQ(*back, raw) << n;
  }
}

TEST(ZPages, WorkersGiveTheSameContents) {
  std::string raw = Heap(3 << 20, 7);
  std::string z = Compress(raw, kZDefaultFrameSize, 2);
  auto back = Decompress(z);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, raw);
  EXPECT_LT(z.size(), raw.size() * 3 / 4);  // the text half compresses
}

TEST(ZPages, ReadAtAnyOffset) {
  std::string raw = Heap(4 * kFrame + 100, 3);
  std::string z = Compress(raw);
  auto r = ZReader::Open(FromString(z), z.size(), "pages-1.img");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->layout().frames(), 5u);
  std::mt19937 rng(5);
  for (int i = 0; i < 300; i++) {
    uint64_t off = rng() % raw.size();
    size_t len = size_t(rng() % std::min<uint64_t>(3 * kFrame, raw.size() - off));
    std::string got(len, '\0');
    ASSERT_TRUE(r->ReadAt(off, got.data(), len).ok());
    ASSERT_EQ(got, raw.substr(off, len)) << off << "+" << len;
  }
  char c;
  auto past = r->ReadAt(raw.size(), &c, 1);
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.error().message().find("pages-1.img"), std::string::npos);
  EXPECT_FALSE(r->ReadAt(UINT64_MAX, &c, 2).ok());  // no wrap-around
}

TEST(ZPages, IsAValidZstdStream) {
  // The skippable header and index frames keep the file readable by zstd.
  std::string raw = Heap(2 * kFrame + 9, 11);
  std::string z = Compress(raw);
  EXPECT_TRUE(LooksLikeZPages(z.data(), z.size()));
  EXPECT_FALSE(LooksLikeZPages(raw.data(), raw.size()));
}

// Every outcome of a damaged file is an error naming it, or (a byte that
// does not matter, like zstd's reserved bits) the right contents.
void ExpectRefusedOrExact(const std::string& z, const std::string& raw, const std::string& what) {
  auto back = Decompress(z);
  if (back.ok()) {
    EXPECT_EQ(*back, raw) << what << ": damaged file decoded to different contents";
  } else {
    EXPECT_NE(back.error().message().find("pages-1.img"), std::string::npos)
        << what << ": " << back.error().message();
  }
}

TEST(ZPagesHostile, EveryTruncation) {
  std::string raw = Heap(3 * kFrame, 21);
  std::string z = Compress(raw);
  for (size_t n = 0; n < z.size(); n++) {
    auto back = Decompress(z.substr(0, n));
    ASSERT_FALSE(back.ok()) << "truncated to " << n;
  }
  // Bytes appended: the index is no longer at the end.
  EXPECT_FALSE(Decompress(z + std::string(7, 'x')).ok());
}

TEST(ZPagesHostile, EveryFlippedByte) {
  std::string raw = Heap(2 * kFrame + 500, 22);
  std::string z = Compress(raw);
  for (size_t i = 0; i < z.size(); i++) {
    for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      std::string bad = z;
      bad[i] = char(uint8_t(bad[i]) ^ mask);
      ExpectRefusedOrExact(bad, raw, "byte " + std::to_string(i));
    }
  }
}

void Put32(std::string& s, size_t at, uint32_t v) { memcpy(s.data() + at, &v, 4); }
void Put64(std::string& s, size_t at, uint64_t v) { memcpy(s.data() + at, &v, 8); }

TEST(ZPagesHostile, ForgedHeadersAndIndexes) {
  std::string raw = Heap(3 * kFrame, 23);
  const std::string z = Compress(raw);
  size_t tail = z.size() - kZTailSize;
  auto refused = [&](std::string bad, const char* what) {
    auto back = Decompress(bad);
    EXPECT_FALSE(back.ok()) << what;
    if (!back.ok()) {
      EXPECT_NE(back.error().message().find("pages-1.img"), std::string::npos);
    }
  };
  std::string b;
  b = z, Put32(b, 16, 1u << 31);
  refused(b, "frame size 2 GiB");
  b = z, Put32(b, 16, 0);
  refused(b, "frame size 0");
  b = z, Put32(b, 16, 4097);
  refused(b, "frame size not a page multiple");
  b = z, Put32(b, 12, 99);
  refused(b, "unknown version");
  b = z, Put32(b, 20, 1);
  refused(b, "unknown flags");
  b = z, Put32(b, tail + 8, 0xffffffffu);
  refused(b, "4 billion frames");
  b = z, Put64(b, tail, UINT64_MAX);
  refused(b, "raw size 2^64-1");
  b = z, Put64(b, tail, raw.size() + 1);
  refused(b, "raw size one more");
  b = z, Put64(b, tail, raw.size() - 1);
  refused(b, "raw size one less: last frame too long");
  size_t idx = tail - 4 * 3;  // csize[0..2]
  b = z, Put32(b, idx, 0);
  refused(b, "a frame of 0 bytes");
  b = z, Put32(b, idx, 0xffffffffu);
  refused(b, "a frame of 4 GiB");
  {
    // Two frames' lengths traded: the sum still matches, each frame
    // boundary is wrong.
    b = z;
    uint32_t c0, c1;
    memcpy(&c0, b.data() + idx, 4);
    memcpy(&c1, b.data() + idx + 4, 4);
    if (c0 != c1) {
      Put32(b, idx, c1);
      Put32(b, idx + 4, c0);
      refused(b, "frame lengths swapped");
    }
  }
  // A whole-garbage file of every small size, and one that is only a
  // header and a tail claiming frames that are not there.
  std::mt19937 rng(9);
  for (size_t n = 0; n < 200; n++) {
    std::string g(n, '\0');
    for (char& c : g) c = char(rng());
    EXPECT_FALSE(Decompress(g).ok());
  }
  std::string hollow = z.substr(0, kZHeaderSize) + z.substr(z.size() - (8 + 12 + kZTailSize));
  refused(hollow, "frames missing");
}

TEST(ZPagesHostile, RandomMutationsNeverCrash) {
  std::string raw = Heap(4 * kFrame, 24);
  std::string z = Compress(raw);
  std::mt19937 rng(77);
  for (int round = 0; round < 2000; round++) {
    std::string bad = z;
    int edits = 1 + int(rng() % 8);
    for (int e = 0; e < edits; e++) bad[rng() % bad.size()] = char(rng());
    ExpectRefusedOrExact(bad, raw, "round " + std::to_string(round));
  }
}

// ---- ImageDir: raw files marked compressed ----

class ZDir : public ::testing::Test {
 protected:
  testing::TempDir tmp;
  std::string raw = Heap(5 * kZDefaultFrameSize / 2, 31);

  void WriteDump(bool mark) {
    auto dir = ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    auto fd = (*dir)->CreateRaw("pages-1.img");
    ASSERT_TRUE(fd.ok());
    std::string z = Compress(raw, kZDefaultFrameSize, 2);
    ASSERT_TRUE(io::WriteFull(fd->get(), z.data(), z.size()).ok());
    if (mark) (*dir)->MarkZPages("pages-1.img");
    pb::InventoryEntry inv;
    inv.set_format_version(kFormatVersion);
    inv.set_kernel("6.18.0-test");
    inv.set_arch("x86_64");
    inv.set_root_pid(1);
    inv.set_page_size(4096);
    auto c = (*dir)->Commit(inv);
    ASSERT_TRUE(c.ok()) << c.error().message();
  }
};

TEST_F(ZDir, OpenRawDecompresses) {
  WriteDump(true);
  auto dir = ImageDir::Open(tmp.path());
  ASSERT_TRUE(dir.ok());
  auto size = (*dir)->RawSize("pages-1.img");
  ASSERT_TRUE(size.ok()) << size.error().message();
  EXPECT_EQ(*size, raw.size());
  for (int round = 0; round < 2; round++) {  // the second open shares the first's memfd
    auto fd = (*dir)->OpenRaw("pages-1.img");
    ASSERT_TRUE(fd.ok()) << fd.error().message();
    struct stat st;
    ASSERT_EQ(fstat(fd->get(), &st), 0);
    ASSERT_EQ(uint64_t(st.st_size), raw.size());
    std::string got(raw.size(), '\0');
    ASSERT_EQ(pread(fd->get(), got.data(), got.size(), 0), ssize_t(got.size()));
    EXPECT_EQ(got, raw);
  }
  auto pf = (*dir)->OpenPages("pages-1.img");
  ASSERT_TRUE(pf.ok());
  EXPECT_EQ((*pf)->size(), raw.size());
  std::string got(10000, '\0');
  uint64_t off = kZDefaultFrameSize - 5000;  // across a frame edge
  ASSERT_TRUE((*pf)->ReadAt(off, got.data(), got.size()).ok());
  EXPECT_EQ(got, raw.substr(off, got.size()));
}

TEST_F(ZDir, UnmarkedFileIsRaw) {
  // Not listed as compressed: its bytes are the contents, whatever they
  // look like (page contents can imitate a header).
  WriteDump(false);
  auto dir = ImageDir::Open(tmp.path());
  ASSERT_TRUE(dir.ok());
  auto z = (*dir)->IsZPages("pages-1.img");
  ASSERT_TRUE(z.ok());
  EXPECT_FALSE(*z);
  auto size = (*dir)->RawSize("pages-1.img");
  ASSERT_TRUE(size.ok());
  EXPECT_LT(*size, raw.size());
}

TEST_F(ZDir, DamagedCompressedFileIsRefusedByName) {
  WriteDump(true);
  std::string p = tmp / "pages-1.img";
  int fd = open(p.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "XY", 2, 4000), 2);
  close(fd);
  auto dir = ImageDir::Open(tmp.path());
  ASSERT_TRUE(dir.ok());
  auto r = (*dir)->OpenRaw("pages-1.img");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("pages-1.img: damaged"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE((*dir)->OpenPages("pages-1.img").ok());
  EXPECT_FALSE((*dir)->RawSize("pages-1.img").ok());
}

}  // namespace
}  // namespace ckpt::images
