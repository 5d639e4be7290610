// file_offsets: regular files open O_RDONLY, O_WRONLY|O_APPEND, O_RDWR (two
// separate open file descriptions of one file), O_WRONLY past EOF, a dup
// sharing an offset, a directory fd, /dev/null, /dev/zero, /dev/urandom;
// FD_CLOEXEC on some; chosen fd numbers. Verifies the fd table is the same
// set of numbers, and per fd: path, inode, offset, F_GETFL, F_GETFD; then
// that reads and writes still behave (append, shared offset, ...).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kRoSize = 65536;
uint64_t g_seed;

char ro_byte(size_t off) { return static_cast<char>(zdtm_mix(g_seed, off)); }

struct Fd {
  int num;
  const char* path;
  int flags;     // open flags
  off_t offset;  // lseek before READY
  bool cloexec;
  // Recorded before READY:
  std::string link;
  struct stat st;
  int getfl;
};

Fd g_fds[] = {
    {40, "ro.dat", O_RDONLY, 12345, false},
    {200, nullptr, 0, 0, true},  // dup of 40: same description, own FD_CLOEXEC
    {41, "append.dat", O_WRONLY | O_APPEND, 100, true},
    {42, "rw.dat", O_RDWR, 777, false},
    {43, "rw.dat", O_RDWR, 3000, true},
    {48, "wo.dat", O_WRONLY, 10000, false},  // past EOF
    {44, "subdir", O_RDONLY | O_DIRECTORY, 0, false},
    {45, "/dev/null", O_RDWR, 0, false},
    {46, "/dev/zero", O_RDONLY, 0, false},
    {47, "/dev/urandom", O_RDONLY | O_NONBLOCK, 0, true},
};

std::set<int> fd_numbers() {
  std::set<int> out;
  DIR* d = opendir("/proc/self/fd");
  if (!d) fail("opendir /proc/self/fd: %s", strerror(errno));
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.insert(atoi(e->d_name));
  out.erase(dirfd(d));
  closedir(d);
  return out;
}

std::string fd_link(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? std::string("?") : std::string(buf, n);
}

void write_file(const char* path, const std::string& s) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size()))
    fail("write %s", path);
  close(fd);
}

