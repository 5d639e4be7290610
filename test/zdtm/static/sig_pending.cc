// sig_pending: blocked signals pending at the dump, process-wide and
// thread-directed, from this process and from another (by then dead) one.
//
// Process-wide (shared queue; both threads block them):
//   SIGUSR2     sigqueue twice (values V1, V2): one instance, V1's siginfo
//   SIGWINCH    kill(): SI_USER
//   SIGRTMIN+2  sigqueue V3 (self), V5 (the child), V4 (self): three
//               instances in exactly that order
//   SIGRTMIN+5  sigqueue V7 from the child
// Thread-directed to the worker thread T (its private queue):
//   SIGUSR1     tgkill: SI_TKILL
//   SIGUSR2     tgkill: SI_TKILL (distinct from the shared SIGUSR2)
//   SIGRTMIN+3  pthread_sigqueue V8, V9: both, in order
// Values are full 64-bit sival_ptr. The child that sent V5 and V7 exited
// and was reaped before READY, so only its pid (si_pid) remains.
//
// After SIGTERM: /proc/self/status ShdPnd, each task's SigPnd and SigBlk,
// and rt_sigpending() in both threads show exactly these sets. The main
// thread unblocks the shared set (every handler's sa_mask holds all test
// signals, so they run one at a time in the kernel's dequeue order) and
// checks the sequence of (signo, si_code, si_pid, si_uid, si_value). Then
// T unblocks its private ones and checks its own sequence, and that nothing
// is pending anywhere afterwards.
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

struct Delivery {
  int signo, code;
  pid_t pid;
  uid_t uid;
  uint64_t value;
};

constexpr int kLog = 32;
thread_local Delivery t_log[kLog];
thread_local int t_count;
thread_local const char* g_who = "main";
bool g_ok = true;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s] ", g_who);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  va_end(ap);
  size_t len = off + (n < 0 ? 0 : n);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
  g_ok = false;
}

void on_signal(int sig, siginfo_t* si, void*) {
  if (t_count < kLog)
    t_log[t_count] = {sig, si->si_code, si->si_pid, si->si_uid, reinterpret_cast<uint64_t>(si->si_value.sival_ptr)};
  t_count++;
}

uint64_t bit(int sig) { return 1ull << (sig - 1); }
uint64_t kernel_pending() {
  uint64_t m = 0;
  syscall(SYS_rt_sigpending, &m, sizeof(m));
  return m;
}
uint64_t kernel_mask() {
  uint64_t m = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &m, sizeof(m));
  return m;
}
void set_mask(int how, uint64_t m) {
  if (syscall(SYS_rt_sigprocmask, how, &m, nullptr, sizeof(m))) fail("rt_sigprocmask: %s", strerror(errno));
}

std::string status_field(const char* path, const char* field) {
  std::string text = "\n" + zdtm_read_file(path);
  std::string key = std::string("\n") + field + ":";
  size_t p = text.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) p++;
  return text.substr(p, text.find('\n', p) - p);
}

void expect_hex(const char* what, const std::string& have, uint64_t want) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016lx", (unsigned long)want);
  if (have != buf) bad("%s is %s, want %s", what, have.c_str(), buf);
}

std::string describe(const Delivery& d) {
  char buf[160];
  snprintf(buf, sizeof(buf), "{signo %d code %d pid %d uid %u value %#lx}", d.signo, d.code, d.pid, d.uid,
           (unsigned long)d.value);
  return buf;
}

void check_log(const std::vector<Delivery>& want) {
  if (t_count != static_cast<int>(want.size())) bad("%d signals delivered, want %zu", t_count, want.size());
  for (int i = 0; i < t_count && i < kLog; i++) {
    const Delivery& d = t_log[i];
    if (i >= static_cast<int>(want.size())) {
      bad("extra delivery %d: %s", i, describe(d).c_str());
      continue;
    }
    const Delivery& w = want[i];
    if (d.signo != w.signo || d.code != w.code || d.pid != w.pid || d.uid != w.uid || d.value != w.value)
      bad("delivery %d: %s, want %s", i, describe(d).c_str(), describe(w).c_str());
  }
}

