// ckpt-bench-victim SIZE_MIB
//
// The process that ckpt-bench checkpoints and restores. It maps SIZE_MIB of
// private anonymous memory, fills every page with non-zero pseudo-random
// data, remembers a checksum of it, writes "READY\n" on stdout and then
// sleeps in a pause() loop.
//
// On SIGTERM it recomputes the checksum and exits 0 if it matches, 1 if
// not. On a mismatch it regenerates the expected data (it is a pure function
// of a seed and the page index) and reports on stderr how many pages differ
// and what the first bad one looks like, which is what one needs to debug a
// restore.
//
// Everything the SIGTERM handler does is async-signal-safe (memory reads,
// write(2), _exit), so the verification runs in the handler itself and the
// main loop has no check-then-pause race.

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kWordsPerPage = kPage / sizeof(uint64_t);

uint64_t* g_mem = nullptr;
size_t g_pages = 0;
uint64_t g_seed = 0;
uint64_t g_checksum = 0;

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Expected value of word `w` of page `p`. The first word of every page is
// forced non-zero, so no page is ever all zeros (ckpt may skip zero pages).
inline uint64_t expected_word(size_t p, size_t w) {
  uint64_t v = splitmix64(g_seed ^ (p * kWordsPerPage + w) * 0xd6e8feb86659fd93ULL);
  if (w == 0) v |= 1;
  return v;
}

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Order-sensitive 4-lane hash over all words: detects changed, zeroed,
// swapped or shifted pages.
uint64_t checksum() {
  constexpr uint64_t k = 0x9fb21c651e98df25ULL;
  uint64_t h0 = 1, h1 = 2, h2 = 3, h3 = 4;
  const uint64_t* p = g_mem;
  const uint64_t* end = g_mem + g_pages * kWordsPerPage;
  for (; p < end; p += 4) {
    h0 = rotl(h0 ^ p[0], 29) * k;
    h1 = rotl(h1 ^ p[1], 29) * k;
    h2 = rotl(h2 ^ p[2], 29) * k;
    h3 = rotl(h3 ^ p[3], 29) * k;
  }
  return splitmix64(h0 ^ rotl(h1, 16) ^ rotl(h2, 32) ^ rotl(h3, 48) ^ g_pages);
}

// ---- async-signal-safe output -------------------------------------------

void put(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t r = write(STDERR_FILENO, s, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    s += r;
    n -= static_cast<size_t>(r);
  }
}

void put_u(uint64_t v, int base = 10) {
  char buf[24];
  char* e = buf + sizeof(buf) - 1;
  *e = 0;
  char* s = e;
  do {
    *--s = "0123456789abcdef"[v % static_cast<unsigned>(base)];
    v /= static_cast<unsigned>(base);
  } while (v != 0);
  if (base == 16) put("0x");
  put(s);
}

void report_mismatch(uint64_t got) {
  put("ckpt-bench-victim: memory checksum mismatch (expected ");
  put_u(g_checksum, 16);
  put(", got ");
  put_u(got, 16);
  put(")\n");
  size_t bad = 0, zero = 0, first = SIZE_MAX;
  for (size_t p = 0; p < g_pages; p++) {
    const uint64_t* page = g_mem + p * kWordsPerPage;
    bool is_bad = false, is_zero = true;
    for (size_t w = 0; w < kWordsPerPage; w++) {
      if (page[w] != expected_word(p, w)) is_bad = true;
      if (page[w] != 0) is_zero = false;
    }
    if (is_bad) {
      bad++;
      if (is_zero) zero++;
      if (first == SIZE_MAX) first = p;
    }
  }
  put("ckpt-bench-victim: ");
  put_u(bad);
  put(" of ");
  put_u(g_pages);
  put(" pages differ (");
  put_u(zero);
  put(" of them all-zero)");
  if (first != SIZE_MAX) {
    put("; first bad page at ");
    put_u(reinterpret_cast<uintptr_t>(g_mem + first * kWordsPerPage), 16);
    put(" (page ");
    put_u(first);
    put(")");
  }
  put("\n");
}

void on_sigterm(int) {
  uint64_t got = checksum();
  if (got == g_checksum) _exit(0);
  report_mismatch(got);
  _exit(1);
}

[[noreturn]] void die(const char* what) {
  put("ckpt-bench-victim: ");
  put(what);
  put(": ");
  put(strerror(errno));
  put("\n");
  _exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    put("usage: ckpt-bench-victim SIZE_MIB\n");
    return 2;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long mib = strtoull(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != 0 || mib == 0 || mib > (1ULL << 22)) {
    put("ckpt-bench-victim: SIZE_MIB must be an integer in [1, 4194304]\n");
    return 2;
  }
  g_pages = static_cast<size_t>(mib) * (1 << 20) / kPage;

  void* m = mmap(nullptr, g_pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die("mmap");
  g_mem = static_cast<uint64_t*>(m);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g_seed = splitmix64(static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(getpid()) << 32));

  for (size_t p = 0; p < g_pages; p++) {
    uint64_t* page = g_mem + p * kWordsPerPage;
    for (size_t w = 0; w < kWordsPerPage; w++) page[w] = expected_word(p, w);
  }
  g_checksum = checksum();

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr) != 0) die("sigaction");

  static const char kReady[] = "READY\n";
  if (write(STDOUT_FILENO, kReady, sizeof(kReady) - 1) != static_cast<ssize_t>(sizeof(kReady) - 1)) die("write READY");

  for (;;) pause();
}
