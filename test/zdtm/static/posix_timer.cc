// posix_timer: POSIX timers (raw timer_create, so ids are the kernel's).
//
//   T1  CLOCK_MONOTONIC           SIGEV_SIGNAL SIGRTMIN+1 value V1, every 250 ms
//   T2  CLOCK_REALTIME            SIGEV_SIGNAL SIGRTMIN+2 value V2, 3600 s then every 7.5 s
//   T3  CLOCK_BOOTTIME            SIGEV_NONE, 1000 s one-shot
//   T4  CLOCK_MONOTONIC           SIGEV_SIGNAL SIGRTMIN+2 value V4, never armed
//   T5  CLOCK_PROCESS_CPUTIME_ID  SIGEV_SIGNAL SIGRTMIN+3 value V5, 60 s then every 20 s
//   T6  CLOCK_MONOTONIC           SIGEV_THREAD_ID (worker thread W) SIGRTMIN+4
//                                 value V6, every 400 ms
// Deleted timers leave holes in the id space (ids are not consecutive).
// Before READY, T1 and T6 have fired at least once each (handlers count).
// After SIGTERM: /proc/self/timers lists exactly the same entries (ID,
// signal/value, notify kind and target pid/tid, ClockID); the deleted ids
// do not exist (timer_gettime fails EINVAL); for each timer, timer_gettime
// shows the same interval, a value > 0 (armed ones), not above the recorded
// one (periodic: not above the interval) and not below it minus the
// elapsed wall time (CPU clock: 5 s); timer_getoverrun works. Then the main
// thread must take 3 more SIGRTMIN+1 with si_code SI_TIMER, si_timerid T1,
// si_value V1, no faster than the interval allows, and W must take 2 more
// SIGRTMIN+4 with si_timerid T6 and si_value V6 (thread-directed to it).
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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

thread_local const char* g_who = "main";
std::atomic<bool> g_ok{true};

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

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
double wall() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
long long ns(const timespec& t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }
timespec ts_of(long long n) { return {static_cast<time_t>(n / 1000000000), static_cast<long>(n % 1000000000)}; }

struct Timer {
  const char* name;
  clockid_t clock;
  int notify;  // SIGEV_*
  int signo;
  uint64_t value;
  long long first_ns, interval_ns;  // first_ns 0: never armed
  int id = -1;
  itimerspec before = {};
};

constexpr long long kSec = 1000000000LL;
const uint64_t V1 = 0xa1a1a1a100000001, V2 = 0xb2b2b2b200000002, V4 = 0xd4d4d4d400000004,
               V5 = 0xe5e5e5e500000005, V6 = 0xf6f6f6f600000006;
std::vector<Timer> g_timers;
std::vector<int> g_deleted;
double g_wall_before;

int create(clockid_t clock, int notify, int signo, uint64_t value, pid_t tid) {
  sigevent sev = {};
  sev.sigev_notify = notify;
  sev.sigev_signo = signo;
  sev.sigev_value.sival_ptr = reinterpret_cast<void*>(value);
  if (notify == SIGEV_THREAD_ID) sev._sigev_un._tid = tid;
  int id = -1;
  if (syscall(SYS_timer_create, clock, &sev, &id)) fail("timer_create(clock %d): %s", clock, strerror(errno));
  return id;
}

int timer_get(int id, itimerspec* out) { return static_cast<int>(syscall(SYS_timer_gettime, id, out)); }

