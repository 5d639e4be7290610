// ckpt-bench-victim compress SIZE_MIB
//
// Maps SIZE_MIB of private anonymous memory: the first half filled with
// text-like lines (timestamps, log levels, JSON-ish records with varying
// numbers and a handful of words, as a server's heap holds), the second
// half with pseudo-random bytes (already compressed or encrypted data).
// Hashes it all, writes "READY", sleeps until SIGTERM, hashes again:
// exit 0 if the memory is unchanged, 1 if not.
#include "bench_victim_compress.h"

#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

volatile sig_atomic_t g_term = 0;
void on_term(int) { g_term = 1; }

uint64_t next(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

uint64_t hash(const unsigned char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  for (size_t i = 0; i < n / 8; i++) h = (h ^ w[i]) * 0x100000001b3ULL;
  return h;
}

void fill_text(char* p, size_t n, uint64_t& s) {
  static const char* levels[] = {"INFO", "DEBUG", "WARN", "INFO", "ERROR"};
  static const char* words[] = {"user", "order", "session", "item", "cache", "request",
                                "payment", "shipment", "account", "token"};
  static const char* verbs[] = {"created", "updated", "deleted", "fetched", "expired"};
  char line[256];
  size_t off = 0;
  while (off < n) {
    uint64_t r = next(s);
    int len = snprintf(line, sizeof(line),
                       "2026-11-29T%02u:%02u:%02u.%03uZ %s {\"%s_id\": %u, \"event\": \"%s\", "
                       "\"latency_ms\": %u, \"path\": \"/api/v1/%ss/%u\"}\n",
                       unsigned(r % 24), unsigned(r >> 8) % 60, unsigned(r >> 16) % 60,
                       unsigned(r >> 24) % 1000, levels[(r >> 34) % 5], words[(r >> 37) % 10],
                       unsigned(r >> 40) % 100000, verbs[(r >> 44) % 5], unsigned(r >> 48) % 900,
                       words[(r >> 52) % 10], unsigned(r >> 20) % 1000000);
    size_t k = std::min(size_t(len), n - off);
    memcpy(p + off, line, k);
    off += k;
  }
}

}  // namespace

int bench_compress_victim_main(char** argv) {
  char* end = nullptr;
  errno = 0;
  unsigned long long mib = strtoull(argv[2], &end, 10);
  if (errno || end == argv[2] || *end || mib < 2 || mib > (1ULL << 20)) {
    fprintf(stderr, "ckpt-bench-victim compress: SIZE_MIB in [2, 1048576]\n");
    return 2;
  }
  const size_t size = size_t(mib) << 20;
  auto* mem = static_cast<unsigned char*>(
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) {
    fprintf(stderr, "ckpt-bench-victim compress: mmap: %s\n", strerror(errno));
    return 2;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t s = (uint64_t(ts.tv_nsec) << 16) ^ uint64_t(getpid()) ^ 0x9e3779b97f4a7c15ULL;
  fill_text(reinterpret_cast<char*>(mem), size / 2, s);
  uint64_t* w = reinterpret_cast<uint64_t*>(mem + size / 2);
  for (size_t i = 0; i < size / 2 / 8; i++) w[i] = next(s);
  const uint64_t want = hash(mem, size);

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  if (write(1, "READY\n", 6) != 6) return 2;
  // A bounded sleep, not pause(): SIGTERM between the test and the call
  // would be missed.
  while (!g_term) usleep(100000);
  if (hash(mem, size) != want) {
    fprintf(stderr, "ckpt-bench-victim compress: memory changed across the restore\n");
    return 1;
  }
  return 0;
}
