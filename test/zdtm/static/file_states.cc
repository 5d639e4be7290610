// file_states: regular-file open states beyond path + offset.
//   fd 40: O_RDWR | O_DIRECT at an aligned offset (skipped with INFO if the
//          filesystem refuses O_DIRECT)
//   fd 41: O_PATH of a regular file         fd 42: O_PATH | O_NOFOLLOW of a symlink
//   fd 43: O_PATH of a directory            fd 44: O_PATH of a FIFO
//   fd 45: data.dat, O_RDONLY, offset 1000
//   fd 46: open("/proc/self/fd/45", O_RDWR): a second open file of data.dat
//          with its own offset 3000
//   fd 47: open("/proc/self/fd/41", O_RDONLY): the usual O_PATH-then-reopen
//          idiom, offset 17
//   fd 48: O_RDONLY | O_NOATIME | O_NONBLOCK of data.dat
// Verifies F_GETFL, the path and inode behind each fd, offsets, that O_PATH
// fds still work as O_PATH (fstat, openat, readlinkat; read fails EBADF)
// and that O_DIRECT I/O still works.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kAlign = 4096;
uint64_t g_seed;
bool g_direct;

char byte(size_t i) { return static_cast<char>(zdtm_mix(g_seed, i)); }

std::string link_of(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? std::string("?") : std::string(buf, size_t(n));
}

