// deleted_file: regular files unlinked while open. ghost.dat (mode 0640,
// data at both ends of 1 MiB and a hole between) open O_RDWR at an offset
// and again O_RDONLY; an empty file open O_WRONLY | O_APPEND; an O_TMPFILE
// file. Verifies links, that they stay unlinked, inodes shared or not,
// sizes, modes, contents, offsets, and that they can still be written.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kSize = 1 << 20, kHead = 8192, kTail = 100;
uint64_t g_seed;
char byte(size_t i) { return static_cast<char>(zdtm_mix(g_seed, i)); }
void place(int fd, int num) {
  if (fd < 0) fail("open: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
std::string link_of(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
struct stat stat_of(int fd) {
  struct stat st;
  if (fstat(fd, &st)) fail("fstat %d", fd);
  return st;
}
bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string head(kHead, '\0'), tail(kTail, '\0');
  for (size_t i = 0; i < kHead; i++) head[i] = byte(i);
  for (size_t i = 0; i < kTail; i++) tail[i] = byte(kSize - kTail + i);
  place(open("ghost.dat", O_RDWR | O_CREAT, 0640), 110);
  if (pwrite(110, head.data(), kHead, 0) != kHead || pwrite(110, tail.data(), kTail, kSize - kTail) != kTail)
    fail("write ghost.dat");
  lseek(110, 5000, SEEK_SET);
  place(open("ghost.dat", O_RDONLY), 111);
  lseek(111, 100, SEEK_SET);
  place(open("empty.dat", O_WRONLY | O_APPEND | O_CREAT, 0600), 113);
  place(open(".", O_RDWR | O_TMPFILE, 0600), 112);
  if (write(112, "tmpfile", 7) != 7) fail("write tmpfile");
  if (unlink("ghost.dat") || unlink("empty.dat")) fail("unlink: %s", strerror(errno));
  std::string l110 = link_of(110), l113 = link_of(113), l112 = link_of(112);
  struct stat st110 = stat_of(110);
  int fl[4];
  for (int i = 0; i < 4; i++) fl[i] = fcntl(110 + i, F_GETFL);

  test_ready();
  test_wait();

  if (link_of(110) != l110 || link_of(111) != l110 || link_of(113) != l113)
    fail("links now %s, %s; want %s, %s", link_of(110).c_str(), link_of(113).c_str(), l110.c_str(), l113.c_str());
  std::string dir = l112.substr(0, l112.rfind('/'));
  if (!ends_with(link_of(112), " (deleted)") || link_of(112).compare(0, dir.size() + 1, dir + "/") != 0)
    fail("fd 112: %s, want an unlinked file in %s", link_of(112).c_str(), dir.c_str());
  if (access("ghost.dat", F_OK) == 0 || access("empty.dat", F_OK) == 0) fail("a deleted file is back");
  for (int i = 0; i < 4; i++) {
    if (stat_of(110 + i).st_nlink != 0) fail("fd %d has a link", 110 + i);
    if (fcntl(110 + i, F_GETFL) != fl[i]) fail("fd %d: F_GETFL %#o, want %#o", 110 + i, fcntl(110 + i, F_GETFL), fl[i]);
  }
  struct stat st = stat_of(110);
  if (st.st_ino != stat_of(111).st_ino) fail("fds 110 and 111 are different files");
  if (st.st_size != static_cast<off_t>(kSize) || st.st_mode != st110.st_mode || st.st_mtim.tv_sec != st110.st_mtim.tv_sec)
    fail("size %ld mode %o, want %zu %o (or mtime changed)", (long)st.st_size, st.st_mode, kSize, st110.st_mode);
  if (lseek(110, 0, SEEK_CUR) != 5000 || lseek(111, 0, SEEK_CUR) != 100) fail("offsets changed");
  std::string all(kSize, '\1');
  if (pread(111, &all[0], kSize, 0) != static_cast<ssize_t>(kSize)) fail("pread");
  if (all.compare(0, kHead, head) != 0 || all.compare(kSize - kTail, kTail, tail) != 0) fail("contents differ");
  for (size_t i = kHead; i < kSize - kTail; i++)
    if (all[i]) fail("hole byte %zu is %d", i, all[i]);
  char buf[8];
  if (write(110, "W", 1) != 1 || pread(111, buf, 1, 5000) != 1 || buf[0] != 'W') fail("write via fd 110 not seen by fd 111");
  if (pread(112, buf, 7, 0) != 7 || memcmp(buf, "tmpfile", 7) != 0) fail("O_TMPFILE contents");
  if (write(113, "abc", 3) != 3 || stat_of(113).st_size != 3) fail("fd 113 append");
  pass();
}
