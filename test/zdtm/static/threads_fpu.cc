// threads_fpu: the main thread and 4 workers each run a tight loop whose
// whole state lives in vector registers, with per-thread control registers.
//
//   main  SSE      8 xmm accumulators (16 lanes)
//   w1    AVX      8 ymm accumulators (32 lanes; SSE if no AVX)
//   w2    AVX-512  20 zmm accumulators (160 lanes, so zmm16..31 are live;
//                  compare masks in k registers; AVX or SSE if absent)
//   w3    SSE      8 xmm
//   w4    AVX      8 ymm
// Every lane runs an exact affine map x -> (a*x + b) mod p on doubles
// (values < 2^51, so every operation is exact whatever the rounding mode),
// with constants and start values distinct per thread. The map is a
// bijection: a corrupted or swapped register never heals. Each thread also
// has its own MXCSR (rounding mode, FTZ/DAZ) and x87 control word
// (precision and rounding control). After SIGTERM each thread leaves its
// loop and stores its registers; every lane must equal f^n(x0) computed in
// integers for that thread's iteration count n, and MXCSR and the x87
// control word read in that thread must be the ones it set.
#include <immintrin.h>
#include <pthread.h>
#include <time.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "zdtm.h"

namespace {

constexpr int kWorkers = 4, kThreads = kWorkers + 1;
constexpr int kMaxLanes = 160;
constexpr unsigned kMxcsrFlags = 0x3f;  // sticky exception status bits
const uint64_t kPrimes[] = {33554393, 33554383, 33554371, 33554347, 33554341, 33554317, 33554291, 33554273,
                            33554267, 33554249, 33554239, 33554221, 33554201, 33554167, 33554159, 33554137};

enum Kind { kSse, kAvx, kAvx512 };
const char* kind_name(Kind k) { return k == kSse ? "SSE" : k == kAvx ? "AVX" : "AVX-512"; }

// Lanes: accumulator j, element e -> lane j*W + e; constants per element e.
struct alignas(64) State {
  double x[kMaxLanes];
  double a[8], b[8], p[8], inv_p[8];
  uint64_t n;
  unsigned mxcsr;      // set before the loop, read back after it
  unsigned short fcw;  // x87 control word, likewise
  unsigned mxcsr_after;
  unsigned short fcw_after;
};

int width(Kind k) { return k == kSse ? 2 : k == kAvx ? 4 : 8; }
int accumulators(Kind k) { return k == kAvx512 ? 20 : 8; }

std::atomic<int> g_ready{0};
std::atomic<int> g_stop{0};
State g_state[kThreads];
Kind g_kind[kThreads];

inline __m128d step128(__m128d x, __m128d a, __m128d b, __m128d p, __m128d ip) {
  __m128d t = _mm_add_pd(_mm_mul_pd(x, a), b);
  __m128d q = _mm_cvtepi32_pd(_mm_cvttpd_epi32(_mm_mul_pd(t, ip)));
  __m128d r = _mm_sub_pd(t, _mm_mul_pd(q, p));
  r = _mm_add_pd(r, _mm_and_pd(_mm_cmplt_pd(r, _mm_setzero_pd()), p));
  return _mm_sub_pd(r, _mm_and_pd(_mm_cmpge_pd(r, p), p));
}

__attribute__((target("avx"), always_inline)) inline __m256d step256(__m256d x, __m256d a, __m256d b, __m256d p,
                                                                     __m256d ip) {
  __m256d t = _mm256_add_pd(_mm256_mul_pd(x, a), b);
  __m256d q = _mm256_round_pd(_mm256_mul_pd(t, ip), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_sub_pd(t, _mm256_mul_pd(q, p));
  r = _mm256_add_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ), p));
  return _mm256_sub_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, p, _CMP_GE_OQ), p));
}

