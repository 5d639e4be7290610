// timerfd_create(2). fdinfo shows (timerfd_show in fs/timerfd.c):
//   clockid: 1 / ticks: 0 / settime flags: 01 (octal) /
//   it_value: (2, 998563433) (time left) / it_interval: (1, 0)
// The timer is re-armed relative to the restore: the time between dump and
// restore does not count. Kernel quirk: once a periodic timer expired, its
// hrtimer stays stopped (it_value shows 0) until the expiry is read; such a
// timer is re-armed one interval ahead, keeping its unread ticks
// (TFD_IOC_SET_TICKS) but not the overruns it would have accumulated.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"

// From linux/timerfd.h, which clashes with glibc's sys/timerfd.h.
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace ckpt::files {
namespace {

constexpr uint64_t kNs = 1000000000;

bool Match(const FdContext& c) { return c.link == "anon_inode:[timerfd]"; }

// "(sec, nsec)" -> nanoseconds.
Result<uint64_t> ParseTime(const std::string& text, const std::string& key) {
  auto v = FdinfoValue(text, key);
  unsigned long long sec, nsec;
  if (!v || sscanf(v->c_str(), "(%llu, %llu)", &sec, &nsec) != 2 || nsec >= kNs ||
      sec > UINT64_MAX / kNs - 1)
    return Error("fdinfo: bad or missing " + key);
  return uint64_t(sec) * kNs + nsec;
}

Result<uint64_t> Field(const std::string& text, const std::string& key, int base) {
  auto v = FdinfoValue(text, key);
  if (!v) return Error("fdinfo has no " + key);
  return ParseNumber(*v, base, key);
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::TimerfdEntry* d = e->mutable_timerfd();
  d->set_flags(c.info.flags);
  TRY_ASSIGN(uint64_t clockid, Field(c.fdinfo, "clockid", 10));
  TRY_ASSIGN(uint64_t ticks, Field(c.fdinfo, "ticks", 10));
  TRY_ASSIGN(uint64_t settime, Field(c.fdinfo, "settime flags", 8));
  TRY_ASSIGN(uint64_t value, ParseTime(c.fdinfo, "it_value"));
  TRY_ASSIGN(uint64_t interval, ParseTime(c.fdinfo, "it_interval"));
  d->set_clockid(int32_t(clockid));
  d->set_ticks(ticks);
  d->set_settime_flags(uint32_t(settime));
  d->set_value_ns(value);
  d->set_interval_ns(interval);
  return Ok();
}

timespec Ts(uint64_t ns) { return {time_t(ns / kNs), long(ns % kNs)}; }

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::TimerfdEntry& d = e.timerfd();
  int fd = timerfd_create(d.clockid(), TFD_CLOEXEC | ((d.flags() & O_NONBLOCK) ? TFD_NONBLOCK : 0));
  if (fd < 0) return Error::Errno("timerfd_create clock " + std::to_string(d.clockid()));
  uint64_t value = d.value_ns();
  if (value == 0 && d.interval_ns()) value = d.interval_ns();  // expired, unread: see above
  itimerspec its = {Ts(d.interval_ns()), Ts(value)};
  int flags = 0;
  if (value && (d.settime_flags() & TFD_TIMER_CANCEL_ON_SET)) {
    // Cancel-on-set only exists for absolute timers: arm at now + left.
    timespec now;
    clock_gettime(d.clockid(), &now);
    its.it_value = Ts(uint64_t(now.tv_sec) * kNs + uint64_t(now.tv_nsec) + value);
    flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET;
  }
  if (value && timerfd_settime(fd, flags, &its, nullptr) < 0) {
    int err = errno;
    close(fd);
    return Error::Errno("timerfd_settime", err);
  }
  uint64_t ticks = d.ticks();
  if (ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0) {
    int err = errno;
    close(fd);
    return Error::Errno("TFD_IOC_SET_TICKS (needs CONFIG_CHECKPOINT_RESTORE)", err);
  }
  return fd;
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_timerfd() || e.timerfd().clockid() < 0)
    return Error("file " + std::to_string(e.id()) + ": bad timerfd entry");
  return Ok();
}

}  // namespace

const FileHandler kTimerfdHandler = {.kind = pb::FILE_TIMERFD,
                                     .name = "timerfd",
                                     .match = Match,
                                     .check = nullptr,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr};

}  // namespace ckpt::files
