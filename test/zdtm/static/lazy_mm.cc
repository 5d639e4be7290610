// lazy_mm: private anonymous memory that a lazy restore (zdtm-run --lazy)
// leaves to `ckpt lazy-pages`, used in the ways that make the daemon work:
//   lazy_mm --op OP [--mb N]   (N MiB region, every word a pattern)
// The process notices it was restored (its start time in /proc/self/stat
// changes) and does OP at once, while most of its memory is still owed:
//   touch1pct  reads 1% of the pages (every 100th); at SIGTERM every byte
//   fork       a child checks the whole region (its mm is owed what the
//              parent was) and scribbles on its copy; the parent's is intact
//   threads    4 threads (made before the dump) check and rewrite a quarter
//              each at the same time
//   mremap     moves the upper half elsewhere: the moved pages arrive there
//   munmap     unmaps the 2nd quarter and maps fresh memory there: zeros
//   dontneed   MADV_DONTNEED on the 3rd quarter: zeros, not the old data
//   sigbus     (zdtm-run --lazy kill) touches its stack, prints TOUCHED and
//              waits; the daemon is killed; at SIGTERM every page must be
//              right or raise SIGBUS (never zeros), and some must raise it
// Then, at SIGTERM, every byte of the region is checked against what OP
// left. Without ckpt (plain mode) OP runs at SIGTERM.
#include <pthread.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
uint64_t g_seed;
size_t g_size;
char* g_mem;
std::string g_op = "touch1pct";

uint64_t word(size_t page, size_t i, uint64_t gen = 0) {
  return zdtm_mix(g_seed + gen, page) ^ (i << 48) ^ 1;
}

void fill(char* base, size_t first, size_t last, uint64_t gen) {
  for (size_t p = first; p < last; p++) {
    auto* w = reinterpret_cast<uint64_t*>(base + (p - first) * kPage);
    for (size_t i = 0; i < kPage / 8; i++) w[i] = word(p, i, gen);
  }
}

// Pages [first, last) of the pattern `gen` at base (page `first` at base).
void check(const char* what, const char* base, size_t first, size_t last, uint64_t gen,
           bool zero = false) {
  for (size_t p = first; p < last; p++) {
    auto* w = reinterpret_cast<const uint64_t*>(base + (p - first) * kPage);
    for (size_t i = 0; i < kPage / 8; i++) {
      uint64_t want = zero ? 0 : word(p, i, gen);
      if (w[i] != want)
        fail("%s: page %zu word %zu: got %#lx want %#lx", what, p, i, (unsigned long)w[i],
             (unsigned long)want);
    }
  }
}

unsigned long long start_time() {
  std::string s = zdtm_read_file("/proc/self/stat");
  size_t at = s.rfind(')');
  int field = 2;
  for (size_t i = at + 1; i < s.size(); i++)
    if (s[i] == ' ' && ++field == 22) return strtoull(s.c_str() + i + 1, nullptr, 10);
  fail("no start time in /proc/self/stat");
}

// threads: each waits for go, then checks and rewrites its quarter.
std::atomic<int> g_go{0}, g_done{0};
void* quarter(void* arg) {
  size_t q = size_t(uintptr_t(arg)), n = g_size / kPage / 4;
  while (!g_go.load()) usleep(200);
  check("thread", g_mem + q * n * kPage, q * n, (q + 1) * n, 0);
  fill(g_mem + q * n * kPage, q * n, (q + 1) * n, 1);
  g_done++;
  return nullptr;
}

// The restorer hands its userfaultfd to the daemon and closes it: none
// may be left in the fd table.
void check_no_uffd() {
  for (int fd = 0; fd < 1024; fd++) {
    char link[64], target[256];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = 0;
    if (strstr(target, "userfaultfd")) fail("fd %d is a userfaultfd (%s)", fd, target);
  }
}

sigjmp_buf g_jump;
void on_sigbus(int) { siglongjmp(g_jump, 1); }

char* g_moved;  // mremap: where the upper half went

