// fault_victim: the program the fault-injection matrix (fault_matrix.cc)
// dumps and restores with ckpt failing at every point. It checks itself
// after SIGTERM (the zdtm contract, test/zdtm/lib/zdtm.h):
//   - 16 MiB of private memory, 1 MiB of shared anonymous memory and a
//     SysV segment (removed at once: it lives while attached) keep their
//     patterns;
//   - two threads compute in registers (integers, and doubles) and check
//     the results as they go, each with its own signal mask, which it
//     checks too;
//   - the main thread's signal mask is what it set;
//   - a pipe still holds the bytes written into it, nobody reading;
//   - a POSIX timer keeps ticking (its handler counts);
//   - a loopback TCP connection (--tcp) still holds its unread bytes
//     both ways and carries new ones;
//   - a child process (not with --single) keeps its own memory and reports
//     it (exit status).
// It maps nothing and opens nothing after READY, so its /proc/PID/maps
// and fds are the same before and after a failed dump.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "zdtm.h"

namespace {

constexpr size_t kPrivSize = 16 << 20, kSharedSize = 1 << 20, kSysvSize = 256 << 10;
constexpr size_t kPipeBytes = 4096, kTcpBytes = 3000;
uint64_t g_seed;
volatile sig_atomic_t g_ticks;
volatile int g_thread_bad[2];
volatile uint64_t g_thread_rounds[2];
int g_started;  // threads whose mask is set (atomic)

void fill(void* p, size_t n, uint64_t salt) {
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < n / 8; i++) w[i] = zdtm_mix(g_seed + salt, i);
}
size_t first_bad(const void* p, size_t n, uint64_t salt) {
  auto* w = static_cast<const uint64_t*>(p);
  for (size_t i = 0; i < n / 8; i++)
    if (w[i] != zdtm_mix(g_seed + salt, i)) return i;
  return SIZE_MAX;
}
void bytes(char* p, size_t n, uint64_t salt) {
  for (size_t i = 0; i < n; i++) p[i] = char(zdtm_mix(g_seed + salt, i));
}

void on_alarm(int) { g_ticks = g_ticks + 1; }

sigset_t thread_mask(int which) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);  // ticks go to the main thread
  sigaddset(&s, which ? SIGRTMIN + 3 : SIGUSR2);
  return s;
}

bool same_mask(const sigset_t& want) {
  sigset_t cur;
  pthread_sigmask(SIG_BLOCK, nullptr, &cur);
  for (int s = 1; s < SIGRTMAX; s++)
    if (s != SIGTERM && sigismember(&cur, s) != sigismember(&want, s)) return false;
  return true;
}

// Values live in registers across the loop; a wrong one after a dump shows.
void* worker(void* arg) {
  int which = int(reinterpret_cast<intptr_t>(arg));
  sigset_t m = thread_mask(which);
  pthread_sigmask(SIG_SETMASK, &m, nullptr);
  __atomic_add_fetch(&g_started, 1, __ATOMIC_SEQ_CST);
  uint64_t a = g_seed + uint64_t(which), b = zdtm_mix(a, 7);
  double f = 1.0 + which, g = f * 3.0;
  while (!test_stopped()) {
    for (int i = 0; i < 20000; i++) {
      a += 1;
      b = zdtm_mix(a, 7);
      f += 0.5;
      g = f * 3.0;
    }
    if (b != zdtm_mix(a, 7) || g != f * 3.0) g_thread_bad[which] = 1;
    if (!same_mask(m)) g_thread_bad[which] = 2;
    g_thread_rounds[which] = g_thread_rounds[which] + 1;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, nullptr);
  }
  return nullptr;
}