off_t cur(int fd) { return lseek(fd, 0, SEEK_CUR); }
off_t fsize(int fd) {
  struct stat st;
  return fstat(fd, &st) ? -1 : st.st_size;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string ro(kRoSize, '\0');
  for (size_t i = 0; i < kRoSize; i++) ro[i] = ro_byte(i);
  write_file("ro.dat", ro);
  write_file("append.dat", std::string(1000, 'a'));
  std::string rw(8192, '\0');
  for (size_t i = 0; i < rw.size(); i++) rw[i] = static_cast<char>('A' + i % 26);
  write_file("rw.dat", rw);
  write_file("wo.dat", std::string(100, 'w'));
  mkdir("subdir", 0755);
  write_file("subdir/inner.txt", "inner\n");

  for (Fd& f : g_fds) {
    int fd = f.path ? open(f.path, f.flags) : dup(40);
    if (fd < 0) fail("open %s: %s", f.path ? f.path : "dup", strerror(errno));
    if (dup2(fd, f.num) != f.num) fail("dup2 %d: %s", f.num, strerror(errno));
    close(fd);
    if (f.path && lseek(f.num, f.offset, SEEK_SET) != f.offset)
      fail("lseek fd %d: %s", f.num, strerror(errno));
    if (f.cloexec) fcntl(f.num, F_SETFD, FD_CLOEXEC);
  }
  for (Fd& f : g_fds) {
    if (!f.path) f.offset = g_fds[0].offset;
    f.link = fd_link(f.num);
    fstat(f.num, &f.st);
    f.getfl = fcntl(f.num, F_GETFL);
  }
  const std::set<int> fds_before = fd_numbers();

  test_ready();
  test_wait();

  const std::set<int> fds_after = fd_numbers();
  for (int n : fds_after)
    if (!fds_before.count(n)) fail("fd %d (%s) appeared", n, fd_link(n).c_str());
  for (int n : fds_before)
    if (!fds_after.count(n)) fail("fd %d is gone", n);

  for (const Fd& f : g_fds) {
    struct stat st;
    if (fstat(f.num, &st)) fail("fstat fd %d: %s", f.num, strerror(errno));
    if (st.st_ino != f.st.st_ino || st.st_dev != f.st.st_dev || st.st_mode != f.st.st_mode)
      fail("fd %d: now inode %lu mode %o, want %lu mode %o", f.num, st.st_ino, st.st_mode,
           f.st.st_ino, f.st.st_mode);
    if (fd_link(f.num) != f.link)
      fail("fd %d: path %s, want %s", f.num, fd_link(f.num).c_str(), f.link.c_str());
    if (cur(f.num) != f.offset)
      fail("fd %d (%s): offset %ld, want %ld", f.num, f.link.c_str(), (long)cur(f.num),
           (long)f.offset);
    int fl = fcntl(f.num, F_GETFL);
    int want_fl = f.path ? f.flags : g_fds[0].flags;
    if ((fl & O_ACCMODE) != (want_fl & O_ACCMODE))
      fail("fd %d: access mode %d, want %d", f.num, fl & O_ACCMODE, want_fl & O_ACCMODE);
    if ((fl & O_APPEND) != (want_fl & O_APPEND))
      fail("fd %d: O_APPEND %s", f.num, fl & O_APPEND ? "set" : "lost");
    if (fl != f.getfl) fail("fd %d: F_GETFL %#o, want %#o", f.num, fl, f.getfl);
    int fdfl = fcntl(f.num, F_GETFD);
    if (fdfl != (f.cloexec ? FD_CLOEXEC : 0))
      fail("fd %d: F_GETFD %d, want %d", f.num, fdfl, f.cloexec ? FD_CLOEXEC : 0);
  }

  // ro.dat: reads continue at the offset; fd 200 shares the offset.
  char buf[256];
  if (read(40, buf, 100) != 100 || memcmp(buf, ro.data() + 12345, 100) != 0)
    fail("fd 40: read at offset returned wrong data");
  if (cur(200) != 12445)
    fail("fd 200 no longer shares fd 40's offset (%ld, want 12445)", (long)cur(200));
  if (read(200, buf, 10) != 10 || memcmp(buf, ro.data() + 12445, 10) != 0 || cur(40) != 12455)
    fail("fd 200: read did not continue at the shared offset");
  if (write(40, "x", 1) != -1 || errno != EBADF) fail("fd 40 (O_RDONLY) accepted a write");
  // append.dat: writes go to the end whatever the offset.
  if (write(41, "XYZ", 3) != 3) fail("fd 41 write: %s", strerror(errno));
  if (fsize(41) != 1003 || cur(41) != 1003)
    fail("fd 41: O_APPEND write gave size %ld offset %ld", (long)fsize(41), (long)cur(41));
  // rw.dat: two descriptions with independent offsets.
  if (read(42, buf, 10) != 10 || memcmp(buf, rw.data() + 777, 10) != 0)
    fail("fd 42: read wrong data");
  if (write(42, "0123", 4) != 4 || pread(43, buf, 4, 787) != 4 || memcmp(buf, "0123", 4) != 0)
    fail("fd 42 write not visible through fd 43");
  if (cur(43) != 3000) fail("fd 43 offset moved with fd 42's (%ld)", (long)cur(43));
  // wo.dat: a write past EOF extends the file.
  if (write(48, "hello", 5) != 5 || fsize(48) != 10005)
    fail("fd 48: write past EOF gave size %ld", (long)fsize(48));
  // Directory fd: still the directory, usable for openat.
  int in = openat(44, "inner.txt", O_RDONLY | O_CLOEXEC);
  if (in < 0 || read(in, buf, 6) != 6 || memcmp(buf, "inner\n", 6) != 0)
    fail("openat(fd 44, inner.txt) failed");
  close(in);
  // Devices.
  if (write(45, buf, 10) != 10 || read(45, buf, 10) != 0) fail("fd 45 is not /dev/null-like");
  memset(buf, 1, 64);
  if (read(46, buf, 64) != 64) fail("fd 46 /dev/zero read: %s", strerror(errno));
  for (int i = 0; i < 64; i++)
    if (buf[i]) fail("fd 46 /dev/zero returned a non-zero byte");
  memset(buf, 0, 64);
  if (read(47, buf, 64) != 64) fail("fd 47 /dev/urandom read: %s", strerror(errno));
  int nonzero = 0;
  for (int i = 0; i < 64; i++) nonzero += buf[i] != 0;
  if (nonzero < 32) fail("fd 47 /dev/urandom returned mostly zeros");
  // Files not modified except by the writes above.
  std::string ro_now = zdtm_read_file("ro.dat");
  if (ro_now != ro) fail("ro.dat changed");
  // Undo the writes: in leave-running mode this process verifies first and
  // the restored copy verifies the files again, as they were at the dump.
  if (ftruncate(41, 1000) != 0 || ftruncate(48, 100) != 0 ||
      pwrite(42, rw.data() + 787, 4, 787) != 4)
    fail("undoing the test writes: %s", strerror(errno));
  pass();
}
