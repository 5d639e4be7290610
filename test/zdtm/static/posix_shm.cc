// posix_shm: POSIX shared memory (shm_open(3): files of the /dev/shm tmpfs)
// used the way MPI libraries use it (Open MPI's vader segments, UCX's
// segments).
//
//   A  /dev/shm/zdtm-posix_shm.<h>.a: 1 MiB, only mapped MAP_SHARED (its fd
//      closed), a pattern in pages 0..15 and in the last page, a hole
//      between. After verifying, the process scribbles over all of it and
//      unlinks it, as a finishing MPI job does: a leave-running restore
//      must still find it under its name with its dumped contents, which
//      only ckpt kept.
//   B  /dev/shm/zdtm-posix_shm.<h>.b: 256 KiB, mapped MAP_SHARED, unlinked
//      at once, its fd kept at 120: after restore the fd and the mapping are
//      still one file (a write through either shows through the other),
//      unlinked, named "/dev/shm/zdtm-posix_shm.<h>.b (deleted)".
//   C  /dev/shm/zdtm-posix_shm.<h>.c: written with write(2), unlinked, not
//      mapped; fd 121 with the flags shm_open gives (O_RDWR | O_NOFOLLOW |
//      O_CLOEXEC) at an offset. (Restoring it failed with ELOOP: the
//      reopen through /proc/self/fd took O_NOFOLLOW along.)
//   D  /dev/shm/zdtm-posix_shm.<h>.d/seg: 64 KiB in a directory of its own
//      (0750), only mapped (an MPI session directory on a tmpfs); removed
//      with its directory at the end like A: a leave-running restore makes
//      both again.
// Every byte is a pattern of a per-run seed. <h> is a hash of the workdir.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kASize = 256 * kPage, kBSize = 64 * kPage, kCSize = 3 * kPage + 100;
constexpr size_t kCPos = 5000, kDSize = 16 * kPage;
constexpr int kBFd = 120, kCFd = 121;
uint64_t g_seed;

uint64_t word(char obj, size_t i) { return zdtm_mix(g_seed ^ uint64_t(obj), i); }
bool a_has_data(size_t page) { return page < 16 || page == kASize / kPage - 1; }

std::string link_of(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, size_t(n));
}

// shm_open's file, at fd number `at` (or closed when at < 0).
int open_shm(const char* name, int at) {
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0640);
  if (fd < 0) fail("shm_open %s: %s", name, strerror(errno));
  if (at < 0) return fd;
  if (dup3(fd, at, O_CLOEXEC) != at) fail("dup3 %d: %s", at, strerror(errno));
  close(fd);
  return at;
}

uint64_t* map_shared(int fd, size_t size, const char* what) {
  if (ftruncate(fd, off_t(size))) fail("ftruncate %s: %s", what, strerror(errno));
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) fail("mmap %s: %s", what, strerror(errno));
  return static_cast<uint64_t*>(p);
}

