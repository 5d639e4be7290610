// Helpers for the freestanding blobs: memory functions the compiler may
// call, and a logger that writes to an fd without allocating.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "parasite/arch/x86_64/syscall.h"

extern "C" {
void* memcpy(void* d, const void* s, size_t n);
void* memset(void* d, int c, size_t n);
void* memmove(void* d, const void* s, size_t n);
int memcmp(const void* a, const void* b, size_t n);
}

namespace ckpt::blob {

size_t str_len(const char* s);

// A tiny line logger: Log(fd) << "text" << Hex(x) << Dec(y); flushed by End().
class Log {
 public:
  explicit Log(int fd) : fd_(fd) {}
  Log& operator<<(const char* s);
  Log& Hex(uint64_t v);
  Log& Dec(int64_t v);
  void End();

 private:
  int fd_;
  char buf_[256];
  size_t n_ = 0;
};

}  // namespace ckpt::blob
