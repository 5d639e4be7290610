// mprotect: four regions of one mapping left PROT_NONE, PROT_READ,
// PROT_READ|PROT_WRITE and PROT_EXEC, each with content. Verifies the
// protections (/proc/self/maps) and then the contents: the exec region
// holds tiny functions that are called; other bytes are compared after
// making the region readable.
#include <sys/mman.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kRegionPages = 4;
constexpr size_t kRegion = kRegionPages * kPage;

struct Region {
  int prot;
  const char* perms;  // as /proc/self/maps shows it
};
const Region kRegions[] = {
    {PROT_NONE, "---p"},
    {PROT_READ, "r--p"},
    {PROT_READ | PROT_WRITE, "rw-p"},
    {PROT_EXEC, "--xp"},
};
constexpr size_t kCount = sizeof(kRegions) / sizeof(kRegions[0]);
constexpr size_t kExec = 3;
constexpr size_t kCodeLen = 6;  // mov eax, imm32; ret
uint64_t g_seed;

uint8_t byte_at(size_t region, size_t off) {
  return static_cast<uint8_t>(zdtm_mix(g_seed + region, off / 8) >> (off % 8 * 8));
}
uint32_t code_value(size_t page) { return static_cast<uint32_t>(zdtm_mix(g_seed, 1000 + page)); }

// Each page of the exec region starts with "mov eax, imm32; ret".
void write_code(uint8_t* page, uint32_t value) {
  page[0] = 0xb8;
  memcpy(page + 1, &value, 4);
  page[5] = 0xc3;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  auto* base = static_cast<uint8_t*>(
      mmap(nullptr, kCount * kRegion, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (base == MAP_FAILED) fail("mmap: %s", strerror(errno));
  for (size_t r = 0; r < kCount; r++)
    for (size_t off = 0; off < kRegion; off++) base[r * kRegion + off] = byte_at(r, off);
  for (size_t p = 0; p < kRegionPages; p++)
    write_code(base + kExec * kRegion + p * kPage, code_value(p));
  for (size_t r = 0; r < kCount; r++)
    if (mprotect(base + r * kRegion, kRegion, kRegions[r].prot))
      fail("mprotect region %zu: %s", r, strerror(errno));

  test_ready();
  test_wait();

  // Protections first: everything below changes them.
  for (size_t r = 0; r < kCount; r++) {
    auto start = reinterpret_cast<uintptr_t>(base + r * kRegion);
    ZdtmVma v;
    if (!zdtm_find_vma(start, &v)) fail("region %zu (%#lx) is not mapped", r, start);
    if (v.start > start || v.end < start + kRegion)
      fail("region %zu: VMA %#lx-%#lx does not cover %#lx-%#lx", r, v.start, v.end, start,
           start + kRegion);
    if (strcmp(v.perms, kRegions[r].perms) != 0)
      fail("region %zu: perms %s, want %s", r, v.perms, kRegions[r].perms);
  }
  for (size_t p = 0; p < kRegionPages; p++) {
    auto fn = reinterpret_cast<uint32_t (*)()>(base + kExec * kRegion + p * kPage);
    uint32_t got = fn();
    if (got != code_value(p)) fail("exec page %zu returned %#x, want %#x", p, got, code_value(p));
  }
  if (mprotect(base, kCount * kRegion, PROT_READ)) fail("mprotect(PROT_READ): %s", strerror(errno));
  for (size_t r = 0; r < kCount; r++)
    for (size_t off = 0; off < kRegion; off++) {
      uint8_t want = byte_at(r, off);
      if (r == kExec && off % kPage < kCodeLen) continue;  // checked by calling it
      if (base[r * kRegion + off] != want)
        fail("region %zu offset %zu: got %#x want %#x", r, off, base[r * kRegion + off], want);
    }
  pass();
}
