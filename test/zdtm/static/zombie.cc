// zombie: unreaped children at the dump.
//
//   Z7  exited with status 7; it had made its own process group, and
//       S (alive) joined that group: a zombie group leader with a live member
//   Z0  exited with status 0
//   ZK  killed by SIGKILL (from the root)
//   ZU  killed by its own SIGUSR2 (default action: terminate, no core)
//   S   alive, in Z7's group
//   L   alive, with its own unreaped child LZ that exited with status 42
// Before READY the root sees every zombie (waitid WNOWAIT) without reaping.
// After SIGTERM the root checks, for each zombie: /proc/PID/stat state Z,
// ppid = root, pgrp and session; waitid(P_PID, WEXITED|WNOHANG|WNOWAIT)
// gives si_pid, si_uid 0, si_code CLD_EXITED/CLD_KILLED and si_status
// exactly; then waitpid() reaps it with exactly that status (WIFEXITED +
// WEXITSTATUS, or WIFSIGNALED + WTERMSIG without a core). S checks its
// pgid is Z7's pid; L checks LZ the same way and reaps it. Finally the root
// reaps S and L (exit 0) and nothing else is left (waitpid(-1) ECHILD).
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

#include "zdtm.h"

namespace {

const int kReadySig = SIGRTMIN + 1;
const char* g_who = "root";
bool g_ok = true;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s pid %d] ", g_who, getpid());
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

std::string status_str(int st) {
  char buf[80];
  if (WIFEXITED(st)) snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) snprintf(buf, sizeof(buf), "signal %d%s", WTERMSIG(st), WCOREDUMP(st) ? " (core)" : "");
  else snprintf(buf, sizeof(buf), "status %#x", st);
  return buf;
}

struct Stat {
  char state = 0;
  pid_t ppid = 0, pgrp = 0, sid = 0;
};
bool read_stat(pid_t pid, Stat* s) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return false;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char* close = strrchr(buf, ')');
  return close && sscanf(close + 2, "%c %d %d %d", &s->state, &s->ppid, &s->pgrp, &s->sid) == 4;
}

// A zombie child as designed: how it ended, and its group.
struct Zombie {
  const char* name;
  pid_t pid;
  int code;    // CLD_EXITED or CLD_KILLED
  int status;  // exit status or signal
  pid_t pgrp;
};

