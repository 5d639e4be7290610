// proc_stopped: job-control stops and a SIGTRAP handler (issue 14 item 5).
//
//   R   the root: a SIGTRAP handler (SA_SIGINFO); not stopped itself.
//   S1  child stopped by SIGSTOP; R collected the stop with waitpid
//       WUNTRACED before READY: after restore waitpid(WUNTRACED | WNOHANG)
//       must find no new report. S1 has a SIGTRAP handler too.
// R has a SIGCHLD handler (stops raise SIGCHLD in it).
//   S2  child stopped by SIGSTOP; R leaves the stop report uncollected:
//       after restore waitpid(WUNTRACED) must still report S2 stopped.
//   S3  child in a process group of its own, with a second thread, stopped
//       by SIGTSTP (default action); every thread must be stopped. S3
//       ignores SIGTRAP (SIG_IGN must stay, and raise(SIGTRAP) do nothing).
// After SIGTERM, R checks every thread of S1..S3 is in state T
// (/proc/PID/task/TID/stat; a bounded wait for the restored tasks to
// take their stop), S2's report, raises SIGTRAP in itself (its handler
// must run), then SIGCONTs each child: each, continued, raises SIGTRAP
// where it has a handler, checks it ran and exits 0.
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

volatile sig_atomic_t g_traps = 0, g_cont = 0;
bool g_ok = true;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [pid %d] ", getpid());
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

void on_trap(int, siginfo_t* si, void*) {
  if (si->si_signo == SIGTRAP) g_traps = g_traps + 1;
}
void on_cont(int) { g_cont = 1; }
volatile sig_atomic_t g_chld = 0;
void on_chld(int) { g_chld = g_chld + 1; }

void install_trap_handler() {
  struct sigaction sa = {};
  sa.sa_sigaction = on_trap;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTRAP, &sa, nullptr)) fail("sigaction SIGTRAP: %s", strerror(errno));
}

// The handler must be the one installed (same address, SA_SIGINFO) and run.
void check_trap_handler() {
  struct sigaction sa = {};
  sigaction(SIGTRAP, nullptr, &sa);
  if (sa.sa_sigaction != on_trap || !(sa.sa_flags & SA_SIGINFO))
    bad("SIGTRAP handler %p flags %#x, want %p with SA_SIGINFO", (void*)sa.sa_sigaction,
        sa.sa_flags, (void*)on_trap);
  int before = g_traps;
  raise(SIGTRAP);
  if (g_traps != before + 1) bad("SIGTRAP handler did not run (count %d -> %d)", before, int(g_traps));
}

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void nap() {
  timespec ts = {0, 2000000};
  nanosleep(&ts, nullptr);
}

char state_of(const std::string& stat_path) {
  FILE* f = fopen(stat_path.c_str(), "re");
  if (!f) return 0;
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : 0;
}

std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(atoi(e->d_name));
    closedir(d);
  }
  return out;
}

// Waits (bounded) until every thread of pid is in state T; false if not.
bool wait_all_stopped(pid_t pid, size_t nthreads, std::string* states) {
  const double deadline = mono() + 20;
  for (;;) {
    std::vector<pid_t> tids = threads_of(pid);
    states->clear();
    bool all = tids.size() == nthreads;
    for (pid_t t : tids) {
      char s = state_of("/proc/" + std::to_string(pid) + "/task/" + std::to_string(t) + "/stat");
      *states += s ? s : '?';
      all = all && s == 'T';
    }
    if (all) return true;
    if (mono() > deadline) return false;
    nap();
  }
}

void* sleeper(void*) {
  for (;;) pause();
  return nullptr;
}

// A child: waits to be stopped and continued, then checks its handler.
[[noreturn]] void child_main(bool trap_handler, bool own_group, bool thread) {
  if (own_group && setpgid(0, 0)) fail("setpgid: %s", strerror(errno));
  if (trap_handler) install_trap_handler();
  if (!trap_handler) signal(SIGTRAP, SIG_IGN);
  // SIGCONT blocked but for sigsuspend: no wakeup lost between the check
  // and the wait (blocking it does not keep SIGCONT from continuing us).
  sigset_t cont, none;
  sigemptyset(&cont);
  sigaddset(&cont, SIGCONT);
  sigprocmask(SIG_BLOCK, &cont, &none);
  sigdelset(&none, SIGCONT);
  signal(SIGCONT, on_cont);
  if (thread) {
    pthread_t t;
    if (pthread_create(&t, nullptr, sleeper, nullptr)) fail("pthread_create");
  }
  while (!g_cont) sigsuspend(&none);
  if (trap_handler) check_trap_handler();
  if (!trap_handler) {
    struct sigaction sa = {};
    sigaction(SIGTRAP, nullptr, &sa);
    if (sa.sa_handler != SIG_IGN) bad("SIGTRAP is no longer ignored (handler %p)", (void*)sa.sa_handler);
    else raise(SIGTRAP);  // ignored: nothing happens
  }
  _exit(g_ok ? 0 : 1);
}

