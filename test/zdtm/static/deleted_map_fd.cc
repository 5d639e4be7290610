// deleted_map_fd: a deleted file that is both mapped MAP_PRIVATE and held
// open as an fd (issue 14, a wrong restore: they came back as two files).
// scratch.dat (3 pages and 100 bytes of a pattern) is opened O_RDWR as fd
// 190, mapped MAP_PRIVATE (4 pages: the last one partly past the end), its
// page 1 written (copied on write), and the file removed. After restore,
// from inside:
//   - fstat(190) and stat(/proc/self/map_files/<range>) name the same
//     inode on the same device, and /proc/self/fd/190 reads the old path;
//   - the fd has the file's size, mode and offset;
//   - every page of the private mapping reads as before (page 1 its own);
//   - a write through fd 190 to page 2 shows in a fresh MAP_SHARED mapping
//     of the fd and in the private mapping's untouched page 2, but a write
//     to page 1 does not show in the private copy.
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kSize = 3 * kPage + 100;
constexpr int kFd = 190;
uint64_t g_seed;
char byte(size_t i) { return char(zdtm_mix(g_seed, i)); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd");
  std::string path = std::string(cwd) + "/scratch.dat";
  std::string data(kSize, 0);
  for (size_t i = 0; i < kSize; i++) data[i] = byte(i);
  int f = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0640);
  if (f < 0 || write(f, data.data(), kSize) != ssize_t(kSize)) fail("scratch.dat");
  if (dup2(f, kFd) != kFd) fail("dup2");
  close(f);
  if (fchmod(kFd, 0640) < 0) fail("fchmod");
  if (lseek(kFd, 1234, SEEK_SET) != 1234) fail("lseek");
  auto* map = static_cast<char*>(
      mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, kFd, 0));
  if (map == MAP_FAILED) fail("mmap");
  memset(map + kPage, 'P', kPage);
  if (unlink(path.c_str())) fail("unlink");

  test_ready();
  test_wait();

  struct stat fst, mst;
  if (fstat(kFd, &fst) < 0) fail("fstat fd %d", kFd);
  char range[96];
  snprintf(range, sizeof(range), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
           (unsigned long)(map + 4 * kPage));
  if (stat(range, &mst) < 0) fail("stat %s", range);
  if (fst.st_ino != mst.st_ino || fst.st_dev != mst.st_dev)
    fail("fd %d (inode %lu dev %lu) and the mapping (inode %lu dev %lu) are different files", kFd,
         (unsigned long)fst.st_ino, (unsigned long)fst.st_dev, (unsigned long)mst.st_ino,
         (unsigned long)mst.st_dev);
  if (fst.st_size != off_t(kSize)) fail("size %ld, want %zu", (long)fst.st_size, kSize);
  if ((fst.st_mode & 07777) != 0640) fail("mode %o, want 640", fst.st_mode & 07777);
  if (fst.st_nlink != 0) fail("the file has %lu names again", (unsigned long)fst.st_nlink);
  if (lseek(kFd, 0, SEEK_CUR) != 1234) fail("offset moved");
  char link[PATH_MAX] = {};
  std::string fdlink = "/proc/self/fd/" + std::to_string(kFd);
  if (readlink(fdlink.c_str(), link, sizeof(link) - 1) < 0) fail("readlink");
  if (std::string(link) != path + " (deleted)") fail("fd %d is %s, want %s (deleted)", kFd, link, path.c_str());
  if (fcntl(kFd, F_GETFL) < 0 || (fcntl(kFd, F_GETFL) & O_ACCMODE) != O_RDWR) fail("not O_RDWR");

  for (size_t i = 0; i < 4 * kPage; i++) {
    char want = (i >= kPage && i < 2 * kPage) ? 'P' : (i < kSize ? data[i] : 0);
    if (map[i] != want) fail("private mapping: byte %zu is %d, want %d", i, map[i], want);
  }
  if (pwrite(kFd, "WW", 2, 2 * kPage + 10) != 2 || pwrite(kFd, "VV", 2, kPage + 10) != 2)
    fail("pwrite fd %d", kFd);
  auto* shared =
      static_cast<char*>(mmap(nullptr, 3 * kPage, PROT_READ, MAP_SHARED, kFd, 0));
  if (shared == MAP_FAILED) fail("mmap shared");
  if (shared[2 * kPage + 10] != 'W' || shared[kPage + 10] != 'V')
    fail("a write through fd %d does not show in a new shared mapping of it", kFd);
  if (map[2 * kPage + 10] != 'W' || map[2 * kPage + 11] != 'W')
    fail("a write through fd %d does not show in the mapping's untouched page: not the same file",
         kFd);
  if (map[kPage + 10] != 'P') fail("a write through the fd shows in the task's own copy of page 1");
  pass();
}
