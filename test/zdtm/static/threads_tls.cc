// threads_tls: 200 threads, each with its own kernel-visible and
// thread-local state, caught at the dump in different places: 4 spin in
// user space (an LCG in registers), the rest sleep in FUTEX_WAIT (no
// timeout), FUTEX_WAIT with a 50 ms timeout, or nanosleep(30 ms) loops.
//
// Each worker i sets up, then verifies after SIGTERM, from inside:
//   - gettid() equal to the tid it had (and pthread_self() unchanged);
//   - the FS base (arch_prctl ARCH_GET_FS), a thread_local value mix(seed,i)
//     at the same address, a thread_local index;
//   - its blocked mask exactly (raw rt_sigprocmask: SIGTERM, 8 realtime
//     signals encoding i, SIGHUP / SIGWINCH for some), nothing pending;
//   - its sigaltstack (every third thread: own mmap'd stack of a distinct
//     size, half of them SS_AUTODISARM; the others SS_DISABLE), and that a
//     SIGUSR1 sent to itself runs its SA_ONSTACK handler on that stack;
//   - its name (PR_GET_NAME "wNNN"), its robust futex list head;
//   - 64 words on its own stack, and for spinners the LCG state against
//     the closed form for the iteration count.
// The main thread checks from outside: /proc/self/task holds exactly the
// recorded tids, each task's comm and SigBlk (status) match, then wakes the
// workers and joins each with a 30 s timeout (a lost clear_child_tid shows
// as a thread gone from /proc that never joins).
#include <asm/prctl.h>
#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "zdtm.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)  // linux/signal.h; glibc 2.36 lacks it
#endif

namespace {

constexpr int kThreads = 200;
constexpr int kStackWords = 64;
constexpr double kJoinTimeout = 30;

enum Mode { kSpin, kFutex, kFutexTimed, kNanosleep };

struct Slot {
  pid_t tid;
  pthread_t self;
  unsigned long fs_base;
  const void* tls_addr;
  void* robust_head;
  size_t robust_len;
  uint64_t mask;  // expected blocked set, bit (sig - 1)
  bool has_alt;
  void* alt_sp;
  size_t alt_size;
  int alt_flags;
  Mode mode;
};

uint64_t g_seed;
Slot g_slots[kThreads];
pthread_t g_threads[kThreads];
std::atomic<int> g_ready{0}, g_setup_failed{0};
std::atomic<int> g_stop{0};  // futex word

thread_local volatile uint64_t t_value;
thread_local volatile int t_index = -1;
thread_local volatile int t_handler_ran, t_handler_onstack;
thread_local const Slot* t_slot;

Mode mode_of(int i) { return i % 50 == 0 ? kSpin : static_cast<Mode>(1 + (i / 3) % 3); }
const char* mode_name(Mode m) {
  return m == kSpin ? "spin" : m == kFutex ? "futex" : m == kFutexTimed ? "futex-timed" : "nanosleep";
}

uint64_t sigbit(int sig) { return 1ull << (sig - 1); }

uint64_t mask_of(int i) {
  uint64_t m = sigbit(SIGTERM);
  for (int b = 0; b < 8; b++)
    if (i >> b & 1) m |= sigbit(SIGRTMIN + 4 + b);
  if (i % 3 == 1) m |= sigbit(SIGHUP);
  if (i % 5 == 0) m |= sigbit(SIGWINCH);
  return m;
}

void to_sigset(uint64_t m, sigset_t* s) {
  sigemptyset(s);
  for (int sig = 1; sig <= 64; sig++)
    if (m & sigbit(sig)) sigaddset(s, sig);
}

uint64_t kernel_mask() {
  uint64_t m = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &m, sizeof(m));
  return m;
}

uint64_t kernel_pending() {
  uint64_t m = 0;
  syscall(SYS_rt_sigpending, &m, sizeof(m));
  return m;
}

unsigned long fs_base() {
  unsigned long v = 0;
  syscall(SYS_arch_prctl, ARCH_GET_FS, &v);
  return v;
}

long futex(std::atomic<int>* addr, int op, int val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<int*>(addr), op, val, ts, nullptr, 0);
}

