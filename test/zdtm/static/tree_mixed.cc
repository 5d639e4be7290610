// The whole-tree scenario of issue 3's "done means": a root with three
// children, every process with several threads, anonymous shared memory
// written by all of them, a pipe with unread data in flight between the
// root and a child (both directions), and an interval timer in the root.
//
// After restore: every tid is the same, threads are still running (their
// counters advance), shared memory is still shared (a write by one process
// is seen by the others), the pipes deliver exactly the unread bytes in
// order, the timer keeps firing, and the tree exits cleanly.
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "zdtm.h"

namespace {

constexpr int kChildren = 3;
constexpr int kThreads = 3;  // besides each process's main thread
constexpr int kProcs = kChildren + 1;

struct Shared {
  std::atomic<int> ready;                        // threads and children set up
  std::atomic<uint64_t> ticks[kProcs][kThreads];  // advanced by each thread
  std::atomic<int> stop[kProcs];                  // a process's threads may exit
  uint64_t mark[kProcs];                          // written after restore
};
Shared* g;
volatile sig_atomic_t g_alarms;

int g_proc;  // this process's index: 0 for the root

void* Worker(void* arg) {
  auto* slot = static_cast<std::atomic<uint64_t>*>(arg);
  while (!g->stop[g_proc].load()) {
    slot->fetch_add(1);
    usleep(1000);
  }
  return nullptr;
}

void StartThreads(int proc, pthread_t* th) {
  for (int i = 0; i < kThreads; i++)
    if (pthread_create(&th[i], nullptr, Worker, &g->ticks[proc][i]) != 0) fail("pthread_create");
}

bool Advancing(int proc) {
  uint64_t before[kThreads];
  for (int i = 0; i < kThreads; i++) before[i] = g->ticks[proc][i].load();
  for (int tries = 0; tries < 10000; tries++) {
    bool all = true;
    for (int i = 0; i < kThreads; i++) all &= g->ticks[proc][i].load() > before[i];
    if (all) return true;
    usleep(1000);
  }
  return false;
}

int CountTasks() {
  std::string s = zdtm_read_file("/proc/self/status");
  const char* t = strstr(s.c_str(), "Threads:");
  return t ? atoi(t + 8) : -1;
}

// Child i: threads, the shared page, and the far end of the root's pipes.
[[noreturn]] void Child(int idx, int to_child_r, int to_root_w) {
  g_proc = idx;
  pthread_t th[kThreads];
  StartThreads(idx, th);
  if (idx == 1) {
    // Leave bytes unread in the child->root pipe.
    if (write(to_root_w, "from-child-1", 12) != 12) _exit(2);
  }
  g->ready.fetch_add(1);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigprocmask(SIG_BLOCK, &s, nullptr);
  int sig;
  sigwait(&s, &sig);
  int rc = 0;
  if (CountTasks() != kThreads + 1) rc = 3;
  if (!Advancing(idx)) rc = 4;
  if (idx == 1) {
    char buf[32] = {};
    if (read(to_child_r, buf, 14) != 14 || memcmp(buf, "from-root-data", 14) != 0) rc = 5;
  }
  g->mark[idx] = 0x5eed0000u + idx;  // the root must see this
  g->stop[idx].store(1);
  for (int i = 0; i < kThreads; i++) pthread_join(th[i], nullptr);
  _exit(rc);
}

void OnAlarm(int) { g_alarms = g_alarms + 1; }

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (g == MAP_FAILED) fail("mmap");
  int to_child[2], to_root[2];
  if (pipe(to_child) || pipe(to_root)) fail("pipe");
  pid_t kids[kChildren];
  for (int c = 0; c < kChildren; c++) {
    kids[c] = fork();
    if (kids[c] < 0) fail("fork");
    if (kids[c] == 0) Child(c + 1, to_child[0], to_root[1]);
  }
  pthread_t th[kThreads];
  StartThreads(0, th);
  // Unread bytes in the root->child pipe.
  if (write(to_child[1], "from-root-data", 14) != 14) fail("write pipe");
  struct sigaction sa = {};
  sa.sa_handler = OnAlarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  struct itimerval it = {{0, 200000}, {0, 200000}};
  if (setitimer(ITIMER_REAL, &it, nullptr)) fail("setitimer");
  for (int i = 0; i < 5000 && g->ready.load() < kChildren; i++) usleep(1000);
  if (g->ready.load() != kChildren) fail("children did not get ready");
  test_ready();
  test_wait();

  if (CountTasks() != kThreads + 1) fail("root has %d tasks", CountTasks());
  if (!Advancing(0)) fail("root threads are not running");
  int alarms = g_alarms;
  for (int i = 0; i < 10000 && g_alarms < alarms + 3; i++) usleep(1000);
  if (g_alarms < alarms + 3) fail("the interval timer stopped firing");
  char buf[32] = {};
  if (read(to_root[0], buf, 12) != 12 || memcmp(buf, "from-child-1", 12) != 0)
    fail("root: unread pipe data lost");
  for (int c = 0; c < kChildren; c++) kill(kids[c], SIGTERM);
  for (int c = 0; c < kChildren; c++) {
    int st;
    if (waitpid(kids[c], &st, 0) != kids[c]) fail("waitpid child %d", c + 1);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("child %d failed (status %#x)", c + 1, st);
    if (g->mark[c + 1] != 0x5eed0000u + (c + 1))
      fail("child %d's write to shared memory is not visible", c + 1);
  }
  g->stop[0].store(1);
  for (int i = 0; i < kThreads; i++) pthread_join(th[i], nullptr);
  pass();
}
