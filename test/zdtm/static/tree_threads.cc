// tree_threads: threads in every process of a tree, not just the root.
//
//   R   2 worker threads
//   C0  2 worker threads      (child of R)
//   C1  3 worker threads      (child of R)
//   C2  4 worker threads      (child of R), parent of
//   G   2 worker threads      (grandchild; forked before C2 made threads)
// Each worker records its tid and gets a distinct thread_local value and a
// distinct blocked mask, then sleeps in FUTEX_WAIT. Each non-root process
// also has a blocked SIGRTMIN+6 pending, sigqueue'd by the root with a value
// naming that process. Every process reports to the root with a sigqueue;
// the root prints READY when all five have, i.e. 13 workers are parked.
// After SIGTERM every process checks: getpid/getppid; /proc/self/task is
// exactly {pid} + its worker tids; its pending SIGRTMIN+6 (non-root) has
// si_code SI_QUEUE, si_pid = the root, the right si_value; then it wakes its
// workers, each checks its gettid, thread_local value and mask, and joins
// them with a timeout; then it SIGTERMs and reaps its children (exit 0).
#include <dirent.h>
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
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

constexpr int kMaxWorkers = 8;
const int kReadySig = SIGRTMIN + 1, kPendSig = SIGRTMIN + 6;
constexpr uint64_t kPendValue = 0x5eed0000abcd0000;

struct Proc {
  const char* name;
  int parent;  // index, -1 for R
  int workers;
};
const Proc kProcs[] = {{"R", -1, 2}, {"C0", 0, 2}, {"C1", 0, 3}, {"C2", 0, 4}, {"G", 3, 2}};
constexpr int kCount = sizeof(kProcs) / sizeof(kProcs[0]);

int g_self;
pid_t g_pids[kCount];
uint64_t g_seed;
std::atomic<bool> g_ok{true};

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s pid %d tid %ld] ", kProcs[g_self].name, getpid(), syscall(SYS_gettid));
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
void sleep_ms(int ms) {
  timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

// ---- the workers of this process ----

struct Worker {
  pthread_t th;
  pid_t tid;
  uint64_t mask;
};
Worker g_workers[kMaxWorkers];
int g_nworkers;
std::atomic<int> g_started{0}, g_stop{0};
thread_local volatile uint64_t t_value;

uint64_t bit(int sig) { return 1ull << (sig - 1); }
uint64_t kernel_mask() {
  uint64_t m = 0;
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &m, sizeof(m));
  return m;
}
long futex(std::atomic<int>* a, int op, int v) {
  return syscall(SYS_futex, reinterpret_cast<int*>(a), op, v, nullptr, nullptr, 0);
}
uint64_t value_of(int w) { return zdtm_mix(g_seed, g_self * 100 + w); }

void* worker(void* arg) {
  const int w = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  Worker& me = g_workers[w];
  t_value = value_of(w);
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &me.mask, nullptr, sizeof(me.mask));
  me.tid = static_cast<pid_t>(syscall(SYS_gettid));
  g_started++;
  while (!g_stop.load()) futex(&g_stop, FUTEX_WAIT_PRIVATE, 0);
  if (syscall(SYS_gettid) != me.tid) bad("worker %d: gettid %ld, want %d", w, syscall(SYS_gettid), me.tid);
  if (t_value != value_of(w)) bad("worker %d: thread_local %#lx, want %#lx", w, (unsigned long)t_value, (unsigned long)value_of(w));
  if (kernel_mask() != me.mask) bad("worker %d: mask %#lx, want %#lx", w, (unsigned long)kernel_mask(), (unsigned long)me.mask);
  return nullptr;
}