// Waits (without reaping) until pid is a zombie; fails after 30 s.
void wait_zombie(const Zombie& z) {
  const double deadline = mono() + 30;
  for (;;) {
    siginfo_t si = {};
    if (waitid(P_PID, z.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == z.pid) return;
    if (mono() > deadline) fail("%s (pid %d) did not end within 30 s", z.name, z.pid);
    sleep_ms(2);
  }
}

// The state checks, then reaping, of one zombie child of ours.
void check_and_reap(const Zombie& z, pid_t parent, pid_t sid) {
  Stat s;
  if (!read_stat(z.pid, &s)) return bad("%s: pid %d does not exist", z.name, z.pid);
  if (s.state != 'Z') bad("%s (pid %d): state %c, want Z", z.name, z.pid, s.state);
  if (s.ppid != parent) bad("%s (pid %d): ppid %d, want %d", z.name, z.pid, s.ppid, parent);
  if (s.pgrp != z.pgrp) bad("%s (pid %d): pgrp %d, want %d", z.name, z.pid, s.pgrp, z.pgrp);
  if (s.sid != sid) bad("%s (pid %d): session %d, want %d", z.name, z.pid, s.sid, sid);
  siginfo_t si = {};
  if (waitid(P_PID, z.pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
    bad("%s (pid %d): waitid: %s", z.name, z.pid, strerror(errno));
  } else if (si.si_pid != z.pid) {
    bad("%s (pid %d): waitid finds no exited child (si_pid %d)", z.name, z.pid, si.si_pid);
  } else {
    if (si.si_signo != SIGCHLD || si.si_code != z.code || si.si_status != z.status || si.si_uid != 0)
      bad("%s (pid %d): waitid signo %d code %d status %d uid %u, want %d %d %d 0", z.name, z.pid, si.si_signo,
          si.si_code, si.si_status, si.si_uid, SIGCHLD, z.code, z.status);
  }
  int st = 0;
  pid_t r = waitpid(z.pid, &st, WNOHANG);
  if (r != z.pid) return bad("%s (pid %d): waitpid returned %d (%s)", z.name, z.pid, r, r < 0 ? strerror(errno) : "not exited");
  bool ok = z.code == CLD_EXITED ? WIFEXITED(st) && WEXITSTATUS(st) == z.status
                                 : WIFSIGNALED(st) && WTERMSIG(st) == z.status && !WCOREDUMP(st);
  if (!ok) bad("%s (pid %d): waitpid status %s, want %s %d", z.name, z.pid, status_str(st).c_str(),
               z.code == CLD_EXITED ? "exit" : "signal", z.status);
}

void send_ready(pid_t root) {
  sigval v = {};
  if (sigqueue(root, kReadySig, v)) fail("sigqueue: %s", strerror(errno));
}

// Blocks until `sig` arrives (mask inherited from the root), max 30 s.
void wait_signal(int sig) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  timespec ts = {30, 0};
  if (sigtimedwait(&s, nullptr, &ts) != sig) _exit(99);
}

bool wait_exit(pid_t pid, int* st, double timeout) {
  const double deadline = mono() + timeout;
  for (;;) {
    pid_t r = waitpid(pid, st, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (mono() > deadline) return false;
    sleep_ms(2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const pid_t root = getpid(), sid = getsid(0);
  // Children block these; each waits for its cue with sigtimedwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kReadySig);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  // Z7: its own group; exits 7 on SIGUSR1 (after S has joined the group).
  pid_t z7 = fork();
  if (z7 < 0) fail("fork: %s", strerror(errno));
  if (z7 == 0) {
    setpgid(0, 0);
    wait_signal(SIGUSR1);
    _exit(7);
  }
  setpgid(z7, z7);
  pid_t s = fork();
  if (s < 0) fail("fork: %s", strerror(errno));
  if (s == 0) {
    g_who = "S";
    if (setpgid(0, z7)) fail("S: setpgid(0, %d): %s", z7, strerror(errno));
    send_ready(root);
    test_wait();
    if (getpgid(0) != z7) bad("pgid %d, want %d (the zombie Z7)", getpgid(0), z7);
    if (getppid() != root) bad("ppid %d, want %d", getppid(), root);
    _exit(g_ok ? 0 : 1);
  }
  setpgid(s, z7);
  pid_t z0 = fork();
  if (z0 == 0) _exit(0);
  pid_t zk = fork();
  if (zk == 0) {
    wait_signal(SIGUSR1);  // never comes: SIGKILLed first
    _exit(98);
  }
  pid_t zu = fork();
  if (zu == 0) {
    signal(SIGUSR2, SIG_DFL);
    raise(SIGUSR2);
    _exit(97);
  }
  pid_t l = fork();
  if (l == 0) {
    g_who = "L";
    pid_t lz = fork();
    if (lz < 0) fail("L: fork: %s", strerror(errno));
    if (lz == 0) _exit(42);
    Zombie z = {"LZ", lz, CLD_EXITED, 42, root};
    wait_zombie(z);
    send_ready(root);
    test_wait();
    check_and_reap(z, getpid(), sid);
    int st;
    if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD) bad("another child left to reap");
    _exit(g_ok ? 0 : 1);
  }
  if (z0 < 0 || zk < 0 || zu < 0 || l < 0) fail("fork: %s", strerror(errno));

  // S and L report set up; then Z7 may exit, ZK is killed.
  for (int i = 0; i < 2; i++) {
    timespec ts = {30, 0};
    sigset_t r;
    sigemptyset(&r);
    sigaddset(&r, kReadySig);
    if (sigtimedwait(&r, nullptr, &ts) != kReadySig) fail("S and L did not set up within 30 s");
  }
  kill(z7, SIGUSR1);
  kill(zk, SIGKILL);
  const Zombie zombies[] = {
      {"Z7", z7, CLD_EXITED, 7, z7},
      {"Z0", z0, CLD_EXITED, 0, root},
      {"ZK", zk, CLD_KILLED, SIGKILL, root},
      {"ZU", zu, CLD_KILLED, SIGUSR2, root},
  };
  for (const Zombie& z : zombies) wait_zombie(z);
  test_msg("zombies Z7=%d Z0=%d ZK=%d ZU=%d, S=%d (in Z7's group), L=%d", z7, z0, zk, zu, s, l);
  test_ready();
  test_wait();

  for (const Zombie& z : zombies) check_and_reap(z, root, sid);
  for (auto [name, pid] : {std::pair<const char*, pid_t>{"S", s}, {"L", l}}) {
    if (kill(pid, SIGTERM)) bad("kill(%s %d, SIGTERM): %s", name, pid, strerror(errno));
    int st = 0;
    if (!wait_exit(pid, &st, 30)) {
      bad("%s (pid %d) did not exit within 30 s of SIGTERM: %s", name, pid, strerror(errno));
      kill(pid, SIGKILL);
      continue;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad("%s (pid %d) ended with %s", name, pid, status_str(st).c_str());
  }
  int st;
  pid_t extra = waitpid(-1, &st, WNOHANG);
  if (extra != -1 || errno != ECHILD) bad("another child left to reap (waitpid(-1) = %d)", extra);
  if (!g_ok) fail("zombies differ (see above)");
  pass();
}
