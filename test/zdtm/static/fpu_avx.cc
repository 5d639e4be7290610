// fpu_avx: a tight loop that keeps its whole state in vector registers
// (4 ymm + 2 xmm accumulators with AVX, 6 xmm with SSE only or --sse) until
// SIGTERM, plus a non-default MXCSR. Each double lane runs an exact affine
// congruential map x -> (a*x + b) mod p with integer values (< 2^50, so
// every double operation is exact). The map is a bijection, so a corrupted
// register never "heals". After the loop, every lane must equal f^n(x0)
// computed independently with integer arithmetic by fast exponentiation.
#include <immintrin.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr int kLanes = 20;  // 4 ymm * 4 + 2 xmm * 2, or 6 xmm * 2 + 8 unused
const uint64_t kPrimes[] = {33554393, 33554383, 33554371, 33554347,
                            33554341, 33554317, 33554291, 33554273};
// Round toward zero, flush-to-zero, denormals-are-zero, all exceptions masked.
constexpr unsigned kMxcsr = 0x1f80 | 0x6000 | 0x8000 | 0x0040;
constexpr unsigned kMxcsrFlags = 0x3f;  // sticky exception status bits

struct alignas(32) State {
  double x[kLanes], a[kLanes], b[kLanes], p[kLanes], inv_p[kLanes];
};

// One step of the map on two lanes. floor(t/p) via truncating conversion
// (values are positive and < 2^31 after division); off by at most one,
// fixed by the two corrections.
inline __m128d step128(__m128d x, __m128d a, __m128d b, __m128d p, __m128d ip) {
  __m128d t = _mm_add_pd(_mm_mul_pd(x, a), b);
  __m128d q = _mm_cvtepi32_pd(_mm_cvttpd_epi32(_mm_mul_pd(t, ip)));
  __m128d r = _mm_sub_pd(t, _mm_mul_pd(q, p));
  r = _mm_add_pd(r, _mm_and_pd(_mm_cmplt_pd(r, _mm_setzero_pd()), p));
  return _mm_sub_pd(r, _mm_and_pd(_mm_cmpge_pd(r, p), p));
}

__attribute__((target("avx"), always_inline)) inline __m256d step256(__m256d x, __m256d a,
                                                                     __m256d b, __m256d p,
                                                                     __m256d ip) {
  __m256d t = _mm256_add_pd(_mm256_mul_pd(x, a), b);
  __m256d q = _mm256_round_pd(_mm256_mul_pd(t, ip), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_sub_pd(t, _mm256_mul_pd(q, p));
  r = _mm256_add_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, _mm256_setzero_pd(), _CMP_LT_OQ), p));
  return _mm256_sub_pd(r, _mm256_and_pd(_mm256_cmp_pd(r, p, _CMP_GE_OQ), p));
}

// Lanes 0..15 in ymm (shared constants from lanes 0..3), 16..19 in xmm.
__attribute__((target("avx"), noinline)) uint64_t run_avx(State* s) {
  const __m256d a = _mm256_load_pd(s->a), b = _mm256_load_pd(s->b), p = _mm256_load_pd(s->p),
                ip = _mm256_load_pd(s->inv_p);
  const __m128d xa = _mm_load_pd(s->a + 16), xb = _mm_load_pd(s->b + 16),
                xp = _mm_load_pd(s->p + 16), xip = _mm_load_pd(s->inv_p + 16);
  __m256d y0 = _mm256_load_pd(s->x), y1 = _mm256_load_pd(s->x + 4), y2 = _mm256_load_pd(s->x + 8),
          y3 = _mm256_load_pd(s->x + 12);
  __m128d x0 = _mm_load_pd(s->x + 16), x1 = _mm_load_pd(s->x + 18);
  uint64_t n = 0;
  while (!test_stopped()) {
    y0 = step256(y0, a, b, p, ip);
    y1 = step256(y1, a, b, p, ip);
    y2 = step256(y2, a, b, p, ip);
    y3 = step256(y3, a, b, p, ip);
    x0 = step128(x0, xa, xb, xp, xip);
    x1 = step128(x1, xa, xb, xp, xip);
    n++;
  }
  _mm256_store_pd(s->x, y0), _mm256_store_pd(s->x + 4, y1), _mm256_store_pd(s->x + 8, y2);
  _mm256_store_pd(s->x + 12, y3), _mm_store_pd(s->x + 16, x0), _mm_store_pd(s->x + 18, x1);
  return n;
}