// Blocks of /proc/self/timers, one string per timer, sorted.
std::vector<std::string> proc_timers() {
  // Each block starts with a line "ID: n" (mind "ClockID:").
  std::string text = "\n" + zdtm_read_file("/proc/self/timers");
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find("\nID:", pos)) != std::string::npos) {
    size_t next = text.find("\nID:", pos + 1);
    std::string block = text.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    while (!block.empty() && block.back() == '\n') block.pop_back();
    std::replace(block.begin(), block.end(), '\n', ' ');
    out.push_back(block);
    pos = next == std::string::npos ? text.size() : next;
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- the worker thread that T6 targets ----

std::atomic<int> g_w_ready{0}, g_go{0};
std::atomic<pid_t> g_w_tid{0};
std::atomic<int> g_fired[8];  // by signal - SIGRTMIN
int g_sig6;

void on_timer(int sig, siginfo_t*, void*) { g_fired[sig - SIGRTMIN]++; }

long futex(std::atomic<int>* a, int op, int v, const timespec* t = nullptr) {
  return syscall(SYS_futex, reinterpret_cast<int*>(a), op, v, t, nullptr, 0);
}

// Takes n signals `sig` with sigtimedwait within 5 s; each must come from
// timer `id` with value `value`; returns the time the last n-1 took.
double take(int sig, int n, int id, uint64_t value) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  const double deadline = mono() + 5;
  double first = 0, last = 0;
  for (int i = 0; i < n; i++) {
    double left = std::max(0.0, deadline - mono());
    timespec ts = ts_of(static_cast<long long>(left * kSec));
    siginfo_t si;
    if (sigtimedwait(&s, &si, &ts) != sig) {
      bad("only %d of %d signals %d from timer %d within 5 s", i, n, sig, id);
      return -1;
    }
    (i == 0 ? first : last) = mono();
    if (si.si_code != SI_TIMER || si.si_timerid != id || reinterpret_cast<uint64_t>(si.si_value.sival_ptr) != value)
      bad("signal %d: si_code %d si_timerid %d si_value %#lx, want SI_TIMER %d %#lx", sig, si.si_code, si.si_timerid,
          (unsigned long)reinterpret_cast<uint64_t>(si.si_value.sival_ptr), id, (unsigned long)value);
  }
  return last - first;
}

void* worker(void*) {
  g_who = "thread W";
  sigset_t s;
  sigfillset(&s);
  sigdelset(&s, g_sig6);
  pthread_sigmask(SIG_SETMASK, &s, nullptr);  // only T6's signal reaches this thread
  g_w_tid = static_cast<pid_t>(syscall(SYS_gettid));
  const pid_t tid = g_w_tid;
  g_w_ready = 1;
  while (!g_go.load()) futex(&g_go, FUTEX_WAIT_PRIVATE, 0);
  if (syscall(SYS_gettid) != tid) bad("gettid %ld, want %d", syscall(SYS_gettid), tid);
  const Timer& t6 = g_timers.back();
  double took = take(g_sig6, 2, t6.id, V6);
  if (took >= 0 && took < 0.4 * 0.9) bad("T6 period %.3f s, want >= 0.36 s", took);
  return nullptr;
}

