// criu/page_read.h: scattered runs from two files land exactly where they
// belong, whatever their order, across gaps, batch splits and files; a
// file too short is an error naming the address.
#include "criu/page_read.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "test/unit/test_util.h"

namespace ckpt {
namespace {

constexpr uint64_t kPage = 4096;

// A file of `pages` pages, page i filled with the byte (i * 7 + tag).
int MakePagesFile(const std::string& path, uint64_t pages, int tag) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  std::vector<char> page(kPage);
  for (uint64_t i = 0; i < pages; i++) {
    memset(page.data(), int((i * 7 + uint64_t(tag)) & 0xff), kPage);
    EXPECT_EQ(pwrite(fd, page.data(), kPage, off_t(i * kPage)), ssize_t(kPage));
  }
  return fd;
}

struct Mapping {
  explicit Mapping(uint64_t pages) : len(pages * kPage) {
    base = static_cast<char*>(
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~Mapping() { munmap(base, len); }
  uint64_t At(uint64_t page) const { return uint64_t(base) + page * kPage; }
  char* base;
  uint64_t len;
};

TEST(PageRead, ScatteredRunsFromTwoFiles) {
  testing::TempDir tmp;
  constexpr uint64_t kPages = 3000;  // > IOV_MAX runs from one file: several calls
  int a = MakePagesFile(tmp / "a", kPages, 1);
  int b = MakePagesFile(tmp / "b", kPages, 2);
  Mapping m(kPages);
  // Every third page from b (dense in b's file: b's page k holds memory
  // page 3k), the others from a at their own offset (a gap of one page
  // between runs, plus one far jump past kMaxGap).
  std::vector<PageRead> reads;
  std::vector<int> want(kPages);
  uint64_t bk = 0;
  for (uint64_t p = 0; p < kPages; p++) {
    if (p % 3 == 0) {
      reads.push_back({b, m.At(p), kPage, bk * kPage});
      want[p] = int((bk * 7 + 2) & 0xff);
      bk++;
    } else if (p < 2000 || p > 2000 + kMaxGap / kPage) {
      reads.push_back({a, m.At(p), kPage, p * kPage});
      want[p] = int((p * 7 + 1) & 0xff);
    } else {
      want[p] = 0;  // never read: stays zero
    }
  }
  std::shuffle(reads.begin(), reads.end(), std::mt19937(7));
  ASSERT_TRUE(ReadPageRuns(reads).ok());
  for (uint64_t p = 0; p < kPages; p++) {
    const unsigned char* pg = reinterpret_cast<const unsigned char*>(m.base + p * kPage);
    ASSERT_EQ(pg[0], want[p]) << "page " << p;
    ASSERT_EQ(pg[kPage - 1], want[p]) << "page " << p;
  }
  close(a);
  close(b);
}

TEST(PageRead, MultiPageRunsAndTruncation) {
  testing::TempDir tmp;
  int a = MakePagesFile(tmp / "a", 64, 5);
  Mapping m(64);
  std::vector<PageRead> reads = {{a, m.At(10), 20 * kPage, 0}, {a, m.At(0), 10 * kPage, 20 * kPage}};
  ASSERT_TRUE(ReadPageRuns(reads).ok());
  EXPECT_EQ((unsigned char)m.base[10 * kPage], 5);              // file page 0
  EXPECT_EQ((unsigned char)m.base[29 * kPage], (19 * 7 + 5) & 0xff);
  EXPECT_EQ((unsigned char)m.base[0], (20 * 7 + 5) & 0xff);     // file page 20
  // Past the end of the file: an error naming where it was reading to.
  std::vector<PageRead> bad = {{a, m.At(40), 8 * kPage, 60 * kPage}};
  Status st = ReadPageRuns(bad);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("truncated"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find(std::to_string(m.At(40))), std::string::npos);
  close(a);
}

}  // namespace
}  // namespace ckpt
