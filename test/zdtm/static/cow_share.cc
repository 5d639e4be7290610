// cow_share: pages shared copy-on-write between a parent and its children
// stay shared after restore (issue 14 item 7), with every process seeing
// its own contents.
//
// R maps 8 MiB of private anonymous memory (no THP), fills MiB 0-5, then
// forks C1 (which forks G) and C2. After the forks R rewrites MiB 0 and
// writes MiB 6 (never touched before: the children read zeros there), C2
// rewrites MiB 1. Before READY and after SIGTERM R reads the four
// processes' /proc/PID/pagemap: MiB 2-5 must be the same physical pages
// in all four, MiB 0 must differ between R and C1. Then every process
// checks every byte it should see.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

constexpr size_t kMiB = 1 << 20, kPage = 4096, kLen = 8 * kMiB;
uint8_t* g_mem;
uint64_t g_seed;

uint64_t word(int gen, size_t off) { return zdtm_mix(g_seed + gen, off); }
void fill(int gen, size_t from, size_t to) {
  for (size_t o = from; o < to; o += 8) *reinterpret_cast<uint64_t*>(g_mem + o) = word(gen, o);
}
// First bad offset in [from, to) for generation gen (0: zeros), or -1.
long check(int gen, size_t from, size_t to) {
  for (size_t o = from; o < to; o += 8) {
    uint64_t want = gen ? word(gen, o) : 0;
    if (*reinterpret_cast<uint64_t*>(g_mem + o) != want) return long(o);
  }
  return -1;
}

// What each process must see: {from MiB, to MiB, generation}.
struct Part {
  int from, to, gen;
};
const Part kR[] = {{0, 1, 2}, {1, 6, 1}, {6, 7, 3}, {7, 8, 0}};
const Part kC1[] = {{0, 6, 1}, {6, 8, 0}};  // G too
const Part kC2[] = {{0, 1, 1}, {1, 2, 4}, {2, 6, 1}, {6, 8, 0}};

bool check_all(const Part* parts, size_t n, const char* who) {
  for (size_t i = 0; i < n; i++) {
    long bad = check(parts[i].gen, parts[i].from * kMiB, parts[i].to * kMiB);
    if (bad >= 0) {
      test_msg("%s: byte %#lx differs (want generation %d)", who, bad, parts[i].gen);
      return false;
    }
  }
  return true;
}

// A child: ready, then wait for the word, check, exit 0 or 1.
[[noreturn]] void child_wait_check(int ready_fd, int go_fd, const Part* parts, size_t n,
                                   const char* who) {
  if (write(ready_fd, "r", 1) != 1) _exit(2);
  char c;
  while (read(go_fd, &c, 1) < 0 && errno == EINTR) {
  }
  _exit(check_all(parts, n, who) ? 0 : 1);
}

// PFN of each page of [from, to) MiB of pid's mapping; false if absent.
bool pfns(pid_t pid, int from, int to, uint64_t* out) {
  std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t n = size_t(to - from) * kMiB / kPage;
  off_t off = off_t((uintptr_t(g_mem) + size_t(from) * kMiB) / kPage * 8);
  bool ok = pread(fd, out, n * 8, off) == ssize_t(n * 8);
  close(fd);
  for (size_t i = 0; ok && i < n; i++) {
    if (!(out[i] >> 63)) return false;  // not present
    out[i] &= (1ull << 55) - 1;
  }
  return ok;
}

