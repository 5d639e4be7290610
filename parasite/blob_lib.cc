#include "parasite/blob_lib.h"

#include <asm/unistd.h>

extern "C" {
void* memcpy(void* d, const void* s, size_t n) {
  auto* dp = static_cast<unsigned char*>(d);
  auto* sp = static_cast<const unsigned char*>(s);
  while (n--) *dp++ = *sp++;
  return d;
}
void* memmove(void* d, const void* s, size_t n) {
  auto* dp = static_cast<unsigned char*>(d);
  auto* sp = static_cast<const unsigned char*>(s);
  if (dp < sp) {
    while (n--) *dp++ = *sp++;
  } else {
    while (n--) dp[n] = sp[n];
  }
  return d;
}
void* memset(void* d, int c, size_t n) {
  auto* dp = static_cast<unsigned char*>(d);
  while (n--) *dp++ = static_cast<unsigned char>(c);
  return d;
}
int memcmp(const void* a, const void* b, size_t n) {
  auto* x = static_cast<const unsigned char*>(a);
  auto* y = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}
}

namespace ckpt::blob {

size_t str_len(const char* s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}

Log& Log::operator<<(const char* s) {
  while (*s && n_ < sizeof(buf_) - 1) buf_[n_++] = *s++;
  return *this;
}

Log& Log::Hex(uint64_t v) {
  char tmp[19];
  int i = 18;
  tmp[i] = 0;
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  tmp[--i] = 'x';
  tmp[--i] = '0';
  return *this << (tmp + i);
}

Log& Log::Dec(int64_t v) {
  char tmp[24];
  int i = 23;
  tmp[i] = 0;
  bool neg = v < 0;
  uint64_t u = neg ? -(uint64_t)v : (uint64_t)v;
  do {
    tmp[--i] = char('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg) tmp[--i] = '-';
  return *this << (tmp + i);
}

void Log::End() {
  buf_[n_++] = '\n';
  if (fd_ >= 0) sys(__NR_write, fd_, buf_, n_);
  n_ = 0;
}

}  // namespace ckpt::blob