void start_workers() {
  g_nworkers = kProcs[g_self].workers;
  for (int w = 0; w < g_nworkers; w++) {
    // SIGTERM (main thread only), kPendSig, and a pattern per process/worker.
    g_workers[w].mask = bit(SIGTERM) | bit(kPendSig) | bit(kReadySig) | bit(SIGRTMIN + 8 + g_self) |
                        bit(SIGRTMIN + 16 + w);
    int err = pthread_create(&g_workers[w].th, nullptr, worker, reinterpret_cast<void*>(static_cast<intptr_t>(w)));
    if (err) fail("%s: pthread_create: %s", kProcs[g_self].name, strerror(err));
  }
  const double deadline = mono() + 30;
  while (g_started.load() < g_nworkers) {
    if (mono() > deadline) fail("%s: workers did not start within 30 s", kProcs[g_self].name);
    sleep_ms(1);
  }
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

// After SIGTERM: this process's own checks, its workers', its children's.
void verify_and_finish(pid_t my_pid, pid_t my_ppid, double timeout) {
  if (getpid() != my_pid) bad("getpid %d, want %d", getpid(), my_pid);
  if (getppid() != my_ppid) bad("getppid %d, want %d", getppid(), my_ppid);
  std::set<pid_t> want = {my_pid};
  for (int w = 0; w < g_nworkers; w++) want.insert(g_workers[w].tid);
  std::set<pid_t> have = proc_tasks();
  if (have != want) {
    std::string h, x;
    for (pid_t t : have) h += " " + std::to_string(t);
    for (pid_t t : want) x += " " + std::to_string(t);
    bad("/proc/self/task:%s, want%s", h.c_str(), x.c_str());
  }
  if (g_self != 0) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, kPendSig);
    siginfo_t si = {};
    timespec zero = {0, 0};
    if (sigtimedwait(&s, &si, &zero) != kPendSig) {
      bad("SIGRTMIN+6 from the root is not pending");
    } else {
      const uint64_t v = reinterpret_cast<uint64_t>(si.si_value.sival_ptr);
      if (si.si_code != SI_QUEUE || si.si_pid != g_pids[0] || v != (kPendValue | g_self))
        bad("pending SIGRTMIN+6: code %d pid %d value %#lx, want SI_QUEUE %d %#lx", si.si_code, si.si_pid,
            (unsigned long)v, g_pids[0], (unsigned long)(kPendValue | g_self));
    }
  }
  g_stop = 1;
  futex(&g_stop, FUTEX_WAKE_PRIVATE, INT_MAX);
  timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_sec += 20;
  for (int w = 0; w < g_nworkers; w++)
    if (int err = pthread_timedjoin_np(g_workers[w].th, nullptr, &abs)) {
      bad("joining worker %d (tid %d): %s", w, g_workers[w].tid, strerror(err));
      return;  // the caller exits; a stuck thread dies with the process
    }
  std::vector<int> kids;
  for (int c = 0; c < kCount; c++)
    if (kProcs[c].parent == g_self) kids.push_back(c);
  for (int c : kids)
    if (kill(g_pids[c], SIGTERM)) bad("kill(%s %d, SIGTERM): %s", kProcs[c].name, g_pids[c], strerror(errno));
  const double deadline = mono() + timeout;
  for (int c : kids) {
    int st = 0;
    for (;;) {
      pid_t r = waitpid(g_pids[c], &st, WNOHANG);
      if (r == g_pids[c]) break;
      if ((r < 0 && errno != EINTR) || mono() > deadline) {
        bad("%s (pid %d) not reaped: %s", kProcs[c].name, g_pids[c], r < 0 ? strerror(errno) : "timeout");
        kill(g_pids[c], SIGKILL);
        st = 0;
        break;
      }
      sleep_ms(2);
    }
    if (WIFSIGNALED(st)) bad("%s (pid %d) killed by signal %d", kProcs[c].name, g_pids[c], WTERMSIG(st));
    else if (WEXITSTATUS(st) != 0) bad("%s (pid %d) exited %d", kProcs[c].name, g_pids[c], WEXITSTATUS(st));
  }
}

// Forks this process's children from the main thread, before any worker
// thread exists (so each child's real parent is the thread-group leader).
void fork_children();

[[noreturn]] void child_main(int self) {
  g_self = self;
  g_pids[self] = getpid();
  const pid_t my_pid = getpid(), my_ppid = getppid();
  fork_children();
  start_workers();
  sigval v = {};
  v.sival_int = self;
  if (sigqueue(g_pids[0], kReadySig, v)) fail("%s: sigqueue: %s", kProcs[self].name, strerror(errno));
  test_wait();
  verify_and_finish(my_pid, my_ppid, 20);
  _exit(g_ok ? 0 : 1);
}

void fork_children() {
  for (int c = 0; c < kCount; c++) {
    if (kProcs[c].parent != g_self) continue;
    pid_t pid = fork();
    if (pid < 0) fail("fork: %s", strerror(errno));
    if (pid == 0) child_main(c);
    g_pids[c] = pid;
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  g_self = 0;
  g_pids[0] = getpid();
  const pid_t my_pid = getpid(), my_ppid = getppid();
  // Every process blocks these; kPendSig stays pending in the children.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kReadySig);
  sigaddset(&set, kPendSig);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  fork_children();
  start_workers();

  sigset_t ready;
  sigemptyset(&ready);
  sigaddset(&ready, kReadySig);
  const double deadline = mono() + 30;
  std::set<int> seen;
  while (seen.size() < kCount - 1) {
    double left = deadline - mono();
    if (left <= 0) fail("only %zu of %d processes set up within 30 s", seen.size(), kCount - 1);
    timespec ts = {static_cast<time_t>(left), 0};
    siginfo_t si;
    if (sigtimedwait(&ready, &si, &ts) != kReadySig) continue;
    int idx = si.si_value.sival_int;
    if (idx <= 0 || idx >= kCount) fail("bad ready value %d", idx);
    g_pids[idx] = si.si_pid;
    seen.insert(idx);
  }
  for (int c = 1; c < kCount; c++) {
    sigval v;
    v.sival_ptr = reinterpret_cast<void*>(kPendValue | c);
    if (sigqueue(g_pids[c], kPendSig, v)) fail("sigqueue to %s: %s", kProcs[c].name, strerror(errno));
  }
  std::string desc;
  for (int c = 0; c < kCount; c++)
    desc += std::string(" ") + kProcs[c].name + "=" + std::to_string(g_pids[c]) + "(" +
            std::to_string(kProcs[c].workers) + " threads)";
  test_msg("processes:%s", desc.c_str());
  test_ready();
  test_wait();

  verify_and_finish(my_pid, my_ppid, 30);
  int st;
  if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) bad("an unexpected child is left");
  if (!g_ok) fail("tree with threads differs (see above)");
  pass();
}
