// sched_state: scheduling and accounting state (issue 14 item 6), per
// thread where the kernel keeps it per thread.
//
//   main  SCHED_BATCH nice 4, I/O priority RT level 4, CPUs {all}
//   T0    SCHED_FIFO 10, nice 3 (kept aside by the RT policy), CPU {0},
//         I/O best-effort level 2
//   T1    SCHED_RR 20, CPU {last}, I/O idle
//   T2    SCHED_IDLE
//   T3    SCHED_OTHER nice -3 with SCHED_FLAG_RESET_ON_FORK, utilization
//         clamps 100..800 (where the kernel has CONFIG_UCLAMP_TASK)
//   T4    SCHED_DEADLINE runtime 1 ms, deadline 20 ms, period 50 ms
// Per process: oom_score_adj 345, the audit login uid 4242 (if the
// kernel has audit), membarrier registrations PRIVATE_EXPEDITED and
// PRIVATE_EXPEDITED_SYNC_CORE (MEMBARRIER_CMD_GET_REGISTRATIONS, Linux
// 6.3+, checked too; MEMBARRIER_CMD_PRIVATE_EXPEDITED must work).
// Every thread checks its own state (sched_getattr, sched_getaffinity,
// getpriority, ioprio_get on itself) before READY and after SIGTERM.
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

struct SchedAttr {
  uint32_t size, policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime, deadline, period;
  uint32_t util_min, util_max;
};

constexpr uint64_t kResetOnFork = 0x01, kClampMin = 0x20, kClampMax = 0x40;
constexpr int kIoprioWhoProcess = 1;
int ioprio(int cls, int level) { return cls << 13 | level; }
constexpr int kIoRt = 1, kIoBe = 2, kIoIdle = 3;
constexpr long kMbGetRegs = 1 << 9, kMbPrivExp = 1 << 3, kMbRegPrivExp = 1 << 4,
               kMbRegSyncCore = 1 << 6;

std::atomic<bool> g_ok{true};
bool g_uclamp = false, g_audit = false;
int g_ncpu = 1;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [tid %ld] ", (long)syscall(SYS_gettid));
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

struct Want {
  const char* name;
  uint32_t policy;
  int nice;
  uint32_t prio;
  uint64_t flags;        // RESET_ON_FORK
  int cpu;               // -1: all, -2: the last one
  int io;                // ioprio value, 0: none
  bool clamp;            // util clamps 100..800
  uint64_t dl[3];        // runtime, deadline, period
};

const Want kWant[] = {
    {"main", SCHED_BATCH, 4, 0, 0, -1, ioprio(kIoRt, 4), false, {}},
    {"T0", SCHED_FIFO, 3, 10, 0, 0, ioprio(kIoBe, 2), false, {}},
    {"T1", SCHED_RR, 0, 20, 0, -2, ioprio(kIoIdle, 0), false, {}},
    {"T2", SCHED_IDLE, 0, 0, 0, -1, 0, false, {}},
    {"T3", SCHED_OTHER, -3, 0, kResetOnFork, -1, 0, true, {}},
    {"T4", SCHED_DEADLINE, 0, 0, 0, -1, 0, false, {1000000, 20000000, 50000000}},
};
constexpr int kN = sizeof(kWant) / sizeof(kWant[0]);

int cpu_of(int c) { return c == -2 ? g_ncpu - 1 : c; }

void set_mine(const Want& w) {
  if (w.cpu != -1) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu_of(w.cpu), &s);
    if (sched_setaffinity(0, sizeof(s), &s)) fail("%s: sched_setaffinity: %s", w.name, strerror(errno));
  }
  if (setpriority(PRIO_PROCESS, 0, w.nice)) fail("%s: setpriority: %s", w.name, strerror(errno));
  SchedAttr a = {};
  a.size = 48;
  a.policy = w.policy;
  a.flags = w.flags;
  a.nice = w.nice;
  a.priority = w.prio;
  a.runtime = w.dl[0], a.deadline = w.dl[1], a.period = w.dl[2];
  if (w.clamp && g_uclamp) {
    a.size = sizeof(a);
    a.flags |= kClampMin | kClampMax;
    a.util_min = 100, a.util_max = 800;
  }
  if (syscall(SYS_sched_setattr, 0, &a, 0))
    fail("%s: sched_setattr policy %u: %s", w.name, w.policy, strerror(errno));
  if (w.io && syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, w.io))
    fail("%s: ioprio_set: %s", w.name, strerror(errno));
}

