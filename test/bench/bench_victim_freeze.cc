// See bench_victim_freeze.h.
#include "bench_victim_freeze.h"

#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace {

volatile sig_atomic_t g_reset = 0, g_report = 0, g_term = 0;

int64_t NowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

uint64_t Sum(const uint64_t* w, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++) s = s * 31 + w[i];
  return s;
}

}  // namespace

int bench_freeze_victim_main(char** argv) {
  size_t bytes = size_t(strtoull(argv[2], nullptr, 10)) << 20;
  bool thp = strcmp(argv[3], "thp") == 0;
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 2;
  madvise(m, bytes, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  uint64_t* w = static_cast<uint64_t*>(m);
  size_t n = bytes / 8;
  uint64_t x = uint64_t(getpid()) * 0x9e3779b97f4a7c15ull | 1;
  for (size_t i = 0; i < n; i++) {  // xorshift: never zero
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    w[i] = x;
  }
  uint64_t sum = Sum(w, n);
  struct sigaction sa = {};
  sa.sa_handler = [](int sig) {
    if (sig == SIGUSR1) g_reset = 1;
    if (sig == SIGUSR2) g_report = 1;
    if (sig == SIGTERM) g_term = 1;
  };
  for (int sig : {SIGUSR1, SIGUSR2, SIGTERM}) sigaction(sig, &sa, nullptr);
  printf("READY\n");
  fflush(stdout);
  int64_t last = NowUs(), worst = 0;
  struct timespec tick = {0, 100000};
  while (!g_term) {
    nanosleep(&tick, nullptr);
    int64_t now = NowUs();
    if (now - last > worst) worst = now - last;
    last = now;
    if (g_reset) g_reset = 0, worst = 0;
    if (g_report) {
      g_report = 0;
      printf("STALL %lld\n", (long long)worst);
      fflush(stdout);
    }
  }
  return Sum(w, n) == sum ? 0 : 1;
}
