// rseq: restartable sequences registrations survive, and a critical
// section interrupted by the dump is aborted, as the kernel would.
//
// Default: glibc registers every thread (its area at __rseq_offset from the
// thread pointer, signature RSEQ_SIG). With --own-rseq the program re-execs
// itself with GLIBC_TUNABLES=glibc.pthread.rseq=0 and the spinner thread S
// registers an area of its own with another signature.
//
// S sits in a critical section (x86-64 asm below) across the dump: it reads
// `epoch` at the start and spins until `stop`, then commits what it read.
// Its abort handler counts and starts over. After restore the main thread
// sets epoch 2 and signals S: delivering a signal aborts a critical section
// whose registration is live (rseq_cs set, ip inside), so S starts over and
// commits 2. If the restored S were still inside the section with its
// rseq_cs gone (cleared when the dump or the restore ran code in the thread),
// it would commit the stale 1.
// Each registered thread then checks its registration: re-registering the
// same area, length and signature says EBUSY (EPERM: another signature,
// EINVAL: another area); cpu_id_start and cpu_id are the CPU getcpu() says,
// also after sched_setaffinity() moved it to another CPU.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "zdtm.h"

namespace {

constexpr uint32_t kOwnSig = 0x4b434b43;  // "CKCK": not glibc's
bool g_own = false;
volatile int g_ok = 1;

struct alignas(32) Area {
  uint32_t cpu_id_start;
  uint32_t cpu_id;
  uint64_t rseq_cs;
  uint32_t flags;
  uint32_t pad[3];
};
Area g_own_area;

volatile int g_stop = 0, g_started = 0, g_sig_seen = 0;
volatile long g_epoch = 1, g_aborts = 0;
long g_seen = 0;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[400];
  int off = snprintf(buf, sizeof(buf), "FAIL: [tid %ld] ", syscall(SYS_gettid));
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
  va_end(ap);
  printf("%s\n", buf);
  g_ok = 0;
}

// The critical section: [1, 2) with the commit (the store of `seen`) last;
// abort handler at 4, preceded by the signature.
template <uint32_t Sig>
long spin_cs(Area* area, volatile int* stop, volatile long* epoch, volatile long* aborts) {
  long seen = 0;
  long out = 0;
  asm volatile(
      ".pushsection .data, \"aw\"\n"
      ".balign 32\n"
      "3:\n"
      ".long 0, 0\n"          // version, flags
      ".quad 1f, 2f - 1f, 4f\n"  // start_ip, post_commit_offset, abort_ip
      ".popsection\n"
      "0:\n"
      "leaq 3b(%%rip), %%rax\n"
      "movq %%rax, 8(%[area])\n"  // area->rseq_cs = &cs
      "1:\n"
      "movq (%[epoch]), %[seen]\n"
      "5:\n"
      "cmpl $0, (%[stop])\n"
      "je 5b\n"
      "movq %[seen], %[out]\n"  // commit
      "2:\n"
      "movq $0, 8(%[area])\n"
      "jmp 6f\n"
      ".long %c[sig]\n"
      "4:\n"
      "incq (%[aborts])\n"
      "jmp 0b\n"
      "6:\n"
      : [seen] "=&r"(seen), [out] "=m"(out)
      : [area] "r"(area), [stop] "r"(stop), [epoch] "r"(epoch), [aborts] "r"(aborts), [sig] "i"(Sig)
      : "rax", "memory", "cc");
  return out;
}

