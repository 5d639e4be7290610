// zombie_wait: zombies in several places of a tree, reaped after restore
// by parents that call wait() on them (waitpid, waitid, wait4; from the
// leader or from another thread), including zombies killed by the signals
// a crash sends (SIGSEGV from a real fault, SIGBUS, SIGILL, SIGFPE,
// SIGTRAP, SIGABRT), and a parent blocked in wait() across the dump.
//
//   R (root)  zombies RS (a real NULL write: SIGSEGV) and RE (exit 3);
//             reaps RS with waitpid, RE with wait4 (rusage)
//   M         child of R; zombies MB (SIGBUS) and ME (exit 9); reaps both
//             with waitid(P_ALL) in any order
//   T         child of R, three threads; thread 1 forked TI (SIGILL), TF
//             (SIGFPE) and TT (SIGTRAP), thread 2 reaps them with wait4(-1)
//   W         child of R, blocked in waitpid(WL) through the dump; WL is
//             alive, R makes it exit 21 after restore, W checks the status
//   A         child of R, zombie child AA (SIGABRT via abort())
// Every wait checks pid, exit status or signal, and no core dump.
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "zdtm.h"

namespace {

const char* g_who = "R";
bool g_ok = true;
volatile uintptr_t g_bad_addr = 8;  // unmapped: writing there faults

void bad(const char* what, pid_t pid, int st, const char* want) {
  printf("FAIL: [%s pid %d] %s (pid %d): status %#x, want %s\n", g_who, getpid(), what, pid, st, want);
  g_ok = false;
}

// The child's end: `how` > 0 a signal the crash sends, <= 0 exit(-how).
[[noreturn]] void die(int how) {
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  if (how <= 0) _exit(-how);
  switch (how) {
    case SIGSEGV:
      *reinterpret_cast<volatile int*>(g_bad_addr) = 1;  // a real fault
      break;
    case SIGABRT:
      abort();
    default:
      signal(how, SIG_DFL);
      raise(how);
  }
  _exit(100);
}

pid_t spawn(int how) {
  pid_t p = fork();
  if (p < 0) fail("[%s] fork: %s", g_who, strerror(errno));
  if (p == 0) die(how);
  return p;
}

// Waits (without reaping) until pid has ended; 30 s at most.
void wait_dead(pid_t pid) {
  for (int i = 0; i < 15000; i++) {
    siginfo_t si = {};
    if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) return;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, nullptr);
  }
  fail("[%s] child %d did not end within 30 s", g_who, pid);
}

bool status_is(int st, int how) {
  if (how <= 0) return WIFEXITED(st) && WEXITSTATUS(st) == -how;
  return WIFSIGNALED(st) && WTERMSIG(st) == how && !WCOREDUMP(st);
}
const char* want_str(int how) {
  static char buf[64];
  if (how <= 0)
    snprintf(buf, sizeof(buf), "exit %d", -how);
  else
    snprintf(buf, sizeof(buf), "signal %d (%s), no core", how, strsignal(how));
  return buf;
}

// Set-up reports go to R through this pipe (a pid_t each: W's is WL's pid,
// the others 0), closed before READY. (R cannot look WL up in /proc: in a
// pid namespace of its own it sees another /proc's pids.)
int g_report = -1;
void report(pid_t what = 0) {
  if (write(g_report, &what, sizeof(what)) != sizeof(what)) fail("[%s] report: %s", g_who, strerror(errno));
}

// --- T: three threads ---------------------------------------------------
pid_t g_t_kids[3];
const int kTHow[3] = {SIGILL, SIGFPE, SIGTRAP};
void* t_forker(void*) {
  for (int i = 0; i < 3; i++) g_t_kids[i] = spawn(kTHow[i]);
  for (pid_t p : g_t_kids) wait_dead(p);
  return nullptr;
}
void* t_reaper(void*) {
  test_wait();  // SIGTERM goes to the process; the handler sets the flag
  for (int n = 0; n < 3; n++) {
    int st = 0;
    struct rusage ru;
    pid_t p = wait4(-1, &st, 0, &ru);
    int i = 0;
    while (i < 3 && g_t_kids[i] != p) i++;
    if (i == 3) {
      printf("FAIL: [T] wait4(-1) returned %d (%s)\n", p, p < 0 ? strerror(errno) : "not a zombie of ours");
      g_ok = false;
      break;
    }
    if (!status_is(st, kTHow[i])) bad("wait4", p, st, want_str(kTHow[i]));
    g_t_kids[i] = -1;
  }
  return nullptr;
}
[[noreturn]] void run_t() {
  g_who = "T";
  // Only the reaper takes SIGTERM (its sigsuspend must be what wakes).
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  pthread_t f, r;
  if (pthread_create(&f, nullptr, t_forker, nullptr)) fail("[T] pthread_create");
  pthread_join(f, nullptr);
  if (pthread_create(&r, nullptr, t_reaper, nullptr)) fail("[T] pthread_create");
  report();
  close(g_report);
  // The leader just waits for the reaper (which waits for SIGTERM).
  pthread_join(r, nullptr);
  _exit(g_ok ? 0 : 1);
}