void check_timer(const Timer& t) {
  itimerspec now;
  if (timer_get(t.id, &now)) return bad("%s (id %d): timer_gettime: %s", t.name, t.id, strerror(errno));
  if (syscall(SYS_timer_getoverrun, t.id) < 0) bad("%s: timer_getoverrun: %s", t.name, strerror(errno));
  const long long iv = ns(now.it_interval), v = ns(now.it_value), v0 = ns(t.before.it_value);
  if (iv != t.interval_ns) bad("%s: interval %lld ns, want %lld ns", t.name, iv, t.interval_ns);
  if (t.first_ns == 0) {
    if (v != 0) bad("%s: armed (%lld ns left), want disarmed", t.name, v);
    return;
  }
  if (v <= 0) return bad("%s: disarmed, want armed", t.name);
  if (t.interval_ns && t.first_ns == t.interval_ns) {  // periodic from the start
    if (v > t.interval_ns) bad("%s: %lld ns left, more than its interval", t.name, v);
    return;
  }
  if (v > v0) bad("%s: %lld ns left, more than the %lld ns before the dump", t.name, v, v0);
  long long slack = t.clock == CLOCK_PROCESS_CPUTIME_ID ? 5 * kSec
                                                         : static_cast<long long>((wall() - g_wall_before + 2) * kSec);
  if (v < v0 - slack) bad("%s: %lld ns left, want at least %lld - %lld ns", t.name, v, v0, slack);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const int s1 = SIGRTMIN + 1, s2 = SIGRTMIN + 2, s3 = SIGRTMIN + 3;
  g_sig6 = SIGRTMIN + 4;
  struct sigaction sa = {};
  sa.sa_sigaction = on_timer;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int s : {s1, s2, s3, g_sig6})
    if (sigaction(s, &sa, nullptr)) fail("sigaction(%d): %s", s, strerror(errno));
  sigset_t block6;
  sigemptyset(&block6);
  sigaddset(&block6, g_sig6);
  pthread_sigmask(SIG_BLOCK, &block6, nullptr);  // T6's signal is W's alone

  pthread_t th;
  if (int err = pthread_create(&th, nullptr, worker, nullptr)) fail("pthread_create: %s", strerror(err));
  for (int i = 0; !g_w_ready; i++) {
    if (i > 30000) fail("worker did not start within 30 s");
    timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }

  const pid_t pid = getpid();
  g_deleted.push_back(create(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0));  // holes in the id space
  g_timers = {
      {"T1", CLOCK_MONOTONIC, SIGEV_SIGNAL, s1, V1, kSec / 4, kSec / 4},
      {"T2", CLOCK_REALTIME, SIGEV_SIGNAL, s2, V2, 3600 * kSec, 7 * kSec + kSec / 2},
      {"T3", CLOCK_BOOTTIME, SIGEV_NONE, 0, 0, 1000 * kSec, 0},
      {"T4", CLOCK_MONOTONIC, SIGEV_SIGNAL, s2, V4, 0, 0},
      {"T5", CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, s3, V5, 60 * kSec, 20 * kSec},
      {"T6", CLOCK_MONOTONIC, SIGEV_THREAD_ID, g_sig6, V6, 4 * kSec / 10, 4 * kSec / 10},
  };
  for (size_t i = 0; i < g_timers.size(); i++) {
    Timer& t = g_timers[i];
    t.id = create(t.clock, t.notify, t.signo, t.value, g_w_tid);
    if (i == 1 || i == 3) g_deleted.push_back(create(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0));
  }
  for (int id : g_deleted)
    if (syscall(SYS_timer_delete, id)) fail("timer_delete(%d): %s", id, strerror(errno));
  for (Timer& t : g_timers) {
    if (t.first_ns == 0) continue;
    itimerspec its = {ts_of(t.interval_ns), ts_of(t.first_ns)};
    if (syscall(SYS_timer_settime, t.id, 0, &its, nullptr)) fail("timer_settime %s: %s", t.name, strerror(errno));
  }
  // T1 fires in the main thread, T6 in W.
  for (const double deadline = mono() + 30; !g_fired[1] || !g_fired[4];) {
    if (mono() > deadline) fail("T1 or T6 did not fire within 30 s (%d, %d times)", g_fired[1].load(), g_fired[4].load());
    timespec ts = {0, 10000000};
    nanosleep(&ts, nullptr);
  }
  const std::vector<std::string> timers_before = proc_timers();
  if (timers_before.size() != g_timers.size())
    fail("/proc/self/timers lists %zu timers, want %zu", timers_before.size(), g_timers.size());
  for (Timer& t : g_timers) timer_get(t.id, &t.before);
  g_wall_before = wall();
  std::string ids;
  for (const Timer& t : g_timers) ids += std::string(" ") + t.name + "=" + std::to_string(t.id);
  std::string holes;
  for (int id : g_deleted) holes += " " + std::to_string(id);
  test_msg("timer ids:%s; deleted:%s; W is tid %d", ids.c_str(), holes.c_str(), int(g_w_tid));
  test_ready();
  test_wait();

  if (getpid() != pid) bad("getpid changed");
  std::vector<std::string> timers_now = proc_timers();
  if (timers_now != timers_before) {
    bad("/proc/self/timers differs from before the dump:");
    for (const auto& s : timers_before) test_msg("  before: %s", s.c_str());
    for (const auto& s : timers_now) test_msg("  now:    %s", s.c_str());
  }
  for (int id : g_deleted) {
    itimerspec its;
    if (timer_get(id, &its) == 0 || errno != EINVAL) bad("deleted timer id %d exists", id);
  }
  for (const Timer& t : g_timers) check_timer(t);
  double took = take(s1, 3, g_timers[0].id, V1);
  if (took >= 0 && took < 2 * 0.25 * 0.9) bad("2 T1 periods took %.3f s, want >= 0.45 s", took);

  g_go = 1;
  futex(&g_go, FUTEX_WAKE_PRIVATE, INT_MAX);
  timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_sec += 30;
  if (int err = pthread_timedjoin_np(th, nullptr, &abs)) fail("joining thread W: %s", strerror(err));
  if (!g_ok) fail("POSIX timers differ (see above)");
  pass();
}
