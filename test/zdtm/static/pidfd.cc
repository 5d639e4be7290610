// pidfd: pidfds of processes and threads of the tree (issue 14 item 10).
// The root holds fd 140 (its child, PIDFD_NONBLOCK), fd 141 (itself) and
// fd 143 (its leader thread, PIDFD_THREAD; it also runs a second thread);
// the child holds fd 142 (its
// parent, the root). After restore each must name the same task (fdinfo
// "Pid:") with the same flags; the root signals its child through fd 140
// (pidfd_send_signal), the child checks fd 142 and exits, and the root
// collects its exit status through the pidfd (waitid P_PIDFD).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace {
int pidfd_open(pid_t pid, unsigned flags) { return int(syscall(SYS_pidfd_open, pid, flags)); }

long fdinfo_pid(int fd) {
  std::string text = zdtm_read_file(("/proc/self/fdinfo/" + std::to_string(fd)).c_str());
  size_t p = text.find("\nPid:");
  if (p == std::string::npos) return -100;
  return strtol(text.c_str() + p + 5, nullptr, 10);
}

void place(int fd, int num) {
  if (fd < 0) fail("pidfd_open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d", num);
  close(fd);
}

std::atomic<pid_t> g_tid{0};
std::atomic<bool> g_stop{false};
void* thread_main(void*) {
  g_tid = pid_t(syscall(SYS_gettid));
  while (!g_stop) usleep(10000);
  return nullptr;
}

volatile sig_atomic_t g_child_term = 0;
void on_term(int) { g_child_term = 1; }

[[noreturn]] void child_main(pid_t parent) {
  place(pidfd_open(parent, 0), 142);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  signal(SIGTERM, on_term);
  if (write(3, "c", 1) != 1) _exit(5);  // ready
  close(3);
  sigset_t wait_mask = old;
  sigdelset(&wait_mask, SIGTERM);
  for (int i = 0; i < 1000000 && !g_child_term; i++) sigsuspend(&wait_mask);
  long p = fdinfo_pid(142);
  if (p != getppid() || p != parent) {
    test_msg("child: fd 142 names pid %ld, want %d", p, parent);
    _exit(1);
  }
  _exit(0);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  int ready[2];
  if (pipe(ready)) fail("pipe");
  pid_t parent = getpid();
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    close(ready[0]);
    if (dup2(ready[1], 3) != 3) _exit(6);
    child_main(parent);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) fail("child did not start");
  close(ready[0]);
  pthread_t th;
  if (pthread_create(&th, nullptr, thread_main, nullptr)) fail("pthread_create");
  for (int i = 0; i < 10000 && !g_tid; i++) usleep(1000);
  if (!g_tid) fail("thread did not start");
  place(pidfd_open(child, PIDFD_NONBLOCK), 140);
  place(pidfd_open(getpid(), 0), 141);
  place(pidfd_open(getpid(), PIDFD_THREAD), 143);  // the leader as a thread
  int fl140 = fcntl(140, F_GETFL), fl141 = fcntl(141, F_GETFL), fl143 = fcntl(143, F_GETFL);

  test_ready();
  test_wait();

  if (fdinfo_pid(140) != child) fail("fd 140 names pid %ld, want the child %d", fdinfo_pid(140), child);
  if (fdinfo_pid(141) != getpid()) fail("fd 141 names pid %ld, want us (%d)", fdinfo_pid(141), getpid());
  if (fdinfo_pid(143) != getpid()) fail("fd 143 names pid %ld, want the leader %d", fdinfo_pid(143), getpid());
  if (fcntl(140, F_GETFL) != fl140 || fcntl(141, F_GETFL) != fl141 || fcntl(143, F_GETFL) != fl143)
    fail("flags %#x %#x %#x, want %#x %#x %#x", fcntl(140, F_GETFL), fcntl(141, F_GETFL),
         fcntl(143, F_GETFL), fl140, fl141, fl143);
  if (syscall(SYS_pidfd_send_signal, 143, 0, nullptr, 0)) fail("thread pidfd: %s", strerror(errno));
  g_stop = true;
  pthread_join(th, nullptr);
  if (syscall(SYS_pidfd_send_signal, 140, SIGTERM, nullptr, 0))
    fail("pidfd_send_signal to the child: %s", strerror(errno));
  pollfd p = {140, POLLIN, 0};
  if (poll(&p, 1, 60000) != 1) fail("the child's pidfd never said it exited");
  siginfo_t si = {};
  if (syscall(SYS_waitid, P_PIDFD, 140, &si, WEXITED, nullptr))
    fail("waitid(P_PIDFD): %s", strerror(errno));
  if (si.si_pid != child || si.si_code != CLD_EXITED || si.si_status != 0)
    fail("child %d: code %d status %d", si.si_pid, si.si_code, si.si_status);
  pass();
}
