// fown_shared: SIGIO owners and shared fd tables / fs structs (issue 14
// item 8).
//
//   pipe A   read end O_ASYNC, F_SETOWN_EX F_OWNER_TID = thread W,
//            F_SETSIG SIGRTMIN+2: writing to A must signal W (si_fd).
//   pair B   socketpair end O_ASYNC, F_SETOWN getpid(), plain SIGIO to the
//            process.
//   pipe P   shared with child C, which made itself the owner (F_SETOWN
//            its pid, F_SETSIG SIGUSR1, O_ASYNC): writing to P from R
//            must wake C in sigwaitinfo, and C exits 0.
//   W and the main thread share their fd table and fs struct: after
//   restore kcmp(KCMP_FILES/KCMP_FS) says so, an fd W opens is the main
//   thread's, W's chdir and umask are the main thread's.
//   child F, cloned with CLONE_FS, shares R's fs struct: after restore
//   kcmp(KCMP_FS) says so, and F's chdir and umask are R's.
// Before READY and after SIGTERM R checks F_GETOWN_EX, F_GETSIG and
// O_ASYNC of each; after SIGTERM it checks every signal arrives.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

std::atomic<bool> g_ok{true};
const int kSigA = SIGRTMIN + 2;
int g_a[2], g_b[2], g_p[2];
std::atomic<pid_t> g_w_tid{0};
std::atomic<int> g_w_fd{-1};
int g_go[2];  // W reads a byte: check, then one more: wait for A's signal
int g_fcmd[2], g_fack[2];  // F: one byte: chdir /sys, umask 055, ack; EOF: exit

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

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void set_owner(int fd, int type, pid_t who, int sig) {
  f_owner_ex o = {static_cast<__pid_type>(type), who};
  if (fcntl(fd, F_SETOWN_EX, &o)) fail("F_SETOWN_EX: %s", strerror(errno));
  if (sig && fcntl(fd, F_SETSIG, sig)) fail("F_SETSIG: %s", strerror(errno));
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC)) fail("O_ASYNC: %s", strerror(errno));
}

void check_owner(const char* what, int fd, int type, pid_t who, int sig) {
  f_owner_ex o = {};
  if (fcntl(fd, F_GETOWN_EX, &o)) return bad("%s: F_GETOWN_EX: %s", what, strerror(errno));
  if (o.type != type || o.pid != who) bad("%s: owner type %d pid %d, want %d %d", what, o.type, o.pid, type, who);
  if (fcntl(fd, F_GETSIG) != sig) bad("%s: F_GETSIG %d, want %d", what, fcntl(fd, F_GETSIG), sig);
  if (!(fcntl(fd, F_GETFL) & O_ASYNC)) bad("%s: O_ASYNC is clear", what);
}

// Waits for sig (blocked) up to 30 s; false if it did not come.
bool wait_sig(int sig, int want_fd, const char* what) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  timespec ts = {30, 0};
  siginfo_t si = {};
  int r;
  while ((r = sigtimedwait(&s, &si, &ts)) < 0 && errno == EINTR) {
  }
  if (r != sig) {
    bad("%s: signal %d did not come: %s", what, sig, strerror(errno));
    return false;
  }
  if (want_fd >= 0 && si.si_fd != want_fd) bad("%s: si_fd %d, want %d", what, si.si_fd, want_fd);
  return true;
}

void read_go() {
  char c;
  while (read(g_go[0], &c, 1) < 0 && errno == EINTR) {
  }
}

void* w_main(void*) {
  g_w_tid = pid_t(syscall(SYS_gettid));
  read_go();  // after restore: share checks
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad("W: open /dev/null: %s", strerror(errno));
  if (chdir("/proc")) bad("W: chdir: %s", strerror(errno));
  umask(0077);
  g_w_fd = fd;
  read_go();  // then A's signal
  wait_sig(kSigA, g_a[0], "pipe A owned by thread W");
  return nullptr;
}

int f_main(void*) {
  close(g_fcmd[1]);  // its own copy: R's close is then the EOF
  char c;
  if (read(g_fcmd[0], &c, 1) != 1) _exit(2);
  if (chdir("/sys")) _exit(3);
  umask(0055);
  if (write(g_fack[1], "k", 1) != 1) _exit(4);
  while (read(g_fcmd[0], &c, 1) > 0) {
  }
  _exit(0);
}

[[noreturn]] void c_main() {
  set_owner(g_p[0], F_OWNER_PID, getpid(), SIGUSR1);
  siginfo_t si = {};
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  int r;
  while ((r = sigwaitinfo(&s, &si)) < 0 && errno == EINTR) {
  }
  _exit(r == SIGUSR1 && si.si_fd == g_p[0] ? 0 : 3);
}

