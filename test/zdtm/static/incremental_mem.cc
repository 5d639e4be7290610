// incremental_mem: memory that changes between the steps of an incremental
// dump (zdtm-incremental drives it; it also passes a plain round trip).
//
//   A    256 MiB of private anonymous memory; round r rewrites the pages
//        with p % 16 == r % 16 with a pattern of (seed, page, r).
//   B    64 pages unmapped and mapped again at the same address each round
//        (a new VMA where the old one was), filled with the round's pattern.
//   C    64 pages: round 2 drops them (MADV_DONTNEED: zeros again), round 3
//        writes the even ones.
//   F    16 pages of a private mapping of a file in the working directory,
//        all written at start; round 2 drops the first 8 (MADV_DONTNEED: the
//        file's contents again, where uffd-wp leaves PTE markers).
//   Hot  32 pages rewritten all the time (the freeze catches one mid-write).
// SIGUSR1 asks for the next round; "INFO: ROUND n" is printed once it is done.
// After SIGTERM every byte is checked against what the rounds wrote.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kWords = kPage / 8;
constexpr size_t kA = 65536, kB = 64, kC = 64, kF = 16, kHot = 32;
uint64_t g_seed;
volatile sig_atomic_t g_round_asked = 0;

uint64_t word(uint64_t region, size_t page, size_t i, uint64_t gen) {
  return zdtm_mix(g_seed ^ (gen * 0x9e3779b97f4a7c15ull) ^ (region << 56), page) + i * 0x10001;
}
void fill(uint64_t* p, uint64_t region, size_t page, uint64_t gen) {
  for (size_t i = 0; i < kWords; i++) p[i] = word(region, page, i, gen);
}
bool same(const uint64_t* p, uint64_t region, size_t page, uint64_t gen) {
  for (size_t i = 0; i < kWords; i++)
    if (p[i] != word(region, page, i, gen)) return false;
  return true;
}
void* map(size_t pages, void* at = nullptr) {
  void* m = mmap(at, pages * kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
  if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
  return m;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  signal(SIGUSR1, [](int) { g_round_asked = 1; });
  auto* a = static_cast<uint64_t*>(map(kA));
  auto* b = static_cast<uint64_t*>(map(kB));
  auto* c = static_cast<uint64_t*>(map(kC));
  auto* hot = static_cast<uint64_t*>(map(kHot));
  // F: the file holds generation 0, the mapping generation 1.
  int fd = open("incremental_mem.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("create incremental_mem.dat: %s", strerror(errno));
  {
    static uint64_t page[kWords];
    for (size_t p = 0; p < kF; p++) {
      fill(page, 'F', p, 0);
      if (write(fd, page, kPage) != ssize_t(kPage)) fail("write: %s", strerror(errno));
    }
  }
  auto* f =
      static_cast<uint64_t*>(mmap(nullptr, kF * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  if (f == MAP_FAILED) fail("mmap file: %s", strerror(errno));
  close(fd);
  for (size_t p = 0; p < kF; p++) fill(f + p * kWords, 'F', p, 1);
  bool f_dropped = false;
  static uint8_t a_gen[kA];
  static uint64_t hot_count[kHot];
  uint64_t b_gen = 0;
  int c_state = 0;  // 0: written in round 0; 1: dropped; 2: even pages written in round 3
  for (size_t p = 0; p < kA; p++) fill(a + p * kWords, 'A', p, 0);
  for (size_t p = 0; p < kB; p++) fill(b + p * kWords, 'B', p, 0);
  for (size_t p = 0; p < kC; p++) fill(c + p * kWords, 'C', p, 0);
  test_ready();

  uint64_t round = 0;
  for (size_t i = 0; !test_stopped(); i++) {
    if (g_round_asked) {
      g_round_asked = 0;
      round++;
      for (size_t p = round % 16; p < kA; p += 16) {
        fill(a + p * kWords, 'A', p, round);
        a_gen[p] = uint8_t(round);
      }
      if (munmap(b, kB * kPage) < 0) fail("munmap: %s", strerror(errno));
      b = static_cast<uint64_t*>(map(kB, b));
      for (size_t p = 0; p < kB; p++) fill(b + p * kWords, 'B', p, round);
      b_gen = round;
      if (round == 2) {
        if (madvise(c, kC * kPage, MADV_DONTNEED) < 0) fail("madvise: %s", strerror(errno));
        c_state = 1;
        if (madvise(f, kF / 2 * kPage, MADV_DONTNEED) < 0) fail("madvise: %s", strerror(errno));
        f_dropped = true;
      } else if (round == 3) {
        for (size_t p = 0; p < kC; p += 2) fill(c + p * kWords, 'C', p, 3);
        c_state = 2;
      }
      test_msg("ROUND %lu", (unsigned long)round);
    }
    // The value goes in first, then the count: stopped in between, a page
    // holds count+1 in a prefix of its words and count in the rest.
    size_t h = i % kHot;
    uint64_t v = hot_count[h] + 1;
    for (size_t w = 0; w < kWords; w++) hot[h * kWords + w] = v;
    hot_count[h] = v;
    if (h % 8 == 0) usleep(1000);
  }

  for (size_t p = 0; p < kA; p++)
    if (!same(a + p * kWords, 'A', p, a_gen[p]))
      fail("A page %zu: not the round %u pattern", p, a_gen[p]);
  for (size_t p = 0; p < kB; p++)
    if (!same(b + p * kWords, 'B', p, b_gen))
      fail("B page %zu: not the round %lu pattern", p, (unsigned long)b_gen);
  for (size_t p = 0; p < kC; p++) {
    const uint64_t* q = c + p * kWords;
    if (c_state == 0 || (c_state == 2 && p % 2 == 0)) {
      if (!same(q, 'C', p, c_state == 0 ? 0 : 3)) fail("C page %zu: wrong pattern", p);
    } else {
      for (size_t w = 0; w < kWords; w++)
        if (q[w]) fail("C page %zu word %zu: %#lx, want 0 (dropped)", p, w, (unsigned long)q[w]);
    }
  }
  for (size_t p = 0; p < kF; p++) {
    uint64_t gen = f_dropped && p < kF / 2 ? 0 : 1;  // dropped: the file's page again
    if (!same(f + p * kWords, 'F', p, gen))
      fail("file page %zu: not generation %lu", p, (unsigned long)gen);
  }
  for (size_t h = 0; h < kHot; h++) {
    const uint64_t* q = hot + h * kWords;
    uint64_t cnt = hot_count[h];
    size_t k = 0;
    while (k < kWords && q[k] == cnt + 1) k++;
    for (size_t w = k; w < kWords; w++)
      if (q[w] != cnt)
        fail("hot page %zu word %zu: %#lx, count %#lx", h, w, (unsigned long)q[w],
             (unsigned long)cnt);
  }
  test_msg("verified %lu rounds", (unsigned long)round);
  pass();
}