void place(int fd, int num, const char* what) {
  if (fd < 0) fail("open %s: %s", what, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}

struct Rec {
  int fd;
  int getfl;
  std::string link;
  struct stat st;
  off_t pos;
};
Rec g_recs[16];
int g_nrecs;

void record(int fd) {
  Rec& r = g_recs[g_nrecs++];
  r.fd = fd;
  r.getfl = fcntl(fd, F_GETFL);
  r.link = link_of(fd);
  if (fstat(fd, &r.st)) fail("fstat %d: %s", fd, strerror(errno));
  r.pos = lseek(fd, 0, SEEK_CUR);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string data(64 * 1024, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = byte(i);
  {
    int fd = open("data.dat", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data.data(), data.size()) != ssize_t(data.size())) fail("data.dat");
    close(fd);
  }
  if (symlink("data.dat", "link") && errno != EEXIST) fail("symlink: %s", strerror(errno));
  mkdir("dir", 0755);
  {
    int fd = open("dir/inner", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    close(fd);
  }
  if (mkfifo("fifo", 0644) && errno != EEXIST) fail("mkfifo: %s", strerror(errno));

  int d = open("data.dat", O_RDWR | O_DIRECT);
  g_direct = d >= 0;
  if (g_direct) {
    place(d, 40, "data.dat O_DIRECT");
    if (lseek(40, 2 * kAlign, SEEK_SET) != off_t(2 * kAlign)) fail("lseek 40");
  } else {
    test_msg("O_DIRECT not supported here (%s): fd 40 not tested", strerror(errno));
  }
  place(open("data.dat", O_PATH), 41, "data.dat O_PATH");
  place(open("link", O_PATH | O_NOFOLLOW), 42, "link O_PATH|O_NOFOLLOW");
  place(open("dir", O_PATH | O_DIRECTORY), 43, "dir O_PATH");
  place(open("fifo", O_PATH), 44, "fifo O_PATH");
  place(open("data.dat", O_RDONLY), 45, "data.dat");
  lseek(45, 1000, SEEK_SET);
  place(open("/proc/self/fd/45", O_RDWR), 46, "/proc/self/fd/45");
  lseek(46, 3000, SEEK_SET);
  place(open("/proc/self/fd/41", O_RDONLY), 47, "/proc/self/fd/41");
  lseek(47, 17, SEEK_SET);
  place(open("data.dat", O_RDONLY | O_NOATIME | O_NONBLOCK), 48, "data.dat O_NOATIME");
  for (int fd = 40; fd <= 48; fd++)
    if (fd != 40 || g_direct) record(fd);
  if (g_recs[g_nrecs - 1].getfl & O_PATH) fail("fd 48 is O_PATH?");

  test_ready();
  test_wait();

  for (int i = 0; i < g_nrecs; i++) {
    const Rec& r = g_recs[i];
    int fl = fcntl(r.fd, F_GETFL);
    if (fl != r.getfl) fail("fd %d: F_GETFL %#o, want %#o", r.fd, fl, r.getfl);
    if (link_of(r.fd) != r.link)
      fail("fd %d: path %s, want %s", r.fd, link_of(r.fd).c_str(), r.link.c_str());
    struct stat st;
    if (fstat(r.fd, &st)) fail("fstat %d: %s", r.fd, strerror(errno));
    if (st.st_ino != r.st.st_ino || st.st_dev != r.st.st_dev || st.st_mode != r.st.st_mode)
      fail("fd %d: inode %lu mode %o, want %lu mode %o", r.fd, st.st_ino, st.st_mode, r.st.st_ino,
           r.st.st_mode);
    if (!(fl & O_PATH) && lseek(r.fd, 0, SEEK_CUR) != r.pos)
      fail("fd %d: offset %ld, want %ld", r.fd, (long)lseek(r.fd, 0, SEEK_CUR), (long)r.pos);
  }
  char buf[64];
  // O_PATH fds: no I/O, but usable as paths.
  for (int fd = 41; fd <= 44; fd++) {
    if (!(fcntl(fd, F_GETFL) & O_PATH)) fail("fd %d lost O_PATH", fd);
    if (read(fd, buf, 1) != -1 || errno != EBADF) fail("fd %d (O_PATH) can be read", fd);
  }
  struct stat st;
  if (fstatat(42, "", &st, AT_EMPTY_PATH) || !S_ISLNK(st.st_mode))
    fail("fd 42 is not the symlink itself");
  ssize_t n = readlinkat(42, "", buf, sizeof(buf));
  if (n != 8 || memcmp(buf, "data.dat", 8) != 0) fail("readlinkat(fd 42) does not give data.dat");
  int in = openat(43, "inner", O_RDONLY | O_CLOEXEC);
  if (in < 0) fail("openat(fd 43, inner): %s", strerror(errno));
  close(in);
  if (fstat(44, &st) || !S_ISFIFO(st.st_mode)) fail("fd 44 is not the FIFO");
  // Reopening an O_PATH fd through /proc still works.
  int again = open("/proc/self/fd/41", O_RDONLY | O_CLOEXEC);
  if (again < 0 || read(again, buf, 10) != 10 || memcmp(buf, data.data(), 10) != 0)
    fail("reopen of fd 41 through /proc/self/fd");
  close(again);
  // Independent offsets of the /proc/self/fd reopen.
  if (read(45, buf, 10) != 10 || memcmp(buf, data.data() + 1000, 10) != 0) fail("fd 45 read");
  if (read(46, buf, 10) != 10 || memcmp(buf, data.data() + 3000, 10) != 0) fail("fd 46 read");
  if (lseek(45, 0, SEEK_CUR) != 1010 || lseek(46, 0, SEEK_CUR) != 3010)
    fail("fds 45 and 46 share an offset");
  if (write(46, buf, 0) != 0) fail("fd 46 not writable");
  if (read(47, buf, 10) != 10 || memcmp(buf, data.data() + 17, 10) != 0) fail("fd 47 read");
  if (read(48, buf, 10) != 10 || memcmp(buf, data.data(), 10) != 0) fail("fd 48 read");
  // O_DIRECT: aligned I/O at the offset.
  if (g_direct) {
    void* p = nullptr;
    if (posix_memalign(&p, kAlign, kAlign)) fail("posix_memalign");
    if (read(40, p, kAlign) != ssize_t(kAlign)) fail("O_DIRECT read: %s", strerror(errno));
    if (memcmp(p, data.data() + 2 * kAlign, kAlign) != 0) fail("O_DIRECT read wrong data");
    if (pwrite(40, p, kAlign, 2 * kAlign) != ssize_t(kAlign))
      fail("O_DIRECT write: %s", strerror(errno));
    free(p);
  }
  pass();
}
