// Raw x86_64 system calls for the freestanding blobs.
#pragma once

#include <stdint.h>

namespace ckpt::blob {

static inline long sys6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long ret;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  register long r9 asm("r9") = a6;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}
template <typename A = long, typename B = long, typename C = long, typename D = long,
          typename E = long, typename F = long>
static inline long sys(long nr, A a1 = 0, B a2 = 0, C a3 = 0, D a4 = 0, E a5 = 0, F a6 = 0) {
  return sys6(nr, (long)a1, (long)a2, (long)a3, (long)a4, (long)a5, (long)a6);
}

// Switches to the given stack (rsp = &frame.uc) and enters rt_sigreturn.
[[noreturn]] static inline void rt_sigreturn_on(uint64_t rsp) {
  asm volatile(
      "movq %0, %%rsp\n"
      "movl $15, %%eax\n"
      "syscall\n"
      "hlt\n" ::"r"(rsp)
      : "memory");
  __builtin_unreachable();
}

static inline void trap() { asm volatile("int3" ::: "memory"); }

}  // namespace ckpt::blob