Area* my_area() {
  if (g_own) return &g_own_area;
  return reinterpret_cast<Area*>(static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
}
uint32_t my_sig() { return g_own ? kOwnSig : RSEQ_SIG; }
uint32_t my_len() { return g_own ? 32 : (__rseq_size < 32 ? 32 : __rseq_size); }

// The CPU getcpu() says, with cpu_id_start and cpu_id read around it equal.
void check_cpu(const char* when) {
  Area* a = my_area();
  for (int i = 0; i < 1000; i++) {
    uint32_t s1 = __atomic_load_n(&a->cpu_id_start, __ATOMIC_SEQ_CST);
    uint32_t c1 = __atomic_load_n(&a->cpu_id, __ATOMIC_SEQ_CST);
    unsigned cpu = ~0u;
    syscall(SYS_getcpu, &cpu, nullptr, nullptr);
    uint32_t c2 = __atomic_load_n(&a->cpu_id, __ATOMIC_SEQ_CST);
    if (s1 == cpu && c1 == cpu && c2 == cpu) return;
    if (i == 999)
      bad("%s: rseq cpu_id_start %d, cpu_id %d, getcpu %u", when, int32_t(s1), int32_t(c1), cpu);
  }
}

// Re-registering what is registered says EBUSY; then the CPU fields work,
// also after a move to another CPU.
void check_registration(const char* who) {
  long r = syscall(SYS_rseq, my_area(), my_len(), 0, my_sig());
  if (r != -1 || errno != EBUSY)
    bad("%s: rseq(area, %u, 0, %#x) = %ld (%s), want EBUSY: the registration differs", who, my_len(),
        my_sig(), r, r < 0 ? strerror(errno) : "registered anew");
  check_cpu(who);
  cpu_set_t all;
  if (sched_getaffinity(0, sizeof(all), &all)) return bad("sched_getaffinity: %s", strerror(errno));
  unsigned cur = ~0u;
  syscall(SYS_getcpu, &cur, nullptr, nullptr);
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &all) || unsigned(cpu) == cur) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one)) return bad("sched_setaffinity: %s", strerror(errno));
    char when[64];
    snprintf(when, sizeof(when), "%s, moved to CPU %d", who, cpu);
    check_cpu(when);
    if (my_area()->cpu_id != uint32_t(cpu)) bad("%s: cpu_id %u, want %d", when, my_area()->cpu_id, cpu);
    sched_setaffinity(0, sizeof(all), &all);
    break;
  }
}

void on_usr1(int) { g_sig_seen = 1; }

void* spinner(void*) {
  if (g_own) {
    if (syscall(SYS_rseq, &g_own_area, 32, 0, kOwnSig)) {
      bad("rseq register: %s", strerror(errno));
      return nullptr;
    }
  }
  g_started = 1;
  g_seen = g_own ? spin_cs<kOwnSig>(my_area(), &g_stop, &g_epoch, &g_aborts)
                 : spin_cs<RSEQ_SIG>(my_area(), &g_stop, &g_epoch, &g_aborts);
  check_registration("S");
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  g_own = argc > 1 && strcmp(argv[1], "--own-rseq") == 0;
  const char* tun = getenv("GLIBC_TUNABLES");
  if (g_own && (!tun || strcmp(tun, "glibc.pthread.rseq=0") != 0)) {
    setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
    execv("/proc/self/exe", argv);
    fail("re-exec: %s", strerror(errno));
  }
  test_init(argc, argv);
  setvbuf(stdout, nullptr, _IONBF, 0);
  if (g_own && __rseq_size != 0) fail("glibc still registered rseq (__rseq_size %u)", __rseq_size);
  if (!g_own && __rseq_size == 0) fail("glibc did not register rseq here (is it disabled?)");
  struct sigaction sa = {};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  // Only the main thread takes SIGTERM.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  pthread_t s;
  if (pthread_create(&s, nullptr, spinner, nullptr)) fail("pthread_create");
  pthread_sigmask(SIG_UNBLOCK, &term, nullptr);
  for (int i = 0; i < 30000 && !g_started; i++) usleep(1000);
  if (!g_started) fail("the spinner did not start");
  usleep(20000);  // well inside its section
  if (!g_own) check_registration("main, before");
  if (!g_ok) fail("setup");
  test_msg("%s registration, spinner in its critical section (%ld aborts so far)", g_own ? "own" : "glibc's",
           g_aborts);

  test_ready();
  test_wait();

  long aborts_before = g_aborts;
  __atomic_store_n(&g_epoch, 2, __ATOMIC_SEQ_CST);
  // A signal delivered inside the section aborts it (rseq_signal_deliver).
  if (pthread_kill(s, SIGUSR1)) fail("pthread_kill: %s", strerror(errno));
  for (int i = 0; i < 30000 && !g_sig_seen; i++) usleep(1000);
  if (!g_sig_seen) fail("the spinner did not take SIGUSR1 within 30 s");
  g_stop = 1;
  pthread_join(s, nullptr);
  if (g_seen != 2)
    bad("the spinner committed epoch %ld read before the restore: its critical section was not aborted "
        "(aborts %ld before the signal, %ld after)",
        g_seen, aborts_before, g_aborts);
  if (!g_own) check_registration("main");
  if (!g_ok) fail("rseq differs (see above)");
  pass();
}
