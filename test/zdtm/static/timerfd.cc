// timerfd: a one-shot hour (MONOTONIC), a 50 ms periodic timer
// (O_NONBLOCK), an absolute REALTIME timer an hour ahead, a disarmed
// BOOTTIME timer, an expired one-shot whose tick is unread, and a one-shot
// of 3 s. Verifies time left, intervals, unread ticks, that the 3 s timer
// fires when its time left says, and that the periodic one keeps its pace.
#include <fcntl.h>
#include <poll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr int64_t kMs = 1000000;
void place(int fd, int num) {
  if (fd < 0) fail("timerfd_create: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
int64_t ns(const timespec& t) { return t.tv_sec * 1000 * kMs + t.tv_nsec; }
timespec ts(int64_t n) { return {static_cast<time_t>(n / (1000 * kMs)), static_cast<long>(n % (1000 * kMs))}; }
int64_t now(clockid_t c = CLOCK_MONOTONIC) {
  timespec t;
  clock_gettime(c, &t);
  return ns(t);
}
void arm(int fd, int64_t value, int64_t interval, int flags = 0) {
  itimerspec its = {ts(interval), ts(value)};
  if (timerfd_settime(fd, flags, &its, nullptr)) fail("timerfd_settime %d: %s", fd, strerror(errno));
}
itimerspec get(int fd) {
  itimerspec its;
  if (timerfd_gettime(fd, &its)) fail("timerfd_gettime %d: %s", fd, strerror(errno));
  return its;
}
uint64_t ticks(int fd) {
  uint64_t t = 0;
  if (read(fd, &t, 8) != 8) return 0;
  return t;
}
bool wait_fire(int fd, int64_t timeout) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout / kMs)) == 1;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  constexpr int64_t kHour = 3600 * 1000 * kMs;
  place(timerfd_create(CLOCK_MONOTONIC, 0), 70);
  arm(70, kHour, 0);
  place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 71);
  arm(71, 50 * kMs, 50 * kMs);
  place(timerfd_create(CLOCK_REALTIME, 0), 72);
  arm(72, now(CLOCK_REALTIME) + kHour, 0, TFD_TIMER_ABSTIME);
  place(timerfd_create(CLOCK_BOOTTIME, 0), 73);
  place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 74);
  arm(74, 1 * kMs, 0);
  place(timerfd_create(CLOCK_MONOTONIC, 0), 75);
  arm(75, 3000 * kMs, 0);
  int64_t t0 = now();
  usleep(20000);  // fd 74 expires; nobody reads it

  test_ready();
  test_wait();

  // The restored timers do not count the time between dump and restore, so
  // time left may exceed what the wall clock suggests, never the original.
  int64_t left = ns(get(70).it_value);
  if (left <= 0 || left > kHour) fail("fd 70: %lld ns left of an hour", (long long)left);
  if (ns(get(70).it_interval) != 0) fail("fd 70 became periodic");
  if (ns(get(71).it_interval) != 50 * kMs) fail("fd 71 interval %lld", (long long)ns(get(71).it_interval));
  left = ns(get(72).it_value);
  if (left <= 0 || left > kHour) fail("fd 72: %lld ns left of an hour", (long long)left);
  if (ns(get(73).it_value) != 0) fail("disarmed fd 73 got armed");
  if (ticks(74) != 1) fail("fd 74: the unread expiry was lost");
  if (ticks(74) != 0) fail("fd 74 expired again");
  // fd 75 fires when it said it would.
  left = ns(get(75).it_value);
  if (left == 0) {
    if (now() - t0 < 2900 * kMs) fail("fd 75 fired early");
  } else {
    int64_t t1 = now();
    if (!wait_fire(75, left + 500 * kMs)) fail("fd 75 did not fire within %lld ms", (long long)(left / kMs + 500));
    int64_t took = now() - t1;
    if (took < left - 20 * kMs) fail("fd 75 fired %lld ms early", (long long)((left - took) / kMs));
  }
  if (ticks(75) != 1) fail("fd 75: no tick");
  // The periodic timer: an expiry pending or soon, then steady 50 ms steps.
  if (!wait_fire(71, 200 * kMs)) fail("fd 71 stopped firing");
  ticks(71);
  int64_t t1 = now();
  uint64_t n = 0;
  while (n < 4) {
    if (!wait_fire(71, 200 * kMs)) fail("fd 71 stopped firing after %llu ticks", (unsigned long long)n);
    n += ticks(71);
  }
  int64_t took = now() - t1;
  if (took < 150 * kMs || took > 1000 * kMs) fail("fd 71: %llu ticks took %lld ms, want ~200", (unsigned long long)n, (long long)(took / kMs));
  pass();
}
