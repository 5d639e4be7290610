// file_locks: every kind of file lock, held across the dump.
//   root: flock LOCK_EX (fd 30), flock LOCK_SH on a file its child shares
//         (fd 31, inherited), POSIX write [10,29], read [100,199] and read
//         [1000,EOF) (fd 32), OFD write [50,59] and read [200,299] (fd 33),
//         flock LOCK_SH on a directory (fd 35), a POSIX read lock on a file
//         opened O_RDONLY (fd 36).
//   child: POSIX write [500,599] through the root's fd 32 (the same open
//          file, inherited: shows only in the child's fdinfo), POSIX write
//          [0,9] on child.dat through inherited fd 34 (the root has no lock
//          there), its own flock LOCK_EX on child_own.dat (fd 37).
// After restore, a checker forked then (not part of the dump) must be
// refused by every lock (flock LOCK_NB -> EWOULDBLOCK; F_GETLK / F_OFD_GETLK
// name the holder) and allowed where the locks leave room; the fdinfo of
// each fd shows its locks again; then the owners unlock and the checker
// gets every lock.
//   --mmap: the root also maps posix.dat (shared, read-write) and ro.dat
//   (private) through their own files: the restorer must not drop the
//   POSIX locks when it closes what it mapped them through.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

pid_t g_root, g_child;

void write_file(const char* path, size_t size) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, off_t(size))) fail("create %s: %s", path, strerror(errno));
  close(fd);
}

void place(int fd, int num) {
  if (fd < 0) fail("open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}

void posix_lock(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock f = {};
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = start;
  f.l_len = len;
  if (fcntl(fd, cmd, &f))
    fail("lock fd %d [%ld +%ld]: %s", fd, (long)start, (long)len, strerror(errno));
}

// What F_GETLK (or F_OFD_GETLK) says about a `type` lock on [start, start+len).
struct flock probe(int fd, int cmd, short type, off_t start, off_t len) {
  struct flock f = {};
  f.l_type = type;
  f.l_whence = SEEK_SET;
  f.l_start = start;
  f.l_len = len;
  if (fcntl(fd, cmd, &f)) fail("probe fd %d: %s", fd, strerror(errno));
  return f;
}

// In the checker: exits with a message on the first wrong answer.
#define CHECK(cond, ...)                 \
  do {                                   \
    if (!(cond)) {                       \
      test_msg("checker: " __VA_ARGS__); \
      _exit(1);                          \
    }                                    \
  } while (0)

int opn(const char* path, int flags) {
  int fd = open(path, flags | O_CLOEXEC);
  CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
  return fd;
}

void expect_flock(const char* path, int op, bool refused, int open_flags = O_RDONLY) {
  int fd = opn(path, open_flags);
  int r = flock(fd, op | LOCK_NB);
  if (refused)
    CHECK(r < 0 && errno == EWOULDBLOCK, "flock(%s, %s) %s, want EWOULDBLOCK", path,
          op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", r == 0 ? "succeeded" : strerror(errno));
  else
    CHECK(r == 0, "flock(%s, %s): %s, want success", path, op == LOCK_EX ? "LOCK_EX" : "LOCK_SH",
          strerror(errno));
  close(fd);
}

void expect_posix(const char* path, int cmd, short type, off_t start, off_t len, short want_type,
                  pid_t want_pid) {
  int fd = opn(path, O_RDWR);
  struct flock f = probe(fd, cmd, type, start, len);
  CHECK(f.l_type == want_type, "%s [%ld +%ld] %s: conflicting type %d, want %d", path, (long)start,
        (long)len, cmd == F_GETLK ? "F_GETLK" : "F_OFD_GETLK", f.l_type, want_type);
  if (want_type != F_UNLCK)
    CHECK(f.l_pid == want_pid, "%s [%ld +%ld]: holder pid %d, want %d", path, (long)start,
          (long)len, f.l_pid, want_pid);
  close(fd);
}

// Every lock held as set up.
void check_held() {
  expect_flock("flock.dat", LOCK_EX, true);
  expect_flock("flock.dat", LOCK_SH, true);
  expect_flock("flock_sh.dat", LOCK_EX, true);
  expect_flock("flock_sh.dat", LOCK_SH, false);
  expect_flock("lockdir", LOCK_EX, true, O_RDONLY | O_DIRECTORY);
  expect_flock("lockdir", LOCK_SH, false, O_RDONLY | O_DIRECTORY);
  expect_flock("child_own.dat", LOCK_SH, true);
  expect_posix("posix.dat", F_GETLK, F_RDLCK, 10, 20, F_WRLCK, g_root);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 29, 1, F_WRLCK, g_root);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 30, 70, F_UNLCK, 0);   // the gap is free
  expect_posix("posix.dat", F_GETLK, F_RDLCK, 100, 10, F_UNLCK, 0);  // read + read
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 199, 1, F_RDLCK, g_root);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 200, 300, F_UNLCK, 0);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 600, 400, F_UNLCK, 0);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 1000000, 1, F_RDLCK, g_root);  // to EOF
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 9, 1, F_UNLCK, 0);
  // posix.dat [500,599] is the child's, set through the root's open file.
  expect_posix("posix.dat", F_GETLK, F_RDLCK, 550, 1, F_WRLCK, g_child);
  expect_posix("child.dat", F_GETLK, F_RDLCK, 0, 10, F_WRLCK, g_child);
  expect_posix("child.dat", F_GETLK, F_WRLCK, 10, 10, F_UNLCK, 0);
  expect_posix("ofd.dat", F_OFD_GETLK, F_RDLCK, 50, 10, F_WRLCK, -1);
  expect_posix("ofd.dat", F_OFD_GETLK, F_WRLCK, 250, 1, F_RDLCK, -1);
  expect_posix("ofd.dat", F_OFD_GETLK, F_RDLCK, 250, 1, F_UNLCK, 0);
  expect_posix("ofd.dat", F_OFD_GETLK, F_WRLCK, 60, 140, F_UNLCK, 0);
  expect_posix("ro.dat", F_GETLK, F_WRLCK, 0, 1, F_RDLCK, g_root);
  // A process blocked by a POSIX lock sees it through F_SETLK too.
  int fd = opn("posix.dat", O_RDWR);
  struct flock f = {};
  f.l_type = F_WRLCK, f.l_whence = SEEK_SET, f.l_start = 15, f.l_len = 1;
  CHECK(fcntl(fd, F_SETLK, &f) < 0 && (errno == EAGAIN || errno == EACCES),
        "F_SETLK on a locked range of posix.dat succeeded");
  close(fd);
}

