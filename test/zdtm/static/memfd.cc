// memfd: a sealable memfd of 2 MiB with data at both ends and a hole in
// between, sealed against shrinking and growing, open three ways (fd 100,
// a dup at 102 sharing its offset, a second O_RDONLY description at 101
// through /proc); a memfd without sealing; one sealed against writes.
// Verifies names, inodes, sizes, seals, contents, offsets, and that the
// seals still bite.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kSize = 2 << 20, kHead = 65536, kTail = 4096;
uint64_t g_seed;
char byte(size_t i) { return static_cast<char>(zdtm_mix(g_seed, i)); }
void place(int fd, int num) {
  if (fd < 0) fail("create: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
std::string link_of(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
void put(int fd, const std::string& s, off_t off) {
  if (pwrite(fd, s.data(), s.size(), off) != static_cast<ssize_t>(s.size())) fail("pwrite: %s", strerror(errno));
}
struct stat stat_of(int fd) {
  struct stat st;
  if (fstat(fd, &st)) fail("fstat %d", fd);
  return st;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string head(kHead, '\0'), tail(kTail, '\0');
  for (size_t i = 0; i < kHead; i++) head[i] = byte(i);
  for (size_t i = 0; i < kTail; i++) tail[i] = byte(kSize - kTail + i);
  place(memfd_create("zdtm-memfd", MFD_ALLOW_SEALING), 100);
  if (ftruncate(100, kSize)) fail("ftruncate");
  put(100, head, 0);
  put(100, tail, kSize - kTail);
  if (fcntl(100, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)) fail("F_ADD_SEALS: %s", strerror(errno));
  lseek(100, 12345, SEEK_SET);
  place(open("/proc/self/fd/100", O_RDONLY), 101);
  lseek(101, 777, SEEK_SET);
  if (dup2(100, 102) != 102) fail("dup2");
  place(memfd_create("plain", 0), 103);
  put(103, "hello", 0);
  place(memfd_create("write-sealed", MFD_ALLOW_SEALING), 104);
  put(104, "ro", 0);
  if (fcntl(104, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL)) fail("seal 104: %s", strerror(errno));
  std::string links[5];
  int seals[5], fl[5];
  mode_t mode[5];
  for (int i = 0; i < 5; i++)
    links[i] = link_of(100 + i), seals[i] = fcntl(100 + i, F_GET_SEALS), fl[i] = fcntl(100 + i, F_GETFL),
    mode[i] = stat_of(100 + i).st_mode;

  test_ready();
  test_wait();

  for (int i = 0; i < 5; i++) {
    int fd = 100 + i;
    if (link_of(fd) != links[i]) fail("fd %d: %s, want %s", fd, link_of(fd).c_str(), links[i].c_str());
    if (fcntl(fd, F_GET_SEALS) != seals[i]) fail("fd %d: seals %#x, want %#x", fd, fcntl(fd, F_GET_SEALS), seals[i]);
    if (fcntl(fd, F_GETFL) != fl[i]) fail("fd %d: F_GETFL %#o, want %#o", fd, fcntl(fd, F_GETFL), fl[i]);
    if (stat_of(fd).st_mode != mode[i]) fail("fd %d: mode %o, want %o", fd, stat_of(fd).st_mode, mode[i]);
  }
  if (stat_of(101).st_ino != stat_of(100).st_ino) fail("fd 101 is no longer the same memfd as fd 100");
  if (stat_of(103).st_ino == stat_of(100).st_ino) fail("two memfds became one");
  if (stat_of(100).st_size != static_cast<off_t>(kSize)) fail("size %ld", (long)stat_of(100).st_size);
  if (lseek(100, 0, SEEK_CUR) != 12345 || lseek(101, 0, SEEK_CUR) != 777) fail("offsets changed");
  std::string all(kSize, '\1');
  if (pread(101, &all[0], kSize, 0) != static_cast<ssize_t>(kSize)) fail("pread");
  if (all.compare(0, kHead, head) != 0 || all.compare(kSize - kTail, kTail, tail) != 0) fail("contents differ");
  for (size_t i = kHead; i < kSize - kTail; i++)
    if (all[i]) fail("hole byte %zu is %d", i, all[i]);
  // fd 102 shares fd 100's offset; fd 101 does not.
  char buf[8];
  if (read(102, buf, 1) != 1 || lseek(100, 0, SEEK_CUR) != 12346 || lseek(101, 0, SEEK_CUR) != 777)
    fail("offset sharing changed");
  if (pwrite(100, "Z", 1, 5) != 1 || pread(101, buf, 1, 5) != 1 || buf[0] != 'Z') fail("writes through fd 100 not seen by fd 101");
  if (pwrite(100, "x", 1, kSize) != -1 || errno != EPERM) fail("F_SEAL_GROW does not bite");
  if (ftruncate(100, 10) != -1 || errno != EPERM) fail("F_SEAL_SHRINK does not bite");
  if (pread(103, buf, 5, 0) != 5 || memcmp(buf, "hello", 5) != 0) fail("fd 103 contents");
  if (fcntl(103, F_ADD_SEALS, F_SEAL_WRITE) != -1 || errno != EPERM) fail("fd 103 became sealable");
  if (pread(104, buf, 2, 0) != 2 || memcmp(buf, "ro", 2) != 0) fail("fd 104 contents");
  if (pwrite(104, "w", 1, 0) != -1 || errno != EPERM) fail("F_SEAL_WRITE does not bite");
  pass();
}
