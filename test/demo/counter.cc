// The demo's sample program: holds 64 MiB of memory it keeps changing and
// prints, twice a second, a line that shows it continuing where it was:
// its pid, a step counter, and a checksum chained through all its memory,
// which only continues correctly if every byte survived.
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  // Drop whatever the launching shell leaked beyond stdio (ckpt would
  // rightly refuse, say, an inherited pipe it cannot restore yet).
  syscall(SYS_close_range, 3, ~0u, 0);
  std::vector<uint64_t> mem(64 << 17);  // 64 MiB
  for (size_t j = 0; j < mem.size(); j++) mem[j] = j * 0x9e3779b97f4a7c15ull;
  uint64_t chain = 1;
  for (uint64_t i = 0;; i++) {
    for (size_t j = i % 512; j < mem.size(); j += 512) {
      mem[j] = mem[j] * 6364136223846793005ull + chain;
      chain ^= mem[j] >> 7;
    }
    printf("pid %d  step %4lu  checksum %016lx\n", getpid(), (unsigned long)i,
           (unsigned long)chain);
    fflush(stdout);
    usleep(500000);
  }
}