void check_mine(const Want& w) {
  SchedAttr a = {};
  if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0)) return bad("%s: sched_getattr: %s", w.name, strerror(errno));
  if (a.policy != w.policy) bad("%s: policy %u, want %u", w.name, a.policy, w.policy);
  if (a.priority != w.prio) bad("%s: priority %u, want %u", w.name, a.priority, w.prio);
  if ((a.flags & kResetOnFork) != w.flags) bad("%s: sched_flags %#lx", w.name, (unsigned long)a.flags);
  if (w.policy != SCHED_DEADLINE && w.policy != SCHED_IDLE && getpriority(PRIO_PROCESS, 0) != w.nice)
    bad("%s: nice %d, want %d", w.name, getpriority(PRIO_PROCESS, 0), w.nice);
  if (w.policy == SCHED_DEADLINE &&
      (a.runtime != w.dl[0] || a.deadline != w.dl[1] || a.period != w.dl[2]))
    bad("%s: deadline parameters %lu/%lu/%lu", w.name, (unsigned long)a.runtime,
        (unsigned long)a.deadline, (unsigned long)a.period);
  if (w.clamp && g_uclamp && (a.util_min != 100 || a.util_max != 800))
    bad("%s: util clamps %u..%u, want 100..800", w.name, a.util_min, a.util_max);
  cpu_set_t s;
  CPU_ZERO(&s);
  if (sched_getaffinity(0, sizeof(s), &s)) return bad("%s: sched_getaffinity", w.name);
  if (w.cpu == -1) {
    if (CPU_COUNT(&s) != g_ncpu) bad("%s: %d CPUs in its affinity, want %d", w.name, CPU_COUNT(&s), g_ncpu);
  } else if (CPU_COUNT(&s) != 1 || !CPU_ISSET(cpu_of(w.cpu), &s)) {
    bad("%s: affinity is not just CPU %d", w.name, cpu_of(w.cpu));
  }
  long io = syscall(SYS_ioprio_get, kIoprioWhoProcess, 0);
  if (w.io && io != w.io) bad("%s: ioprio %#lx, want %#x", w.name, io, w.io);
  if (!w.io && (io >> 13) != 0) bad("%s: ioprio %#lx, want none", w.name, io);
}

int g_go[2];  // threads read one byte each after SIGTERM
std::atomic<int> g_set{0};

void* thread_main(void* arg) {
  const Want& w = kWant[(long)arg];
  set_mine(w);
  check_mine(w);
  g_set++;
  char c;
  while (read(g_go[0], &c, 1) < 0 && errno == EINTR) {
  }
  check_mine(w);
  return nullptr;
}

int64_t read_num(const char* path) { return strtoll(zdtm_read_file(path).c_str(), nullptr, 10); }

void check_process() {
  if (read_num("/proc/self/oom_score_adj") != 345)
    bad("oom_score_adj %ld, want 345", (long)read_num("/proc/self/oom_score_adj"));
  if (g_audit && read_num("/proc/self/loginuid") != 4242)
    bad("loginuid %ld, want 4242", (long)read_num("/proc/self/loginuid"));
  long regs = syscall(SYS_membarrier, kMbGetRegs, 0, 0);
  if (regs < 0) bad("MEMBARRIER_CMD_GET_REGISTRATIONS: %s", strerror(errno));
  else if ((regs & (kMbRegPrivExp | kMbRegSyncCore)) != (kMbRegPrivExp | kMbRegSyncCore))
    bad("membarrier registrations %#lx, want PRIVATE_EXPEDITED and SYNC_CORE", regs);
  if (syscall(SYS_membarrier, kMbPrivExp, 0, 0)) bad("MEMBARRIER_CMD_PRIVATE_EXPEDITED: %s", strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  {
    cpu_set_t s;
    CPU_ZERO(&s);
    if (sched_getaffinity(0, sizeof(s), &s)) fail("sched_getaffinity: %s", strerror(errno));
    g_ncpu = CPU_COUNT(&s);
  }
  {
    SchedAttr a = {};
    syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0);
    a.size = sizeof(a);
    a.flags = kClampMin | kClampMax;
    a.util_min = 0, a.util_max = 1024;
    g_uclamp = syscall(SYS_sched_setattr, 0, &a, 0) == 0;
  }
  g_audit = access("/proc/self/loginuid", F_OK) == 0;
  test_msg("%d CPUs, uclamp %s, audit %s", g_ncpu, g_uclamp ? "yes" : "no", g_audit ? "yes" : "no");
  if (g_ncpu < 2) test_msg("one CPU only: the per-thread affinities coincide");
  FILE* f = fopen("/proc/self/oom_score_adj", "we");
  if (!f || fprintf(f, "345") < 0 || fclose(f)) fail("oom_score_adj: %s", strerror(errno));
  if (g_audit) {
    f = fopen("/proc/self/loginuid", "we");
    if (!f || fprintf(f, "4242") < 0 || fclose(f)) fail("loginuid: %s", strerror(errno));
  }
  if (syscall(SYS_membarrier, kMbRegPrivExp, 0, 0) || syscall(SYS_membarrier, kMbRegSyncCore, 0, 0))
    fail("membarrier register: %s", strerror(errno));
  if (pipe(g_go)) fail("pipe");
  pthread_t th[kN];
  for (long i = 1; i < kN; i++)
    if (pthread_create(&th[i], nullptr, thread_main, (void*)i)) fail("pthread_create");
  while (g_set.load() != kN - 1) {
    if (!g_ok) fail("a thread could not set its state (see above)");
    usleep(1000);
  }
  set_mine(kWant[0]);
  check_mine(kWant[0]);
  check_process();
  if (!g_ok) fail("state not as designed before the dump");
  test_ready();
  test_wait();
  check_mine(kWant[0]);
  check_process();
  if (write(g_go[1], "gggggggg", kN - 1) != kN - 1) bad("write go");
  for (long i = 1; i < kN; i++) pthread_join(th[i], nullptr);
  if (!g_ok) fail("scheduling state differs (see above)");
  pass();
}
