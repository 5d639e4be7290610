// itimer: interval timers (per process, not inherited by fork).
//
//   root   ITIMER_REAL     every 300 ms (SIGALRM handler counts them)
//          ITIMER_VIRTUAL  100 s, then every 50 s
//          ITIMER_PROF     200 s, then every 70.25 s
//   child  alarm(3600)     (ITIMER_REAL 3600 s, one-shot)
//          ITIMER_VIRTUAL  300.5 s, one-shot
// Before READY the root waits for one SIGALRM (the timer runs) and each
// process records getitimer() for all three timers and the wall clock.
// After SIGTERM, in each process: every interval is exactly as set; every
// remaining value is positive (where armed), not larger than recorded
// (the periodic REAL one: not larger than its interval), and not smaller
// than the recorded value minus the wall-clock time since (REAL) or 5 s of
// CPU time (VIRTUAL, PROF); disarmed timers stay disarmed. The child's
// alarm(0) returns 1..3600 and its SIGALRM never fired (it would kill it).
// The root then blocks SIGALRM and must receive 4 more, each with si_code
// SI_KERNEL, within 5 s, and the last 3 no faster than 3 x 300 ms x 0.9.
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "zdtm.h"

namespace {

const int kReadySig = SIGRTMIN + 1;
const char* g_who = "root";
bool g_ok = true;
volatile sig_atomic_t g_alarms, g_vtalarms, g_profs;

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

void on_alarm(int) { g_alarms = g_alarms + 1; }
void on_vtalarm(int) { g_vtalarms = g_vtalarms + 1; }
void on_prof(int) { g_profs = g_profs + 1; }

long long us(const timeval& tv) { return tv.tv_sec * 1000000LL + tv.tv_usec; }
timeval tv(long long u) { return {static_cast<time_t>(u / 1000000), static_cast<suseconds_t>(u % 1000000)}; }

double wall() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

const char* kNames[] = {"ITIMER_REAL", "ITIMER_VIRTUAL", "ITIMER_PROF"};

void arm(int which, long long value_us, long long interval_us) {
  itimerval it = {tv(interval_us), tv(value_us)};
  if (setitimer(which, &it, nullptr)) fail("setitimer(%s): %s", kNames[which], strerror(errno));
}

struct Recorded {
  itimerval it[3];
  double wall;
};

Recorded record() {
  Recorded r;
  for (int w = 0; w < 3; w++) getitimer(w, &r.it[w]);
  r.wall = wall();
  return r;
}

// want_interval_us: exact interval; armed: value must be > 0; periodic_real:
// value bounded by the interval rather than by the recorded value.
void check_timer(const Recorded& before, int which, long long want_interval_us, bool armed, bool periodic) {
  itimerval now;
  getitimer(which, &now);
  const char* n = kNames[which];
  const long long iv = us(now.it_interval), v = us(now.it_value), v0 = us(before.it[which].it_value);
  if (iv != want_interval_us) bad("%s interval %lld us, want %lld us", n, iv, want_interval_us);
  if (!armed) {
    if (v != 0) bad("%s armed (%lld us left), want disarmed", n, v);
    return;
  }
  if (v <= 0) return bad("%s disarmed, want armed", n);
  if (periodic) {
    if (v > want_interval_us) bad("%s has %lld us left, more than its interval %lld us", n, v, want_interval_us);
    return;
  }
  if (v > v0) bad("%s has %lld us left, more than the %lld us before the dump", n, v, v0);
  long long slack = which == ITIMER_REAL ? static_cast<long long>((wall() - before.wall + 2) * 1e6) : 5000000;
  if (v < v0 - slack) bad("%s has %lld us left, want at least %lld - %lld us", n, v, v0, slack);
}

void install(int sig, void (*h)(int)) {
  struct sigaction sa = {};
  sa.sa_handler = h;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, nullptr)) fail("sigaction(%d): %s", sig, strerror(errno));
}

