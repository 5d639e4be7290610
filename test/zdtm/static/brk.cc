// brk: grows the heap by 8 MiB with sbrk and fills it with a pattern.
// Verifies the kernel's brk (raw syscall, not glibc's cached value) is
// unchanged, [heap] still ends there, the contents, and that the heap can
// still shrink and grow.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kGrow = 8ul << 20;
uint64_t g_seed;

uintptr_t kernel_brk() { return static_cast<uintptr_t>(syscall(SYS_brk, 0)); }
uint64_t word(size_t i) { return zdtm_mix(g_seed, i); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  auto* start = static_cast<uint64_t*>(sbrk(static_cast<intptr_t>(kGrow)));
  if (start == reinterpret_cast<void*>(-1)) fail("sbrk(%zu): %s", kGrow, strerror(errno));
  const uintptr_t end = kernel_brk();
  if (end != reinterpret_cast<uintptr_t>(start) + kGrow)
    fail("brk %#lx after sbrk, want %#lx", end, reinterpret_cast<uintptr_t>(start) + kGrow);
  for (size_t i = 0; i < kGrow / 8; i++) start[i] = word(i);

  test_ready();
  test_wait();

  // Nothing here may allocate before the brk checks.
  if (kernel_brk() != end) fail("kernel brk %#lx, want %#lx", kernel_brk(), end);
  if (reinterpret_cast<uintptr_t>(sbrk(0)) != end) fail("sbrk(0) %p, want %#lx", sbrk(0), end);
  for (size_t i = 0; i < kGrow / 8; i++)
    if (start[i] != word(i))
      fail("heap word %zu: got %#lx want %#lx", i, (unsigned long)start[i], (unsigned long)word(i));

  ZdtmVma heap;
  if (!zdtm_find_vma(end - 1, &heap) || heap.name != "[heap]")
    fail("the mapping below brk %#lx is not [heap]", end);
  if (heap.end != ((end + 4095) & ~4095ul)) fail("[heap] ends at %#lx, brk is %#lx", heap.end, end);

  // The kernel's mm->brk bounds must be usable: shrink, grow, write.
  if (syscall(SYS_brk, end - (1 << 20)) != static_cast<long>(end - (1 << 20)))
    fail("shrinking brk failed");
  uintptr_t grown = end + (4 << 20);
  if (static_cast<uintptr_t>(syscall(SYS_brk, grown)) != grown)
    fail("growing brk to %#lx failed", grown);
  memset(reinterpret_cast<void*>(end - (1 << 20)), 0xab, 5 << 20);
  pass();
}