// Values: distinct in all 64 bits.
constexpr uint64_t V1 = 0x1111000000000001, V2 = 0x2222000000000002, V3 = 0x3333000000000003,
                   V4 = 0x4444000000000004, V5 = 0x5555000000000005, V7 = 0x7777000000000007,
                   V8 = 0x8888000000000008, V9 = 0x9999000000000009;

int g_rt2, g_rt3, g_rt5;
uint64_t g_shared_set, g_private_set;
pid_t g_pid, g_child;
std::atomic<int> g_worker_ready{0}, g_go{0};
std::atomic<pid_t> g_worker_tid{0};

long futex(std::atomic<int>* a, int op, int v) {
  return syscall(SYS_futex, reinterpret_cast<int*>(a), op, v, nullptr, nullptr, 0);
}

void sq(pid_t pid, int sig, uint64_t v) {
  sigval sv;
  sv.sival_ptr = reinterpret_cast<void*>(v);
  if (sigqueue(pid, sig, sv)) fail("sigqueue(%d, %d): %s", pid, sig, strerror(errno));
}

void* worker(void*) {
  g_who = "thread T";
  // All test signals plus SIGTERM (which is for the main thread only).
  set_mask(SIG_SETMASK, g_shared_set | g_private_set | bit(SIGTERM));
  g_worker_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  g_worker_ready.store(1);
  while (!g_go.load()) futex(&g_go, FUTEX_WAIT_PRIVATE, 0);

  // The main thread has taken the shared signals: only ours are left.
  if (kernel_pending() != g_private_set)
    bad("rt_sigpending %#lx, want %#lx", (unsigned long)kernel_pending(), (unsigned long)g_private_set);
  if (kernel_mask() != (g_shared_set | g_private_set | bit(SIGTERM)))
    bad("blocked mask %#lx, want %#lx", (unsigned long)kernel_mask(),
        (unsigned long)(g_shared_set | g_private_set | bit(SIGTERM)));
  set_mask(SIG_UNBLOCK, g_private_set);
  check_log({{SIGUSR1, SI_TKILL, g_pid, 0, 0},
             {SIGUSR2, SI_TKILL, g_pid, 0, 0},
             {g_rt3, SI_QUEUE, g_pid, 0, V8},
             {g_rt3, SI_QUEUE, g_pid, 0, V9}});
  if (kernel_pending() != 0) bad("still pending afterwards: %#lx", (unsigned long)kernel_pending());
  return g_ok ? nullptr : reinterpret_cast<void*>(1);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_pid = getpid();
  g_rt2 = SIGRTMIN + 2, g_rt3 = SIGRTMIN + 3, g_rt5 = SIGRTMIN + 5;
  g_shared_set = bit(SIGUSR2) | bit(SIGWINCH) | bit(g_rt2) | bit(g_rt5);
  g_private_set = bit(SIGUSR1) | bit(SIGUSR2) | bit(g_rt3);

  struct sigaction sa = {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGUSR1, SIGUSR2, SIGWINCH, g_rt2, g_rt3, g_rt5}) sigaddset(&sa.sa_mask, s);
  for (int s : {SIGUSR1, SIGUSR2, SIGWINCH, g_rt2, g_rt3, g_rt5})
    if (sigaction(s, &sa, nullptr)) fail("sigaction(%d): %s", s, strerror(errno));

  set_mask(SIG_BLOCK, g_shared_set);
  pthread_t th;
  if (int err = pthread_create(&th, nullptr, worker, nullptr)) fail("pthread_create: %s", strerror(err));
  for (int i = 0; !g_worker_ready.load(); i++) {
    if (i > 30000) fail("worker thread did not start within 30 s");
    timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  const pid_t tid = g_worker_tid.load();

  sq(g_pid, SIGUSR2, V1);
  sq(g_pid, SIGUSR2, V2);  // coalesced: a standard signal is pending at most once
  kill(g_pid, SIGWINCH);
  sq(g_pid, g_rt2, V3);
  g_child = fork();
  if (g_child < 0) fail("fork: %s", strerror(errno));
  if (g_child == 0) {
    sigval a, b;
    a.sival_ptr = reinterpret_cast<void*>(V5);
    b.sival_ptr = reinterpret_cast<void*>(V7);
    _exit(sigqueue(g_pid, g_rt2, a) || sigqueue(g_pid, g_rt5, b) ? 1 : 0);
  }
  int st;
  for (int i = 0;; i++) {
    pid_t r = waitpid(g_child, &st, WNOHANG);
    if (r == g_child) break;
    if (r < 0 && errno != EINTR) fail("waitpid: %s", strerror(errno));
    if (i > 30000) fail("the sender child did not exit within 30 s");
    timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("the sender child failed (status %#x)", st);
  sq(g_pid, g_rt2, V4);
  if (syscall(SYS_tgkill, g_pid, tid, SIGUSR1)) fail("tgkill SIGUSR1: %s", strerror(errno));
  if (syscall(SYS_tgkill, g_pid, tid, SIGUSR2)) fail("tgkill SIGUSR2: %s", strerror(errno));
  for (uint64_t v : {V8, V9}) {
    sigval sv;
    sv.sival_ptr = reinterpret_cast<void*>(v);
    if (int err = pthread_sigqueue(th, g_rt3, sv)) fail("pthread_sigqueue: %s", strerror(err));
  }

  char task_status[64], main_status[64];
  snprintf(task_status, sizeof(task_status), "/proc/self/task/%d/status", tid);
  snprintf(main_status, sizeof(main_status), "/proc/self/task/%d/status", g_pid);
  expect_hex("ShdPnd before the dump", status_field("/proc/self/status", "ShdPnd"), g_shared_set);
  expect_hex("thread T SigPnd before the dump", status_field(task_status, "SigPnd"), g_private_set);
  if (!g_ok) fail("pending signals not as designed before the dump");
  test_msg("pending: shared %#lx, thread %d private %#lx; sender child was pid %d", (unsigned long)g_shared_set,
           tid, (unsigned long)g_private_set, g_child);
  test_ready();
  test_wait();

  if (syscall(SYS_gettid) != g_pid) bad("main gettid changed");
  expect_hex("ShdPnd", status_field("/proc/self/status", "ShdPnd"), g_shared_set);
  expect_hex("main SigPnd", status_field(main_status, "SigPnd"), 0);
  expect_hex("main SigBlk", status_field(main_status, "SigBlk"), g_shared_set);
  expect_hex("thread T SigPnd", status_field(task_status, "SigPnd"), g_private_set);
  expect_hex("thread T SigBlk", status_field(task_status, "SigBlk"), g_shared_set | g_private_set | bit(SIGTERM));
  if (kernel_pending() != g_shared_set)
    bad("rt_sigpending %#lx, want %#lx", (unsigned long)kernel_pending(), (unsigned long)g_shared_set);

  set_mask(SIG_UNBLOCK, g_shared_set);
  check_log({{SIGUSR2, SI_QUEUE, g_pid, 0, V1},
             {SIGWINCH, SI_USER, g_pid, 0, 0},
             {g_rt2, SI_QUEUE, g_pid, 0, V3},
             {g_rt2, SI_QUEUE, g_child, 0, V5},
             {g_rt2, SI_QUEUE, g_pid, 0, V4},
             {g_rt5, SI_QUEUE, g_child, 0, V7}});
  if (kernel_pending() != 0) bad("still pending after unblocking: %#lx", (unsigned long)kernel_pending());
  expect_hex("ShdPnd afterwards", status_field("/proc/self/status", "ShdPnd"), 0);

  g_go.store(1);
  futex(&g_go, FUTEX_WAKE_PRIVATE, INT_MAX);
  timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_sec += 30;
  void* ret = nullptr;
  if (int err = pthread_timedjoin_np(th, &ret, &abs)) fail("joining thread T: %s", strerror(err));
  if (!g_ok || ret) fail("pending signals differ (see above)");
  pass();
}