__attribute__((target("avx512f"), always_inline)) inline __m512d step512(__m512d x, __m512d a, __m512d b, __m512d p,
                                                                         __m512d ip) {
  __m512d t = _mm512_add_pd(_mm512_mul_pd(x, a), b);
  __m512d q = _mm512_mask_roundscale_pd(_mm512_setzero_pd(), 0xff, _mm512_mul_pd(t, ip),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_sub_pd(t, _mm512_mul_pd(q, p));
  __mmask8 neg = _mm512_cmp_pd_mask(r, _mm512_setzero_pd(), _CMP_LT_OQ);
  r = _mm512_mask_add_pd(r, neg, r, p);
  __mmask8 big = _mm512_cmp_pd_mask(r, p, _CMP_GE_OQ);
  return _mm512_mask_sub_pd(r, big, r, p);
}

// Each loop runs until `stop` (main: SIGTERM; workers: g_stop).
template <typename Stop>
__attribute__((noinline)) void run_sse(State* s, Stop stop) {
  const __m128d a = _mm_load_pd(s->a), b = _mm_load_pd(s->b), p = _mm_load_pd(s->p), ip = _mm_load_pd(s->inv_p);
  __m128d v0 = _mm_load_pd(s->x), v1 = _mm_load_pd(s->x + 2), v2 = _mm_load_pd(s->x + 4),
          v3 = _mm_load_pd(s->x + 6), v4 = _mm_load_pd(s->x + 8), v5 = _mm_load_pd(s->x + 10),
          v6 = _mm_load_pd(s->x + 12), v7 = _mm_load_pd(s->x + 14);
  uint64_t n = 0;
  while (!stop()) {
    v0 = step128(v0, a, b, p, ip), v1 = step128(v1, a, b, p, ip);
    v2 = step128(v2, a, b, p, ip), v3 = step128(v3, a, b, p, ip);
    v4 = step128(v4, a, b, p, ip), v5 = step128(v5, a, b, p, ip);
    v6 = step128(v6, a, b, p, ip), v7 = step128(v7, a, b, p, ip);
    n++;
  }
  _mm_store_pd(s->x, v0), _mm_store_pd(s->x + 2, v1), _mm_store_pd(s->x + 4, v2), _mm_store_pd(s->x + 6, v3);
  _mm_store_pd(s->x + 8, v4), _mm_store_pd(s->x + 10, v5), _mm_store_pd(s->x + 12, v6), _mm_store_pd(s->x + 14, v7);
  s->n = n;
}

__attribute__((target("avx"), noinline)) void run_avx(State* s) {
  const __m256d a = _mm256_load_pd(s->a), b = _mm256_load_pd(s->b), p = _mm256_load_pd(s->p),
                ip = _mm256_load_pd(s->inv_p);
  __m256d v0 = _mm256_load_pd(s->x), v1 = _mm256_load_pd(s->x + 4), v2 = _mm256_load_pd(s->x + 8),
          v3 = _mm256_load_pd(s->x + 12), v4 = _mm256_load_pd(s->x + 16), v5 = _mm256_load_pd(s->x + 20),
          v6 = _mm256_load_pd(s->x + 24), v7 = _mm256_load_pd(s->x + 28);
  uint64_t n = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    v0 = step256(v0, a, b, p, ip), v1 = step256(v1, a, b, p, ip);
    v2 = step256(v2, a, b, p, ip), v3 = step256(v3, a, b, p, ip);
    v4 = step256(v4, a, b, p, ip), v5 = step256(v5, a, b, p, ip);
    v6 = step256(v6, a, b, p, ip), v7 = step256(v7, a, b, p, ip);
    n++;
  }
  _mm256_store_pd(s->x, v0), _mm256_store_pd(s->x + 4, v1), _mm256_store_pd(s->x + 8, v2);
  _mm256_store_pd(s->x + 12, v3), _mm256_store_pd(s->x + 16, v4), _mm256_store_pd(s->x + 20, v5);
  _mm256_store_pd(s->x + 24, v6), _mm256_store_pd(s->x + 28, v7);
  s->n = n;
}

// 20 accumulators + 5 constants + temporaries: more than 16 zmm, so the
// compiler must use zmm16..31 (the Hi16_ZMM xsave component).
__attribute__((target("avx512f"), noinline)) void run_avx512(State* s) {
  const __m512d a = _mm512_load_pd(s->a), b = _mm512_load_pd(s->b), p = _mm512_load_pd(s->p),
                ip = _mm512_load_pd(s->inv_p);
  __m512d v[20];
#pragma GCC unroll 20
  for (int j = 0; j < 20; j++) v[j] = _mm512_load_pd(s->x + 8 * j);
  uint64_t n = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
#pragma GCC unroll 20
    for (int j = 0; j < 20; j++) v[j] = step512(v[j], a, b, p, ip);
    n++;
  }
#pragma GCC unroll 20
  for (int j = 0; j < 20; j++) _mm512_store_pd(s->x + 8 * j, v[j]);
  s->n = n;
}

unsigned short get_fcw() {
  unsigned short cw;
  asm volatile("fnstcw %0" : "=m"(cw));
  return cw;
}
void set_fcw(unsigned short cw) { asm volatile("fldcw %0" : : "m"(cw)); }

void run(int t) {
  State* s = &g_state[t];
  _mm_setcsr(s->mxcsr);
  set_fcw(s->fcw);
  g_ready.fetch_add(1);
  if (t == 0) {
    test_ready();
    run_sse(s, [] { return test_stopped(); });
  } else if (g_kind[t] == kAvx512) {
    run_avx512(s);
  } else if (g_kind[t] == kAvx) {
    run_avx(s);
  } else {
    run_sse(s, [] { return g_stop.load(std::memory_order_relaxed) != 0; });
  }
  s->mxcsr_after = _mm_getcsr() & ~kMxcsrFlags;
  s->fcw_after = get_fcw();
}

void* worker(void* arg) {
  run(static_cast<int>(reinterpret_cast<intptr_t>(arg)));
  return nullptr;
}