bool check_sharing(pid_t r, pid_t c1, pid_t g, pid_t c2) {
  static uint64_t a[kMiB / kPage * 4], b[kMiB / kPage * 4];
  bool ok = true;
  if (!pfns(r, 2, 6, a)) return test_msg("R: MiB 2-5 not all present"), false;
  for (auto [name, pid] : {std::pair<const char*, pid_t>{"C1", c1}, {"G", g}, {"C2", c2}}) {
    if (!pfns(pid, 2, 6, b)) {
      test_msg("%s: MiB 2-5 not all present", name);
      ok = false;
      continue;
    }
    size_t same = 0;
    for (size_t i = 0; i < 4 * kMiB / kPage; i++) same += a[i] == b[i];
    if (same != 4 * kMiB / kPage) {
      test_msg("%s shares %zu of the %zu pages of MiB 2-5 with R", name, same, 4 * kMiB / kPage);
      ok = false;
    }
  }
  if (!pfns(r, 0, 1, a) || !pfns(c1, 0, 1, b)) return test_msg("MiB 0 not present"), false;
  for (size_t i = 0; i < kMiB / kPage; i++)
    if (a[i] == b[i]) return test_msg("R and C1 share a page of MiB 0, which R rewrote"), false;
  return ok;
}

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

bool reap(pid_t pid, const char* name) {
  const double deadline = mono() + 30;
  int st = 0;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) break;
    if (r < 0 || mono() > deadline) {
      test_msg("%s (pid %d) did not exit", name, pid);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return false;
    }
    usleep(2000);
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    test_msg("%s ended with status %#x", name, st);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  void* m = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
  g_mem = static_cast<uint8_t*>(m);
  madvise(g_mem, kLen, MADV_NOHUGEPAGE);  // 4 KiB pages: sharing page by page
  fill(1, 0, 6 * kMiB);
  int ready[2], go[2];
  if (pipe(ready) || pipe(go)) fail("pipe: %s", strerror(errno));
  pid_t g_pid_pipe[2];
  if (pipe(g_pid_pipe)) fail("pipe");
  pid_t c1 = fork();
  if (c1 < 0) fail("fork: %s", strerror(errno));
  if (c1 == 0) {
    int g_go[2];  // G's own go pipe: R's two bytes are for C1 and C2
    if (pipe(g_go)) _exit(3);
    pid_t g = fork();
    if (g < 0) _exit(3);
    if (g == 0) child_wait_check(ready[1], g_go[0], kC1, 2, "G");
    if (write(g_pid_pipe[1], &g, sizeof(g)) != sizeof(g)) _exit(3);
    if (write(ready[1], "r", 1) != 1) _exit(2);
    char c;
    while (read(go[0], &c, 1) < 0 && errno == EINTR) {
    }
    bool ok = check_all(kC1, 2, "C1");
    if (write(g_go[1], "g", 1) != 1) ok = false;  // G's turn
    int st = 0;
    waitpid(g, &st, 0);
    _exit(ok && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
  }
  pid_t g = 0;
  if (read(g_pid_pipe[0], &g, sizeof(g)) != sizeof(g)) fail("G's pid");
  pid_t c2 = fork();
  if (c2 < 0) fail("fork: %s", strerror(errno));
  if (c2 == 0) {
    fill(4, 1 * kMiB, 2 * kMiB);
    child_wait_check(ready[1], go[0], kC2, 4, "C2");
  }
  fill(2, 0, 1 * kMiB);
  fill(3, 6 * kMiB, 7 * kMiB);
  for (int i = 0; i < 3; i++) {
    char c;
    if (read(ready[0], &c, 1) != 1) fail("children not ready");
  }
  if (!check_all(kR, 4, "R") || !check_sharing(getpid(), c1, g, c2)) fail("not as designed before the dump");
  test_msg("C1=%d G=%d C2=%d", c1, g, c2);
  test_ready();
  test_wait();

  bool ok = check_sharing(getpid(), c1, g, c2);
  ok = check_all(kR, 4, "R") && ok;
  // C1 and C2 read one byte each; C1 then passes one to G.
  if (write(go[1], "gg", 2) != 2) ok = false;
  ok = reap(c1, "C1") && ok;
  ok = reap(c2, "C2") && ok;
  if (!ok) fail("memory not shared or not as written (see above)");
  pass();
}
