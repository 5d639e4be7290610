// cow_snapshot: memory written without pause across the dump is saved as it
// was at one instant, the one the registers were saved at (issue 11 item 3:
// with --leave-running the pages are written from a copy-on-write snapshot
// while the program runs on).
//
// A writer thread rewrites a 32 MiB private anonymous block in passes: pass
// v stores val(v, p) in three words of each page p, in page order, and
// after each page publishes its progress (v, next page) in one 64-bit
// store. Before writing a page it checks that the page still holds the
// previous pass's values. So at any instant pages before `next` hold pass
// v, pages after it pass v - 1 (the page at `next` may be half written).
// An image whose pages were read at another instant than the thread's
// registers and progress word breaks that: the writer finds it when it
// comes to such a page, the final check (the writer stopped at a page
// boundary) finds the rest. Checked in the original after a dump -R and in
// the restored copy.
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "zdtm.h"

namespace {

constexpr size_t kPage = 4096, kPages = 8192;  // 32 MiB
constexpr size_t kWords[] = {0, 256, 511};
constexpr uint64_t kNextBits = 20;  // kPages < 2^20

uint8_t* g_mem;
uint64_t g_seed;
std::atomic<uint64_t> g_state{0};  // version << kNextBits | next page
std::atomic<bool> g_stop{false};
// The first page the writer found wrong: its pass, page, word and value.
std::atomic<uint64_t> g_bad_pass{0}, g_bad_page{0}, g_bad_word{0}, g_bad_value{0};

uint64_t val(uint64_t v, size_t p) { return zdtm_mix(g_seed + v, p); }
uint64_t* word(size_t p, size_t w) { return reinterpret_cast<uint64_t*>(g_mem + p * kPage) + w; }

void* writer(void*) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  for (;;) {
    uint64_t s = g_state.load(std::memory_order_relaxed);
    uint64_t v = s >> kNextBits;
    size_t p = size_t(s & ((1u << kNextBits) - 1));
    if (g_stop.load(std::memory_order_relaxed)) return nullptr;
    for (size_t w : kWords) {
      uint64_t got = *word(p, w);
      if (got != val(v - 1, p)) {
        g_bad_pass = v, g_bad_page = p, g_bad_word = w, g_bad_value = got;
        return nullptr;
      }
    }
    for (size_t w : kWords) *word(p, w) = val(v, p);
    s = p + 1 == kPages ? (v + 1) << kNextBits : (v << kNextBits) | (p + 1);
    g_state.store(s, std::memory_order_release);
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  void* m =
      mmap(nullptr, kPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail("mmap: %m");
  g_mem = static_cast<uint8_t*>(m);
  for (size_t p = 0; p < kPages; p++)
    for (size_t w : kWords) *word(p, w) = val(0, p);
  g_state = uint64_t(1) << kNextBits;
  pthread_t t;
  if (pthread_create(&t, nullptr, writer, nullptr) != 0) fail("pthread_create");
  // One whole pass before READY: the dump finds the writer in its stride.
  for (int i = 0; (g_state >> kNextBits) < 2; i++) {
    if (i == 600000 || g_bad_pass) fail("the writer does not get through its first pass");
    usleep(100);
  }
  test_ready();
  test_wait();
  g_stop = true;
  pthread_join(t, nullptr);
  if (g_bad_pass)
    fail("pass %lu: page %lu word %lu holds %#lx, not pass %lu's value", (unsigned long)g_bad_pass,
         (unsigned long)g_bad_page, (unsigned long)g_bad_word, (unsigned long)g_bad_value,
         (unsigned long)g_bad_pass - 1);
  uint64_t s = g_state;
  uint64_t v = s >> kNextBits;
  size_t next = size_t(s & ((1u << kNextBits) - 1));
  for (size_t p = 0; p < kPages; p++)
    for (size_t w : kWords) {
      uint64_t want = val(p < next ? v : v - 1, p);
      if (*word(p, w) != want)
        fail("at pass %lu page %lu: page %lu word %lu is not from pass %lu", (unsigned long)v,
             (unsigned long)next, (unsigned long)p, (unsigned long)w,
             (unsigned long)(p < next ? v : v - 1));
    }
  test_msg("writer at pass %lu page %lu", (unsigned long)v, (unsigned long)next);
  pass();
}