__attribute__((format(printf, 1, 2))) void report(const char* fmt, ...) {
  char buf[512] = "FAIL: ";
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + 6, sizeof(buf) - 8, fmt, ap);
  va_end(ap);
  size_t len = 6 + (n < 0 ? 0 : std::min<size_t>(n, sizeof(buf) - 8));
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
}

uint64_t affine_pow(uint64_t x, uint64_t a, uint64_t b, uint64_t p, uint64_t n) {
  uint64_t ra = 1, rb = 0;  // accumulated map x -> ra*x + rb
  while (n) {
    if (n & 1) {
      rb = (a * rb + b) % p;
      ra = (a * ra) % p;
    }
    b = (a * b + b) % p;
    a = (a * a) % p;
    n >>= 1;
  }
  return (ra * x + rb) % p;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const bool avx = __builtin_cpu_supports("avx"), avx512 = __builtin_cpu_supports("avx512f");
  const Kind want[kThreads] = {kSse, kAvx, kAvx512, kSse, kAvx};
  const uint64_t seed = zdtm_seed();
  uint64_t x0[kThreads][kMaxLanes];
  for (int t = 0; t < kThreads; t++) {
    Kind k = want[t];
    if (k == kAvx512 && !avx512) k = kAvx;
    if (k == kAvx && !avx) k = kSse;
    g_kind[t] = k;
    State& s = g_state[t];
    for (int e = 0; e < 8; e++) {
      uint64_t p = kPrimes[(t * 3 + e) % 16];
      s.p[e] = static_cast<double>(p);
      s.inv_p[e] = 1.0 / s.p[e];
      s.a[e] = static_cast<double>(2 + zdtm_mix(seed, 100 * t + e) % (p - 3));
      s.b[e] = static_cast<double>(zdtm_mix(seed, 100 * t + 50 + e) % p);
    }
    const int lanes = width(k) * accumulators(k);
    for (int l = 0; l < lanes; l++) {
      x0[t][l] = zdtm_mix(seed, 10000 * (t + 1) + l) % static_cast<uint64_t>(s.p[l % width(k)]);
      s.x[l] = static_cast<double>(x0[t][l]);
    }
    // Rounding control t%4, FTZ+DAZ on odd threads, exceptions masked.
    s.mxcsr = 0x1f80 | (t % 4) << 13 | (t % 2 ? 0x8040 : 0);
    // x87: all exceptions masked, precision control (single, double,
    // extended), rounding control t%4.
    static const unsigned short kPc[] = {3, 2, 0, 3, 2};
    s.fcw = static_cast<unsigned short>(0x40 | 0x3f | kPc[t] << 8 | (t % 4) << 10);
  }

  pthread_t th[kThreads];
  for (int t = 1; t < kThreads; t++) {
    int err = pthread_create(&th[t], nullptr, worker, reinterpret_cast<void*>(static_cast<intptr_t>(t)));
    if (err) fail("pthread_create: %s", strerror(err));
  }
  timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (g_ready.load() < kWorkers) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > 30) fail("only %d of %d workers started within 30 s", g_ready.load(), kWorkers);
    timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  test_msg("threads: %s, %s, %s, %s, %s", kind_name(g_kind[0]), kind_name(g_kind[1]), kind_name(g_kind[2]),
           kind_name(g_kind[3]), kind_name(g_kind[4]));

  run(0);  // prints READY, loops until SIGTERM
  g_stop.store(1);
  timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_sec += 30;
  for (int t = 1; t < kThreads; t++) {
    int err = pthread_timedjoin_np(th[t], nullptr, &abs);
    if (err) fail("joining thread %d (%s): %s", t, kind_name(g_kind[t]), strerror(err));
  }

  bool ok = true;
  for (int t = 0; t < kThreads; t++) {
    const State& s = g_state[t];
    const Kind k = g_kind[t];
    if (s.mxcsr_after != s.mxcsr)
      report("thread %d: MXCSR %#x, want %#x", t, s.mxcsr_after, s.mxcsr), ok = false;
    if (s.fcw_after != s.fcw) report("thread %d: x87 control word %#x, want %#x", t, s.fcw_after, s.fcw), ok = false;
    const int w = width(k), lanes = w * accumulators(k);
    int bad_lanes = 0;
    for (int l = 0; l < lanes; l++) {
      const int e = l % w;
      uint64_t want_x = affine_pow(x0[t][l], static_cast<uint64_t>(s.a[e]), static_cast<uint64_t>(s.b[e]),
                                   static_cast<uint64_t>(s.p[e]), s.n);
      if (s.x[l] != static_cast<double>(want_x) && bad_lanes++ < 4)
        report("thread %d (%s) lane %d (register %d element %d) after %lu steps: %.1f, want %lu", t,
                 kind_name(k), l, l / w, e, (unsigned long)s.n, s.x[l], (unsigned long)want_x);
    }
    if (bad_lanes) ok = false;
    test_msg("thread %d (%s): %lu steps", t, kind_name(k), (unsigned long)s.n);
  }
  if (!ok) fail("FPU state differs (see above)");
  pass();
}
