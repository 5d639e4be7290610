// ckpt-bench-victim precopy SIZE_MIB RATE_MIB_S
//
// Maps SIZE_MIB of private anonymous memory and fills every page; then, on
// one thread, rewrites RATE_MIB_S MiB per second of pages picked at random
// (every 10 ms a batch, paced by absolute deadlines, so a freeze does not
// make it catch up in a burst). Page p at version v holds a pure function
// of (p, v, seed); a table holds each page's version and is updated right
// after the page, on the same thread. After "READY" on stdout it writes
// until SIGTERM, whose handler only sets a flag; the loop then stops
// between two pages and checks every page against its version: 0 if all
// are right, 1 (with the first bad page on stderr) if not. A freeze in the
// middle of a page or between a page and its version is harmless: the
// restored process finishes that step itself.
#include "bench_victim_precopy.h"

#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kWords = kPage / sizeof(uint64_t);
volatile sig_atomic_t g_term = 0;

void on_term(int) { g_term = 1; }

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void fill(uint64_t* page, uint64_t p, uint64_t v, uint64_t seed) {
  uint64_t base = mix(seed ^ (p << 20) ^ v);
  for (size_t w = 0; w < kWords; w++) page[w] = base + w * 0x100000001b3ULL;
}

bool parse(const char* s, unsigned long long lo, unsigned long long hi, unsigned long long* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

int bench_precopy_victim_main(char** argv) {
  unsigned long long mib = 0, rate = 0;
  if (!parse(argv[2], 1, 1 << 20, &mib) || !parse(argv[3], 0, 1 << 20, &rate)) {
    fprintf(stderr,
            "ckpt-bench-victim precopy: SIZE_MIB in [1, 1048576], RATE_MIB_S in [0, ...]\n");
    return 2;
  }
  const size_t pages = size_t(mib) << 20 >> 12;
  auto* mem = static_cast<uint64_t*>(
      mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* ver = static_cast<uint32_t*>(mmap(nullptr, pages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED || ver == MAP_FAILED) {
    fprintf(stderr, "ckpt-bench-victim precopy: mmap: %s\n", strerror(errno));
    return 2;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t seed = mix(uint64_t(ts.tv_nsec) ^ (uint64_t(getpid()) << 32));
  for (size_t p = 0; p < pages; p++) fill(mem + p * kWords, p, 0, seed);

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  if (write(1, "READY\n", 6) != 6) return 2;

  // Pages per 10 ms tick; the remainder carried so the rate is exact.
  const uint64_t per_sec = uint64_t(rate) << 20 >> 12;
  uint64_t rnd = seed | 1, done = 0, ticks = 0;
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!g_term) {
    ticks++;
    uint64_t due = per_sec * ticks / 100;
    for (; done < due && !g_term; done++) {
      rnd ^= rnd << 13;
      rnd ^= rnd >> 7;
      rnd ^= rnd << 17;
      size_t p = size_t(rnd % pages);
      fill(mem + p * kWords, p, ver[p] + 1, seed);
      ver[p]++;
    }
    next.tv_nsec += 10000000;
    if (next.tv_nsec >= 1000000000) {
      next.tv_nsec -= 1000000000;
      next.tv_sec++;
    }
    timespec cur;
    clock_gettime(CLOCK_MONOTONIC, &cur);
    if (cur.tv_sec > next.tv_sec + 1) next = cur;  // frozen for a while: no burst
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
  }
  uint64_t want[kWords];
  for (size_t p = 0; p < pages; p++) {
    fill(want, p, ver[p], seed);
    if (memcmp(want, mem + p * kWords, kPage) != 0) {
      fprintf(stderr,
              "ckpt-bench-victim precopy: page %zu (version %" PRIu32 ") is wrong: word 0 %#" PRIx64
              ", want %#" PRIx64 "\n",
              p, ver[p], mem[p * kWords], want[0]);
      return 1;
    }
  }
  fprintf(stderr, "ckpt-bench-victim precopy: %zu pages right, %" PRIu64 " rewritten\n", pages,
          done);
  return 0;
}