// After the owners unlocked: everything free.
void check_free() {
  expect_flock("flock.dat", LOCK_EX, false);
  expect_flock("flock_sh.dat", LOCK_EX, false);
  expect_flock("lockdir", LOCK_EX, false, O_RDONLY | O_DIRECTORY);
  expect_flock("child_own.dat", LOCK_EX, false);
  expect_posix("posix.dat", F_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0);
  expect_posix("child.dat", F_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0);
  expect_posix("ofd.dat", F_OFD_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0);
  expect_posix("ro.dat", F_GETLK, F_WRLCK, 0, 0, F_UNLCK, 0);
}

void run_checker(void (*fn)(), const char* what) {
  pid_t p = fork();
  if (p < 0) fail("fork checker: %s", strerror(errno));
  if (p == 0) {
    fn();
    _exit(0);
  }
  int st;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("checker (%s) failed", what);
}

int count_lock_lines(int fd) {
  char p[64];
  snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
  std::string s = zdtm_read_file(p);
  int n = 0;
  for (size_t i = 0; (i = s.find("lock:", i)) != std::string::npos; i++) n++;
  return n;
}

volatile sig_atomic_t g_unlock;
void on_usr1(int) { g_unlock = 1; }

[[noreturn]] void child_main() {
  posix_lock(32, F_SETLK, F_WRLCK, 500, 100);
  posix_lock(34, F_SETLK, F_WRLCK, 0, 10);
  place(open("child_own.dat", O_RDWR), 37);
  if (flock(37, LOCK_EX | LOCK_NB)) fail("child flock: %s", strerror(errno));
  // Tell the root we are set up: it waits for our lock to show.
  sigset_t none;
  sigemptyset(&none);
  while (!g_unlock) sigsuspend(&none);
  // Restored (or not): unlock on request, then exit.
  if (count_lock_lines(32) != 1 || count_lock_lines(34) != 1 || count_lock_lines(37) != 1) _exit(3);
  posix_lock(32, F_SETLK, F_UNLCK, 0, 0);
  posix_lock(34, F_SETLK, F_UNLCK, 0, 0);
  if (flock(37, LOCK_UN)) _exit(4);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_root = getpid();
  write_file("flock.dat", 100);
  write_file("flock_sh.dat", 100);
  write_file("posix.dat", 4096);
  write_file("ofd.dat", 4096);
  write_file("child.dat", 100);
  write_file("child_own.dat", 100);
  write_file("ro.dat", 100);
  mkdir("lockdir", 0755);

  place(open("flock.dat", O_RDWR), 30);
  place(open("flock_sh.dat", O_RDONLY), 31);
  place(open("posix.dat", O_RDWR), 32);
  place(open("ofd.dat", O_RDWR), 33);
  place(open("child.dat", O_RDWR), 34);
  place(open("lockdir", O_RDONLY | O_DIRECTORY), 35);
  place(open("ro.dat", O_RDONLY), 36);
  if (flock(30, LOCK_EX | LOCK_NB)) fail("flock 30: %s", strerror(errno));
  if (flock(31, LOCK_SH | LOCK_NB)) fail("flock 31: %s", strerror(errno));
  if (flock(35, LOCK_SH | LOCK_NB)) fail("flock 35: %s", strerror(errno));
  posix_lock(32, F_SETLK, F_WRLCK, 10, 20);
  posix_lock(32, F_SETLK, F_RDLCK, 100, 100);
  posix_lock(32, F_SETLK, F_RDLCK, 1000, 0);
  posix_lock(33, F_OFD_SETLK, F_WRLCK, 50, 10);
  posix_lock(33, F_OFD_SETLK, F_RDLCK, 200, 100);
  posix_lock(36, F_SETLK, F_RDLCK, 0, 0);
  char* map_rw = nullptr;
  const char* map_ro = nullptr;
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--mmap")) {
      void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 32, 0);
      void* q = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, 36, 0);
      if (p == MAP_FAILED || q == MAP_FAILED) fail("mmap: %s", strerror(errno));
      map_rw = static_cast<char*>(p);
      map_ro = static_cast<const char*>(q);
      map_rw[7] = 'x';
    }

  signal(SIGUSR1, on_usr1);
  g_child = fork();
  if (g_child < 0) fail("fork: %s", strerror(errno));
  if (g_child == 0) child_main();
  // Wait until the child's locks are in place.
  for (int i = 0; i < 5000; i++) {
    int fd = open("child_own.dat", O_RDONLY | O_CLOEXEC);
    bool held = flock(fd, LOCK_SH | LOCK_NB) < 0;
    close(fd);
    if (held) break;
    usleep(1000);
  }
  // Lock lines in our fdinfo: our own only.
  const int want_lines[][2] = {{30, 1}, {31, 1}, {32, 3}, {33, 2}, {34, 0}, {35, 1}, {36, 1}};
  for (const auto& w : want_lines)
    if (count_lock_lines(w[0]) != w[1])
      fail("before: fd %d has %d lock lines, want %d", w[0], count_lock_lines(w[0]), w[1]);
  run_checker(check_held, "before the dump");

  test_ready();
  test_wait();

  for (const auto& w : want_lines)
    if (count_lock_lines(w[0]) != w[1])
      fail("fd %d has %d lock lines, want %d", w[0], count_lock_lines(w[0]), w[1]);
  run_checker(check_held, "locks held");
  if (map_rw && (map_rw[7] != 'x' || map_ro[0] != 0)) fail("the mappings lost their contents");
  // The owners unlock; then everything is free.
  if (flock(30, LOCK_UN) || flock(31, LOCK_UN) || flock(35, LOCK_UN))
    fail("flock LOCK_UN: %s", strerror(errno));
  posix_lock(32, F_SETLK, F_UNLCK, 0, 0);
  posix_lock(33, F_OFD_SETLK, F_UNLCK, 0, 0);
  posix_lock(36, F_SETLK, F_UNLCK, 0, 0);
  kill(g_child, SIGUSR1);
  int st;
  if (waitpid(g_child, &st, 0) != g_child) fail("waitpid child: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("child: status %#x (3: its locks were not in its fdinfo)", st);
  run_checker(check_free, "after unlocking");
  pass();
}
