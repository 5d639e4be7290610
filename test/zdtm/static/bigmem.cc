// bigmem: 300 MiB of private anonymous memory, every 8-byte word holding a
// value derived from (seed, page index, word index); all of it is verified.
#include <sys/mman.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kSize = 300ul << 20;
constexpr size_t kWords = kPage / 8;
uint64_t g_seed;

uint64_t word(size_t page, size_t i) { return zdtm_mix(g_seed, page) + i * 0x10001; }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  auto* mem = static_cast<uint64_t*>(
      mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) fail("mmap %zu bytes: %s", kSize, strerror(errno));
  for (size_t p = 0; p < kSize / kPage; p++)
    for (size_t i = 0; i < kWords; i++) mem[p * kWords + i] = word(p, i);

  test_ready();
  test_wait();

  for (size_t p = 0; p < kSize / kPage; p++)
    for (size_t i = 0; i < kWords; i++)
      if (mem[p * kWords + i] != word(p, i))
        fail("page %zu word %zu: got %#lx want %#lx", p, i, (unsigned long)mem[p * kWords + i],
             (unsigned long)word(p, i));
  pass();
}