void check_all(pid_t c) {
  check_owner("pipe A", g_a[0], F_OWNER_TID, g_w_tid, kSigA);
  check_owner("socketpair B", g_b[0], F_OWNER_PID, getpid(), 0);
  check_owner("pipe P", g_p[0], F_OWNER_PID, c, SIGUSR1);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, kSigA);
  sigaddset(&s, SIGIO);
  sigaddset(&s, SIGUSR1);
  sigprocmask(SIG_BLOCK, &s, nullptr);  // every thread and C inherit it
  if (pipe2(g_a, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM, 0, g_b) || pipe(g_p) || pipe(g_go))
    fail("pipe/socketpair: %s", strerror(errno));
  pthread_t w;
  if (pthread_create(&w, nullptr, w_main, nullptr)) fail("pthread_create");
  while (!g_w_tid) usleep(1000);
  set_owner(g_a[0], F_OWNER_TID, g_w_tid, kSigA);
  set_owner(g_b[0], F_OWNER_PID, getpid(), 0);
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) c_main();
  if (pipe(g_fcmd) || pipe(g_fack)) fail("pipe: %s", strerror(errno));
  static char f_stack[64 * 1024] __attribute__((aligned(16)));
  pid_t f = clone(f_main, f_stack + sizeof(f_stack), CLONE_FS | SIGCHLD, nullptr);
  if (f < 0) fail("clone CLONE_FS: %s", strerror(errno));
  if (syscall(SYS_kcmp, getpid(), f, KCMP_FS, 0, 0) != 0) fail("F does not share our fs struct");
  const double deadline = mono() + 20;
  for (;;) {  // C sets the owner of the shared pipe end: we see it here
    f_owner_ex o = {};
    fcntl(g_p[0], F_GETOWN_EX, &o);
    if (o.pid == c && (fcntl(g_p[0], F_GETFL) & O_ASYNC)) break;
    if (mono() > deadline) fail("C did not take pipe P");
    usleep(1000);
  }
  check_all(c);
  if (!g_ok) fail("owners not as designed before the dump");
  test_msg("W=%d C=%d F=%d", int(g_w_tid), c, f);
  test_ready();
  test_wait();

  check_all(c);
  // Shared fd table and fs struct with W.
  for (int k : {KCMP_FILES, KCMP_FS})
    if (syscall(SYS_kcmp, getpid(), pid_t(g_w_tid), k, 0, 0) != 0)
      bad("kcmp %s: W does not share it with the main thread", k == KCMP_FILES ? "KCMP_FILES" : "KCMP_FS");
  mode_t old_umask = umask(022);
  umask(old_umask);
  if (write(g_go[1], "g", 1) != 1) bad("go");
  while (g_w_fd < 0) usleep(1000);  // bounded by W: it opens or reports
  if (fcntl(g_w_fd, F_GETFD) < 0) bad("fd %d W opened is not in the main thread's table", int(g_w_fd));
  char cwd[256] = {};
  if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/proc") != 0) bad("cwd '%s' after W's chdir /proc", cwd);
  mode_t now = umask(old_umask);
  if (now != 0077) bad("umask %#o after W's umask 077", now);
  // F's fs struct is ours.
  if (syscall(SYS_kcmp, getpid(), f, KCMP_FS, 0, 0) != 0) bad("kcmp KCMP_FS: F does not share it with us");
  char ack = 0;
  if (write(g_fcmd[1], "c", 1) != 1 || read(g_fack[0], &ack, 1) != 1) bad("F does not answer");
  memset(cwd, 0, sizeof(cwd));
  if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/sys") != 0) bad("cwd '%s' after F's chdir /sys", cwd);
  now = umask(old_umask);
  if (now != 0055) bad("umask %#o after F's umask 055", now);
  close(g_fcmd[1]);
  {
    int fst = 0;
    const double fend = mono() + 30;
    for (;;) {
      pid_t r = waitpid(f, &fst, WNOHANG);
      if (r == f) break;
      if (r < 0 || mono() > fend) {
        bad("F (pid %d) did not exit", f);
        kill(f, SIGKILL);
        waitpid(f, &fst, 0);
        break;
      }
      usleep(2000);
    }
    if (!WIFEXITED(fst) || WEXITSTATUS(fst) != 0) bad("F ended with status %#x", fst);
  }
  // SIGIO deliveries.
  if (write(g_go[1], "g", 1) != 1) bad("go");
  if (write(g_a[1], "a", 1) != 1) bad("write A");
  pthread_join(w, nullptr);
  if (write(g_b[1], "b", 1) != 1) bad("write B");
  wait_sig(SIGIO, -1, "socketpair B owned by the process");
  if (write(g_p[1], "p", 1) != 1) bad("write P");
  int st = 0;
  const double end = mono() + 30;
  for (;;) {
    pid_t r = waitpid(c, &st, WNOHANG);
    if (r == c) break;
    if (r < 0 || mono() > end) {
      bad("C (pid %d) did not get its SIGUSR1 for pipe P within 30 s", c);
      kill(c, SIGKILL);
      waitpid(c, &st, 0);
      break;
    }
    usleep(2000);
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad("C ended with status %#x", st);
  if (!g_ok) fail("owners or sharing differ (see above)");
  pass();
}
