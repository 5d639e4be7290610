// seccomp_filter: seccomp filter chains shared and not shared between
// threads and processes, with no_new_privs.
//
//   M (leader of R)  no_new_privs; F1 (getpriority -> EDOM, FLAG_LOG) with
//                    TSYNC, so M and T2 share it; then F4 (getpgid -> EXDEV)
//                    on M alone. Chain [F1 F4].
//   T2 (thread)      F2 (times -> ENOTUNIQ, sched_getscheduler -> SIGSYS trap)
//                    on itself, then creates T3. Chain [F1 F2].
//   T3 (thread of T2) inherits [F1 F2]: it shares F2 with T2, not with M.
//   C (child of M)   inherits [F1 F4], adds F3 (getrusage -> ENOSTR), then
//                    creates thread Ct: both [F1 F4 F3].
// Every thread checks each of those syscalls (its errno, the trap, or that
// it works) and /proc status Seccomp 2, Seccomp_filters, NoNewPrivs 1,
// before READY and after SIGTERM. After SIGTERM the sharing itself is
// checked with SECCOMP_FILTER_FLAG_TSYNC, which succeeds only if every
// other thread's chain is a prefix (the same filter objects) of the
// caller's: in C, Ct adds F6 (sysinfo -> ENOLINK) to both threads; in R,
// T3's TSYNC must fail naming M (M does not share F2).
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "seccomp_util.h"