// SSE only: lanes 0..11 in 6 xmm accumulators sharing lanes 0..1's constants.
__attribute__((noinline)) uint64_t run_sse(State* s) {
  const __m128d a = _mm_load_pd(s->a), b = _mm_load_pd(s->b), p = _mm_load_pd(s->p),
                ip = _mm_load_pd(s->inv_p);
  __m128d v[6];
  for (int i = 0; i < 6; i++) v[i] = _mm_load_pd(s->x + 2 * i);
  __m128d v0 = v[0], v1 = v[1], v2 = v[2], v3 = v[3], v4 = v[4], v5 = v[5];
  uint64_t n = 0;
  while (!test_stopped()) {
    v0 = step128(v0, a, b, p, ip);
    v1 = step128(v1, a, b, p, ip);
    v2 = step128(v2, a, b, p, ip);
    v3 = step128(v3, a, b, p, ip);
    v4 = step128(v4, a, b, p, ip);
    v5 = step128(v5, a, b, p, ip);
    n++;
  }
  _mm_store_pd(s->x, v0), _mm_store_pd(s->x + 2, v1), _mm_store_pd(s->x + 4, v2);
  _mm_store_pd(s->x + 6, v3), _mm_store_pd(s->x + 8, v4), _mm_store_pd(s->x + 10, v5);
  return n;
}

// The affine map x -> a*x + b (mod p) composed n times, in integers.
uint64_t affine_pow(uint64_t x, uint64_t a, uint64_t b, uint64_t p, uint64_t n) {
  uint64_t ra = 1, rb = 0;  // accumulated map: x -> ra*x + rb
  while (n) {
    if (n & 1) {  // result = (a,b) after result
      rb = (a * rb + b) % p;
      ra = (a * ra) % p;
    }
    b = (a * b + b) % p;  // (a,b) after (a,b)
    a = (a * a) % p;
    n >>= 1;
  }
  return (ra * x + rb) % p;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool avx = __builtin_cpu_supports("avx") && !(argc > 1 && strcmp(argv[1], "--sse") == 0);
  const uint64_t seed = zdtm_seed();
  // Lane l uses the constants of its "constant lane" c (see run_avx/run_sse).
  auto const_lane = [avx](int l) { return avx ? (l < 16 ? l % 4 : 16 + l % 2) : l % 2; };
  static State s;
  uint64_t x0[kLanes];
  for (int l = 0; l < kLanes; l++) {
    uint64_t p = kPrimes[l % 8];
    s.p[l] = static_cast<double>(p);
    s.inv_p[l] = 1.0 / s.p[l];
    s.a[l] = static_cast<double>(2 + zdtm_mix(seed, l) % (p - 3));
    s.b[l] = static_cast<double>(zdtm_mix(seed, 100 + l) % p);
  }
  for (int l = 0; l < kLanes; l++) {
    x0[l] = zdtm_mix(seed, 200 + l) % static_cast<uint64_t>(s.p[const_lane(l)]);
    s.x[l] = static_cast<double>(x0[l]);
  }
  _mm_setcsr(kMxcsr);
  test_msg("using %s", avx ? "AVX (ymm + xmm)" : "SSE (xmm)");
  test_ready();

  uint64_t n = avx ? run_avx(&s) : run_sse(&s);

  unsigned csr = _mm_getcsr() & ~kMxcsrFlags;
  if (csr != kMxcsr) fail("MXCSR %#x, want %#x", csr, kMxcsr);
  const int used = avx ? kLanes : 12;
  for (int l = 0; l < used; l++) {
    int c = const_lane(l);
    uint64_t want = affine_pow(x0[l], static_cast<uint64_t>(s.a[c]), static_cast<uint64_t>(s.b[c]),
                               static_cast<uint64_t>(s.p[c]), n);
    if (s.x[l] != static_cast<double>(want))
      fail("lane %d after %lu iterations: got %.17g want %lu", l, (unsigned long)n, s.x[l],
           (unsigned long)want);
  }
  test_msg("%lu iterations", (unsigned long)n);
  pass();
}