[[noreturn]] void child_main(int ready_fd) {
  void* mem = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) _exit(2);
  fill(mem, 1 << 20, 99);
  if (write(ready_fd, "r", 1) != 1) _exit(3);
  close(ready_fd);
  while (!test_stopped()) pause();
  _exit(first_bad(mem, 1 << 20, 99) == SIZE_MAX ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool tcp = false, single = false;  // --tcp: the connection; --single: no child
  for (int i = 1; i < argc; i++) {
    tcp |= strcmp(argv[i], "--tcp") == 0;
    single |= strcmp(argv[i], "--single") == 0;
  }
  g_seed = zdtm_seed();

  void* priv = mmap(nullptr, kPrivSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* shared = mmap(nullptr, kSharedSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (priv == MAP_FAILED || shared == MAP_FAILED) fail("mmap: %s", strerror(errno));
  fill(priv, kPrivSize, 1);
  fill(shared, kSharedSize, 2);
  int shm = shmget(IPC_PRIVATE, kSysvSize, IPC_CREAT | 0600);
  if (shm < 0) fail("shmget: %s", strerror(errno));
  void* sysv = shmat(shm, nullptr, 0);
  if (sysv == reinterpret_cast<void*>(-1)) fail("shmat: %s", strerror(errno));
  shmctl(shm, IPC_RMID, nullptr);  // lives while attached: nothing stays behind
  fill(sysv, kSysvSize, 3);

  int p[2];
  if (pipe(p) < 0) fail("pipe: %s", strerror(errno));
  char pipe_data[kPipeBytes];
  bytes(pipe_data, sizeof(pipe_data), 4);
  if (write(p[1], pipe_data, sizeof(pipe_data)) != ssize_t(sizeof(pipe_data))) fail("pipe write");

  int cl = -1, sv = -1;
  char tcp_out[kTcpBytes], tcp_back[kTcpBytes];
  if (tcp) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al) < 0)
      fail("listen: %s", strerror(errno));
    cl = socket(AF_INET, SOCK_STREAM, 0);
    if (cl < 0 || connect(cl, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0)
      fail("connect: %s", strerror(errno));
    sv = accept(ls, nullptr, nullptr);
    if (sv < 0) fail("accept: %s", strerror(errno));
    close(ls);
    bytes(tcp_out, sizeof(tcp_out), 5);
    bytes(tcp_back, sizeof(tcp_back), 6);
    if (write(cl, tcp_out, sizeof(tcp_out)) != ssize_t(sizeof(tcp_out)) ||
        write(sv, tcp_back, sizeof(tcp_back)) != ssize_t(sizeof(tcp_back)))
      fail("tcp write: %s", strerror(errno));
  }

  pid_t child = 0;
  if (!single) {
    int cr[2];
    if (pipe(cr) < 0) fail("pipe: %s", strerror(errno));
    child = fork();
    if (child < 0) fail("fork: %s", strerror(errno));
    if (child == 0) {
      close(cr[0]);
      child_main(cr[1]);
    }
    close(cr[1]);
    char c;
    if (read(cr[0], &c, 1) != 1) fail("the child did not start");
    close(cr[0]);
  }

  // Main thread: SIGUSR1 and SIGPIPE blocked; SIGALRM ticks from a timer.
  struct sigaction act = {};
  act.sa_handler = on_alarm;
  act.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &act, nullptr);
  sigset_t main_mask;
  sigemptyset(&main_mask);
  sigaddset(&main_mask, SIGUSR1);
  sigaddset(&main_mask, SIGPIPE);
  sigprocmask(SIG_SETMASK, &main_mask, nullptr);
  pthread_t th[2];
  for (intptr_t i = 0; i < 2; i++)
    if (pthread_create(&th[i], nullptr, worker, reinterpret_cast<void*>(i)) != 0)
      fail("pthread_create");
  timer_t timer;
  struct sigevent ev = {};
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGALRM;
  if (timer_create(CLOCK_MONOTONIC, &ev, &timer) < 0) fail("timer_create: %s", strerror(errno));
  struct itimerspec its = {{0, 20000000}, {0, 20000000}};
  timer_settime(timer, 0, &its, nullptr);

  // READY only once nothing changes any more: the threads' masks are set.
  for (int i = 0; i < 10000 && __atomic_load_n(&g_started, __ATOMIC_SEQ_CST) < 2; i++) usleep(1000);
  if (__atomic_load_n(&g_started, __ATOMIC_SEQ_CST) < 2) fail("the threads did not start");
  test_ready();
  test_wait();

  // The timer still ticks: wait for two more (bounded: 20 ms apart, give 10 s).
  sig_atomic_t seen = g_ticks;
  for (int i = 0; i < 1000 && g_ticks < seen + 2; i++) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, nullptr);
  }
  if (g_ticks < seen + 2) fail("the POSIX timer stopped ticking (%d ticks)", int(g_ticks));
  for (int i = 0; i < 2; i++) pthread_join(th[i], nullptr);
  for (int i = 0; i < 2; i++) {
    if (g_thread_bad[i] == 1) fail("thread %d: a value computed in registers went wrong", i);
    if (g_thread_bad[i] == 2) fail("thread %d: its signal mask changed", i);
    if (g_thread_rounds[i] == 0) fail("thread %d never ran", i);
  }
  if (!same_mask(main_mask)) fail("the main thread's signal mask changed");
  if (size_t b = first_bad(priv, kPrivSize, 1); b != SIZE_MAX) fail("private memory word %zu", b);
  if (size_t b = first_bad(shared, kSharedSize, 2); b != SIZE_MAX) fail("shared memory word %zu", b);
  if (size_t b = first_bad(sysv, kSysvSize, 3); b != SIZE_MAX) fail("SysV memory word %zu", b);
  char got[kPipeBytes];
  if (read(p[0], got, sizeof(got)) != ssize_t(sizeof(got)) || memcmp(got, pipe_data, sizeof(got)))
    fail("the pipe lost its bytes");
  if (tcp) {
    char in[kTcpBytes];
    size_t n = 0;
    while (n < sizeof(in)) {
      ssize_t r = read(sv, in + n, sizeof(in) - n);
      if (r <= 0) fail("tcp read (server side): %s", r ? strerror(errno) : "EOF");
      n += size_t(r);
    }
    if (memcmp(in, tcp_out, sizeof(in))) fail("tcp: the server side read other bytes");
    for (n = 0; n < sizeof(in);) {
      ssize_t r = read(cl, in + n, sizeof(in) - n);
      if (r <= 0) fail("tcp read (client side): %s", r ? strerror(errno) : "EOF");
      n += size_t(r);
    }
    if (memcmp(in, tcp_back, sizeof(in))) fail("tcp: the client side read other bytes");
    if (write(cl, "ping", 4) != 4 || read(sv, in, 4) != 4 || memcmp(in, "ping", 4))
      fail("tcp: the connection carries no new bytes");
  }
  if (child) {
    kill(child, SIGTERM);
    int st;
    if (waitpid(child, &st, 0) != child) fail("waitpid child: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("the child failed its memory check (status %d)", st);
  }
  pass();
}
