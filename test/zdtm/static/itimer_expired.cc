// itimer_expired: a periodic ITIMER_REAL that is due while the process is
// dumped. Every 10 ms: a dump takes longer, so the timer expires while the
// task is stopped; until its SIGALRM is taken the kernel reports the
// remaining time as 0 (it re-arms the timer only then). Restored with a
// value of 0, the timer would be off for good: after SIGTERM the handler
// must run at least 5 more times (bounded wait: 5 s of 1 ms sleeps) and
// getitimer must report the interval and an armed timer.
#include <signal.h>
#include <sys/time.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "zdtm.h"

namespace {

volatile sig_atomic_t g_alarms;

void on_alarm(int) { g_alarms = g_alarms + 1; }

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  struct sigaction sa = {};
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGALRM, &sa, nullptr) < 0) fail("sigaction: %s", strerror(errno));
  struct itimerval it = {{0, 10000}, {0, 10000}};
  if (setitimer(ITIMER_REAL, &it, nullptr) < 0) fail("setitimer: %s", strerror(errno));
  for (int i = 0; i < 5000 && g_alarms < 2; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  if (g_alarms < 2) fail("the timer does not fire before the dump");
  test_ready();
  test_wait();

  sig_atomic_t seen = g_alarms;
  for (int i = 0; i < 5000 && g_alarms < seen + 5; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  if (g_alarms < seen + 5)
    fail("the interval timer stopped (%d alarms in 5000 sleeps of 1 ms)", int(g_alarms - seen));
  struct itimerval now = {};
  if (getitimer(ITIMER_REAL, &now) < 0) fail("getitimer: %s", strerror(errno));
  if (now.it_interval.tv_sec != 0 || now.it_interval.tv_usec != 10000)
    fail("interval %ld.%06ld s, set 0.010000", long(now.it_interval.tv_sec),
         long(now.it_interval.tv_usec));
  pass();
}