// --- M: waitid(P_ALL) ----------------------------------------------------
[[noreturn]] void run_m() {
  g_who = "M";
  pid_t kids[2] = {spawn(SIGBUS), spawn(-9)};
  const int how[2] = {SIGBUS, -9};
  for (pid_t p : kids) wait_dead(p);
  report();
  close(g_report);
  test_wait();
  for (int n = 0; n < 2; n++) {
    siginfo_t si = {};
    if (waitid(P_ALL, 0, &si, WEXITED) != 0) {
      printf("FAIL: [M] waitid: %s\n", strerror(errno));
      _exit(1);
    }
    int i = si.si_pid == kids[0] ? 0 : si.si_pid == kids[1] ? 1 : -1;
    if (i < 0) {
      printf("FAIL: [M] waitid gave pid %d\n", si.si_pid);
      _exit(1);
    }
    int code = how[i] > 0 ? CLD_KILLED : CLD_EXITED;
    int status = how[i] > 0 ? how[i] : -how[i];
    if (si.si_signo != SIGCHLD || si.si_code != code || si.si_status != status) {
      printf("FAIL: [M] waitid pid %d: code %d status %d, want %d %d\n", si.si_pid, si.si_code, si.si_status,
             code, status);
      g_ok = false;
    }
    kids[i] = -1;
  }
  _exit(g_ok ? 0 : 1);
}

// --- W: blocked in waitpid through the dump ------------------------------
[[noreturn]] void run_w(pid_t wl) {
  g_who = "W";
  report(wl);
  close(g_report);
  int st = 0;
  pid_t r;
  do {
    r = waitpid(wl, &st, 0);  // SIGTERM (handled) may interrupt it: EINTR
  } while (r < 0 && errno == EINTR);
  if (r != wl) {
    printf("FAIL: [W] waitpid(%d) = %d: %s\n", wl, r, strerror(errno));
    _exit(1);
  }
  if (!status_is(st, -21)) bad("waitpid", wl, st, want_str(-21));
  _exit(g_ok ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  setvbuf(stdout, nullptr, _IONBF, 0);
  int rp[2];
  if (pipe(rp)) fail("pipe: %s", strerror(errno));
  g_report = rp[1];

  pid_t rs = spawn(SIGSEGV), re = spawn(-3);
  pid_t m = fork();
  if (m == 0) close(rp[0]), run_m();
  pid_t t = fork();
  if (t == 0) close(rp[0]), run_t();
  // WL: R's child too (W cannot wait for its sibling): W is WL's parent.
  pid_t w = fork();
  pid_t wl = -1;
  if (w == 0) {
    close(rp[0]);
    pid_t c = fork();
    if (c < 0) fail("[W] fork: %s", strerror(errno));
    if (c == 0) {
      g_who = "WL";
      close(g_report);
      // Exits 21 on SIGUSR1 (from R, after restore).
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGUSR1);
      sigprocmask(SIG_BLOCK, &s, nullptr);
      int sig = 0;
      sigwait(&s, &sig);
      _exit(21);
    }
    run_w(c);
  }
  pid_t a = fork();
  if (a == 0) {
    close(rp[0]);
    g_who = "A";
    pid_t aa = spawn(SIGABRT);
    wait_dead(aa);
    report();
    close(g_report);
    test_wait();
    int st = 0;
    if (waitpid(aa, &st, 0) != aa) printf("FAIL: [A] waitpid: %s\n", strerror(errno)), _exit(1);
    if (!status_is(st, SIGABRT)) bad("waitpid", aa, st, want_str(SIGABRT));
    _exit(g_ok ? 0 : 1);
  }
  if (rs < 0 || re < 0 || m < 0 || t < 0 || w < 0 || a < 0) fail("fork: %s", strerror(errno));
  close(rp[1]);
  for (int i = 0; i < 4; i++) {
    pid_t got = 0;
    if (read(rp[0], &got, sizeof(got)) != sizeof(got)) fail("a child did not set up");
    if (got) wl = got;
  }
  close(rp[0]);
  wait_dead(rs);
  wait_dead(re);
  if (wl <= 0) fail("W did not report its child WL");
  test_msg("RS=%d RE=%d M=%d T=%d W=%d WL=%d A=%d", rs, re, m, t, w, wl, a);
  test_ready();
  test_wait();

  int st = 0;
  if (waitpid(rs, &st, 0) != rs) fail("waitpid RS: %s", strerror(errno));
  if (!status_is(st, SIGSEGV)) bad("waitpid RS", rs, st, want_str(SIGSEGV));
  struct rusage ru;
  if (wait4(re, &st, 0, &ru) != re) fail("wait4 RE: %s", strerror(errno));
  if (!status_is(st, -3)) bad("wait4 RE", re, st, want_str(-3));
  if (kill(wl, SIGUSR1)) printf("FAIL: kill WL %d: %s\n", wl, strerror(errno)), g_ok = false;
  for (pid_t p : {m, t, a}) kill(p, SIGTERM);
  for (pid_t p : {m, t, w, a}) {
    if (waitpid(p, &st, 0) != p) fail("waitpid %d: %s", p, strerror(errno));
    if (!status_is(st, 0)) bad("child", p, st, "exit 0");
  }
  if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) printf("FAIL: another child left\n"), g_ok = false;
  if (!g_ok) fail("zombies or waits differ (see above)");
  pass();
}
