// ns_threads: pid 1 of its own pid namespace (zdtm-run --ns pid) runs
// kWorkers threads besides its main one, and so does its child. The dump
// kills both: pid 1's last thread to exit waits in the kernel until the
// zombies of its sibling threads are reaped, which only the tracer (ckpt)
// can do, so ckpt must collect them in whatever order they come. After
// restore every thread of both processes must be there with the tid it
// had (as the namespace sees it), and nothing more.
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

constexpr int kWorkers = 3;

pid_t Gettid() { return pid_t(syscall(SYS_gettid)); }

int g_go = 0;  // futex word: 1 wakes the workers
pid_t g_before[kWorkers], g_after[kWorkers];
pthread_t g_th[kWorkers];

void* Work(void* arg) {
  int k = int(intptr_t(arg));
  __atomic_store_n(&g_before[k], Gettid(), __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&g_go, __ATOMIC_SEQ_CST) == 0)
    syscall(SYS_futex, &g_go, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  g_after[k] = Gettid();
  return nullptr;
}

// Starts the workers with SIGTERM blocked (the main thread takes it) and
// waits until each has recorded its tid. "" or what went wrong.
std::string StartWorkers() {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  for (int k = 0; k < kWorkers; k++) {
    int e = pthread_create(&g_th[k], nullptr, Work, reinterpret_cast<void*>(intptr_t(k)));
    if (e != 0) return std::string("pthread_create: ") + strerror(e);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  for (int k = 0; k < kWorkers; k++)
    for (int t = 0; __atomic_load_n(&g_before[k], __ATOMIC_SEQ_CST) == 0; t++) {
      if (t > 10000) return "thread " + std::to_string(k) + " did not start";
      usleep(1000);
    }
  return "";
}

// After restore: the task list, then every worker's tid. "" or what differs.
std::string CheckWorkers() {
  std::string tasks = zdtm_read_file("/proc/self/status");
  size_t p = tasks.find("Threads:");
  int n = p == std::string::npos ? -1 : atoi(tasks.c_str() + p + 8);
  std::string err;
  if (n != kWorkers + 1)
    err = "Threads: " + std::to_string(n) + ", want " + std::to_string(kWorkers + 1);
  __atomic_store_n(&g_go, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, &g_go, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  for (int k = 0; k < kWorkers; k++) {
    pthread_join(g_th[k], nullptr);
    if (g_after[k] != g_before[k] && err.empty())
      err = "thread " + std::to_string(k) + " has tid " + std::to_string(g_after[k]) + ", had " +
            std::to_string(g_before[k]);
  }
  return err;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  if (getpid() != 1) fail("not the init of a pid namespace (pid %d): run with --ns pid", getpid());
  int go[2], res[2];
  if (pipe(go) || pipe(res)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    // The child: its own workers; checks them when the root says so and
    // writes "" or the reason before it exits.
    close(go[1]);
    close(res[0]);
    std::string err = StartWorkers();
    if (!err.empty()) {
      (void)!write(res[1], err.data(), err.size());
      _exit(1);
    }
    if (write(res[1], "r", 1) != 1) _exit(2);
    char b;
    while (read(go[0], &b, 1) < 0 && errno == EINTR) {
    }
    err = CheckWorkers();
    (void)!write(res[1], err.data(), err.size());
    _exit(err.empty() ? 0 : 1);
  }
  close(go[0]);
  close(res[1]);
  char b = 0;
  while (read(res[0], &b, 1) < 0 && errno == EINTR) {
  }
  if (b != 'r') fail("the child did not start its threads");
  std::string err = StartWorkers();
  if (!err.empty()) fail("pid 1: %s", err.c_str());
  test_msg("pid 1 threads %d %d %d, child %d", g_before[0], g_before[1], g_before[2], c);

  test_ready();
  test_wait();

  err = CheckWorkers();
  if (!err.empty()) fail("pid 1: %s", err.c_str());
  if (write(go[1], "g", 1) != 1) fail("go: %s", strerror(errno));
  std::string child_err;
  char buf[256];
  for (ssize_t r; (r = read(res[0], buf, sizeof(buf))) != 0;) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("read: %s", strerror(errno));
    child_err.append(buf, size_t(r));
  }
  int st;
  if (waitpid(c, &st, 0) != c) fail("waitpid %d: %s", c, strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("child %d ended with %#x: %s", c, st, child_err.c_str());
  pass();
}