void vreport(const char* fmt, va_list ap) {
  char buf[512];
  int off = t_index >= 0 ? snprintf(buf, sizeof(buf), "FAIL: [w%03d tid %ld] ", int(t_index), syscall(SYS_gettid))
                         : snprintf(buf, sizeof(buf), "FAIL: [main] ");
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  size_t len = off + (n < 0 ? 0 : n);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
}

// A failed check: printed at once (several can be), *ok cleared.
__attribute__((format(printf, 2, 3))) void wbad(bool* ok, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(fmt, ap);
  va_end(ap);
  *ok = false;
}

void on_usr1(int, siginfo_t*, void*) {
  volatile char local = 0;
  auto a = reinterpret_cast<uintptr_t>(&local);
  const Slot* s = t_slot;
  auto sp = reinterpret_cast<uintptr_t>(s ? s->alt_sp : nullptr);
  t_handler_onstack = s && s->has_alt && a >= sp && a < sp + s->alt_size;
  t_handler_ran = t_handler_ran + 1;
}

// x -> a*x + c mod 2^64, the LCG the spinners run.
constexpr uint64_t kLcgA = 6364136223846793005ull;
uint64_t lcg_pow(uint64_t x, uint64_t c, uint64_t n) {
  uint64_t a = kLcgA, ra = 1, rc = 0;
  while (n) {
    if (n & 1) {
      rc = a * rc + c;
      ra = a * ra;
    }
    c = a * c + c;
    a = a * a;
    n >>= 1;
  }
  return ra * x + rc;
}

__attribute__((noinline)) void spin(uint64_t* x, uint64_t c, uint64_t* n) {
  uint64_t v = *x, k = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    v = kLcgA * v + c;
    k++;
  }
  *x = v;
  *n = k;
}

void wait_for_stop(Mode m) {
  while (!g_stop.load()) {
    if (m == kFutex) {
      futex(&g_stop, FUTEX_WAIT_PRIVATE, 0, nullptr);
    } else if (m == kFutexTimed) {
      timespec ts = {0, 50 * 1000000L};
      futex(&g_stop, FUTEX_WAIT_PRIVATE, 0, &ts);
    } else {
      timespec ts = {0, 30 * 1000000L};
      nanosleep(&ts, nullptr);  // EINTR (a restart lost in the restore) is fine: loop
    }
  }
}

