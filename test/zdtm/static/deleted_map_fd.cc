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
// With --child the root only holds fd 190 (it never maps the file); its
// child C maps it MAP_PRIVATE (page 1 its own) and closes its copy of the
// fd. After restore C reports the inode and device of its mapping and the
// bytes it reads; they must be fd 190's file and see the root's writes.
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

struct Report {
  dev_t dev;
  ino_t ino;
  char page0, page1, page2;  // byte 10 of each page of C's mapping
};

// C: maps fd kFd private, writes its page 1, closes the fd; on each byte
// from `ask` reports its mapping to `ans`; exits on EOF.
[[noreturn]] void child(int ask, int ans) {
  auto* map =
      static_cast<char*>(mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, kFd, 0));
  if (map == MAP_FAILED) _exit(2);
  memset(map + kPage, 'C', kPage);
  close(kFd);
  char range[96];
  snprintf(range, sizeof(range), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
           (unsigned long)(map + 3 * kPage));
  char c;
  while (read(ask, &c, 1) == 1) {
    struct stat st;
    Report r = {};
    if (stat(range, &st) == 0) r.dev = st.st_dev, r.ino = st.st_ino;
    r.page0 = map[10], r.page1 = map[kPage + 10], r.page2 = map[2 * kPage + 10];
    if (write(ans, &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(3);
  }
  _exit(0);
}

Report ask_child(int ask, int ans) {
  Report r;
  if (write(ask, "?", 1) != 1 || read(ans, &r, sizeof(r)) != ssize_t(sizeof(r)))
    fail("the child does not answer");
  return r;
}

// --child: see the top.
[[noreturn]] void other_task(const std::string& path, const std::string& data) {
  int a[2], b[2];
  if (pipe(a) || pipe(b)) fail("pipe");
  pid_t c = fork();
  if (c < 0) fail("fork");
  if (c == 0) {
    close(a[1]);
    close(b[0]);
    child(a[0], b[1]);
  }
  close(a[0]);
  close(b[1]);
  Report r = ask_child(a[1], b[0]);
  if (r.page1 != 'C' || r.page0 != data[10]) fail("the child's mapping before the dump");
  if (unlink(path.c_str())) fail("unlink");

  test_ready();
  test_wait();

  struct stat fst;
  if (fstat(kFd, &fst) < 0) fail("fstat fd %d", kFd);
  r = ask_child(a[1], b[0]);
  if (r.dev != fst.st_dev || r.ino != fst.st_ino)
    fail(
        "fd %d (inode %lu dev %lu) and the child's mapping (inode %lu dev %lu) are different "
        "files",
        kFd, (unsigned long)fst.st_ino, (unsigned long)fst.st_dev, (unsigned long)r.ino,
        (unsigned long)r.dev);
  if (r.page0 != data[10] || r.page1 != 'C' || r.page2 != data[2 * kPage + 10])
    fail("the child's mapping reads differently after restore");
  if (pwrite(kFd, "WW", 2, 2 * kPage + 10) != 2 || pwrite(kFd, "VV", 2, kPage + 10) != 2)
    fail("pwrite fd %d", kFd);
  r = ask_child(a[1], b[0]);
  if (r.page2 != 'W') fail("a write through fd %d does not show in the child's mapping", kFd);
  if (r.page1 != 'C') fail("a write through fd %d shows in the child's own copy of page 1", kFd);
  close(a[1]);
  int st = 0;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the child ended with status %#x", st);
  pass();
}
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
  if (argc > 1 && strcmp(argv[1], "--child") == 0) other_task(path, data);
  auto* map =
      static_cast<char*>(mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, kFd, 0));
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
  if (std::string(link) != path + " (deleted)")
    fail("fd %d is %s, want %s (deleted)", kFd, link, path.c_str());
  if (fcntl(kFd, F_GETFL) < 0 || (fcntl(kFd, F_GETFL) & O_ACCMODE) != O_RDWR) fail("not O_RDWR");

  for (size_t i = 0; i < 4 * kPage; i++) {
    char want = (i >= kPage && i < 2 * kPage) ? 'P' : (i < kSize ? data[i] : 0);
    if (map[i] != want) fail("private mapping: byte %zu is %d, want %d", i, map[i], want);
  }
  if (pwrite(kFd, "WW", 2, 2 * kPage + 10) != 2 || pwrite(kFd, "VV", 2, kPage + 10) != 2)
    fail("pwrite fd %d", kFd);
  auto* shared = static_cast<char*>(mmap(nullptr, 3 * kPage, PROT_READ, MAP_SHARED, kFd, 0));
  if (shared == MAP_FAILED) fail("mmap shared");
  if (shared[2 * kPage + 10] != 'W' || shared[kPage + 10] != 'V')
    fail("a write through fd %d does not show in a new shared mapping of it", kFd);
  if (map[2 * kPage + 10] != 'W' || map[2 * kPage + 11] != 'W')
    fail("a write through fd %d does not show in the mapping's untouched page: not the same file",
         kFd);
  if (map[kPage + 10] != 'P') fail("a write through the fd shows in the task's own copy of page 1");
  pass();
}