namespace {

constexpr int kTrap = -1;  // expectation: SIGSYS with si_syscall == nr
std::atomic<bool> g_ok{true};
thread_local volatile int g_trapped = -1;

__attribute__((format(printf, 2, 3))) void bad(const char* who, const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s tid %ld] ", who, syscall(SYS_gettid));
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

void on_sigsys(int, siginfo_t* si, void*) { g_trapped = si->si_syscall; }

long call(int nr) {
  static thread_local char buf[512];
  switch (nr) {
    case SYS_getpriority:
      return syscall(nr, PRIO_PROCESS, 0);
    case SYS_sched_getscheduler:
    case SYS_getpgid:
      return syscall(nr, 0);
    case SYS_getrusage:
      return syscall(nr, RUSAGE_SELF, buf);
    default:  // times, sysinfo
      return syscall(nr, buf);
  }
}

const int kProbed[] = {SYS_getpriority,        SYS_getpgid,   SYS_times,
                       SYS_sched_getscheduler, SYS_getrusage, SYS_sysinfo};

// want: nr -> expected errno (kTrap for the trap); unlisted ones must work.
void check_thread(const char* who, const std::vector<std::pair<int, int>>& want, int nfilters) {
  for (int nr : kProbed) {
    int expect = 0;
    for (auto& [n, e] : want)
      if (n == nr) expect = e;
    g_trapped = -1;
    errno = 0;
    long r = call(nr);
    int err = r < 0 ? errno : 0;
    if (expect == kTrap) {
      if (g_trapped != nr)
        bad(who, "syscall %d: no SIGSYS trap (returned %ld errno %d)", nr, r, err);
    } else if (err != expect) {
      bad(who, "syscall %d: errno %d (%s), want %d", nr, err, strerror(err), expect);
    } else if (g_trapped != -1) {
      bad(who, "syscall %d: unexpected SIGSYS", nr);
    }
  }
  std::string mode = thread_status("Seccomp"), n = thread_status("Seccomp_filters"),
              nnp = thread_status("NoNewPrivs");
  if (mode != "2") bad(who, "Seccomp %s, want 2", mode.c_str());
  if (n != std::to_string(nfilters)) bad(who, "Seccomp_filters %s, want %d", n.c_str(), nfilters);
  if (nnp != "1") bad(who, "NoNewPrivs %s, want 1", nnp.c_str());
}

const std::vector<std::pair<int, int>> kM = {{SYS_getpriority, EDOM}, {SYS_getpgid, EXDEV}};
const std::vector<std::pair<int, int>> kT = {
    {SYS_getpriority, EDOM}, {SYS_times, ENOTUNIQ}, {SYS_sched_getscheduler, kTrap}};
const std::vector<std::pair<int, int>> kC = {
    {SYS_getpriority, EDOM}, {SYS_getpgid, EXDEV}, {SYS_getrusage, ENOSTR}};

// A thread driven by one-byte commands on a pipe; it answers each on `done`.
struct Worker {
  int cmd[2];
  int done[2];
  pthread_t th;
  const char* who;
  std::atomic<pid_t> tid;
};

void send(Worker& w, char c) {
  if (write(w.cmd[1], &c, 1) != 1) fail("write command: %s", strerror(errno));
  char r;
  if (read(w.done[0], &r, 1) != 1) fail("%s did not answer '%c'", w.who, c);
}

Worker g_t2{{}, {}, {}, "T2", {0}}, g_t3{{}, {}, {}, "T3", {0}}, g_ct{{}, {}, {}, "Ct", {0}};

void* worker_main(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  w.tid = pid_t(syscall(SYS_gettid));
  for (;;) {
    char c;
    ssize_t n = read(w.cmd[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return nullptr;
    if (c == 'q') {
      (void)!write(w.done[1], &c, 1);
      return nullptr;
    }
    if (c == 'i' && &w == &g_t2) {  // T2: its own filter, then T3
      if (seccomp_install({{SYS_times, SECCOMP_RET_ERRNO | ENOTUNIQ},
                           {SYS_sched_getscheduler, SECCOMP_RET_TRAP}}) != 0)
        fail("T2: seccomp F2: %s", strerror(errno));
      if (pipe(g_t3.cmd) || pipe(g_t3.done)) fail("pipe: %s", strerror(errno));
      if (pthread_create(&g_t3.th, nullptr, worker_main, &g_t3)) fail("pthread_create T3");
    } else if (c == 'c') {
      check_thread(w.who, &w == &g_ct ? kC : kT, &w == &g_ct ? 3 : 2);
    } else if (c == 'C') {  // after restore
      check_thread(w.who, &w == &g_ct ? kC : kT, &w == &g_ct ? 3 : 2);
      if (&w == &g_t3) {
        // M's chain [F1 F4] is no prefix of T3's [F1 F2]: TSYNC names M.
        long r = seccomp_install({{SYS_sysinfo, SECCOMP_RET_ERRNO | ENOLINK}},
                                 SECCOMP_FILTER_FLAG_TSYNC);
        if (r != getpid())
          bad(w.who, "TSYNC returned %ld (errno %d), want the leader's tid %d", r, errno, getpid());
      }
      if (&w == &g_ct) {
        // C and Ct share [F1 F4 F3]: TSYNC puts F6 on both.
        long r = seccomp_install({{SYS_sysinfo, SECCOMP_RET_ERRNO | ENOLINK}},
                                 SECCOMP_FILTER_FLAG_TSYNC);
        if (r != 0)
          bad(w.who, "TSYNC returned %ld (errno %d: %s), want 0", r, errno, strerror(errno));
      }
    }
    char ok = 'k';
    if (write(w.done[1], &ok, 1) != 1) return nullptr;
  }
}

void start_worker(Worker& w) {
  if (pipe(w.cmd) || pipe(w.done)) fail("pipe: %s", strerror(errno));
  if (pthread_create(&w.th, nullptr, worker_main, &w)) fail("pthread_create %s", w.who);
}

// The child C: commands from the parent on fd `cmd`, answers on `done`.
[[noreturn]] void child_main(int cmd, int done) {
  if (seccomp_install({{SYS_getrusage, SECCOMP_RET_ERRNO | ENOSTR}}) != 0)
    bad("C", "seccomp F3: %s", strerror(errno));
  start_worker(g_ct);
  for (;;) {
    char c;
    ssize_t n = read(cmd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) _exit(2);
    if (c == 'c' || c == 'C') {
      check_thread("C", kC, 3);
      send(g_ct, c);
      if (c == 'C') {
        auto with_f6 = kC;
        with_f6.push_back({SYS_sysinfo, ENOLINK});
        check_thread("C", with_f6, 4);
        std::string n_ct = thread_status("Seccomp_filters", g_ct.tid);
        if (n_ct != "4") bad("C", "Ct has Seccomp_filters %s after TSYNC, want 4", n_ct.c_str());
        send(g_ct, 'q');
        pthread_join(g_ct.th, nullptr);
        _exit(g_ok ? 0 : 1);
      }
    }
    char ok = 'k';
    if (write(done, &ok, 1) != 1) _exit(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  struct sigaction sa = {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSYS, &sa, nullptr);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

  start_worker(g_t2);
  long r = seccomp_install({{SYS_getpriority, SECCOMP_RET_ERRNO | EDOM}},
                           SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG);
  if (r != 0) fail("seccomp F1 with TSYNC: %ld %s", r, strerror(errno));
  send(g_t2, 'i');  // F2 on T2, T3 created
  if (seccomp_install({{SYS_getpgid, SECCOMP_RET_ERRNO | EXDEV}}) != 0)
    fail("seccomp F4: %s", strerror(errno));

  int to_c[2], from_c[2];
  if (pipe(to_c) || pipe(from_c)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) child_main(to_c[0], from_c[1]);
  auto ask_child = [&](char cmd) {
    if (write(to_c[1], &cmd, 1) != 1) fail("write to C: %s", strerror(errno));
    if (cmd == 'C') return;
    char a;
    if (read(from_c[0], &a, 1) != 1) fail("C did not answer");
  };

  check_thread("M", kM, 2);
  send(g_t2, 'c');
  send(g_t3, 'c');
  ask_child('c');
  test_ready();
  test_wait();

  check_thread("M", kM, 2);
  send(g_t2, 'C');
  send(g_t3, 'C');
  ask_child('C');
  int st;
  if (waitpid(c, &st, 0) != c) fail("waitpid C: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad("M", "C ended with status %#x", st);
  send(g_t2, 'q');
  send(g_t3, 'q');
  if (!g_ok) fail("see above");
  pass();
}