void* worker(void* arg) {
  const int i = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  Slot& s = g_slots[i];
  bool ok = true;
  t_index = i;
  t_value = zdtm_mix(g_seed, i);
  t_slot = &s;
  char name[16];
  snprintf(name, sizeof(name), "w%03d", i);
  if (prctl(PR_SET_NAME, name)) wbad(&ok, "PR_SET_NAME: %s", strerror(errno));
  sigset_t set;
  to_sigset(s.mask, &set);
  if (pthread_sigmask(SIG_SETMASK, &set, nullptr)) wbad(&ok, "pthread_sigmask failed");
  if (s.has_alt) {
    s.alt_sp = mmap(nullptr, s.alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s.alt_sp == MAP_FAILED) wbad(&ok, "mmap altstack: %s", strerror(errno));
    stack_t ss = {};
    ss.ss_sp = s.alt_sp;
    ss.ss_size = s.alt_size;
    ss.ss_flags = s.alt_flags;
    if (sigaltstack(&ss, nullptr)) wbad(&ok, "sigaltstack: %s", strerror(errno));
  }
  s.tid = static_cast<pid_t>(syscall(SYS_gettid));
  s.self = pthread_self();
  s.fs_base = fs_base();
  s.tls_addr = const_cast<const uint64_t*>(&t_value);
  if (syscall(SYS_get_robust_list, 0, &s.robust_head, &s.robust_len)) wbad(&ok, "get_robust_list: %s", strerror(errno));
  volatile uint64_t words[kStackWords];
  for (int k = 0; k < kStackWords; k++) words[k] = zdtm_mix(t_value, k);
  uint64_t x = zdtm_mix(g_seed, 1000 + i), c = zdtm_mix(g_seed, 2000 + i) | 1, n = 0;
  const uint64_t x0 = x;
  if (!ok) {
    g_setup_failed.fetch_add(1);
    return reinterpret_cast<void*>(1);
  }
  g_ready.fetch_add(1);

  if (s.mode == kSpin)
    spin(&x, c, &n);
  else
    wait_for_stop(s.mode);

  // ---- verify ----
  if (syscall(SYS_gettid) != s.tid) wbad(&ok, "gettid %ld, want %d", syscall(SYS_gettid), s.tid);
  if (!pthread_equal(pthread_self(), s.self)) wbad(&ok, "pthread_self changed");
  if (fs_base() != s.fs_base) wbad(&ok, "FS base %#lx, want %#lx", fs_base(), s.fs_base);
  if (t_index != i) wbad(&ok, "thread_local index %d", int(t_index));
  if (t_value != zdtm_mix(g_seed, i)) wbad(&ok, "thread_local value %#lx, want %#lx", (unsigned long)t_value, (unsigned long)zdtm_mix(g_seed, i));
  if (s.tls_addr != const_cast<const uint64_t*>(&t_value)) wbad(&ok, "thread_local at %p, was %p", (void*)&t_value, s.tls_addr);
  if (kernel_mask() != s.mask) wbad(&ok, "blocked mask %#lx, want %#lx", (unsigned long)kernel_mask(), (unsigned long)s.mask);
  if (kernel_pending() != 0) wbad(&ok, "pending signals %#lx, want none", (unsigned long)kernel_pending());
  stack_t cur = {};
  sigaltstack(nullptr, &cur);
  if (s.has_alt) {
    if (cur.ss_sp != s.alt_sp || cur.ss_size != s.alt_size || cur.ss_flags != s.alt_flags)
      wbad(&ok, "sigaltstack sp=%p size=%zu flags=%#x, want sp=%p size=%zu flags=%#x", cur.ss_sp, cur.ss_size,
           cur.ss_flags, s.alt_sp, s.alt_size, s.alt_flags);
  } else if (cur.ss_flags != SS_DISABLE) {
    wbad(&ok, "sigaltstack flags %#x sp=%p, want SS_DISABLE", cur.ss_flags, cur.ss_sp);
  }
  char now_name[17] = {};
  prctl(PR_GET_NAME, now_name);
  if (strcmp(now_name, name) != 0) wbad(&ok, "PR_GET_NAME '%s', want '%s'", now_name, name);
  void* head = nullptr;
  size_t len = 0;
  syscall(SYS_get_robust_list, 0, &head, &len);
  if (head != s.robust_head || len != s.robust_len)
    wbad(&ok, "robust list %p/%zu, want %p/%zu", head, len, s.robust_head, s.robust_len);
  for (int k = 0; k < kStackWords; k++)
    if (words[k] != zdtm_mix(zdtm_mix(g_seed, i), k)) {
      wbad(&ok, "stack word %d is %#lx", k, (unsigned long)words[k]);
      break;
    }
  if (s.mode == kSpin && x != lcg_pow(x0, c, n))
    wbad(&ok, "spinner LCG state %#lx after %lu steps, want %#lx", (unsigned long)x, (unsigned long)n,
         (unsigned long)lcg_pow(x0, c, n));
  // The SA_ONSTACK handler runs on this thread's alternate stack (if any).
  pthread_kill(pthread_self(), SIGUSR1);
  if (t_handler_ran != 1 || t_handler_onstack != (s.has_alt ? 1 : 0))
    wbad(&ok, "SIGUSR1 handler ran %d times, on altstack %d, want 1 and %d", int(t_handler_ran),
         int(t_handler_onstack), s.has_alt ? 1 : 0);
  return ok ? nullptr : reinterpret_cast<void*>(1);
}

std::string task_status_field(pid_t tid, const char* field) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
  std::string text = "\n" + zdtm_read_file(path);
  std::string key = std::string("\n") + field + ":";
  size_t p = text.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) p++;
  return text.substr(p, text.find('\n', p) - p);
}