void check_vma(const void* base, const std::string& want, const char* what) {
  char line[64];
  snprintf(line, sizeof(line), "%lx-", reinterpret_cast<unsigned long>(base));
  std::string maps = zdtm_read_file("/proc/self/maps");
  size_t at = maps.find(std::string("\n") + line);
  if (maps.compare(0, strlen(line), line) == 0)
    at = 0;
  else if (at != std::string::npos)
    at++;
  if (at == std::string::npos) fail("%s: no mapping at %p", what, base);
  std::string l = maps.substr(at, maps.find('\n', at) - at);
  if (l.size() < want.size() || l.compare(l.size() - want.size(), want.size(), want) != 0 ||
      l.find(" rw-s ") == std::string::npos)
    fail("%s: maps line %s, want rw-s %s", what, l.c_str(), want.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  char cwd[4096];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd: %s", strerror(errno));
  uint64_t h = 0;
  for (const char* c = cwd; *c; c++) h = zdtm_mix(h, static_cast<unsigned char>(*c));
  char name[3][64];
  std::string path[3];
  for (int i = 0; i < 3; i++) {
    snprintf(name[i], sizeof(name[i]), "/zdtm-posix_shm.%016lx.%c", (unsigned long)h, 'a' + i);
    path[i] = std::string("/dev/shm") + name[i];
    shm_unlink(name[i]);  // a stale one of an earlier failed run
    test_cleanup_path(path[i].c_str());
  }

  // D: mapped, in a directory of its own, fd closed.
  std::string ddir = path[0].substr(0, path[0].size() - 1) + "d", dpath = ddir + "/seg";
  unlink(dpath.c_str());
  rmdir(ddir.c_str());
  test_cleanup_path(dpath.c_str());
  test_cleanup_path(ddir.c_str());
  if (mkdir(ddir.c_str(), 0750)) fail("mkdir %s: %s", ddir.c_str(), strerror(errno));
  int dfd = open(dpath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (dfd < 0) fail("open %s: %s", dpath.c_str(), strerror(errno));
  uint64_t* d = map_shared(dfd, kDSize, "D");
  close(dfd);
  for (size_t i = 0; i < kDSize / 8; i++) d[i] = word('d', i);

  // A: mapped, named, fd closed.
  int afd = open_shm(name[0], -1);
  uint64_t* a = map_shared(afd, kASize, "A");
  close(afd);
  for (size_t p = 0; p < kASize / kPage; p++)
    if (a_has_data(p))
      for (size_t w = 0; w < kPage / 8; w++) a[p * kPage / 8 + w] = word('a', p * kPage / 8 + w);

  // B: mapped, unlinked, fd kept.
  open_shm(name[1], kBFd);
  uint64_t* b = map_shared(kBFd, kBSize, "B");
  if (shm_unlink(name[1])) fail("shm_unlink B: %s", strerror(errno));
  for (size_t i = 0; i < kBSize / 8; i++) b[i] = word('b', i);

  // C: written, unlinked, fd at an offset.
  open_shm(name[2], kCFd);
  std::string c(kCSize, '\0');
  for (size_t i = 0; i < kCSize; i++) c[i] = char(word('c', i));
  if (write(kCFd, c.data(), kCSize) != ssize_t(kCSize)) fail("write C: %s", strerror(errno));
  if (shm_unlink(name[2])) fail("shm_unlink C: %s", strerror(errno));
  if (lseek(kCFd, kCPos, SEEK_SET) != off_t(kCPos)) fail("lseek C");
  int cfl = fcntl(kCFd, F_GETFL);
  if (!(cfl & O_NOFOLLOW)) fail("setup: shm_open gave no O_NOFOLLOW (flags %#o)", cfl);
  std::string blink = link_of(kBFd), clink = link_of(kCFd);

  test_ready();
  test_wait();

  // A
  check_vma(a, path[0], "A");
  struct stat st;
  if (stat(path[0].c_str(), &st) || st.st_size != off_t(kASize))
    fail("A: %s is missing or not %zu bytes", path[0].c_str(), kASize);
  for (size_t p = 0; p < kASize / kPage; p++)
    for (size_t w = 0; w < kPage / 8; w++) {
      size_t i = p * kPage / 8 + w;
      uint64_t want = a_has_data(p) ? word('a', i) : 0;
      if (a[i] != want)
        fail("A: word %zu is %#lx, want %#lx", i, (unsigned long)a[i], (unsigned long)want);
    }
  // B
  check_vma(b, path[1] + " (deleted)", "B");
  if (link_of(kBFd) != blink)
    fail("B: fd %d is %s, want %s", kBFd, link_of(kBFd).c_str(), blink.c_str());
  if (fstat(kBFd, &st) || st.st_nlink != 0 || st.st_size != off_t(kBSize))
    fail("B: fd %d: nlink %lu size %ld", kBFd, (unsigned long)st.st_nlink, (long)st.st_size);
  for (size_t i = 0; i < kBSize / 8; i++)
    if (b[i] != word('b', i)) fail("B: word %zu changed", i);
  uint64_t v = ~word('b', 7), got = 0;
  b[7] = v;
  if (pread(kBFd, &got, 8, 7 * 8) != 8 || got != v)
    fail("B: a write to the mapping is not in the fd's file");
  v = word('B', 9);
  if (pwrite(kBFd, &v, 8, 9 * 8) != 8 || b[9] != v)
    fail("B: a write to the fd is not in the mapping");
  // C
  if (link_of(kCFd) != clink)
    fail("C: fd %d is %s, want %s", kCFd, link_of(kCFd).c_str(), clink.c_str());
  // O_NOFOLLOW acted at the open only; a reopened description lacks it.
  if ((fcntl(kCFd, F_GETFL) | O_NOFOLLOW) != cfl)
    fail("C: flags %#o, want %#o", fcntl(kCFd, F_GETFL), cfl);
  if (lseek(kCFd, 0, SEEK_CUR) != off_t(kCPos)) fail("C: offset moved");
  std::string back(kCSize, '\0');
  if (pread(kCFd, &back[0], kCSize, 0) != ssize_t(kCSize) || back != c) fail("C: contents changed");

  // D
  check_vma(d, dpath, "D");
  for (size_t i = 0; i < kDSize / 8; i++)
    if (d[i] != word('d', i)) fail("D: word %zu changed", i);
  // A finishing job's cleanup: its memory scribbled over and its name gone.
  memset(d, 0x5a, kDSize);
  if (unlink(dpath.c_str()) || rmdir(ddir.c_str())) fail("remove D: %s", strerror(errno));
  memset(a, 0x5a, kASize);
  if (shm_unlink(name[0])) fail("shm_unlink A: %s", strerror(errno));
  pass();
}