// What OP does right after the restore.
void do_op() {
  size_t pages = g_size / kPage, q = pages / 4;
  if (g_op == "touch1pct") {
    for (size_t p = 0; p < pages; p += 100) check("1%", g_mem + p * kPage, p, p + 1, 0);
  } else if (g_op == "fork") {
    pid_t c = fork();
    if (c < 0) fail("fork: %s", strerror(errno));
    if (c == 0) {
      check("child", g_mem, 0, pages, 0);
      fill(g_mem, 0, q, 7);  // its own copy only
      check("child after writing", g_mem, 0, q, 7);
      _exit(0);
    }
    int st = 0;
    pid_t r;
    while ((r = waitpid(c, &st, 0)) < 0 && errno == EINTR) {
    }
    if (r != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("the forked child failed (status %#x)", st);
  } else if (g_op == "threads") {
    g_go = 1;
    while (g_done.load() < 4) usleep(200);
  } else if (g_op == "mremap") {
    size_t half = g_size / 2;
    // A hole for the upper half, away from the region.
    void* hole = mmap(nullptr, half, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hole == MAP_FAILED) fail("mmap hole: %s", strerror(errno));
    void* r = mremap(g_mem + half, half, half, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
    if (r != hole) fail("mremap: %s", strerror(errno));
    g_moved = static_cast<char*>(r);
    check("moved half", g_moved, pages / 2, pages, 0);
  } else if (g_op == "munmap") {
    if (munmap(g_mem + q * kPage, q * kPage) < 0) fail("munmap: %s", strerror(errno));
    if (mmap(g_mem + q * kPage, q * kPage, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
      fail("mmap again: %s", strerror(errno));
    check("mapped again", g_mem + q * kPage, q, 2 * q, 0, true);
  } else if (g_op == "dontneed") {
    if (madvise(g_mem + 2 * q * kPage, q * kPage, MADV_DONTNEED) < 0)
      fail("madvise: %s", strerror(errno));
    check("after MADV_DONTNEED", g_mem + 2 * q * kPage, 2 * q, 3 * q, 0, true);
  } else if (g_op == "sigbus") {
    volatile char stack[256 * 1024];
    memset(const_cast<char*>(stack), 1, sizeof(stack));  // the stack is in before the daemon dies
    test_msg("TOUCHED");
  }
}

void verify_all() {
  size_t pages = g_size / kPage, q = pages / 4;
  if (g_op == "threads") {
    check("after the threads", g_mem, 0, pages, 1);
  } else if (g_op == "mremap") {
    check("lower half", g_mem, 0, pages / 2, 0);
    check("moved half", g_moved, pages / 2, pages, 0);
  } else if (g_op == "munmap") {
    check("1st quarter", g_mem, 0, q, 0);
    check("mapped again", g_mem + q * kPage, q, 2 * q, 0, true);
    check("the rest", g_mem + 2 * q * kPage, 2 * q, pages, 0);
  } else if (g_op == "dontneed") {
    check("before", g_mem, 0, 2 * q, 0);
    check("after MADV_DONTNEED", g_mem + 2 * q * kPage, 2 * q, 3 * q, 0, true);
    check("the rest", g_mem + 3 * q * kPage, 3 * q, pages, 0);
  } else {
    check("all", g_mem, 0, pages, 0);
  }
}

// sigbus: every page right or SIGBUS, some SIGBUS.
void verify_sigbus() {
  constexpr size_t kAltStack = 64 * 1024;
  stack_t ss = {};
  // The handler runs on a fresh mapping: nothing of it is owed.
  ss.ss_sp = mmap(nullptr, kAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ss.ss_size = kAltStack;
  if (ss.ss_sp == MAP_FAILED || sigaltstack(&ss, nullptr) < 0) fail("sigaltstack");
  struct sigaction sa = {};
  sa.sa_handler = on_sigbus;
  sa.sa_flags = SA_ONSTACK | SA_NODEFER;
  sigaction(SIGBUS, &sa, nullptr);
  size_t pages = g_size / kPage;
  // Globals: they keep their values across the siglongjmp.
  static size_t ok, bus, p;
  for (p = 0; p < pages; p++) {
    if (sigsetjmp(g_jump, 1)) {
      bus++;
      continue;
    }
    const uint64_t* w = reinterpret_cast<const uint64_t*>(g_mem + p * kPage);
    for (size_t i = 0; i < kPage / 8; i++)
      if (w[i] != word(p, i))
        fail("page %zu word %zu: got %#lx want %#lx (not SIGBUS)", p, i, (unsigned long)w[i],
             (unsigned long)word(p, i));
    ok++;
  }
  test_msg("%zu pages right, %zu raised SIGBUS", ok, bus);
  if (bus == 0) fail("no page raised SIGBUS: the daemon had filled everything before it died");
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  size_t mb = 256;
  for (int i = 1; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--op"))
      g_op = argv[++i];
    else if (!strcmp(argv[i], "--mb"))
      mb = size_t(atol(argv[++i]));
  }
  g_seed = zdtm_seed();
  g_size = mb << 20;
  g_mem = static_cast<char*>(
      mmap(nullptr, g_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g_mem == MAP_FAILED) fail("mmap %zu MiB: %s", mb, strerror(errno));
  fill(g_mem, 0, g_size / kPage, 0);
  pthread_t th[4];
  if (g_op == "threads")
    for (size_t q = 0; q < 4; q++)
      if (pthread_create(&th[q], nullptr, quarter, reinterpret_cast<void*>(q)) != 0)
        fail("pthread_create");
  unsigned long long born = start_time();
  test_ready();
  // Poll for the restore (a new process: a new start time), bounded by SIGTERM.
  while (!test_stopped() && start_time() == born) usleep(1000);
  check_no_uffd();
  do_op();
  if (!test_stopped()) test_wait();
  if (g_op == "threads")
    for (auto& t : th) pthread_join(t, nullptr);
  if (g_op == "sigbus") {
    verify_sigbus();
  } else {
    verify_all();
  }
  pass();
}
