// sparse: a 1 GiB private anonymous mapping with every 97th page written.
// Verifies the written pages, that all other pages read as zero, and that
// the mapping's resident size did not grow (zero pages were not filled in).
#include <sys/mman.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kSize = 1ul << 30;
constexpr size_t kStride = 97;
uint64_t g_seed;

uint64_t word(size_t page, size_t i) { return zdtm_mix(g_seed, page) ^ (i << 48); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  auto* mem = static_cast<char*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (mem == MAP_FAILED) fail("mmap 1 GiB: %s", strerror(errno));
  for (size_t p = 0; p < kSize / kPage; p += kStride) {
    auto* w = reinterpret_cast<uint64_t*>(mem + p * kPage);
    for (size_t i = 0; i < kPage / 8; i++) w[i] = word(p, i);
  }
  const uintptr_t addr = reinterpret_cast<uintptr_t>(mem);
  const long rss_before = zdtm_smaps_kb(addr, "Rss");

  test_ready();
  test_wait();

  // Before touching anything: restore must not have populated the holes.
  // The slack allows transparent huge pages around written pages.
  const long rss_after = zdtm_smaps_kb(addr, "Rss");
  if (rss_before < 0 || rss_after < 0) fail("no smaps Rss for the mapping at %p", mem);
  if (rss_after > rss_before + 8192)
    fail("mapping Rss grew from %ld kB to %ld kB: holes were populated", rss_before, rss_after);

  ZdtmVma v;
  if (!zdtm_find_vma(addr, &v) || v.end < addr + kSize || strcmp(v.perms, "rw-p") != 0)
    fail("mapping %p+1GiB is no longer one rw-p VMA", mem);
  for (size_t p = 0; p < kSize / kPage; p++) {
    auto* w = reinterpret_cast<const uint64_t*>(mem + p * kPage);
    for (size_t i = 0; i < kPage / 8; i++) {
      uint64_t want = p % kStride == 0 ? word(p, i) : 0;
      if (w[i] != want)
        fail("page %zu word %zu: got %#lx want %#lx", p, i, (unsigned long)w[i],
             (unsigned long)want);
    }
  }
  pass();
}