[[noreturn]] void child_main(pid_t root) {
  g_who = "child";
  // Not inherited from the root: start from scratch and check that.
  for (int w = 0; w < 3; w++) {
    itimerval it;
    getitimer(w, &it);
    if (us(it.it_value) != 0) fail("child inherited an armed %s", kNames[w]);
  }
  signal(SIGALRM, SIG_DFL);  // must not fire: it would kill the child
  alarm(3600);
  arm(ITIMER_VIRTUAL, 300500000, 0);
  const Recorded before = record();
  sigval v = {};
  if (sigqueue(root, kReadySig, v)) fail("child: sigqueue: %s", strerror(errno));

  test_wait();

  check_timer(before, ITIMER_REAL, 0, true, false);
  check_timer(before, ITIMER_VIRTUAL, 0, true, false);
  check_timer(before, ITIMER_PROF, 0, false, false);
  unsigned left = alarm(0);
  if (left < 1 || left > 3600) bad("alarm(0) returned %u, want 1..3600", left);
  if (g_vtalarms || g_profs) bad("SIGVTALRM ran %d times, SIGPROF %d times", int(g_vtalarms), int(g_profs));
  _exit(g_ok ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  install(SIGALRM, on_alarm);
  install(SIGVTALRM, on_vtalarm);
  install(SIGPROF, on_prof);
  sigset_t ready;
  sigemptyset(&ready);
  sigaddset(&ready, kReadySig);
  sigprocmask(SIG_BLOCK, &ready, nullptr);

  const pid_t root = getpid();
  const pid_t child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));
  if (child == 0) child_main(root);

  constexpr long long kRealUs = 300000;
  arm(ITIMER_REAL, kRealUs, kRealUs);
  arm(ITIMER_VIRTUAL, 100000000, 50000000);
  arm(ITIMER_PROF, 200000000, 70250000);

  const double deadline = mono() + 30;
  for (;;) {  // the child's ready signal (EINTR: a SIGALRM ran)
    double left = deadline - mono();
    if (left <= 0) {
      kill(child, SIGKILL);
      fail("the child did not set up within 30 s");
    }
    timespec ts = {static_cast<time_t>(left), 0};
    siginfo_t si;
    if (sigtimedwait(&ready, &si, &ts) == kReadySig) break;
  }
  while (g_alarms == 0) {  // the REAL timer fires at all
    if (mono() > deadline) {
      kill(child, SIGKILL);
      fail("no SIGALRM within 30 s of setitimer");
    }
    pause();
  }
  const Recorded before = record();
  test_ready();
  test_wait();

  check_timer(before, ITIMER_REAL, kRealUs, true, true);
  check_timer(before, ITIMER_VIRTUAL, 50000000, true, false);
  check_timer(before, ITIMER_PROF, 70250000, true, false);
  if (g_vtalarms || g_profs) bad("SIGVTALRM ran %d times, SIGPROF %d times", int(g_vtalarms), int(g_profs));

  // The REAL timer keeps firing, at its interval.
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  sigprocmask(SIG_BLOCK, &alrm, nullptr);
  double t[4] = {};
  const double fire_deadline = mono() + 5;
  for (int i = 0; i < 4; i++) {
    siginfo_t si;
    double left = fire_deadline - mono();
    timespec ts = {static_cast<time_t>(left > 0 ? left : 0), static_cast<long>((left > 0 ? left - int(left) : 0) * 1e9)};
    if (sigtimedwait(&alrm, &si, &ts) != SIGALRM) {
      bad("only %d SIGALRMs within 5 s after restore", i);
      break;
    }
    t[i] = mono();
    if (si.si_code != SI_KERNEL) bad("SIGALRM %d has si_code %d, want SI_KERNEL", i, si.si_code);
  }
  if (t[3] > 0 && t[3] - t[0] < 3 * kRealUs / 1e6 * 0.9)
    bad("3 SIGALRM periods took %.3f s, want >= %.3f s", t[3] - t[0], 3 * kRealUs / 1e6 * 0.9);

  if (kill(child, SIGTERM)) bad("kill(child %d, SIGTERM): %s", child, strerror(errno));
  int st = 0;
  const double exit_deadline = mono() + 30;
  for (;;) {
    pid_t r = waitpid(child, &st, WNOHANG);
    if (r == child) break;
    if (r < 0 && errno != EINTR) fail("waitpid(child %d): %s", child, strerror(errno));
    if (mono() > exit_deadline) {
      kill(child, SIGKILL);
      fail("the child did not exit within 30 s of SIGTERM");
    }
    timespec pause_ts = {0, 2000000};
    nanosleep(&pause_ts, nullptr);
  }
  if (WIFSIGNALED(st)) bad("the child was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else if (WEXITSTATUS(st) != 0) bad("the child exited %d", WEXITSTATUS(st));
  if (!g_ok) fail("interval timers differ (see above)");
  pass();
}