std::set<pid_t> proc_tasks() {
  std::set<pid_t> out;
  DIR* d = opendir("/proc/self/task");
  if (!d) fail("opendir /proc/self/task: %s", strerror(errno));
  while (dirent* e = readdir(d))
    if (atoi(e->d_name) > 0) out.insert(atoi(e->d_name));
  closedir(d);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  t_value = zdtm_mix(g_seed, 999999);
  const pid_t pid = getpid();
  const unsigned long main_fs = fs_base();

  struct sigaction sa = {};
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr)) fail("sigaction(SIGUSR1): %s", strerror(errno));

  // New threads inherit the creator's mask: block SIGTERM until each sets its own.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  int alts = 0;
  for (int i = 0; i < kThreads; i++) {
    Slot& s = g_slots[i];
    s.mask = mask_of(i);
    s.mode = mode_of(i);
    s.has_alt = i % 3 == 0;
    s.alt_size = (64 + 4 * (i % 7)) * 1024;
    s.alt_flags = i % 2 == 0 ? static_cast<int>(SS_AUTODISARM) : 0;
    alts += s.has_alt;
    int err = pthread_create(&g_threads[i], nullptr, worker, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
    if (err) fail("pthread_create %d: %s", i, strerror(err));
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (g_ready.load() < kThreads) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (g_setup_failed.load()) fail("%d threads failed to set up (see above)", g_setup_failed.load());
    if (now.tv_sec - start.tv_sec > 30) fail("only %d of %d threads set up within 30 s", g_ready.load(), kThreads);
    timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  std::set<pid_t> tids = {pid};
  for (const Slot& s : g_slots) tids.insert(s.tid);
  if (tids.size() != kThreads + 1) fail("tids are not distinct");
  if (proc_tasks() != tids) fail("/proc/self/task differs from the created threads before the dump");
  test_msg("%d threads (%d with sigaltstack, 4 spinning), tids %d..%d", kThreads, alts, g_slots[0].tid,
           g_slots[kThreads - 1].tid);
  test_ready();
  test_wait();

  bool ok = true;
  if (syscall(SYS_gettid) != pid) fail("main: gettid %ld, want %d", syscall(SYS_gettid), pid);
  if (fs_base() != main_fs) fail("main: FS base %#lx, want %#lx", fs_base(), main_fs);
  if (t_value != zdtm_mix(g_seed, 999999)) fail("main: thread_local value %#lx", (unsigned long)t_value);
  std::set<pid_t> now_tasks = proc_tasks();
  if (now_tasks != tids) {
    std::string extra, missing;
    for (pid_t t : now_tasks)
      if (!tids.count(t)) extra += " " + std::to_string(t);
    for (pid_t t : tids)
      if (!now_tasks.count(t)) missing += " " + std::to_string(t);
    fail("/proc/self/task: %zu tasks, want %zu; extra:%s missing:%s", now_tasks.size(), tids.size(), extra.c_str(),
         missing.c_str());
  }
  for (int i = 0; i < kThreads; i++) {
    const Slot& s = g_slots[i];
    char want_name[16], want_blk[17];
    snprintf(want_name, sizeof(want_name), "w%03d", i);
    snprintf(want_blk, sizeof(want_blk), "%016lx", (unsigned long)s.mask);
    std::string name = task_status_field(s.tid, "Name"), blk = task_status_field(s.tid, "SigBlk"),
                tgid = task_status_field(s.tid, "Tgid");
    if (name != want_name) wbad(&ok, "task %d: Name '%s', want '%s'", s.tid, name.c_str(), want_name);
    if (blk != want_blk) wbad(&ok, "task %d (w%03d): SigBlk %s, want %s", s.tid, i, blk.c_str(), want_blk);
    if (atoi(tgid.c_str()) != pid) wbad(&ok, "task %d: Tgid %s, want %d", s.tid, tgid.c_str(), pid);
  }

  g_stop.store(1);
  futex(&g_stop, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
  timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_sec += static_cast<time_t>(kJoinTimeout);
  int failed = 0;
  for (int i = 0; i < kThreads; i++) {
    void* ret = nullptr;
    int err = pthread_timedjoin_np(g_threads[i], &ret, &abs);
    if (err == ETIMEDOUT) {
      char path[64];
      snprintf(path, sizeof(path), "/proc/self/task/%d", g_slots[i].tid);
      bool gone = access(path, F_OK) != 0;
      fail("thread w%03d (tid %d, %s) did not finish within %.0f s%s", i, g_slots[i].tid, mode_name(g_slots[i].mode),
           kJoinTimeout, gone ? ": it exited but join never saw it (clear_child_tid lost?)" : "");
    }
    if (err) fail("pthread_timedjoin_np w%03d: %s", i, strerror(err));
    failed += ret != nullptr;
  }
  if (proc_tasks().size() != 1) fail("%zu tasks left after joining all threads", proc_tasks().size());
  if (failed || !ok) fail("%d of %d threads failed their checks (see above)", failed, kThreads);
  pass();
}