struct Child {
  const char* name;
  int stop_sig;
  bool collect;  // R collects the stop report before READY
  size_t threads;
  pid_t pid = 0;
};

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  install_trap_handler();
  signal(SIGCHLD, on_chld);
  Child kids[] = {{"S1", SIGSTOP, true, 1}, {"S2", SIGSTOP, false, 1}, {"S3", SIGTSTP, false, 2}};
  for (Child& c : kids) {
    bool s3 = c.threads == 2;
    c.pid = fork();
    if (c.pid < 0) fail("fork: %s", strerror(errno));
    if (c.pid == 0) child_main(!s3, s3, s3);
    if (s3) setpgid(c.pid, c.pid);  // either side may get there first
  }
  // Stop each child once it is set up (its threads all there).
  for (Child& c : kids) {
    const double deadline = mono() + 20;
    while (threads_of(c.pid).size() != c.threads) {
      if (mono() > deadline) fail("%s did not start its threads", c.name);
      nap();
    }
    // The child installs its SIGCONT handler before anything else it does;
    // wait for it (SigCgt in status has bit 18 = SIGCONT).
    for (;;) {
      std::string st = zdtm_read_file(("/proc/" + std::to_string(c.pid) + "/status").c_str());
      size_t p = st.find("SigCgt:");
      if (p != std::string::npos && (strtoull(st.c_str() + p + 7, nullptr, 16) >> (SIGCONT - 1) & 1)) break;
      if (mono() > deadline) fail("%s did not install its SIGCONT handler", c.name);
      nap();
    }
    if (kill(c.pid, c.stop_sig)) fail("kill %s: %s", c.name, strerror(errno));
    std::string states;
    if (!wait_all_stopped(c.pid, c.threads, &states)) fail("%s not stopped (%s)", c.name, states.c_str());
    if (c.collect) {
      int st = 0;
      if (waitpid(c.pid, &st, WUNTRACED) != c.pid || !WIFSTOPPED(st) || WSTOPSIG(st) != c.stop_sig)
        fail("%s: waitpid WUNTRACED status %#x", c.name, st);
    }
  }
  test_msg("S1=%d S2=%d S3=%d stopped", kids[0].pid, kids[1].pid, kids[2].pid);
  test_ready();
  test_wait();

  for (Child& c : kids) {
    std::string states;
    if (!wait_all_stopped(c.pid, c.threads, &states))
      bad("%s (pid %d): not stopped after restore: thread states %s", c.name, c.pid, states.c_str());
  }
  // S1's stop was collected before the dump: no report again.
  {
    int st = 0;
    pid_t r = waitpid(kids[0].pid, &st, WUNTRACED | WNOHANG);
    if (r != 0) bad("S1: waitpid WUNTRACED reports status %#x again (returned %d)", st, r);
  }
  // S2's stop was never collected: it must be reported now.
  {
    const double deadline = mono() + 20;
    int st = 0;
    for (;;) {
      pid_t r = waitpid(kids[1].pid, &st, WUNTRACED | WNOHANG);
      if (r == kids[1].pid) {
        if (!WIFSTOPPED(st)) bad("S2: waitpid WUNTRACED status %#x, want stopped", st);
        break;
      }
      if (r < 0 || mono() > deadline) {
        bad("S2: its stop is not reported to waitpid WUNTRACED: %s", r < 0 ? strerror(errno) : "none");
        break;
      }
      nap();
    }
  }
  check_trap_handler();
  for (Child& c : kids) {
    if (kill(c.pid, SIGCONT)) bad("SIGCONT %s: %s", c.name, strerror(errno));
    const double deadline = mono() + 30;
    int st = 0;
    for (;;) {
      pid_t r = waitpid(c.pid, &st, WNOHANG);
      if (r == c.pid) break;
      if ((r < 0 && errno != EINTR) || mono() > deadline) {
        bad("%s (pid %d) did not exit after SIGCONT", c.name, c.pid);
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &st, 0);
        st = 0;
        break;
      }
      nap();
    }
    if (WIFSIGNALED(st)) bad("%s killed by signal %d", c.name, WTERMSIG(st));
    else if (WEXITSTATUS(st)) bad("%s exited %d", c.name, WEXITSTATUS(st));
  }
  if (!g_ok) fail("stopped state or SIGTRAP handler not kept (see above)");
  pass();
}
