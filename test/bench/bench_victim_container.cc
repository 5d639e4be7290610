// ckpt-bench-victim container N ns|bare: a tree of N processes, shaped as
// bench_victim_container.h says, whose root must be pid 1 of new pid, uts,
// ipc and net namespaces (mode ns; ckpt-bench starts it so with clone3) or
// is an ordinary process (mode bare, the baseline: the same tree without
// namespaces, hostname, loopback or queue).
//
// Setup, before READY:
//   - root (ns): checks it is pid 1; sets the hostname and domain name;
//     brings lo up and sends itself a UDP datagram over 127.0.0.1; makes a
//     SysV message queue holding kMessages messages (types and sizes vary,
//     contents from a per-run seed).
//   - every node: forks its own children, maps kMemPages of private
//     anonymous memory and fills it (contents depend on the node and the
//     seed), starts its extra threads (each records its tid and waits on a
//     futex), then reports one byte to the root over a pipe and closes it.
//     The root prints READY once the pipe reaches EOF (every process has
//     closed it, so no pipe is open at the dump) with N-1 bytes read.
// SIGTERM is blocked in every thread; each main thread waits in
// sigwaitinfo(). On SIGTERM a node checks, with SIGALRM as a bound:
// getpid()/getppid() as before the dump; its memory, word by word; its
// threads (/proc/self/task holds exactly them, each still has its tid);
// the root (ns) also its hostname and domain name, a new UDP datagram over
// lo, and the queue (same id, every message in order, nothing more). Then
// it SIGTERMs its children, waits for each and exits 0 only if all of that
// held and every child exited 0. Failures go to stderr naming the node.
#include "bench_victim_container.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace container_shape;  // NOLINT(google-build-using-namespace): the shared shape

constexpr size_t kPage = 4096;
constexpr size_t kWords = kPage / sizeof(uint64_t);
constexpr unsigned kCheckTimeoutS = 60;  // bound on a node's checks after SIGTERM
constexpr int kUdpWaitMs = 5000;

long g_n = 0;
bool g_ns = false;
uint64_t g_seed = 0;
long g_index = 0;
pid_t g_pid = 0, g_ppid = 0;  // before the dump, as this process sees them
std::vector<pid_t> g_kids;
uint64_t* g_mem = nullptr;
int g_msqid = -1;
bool g_ok = true;

struct Worker {
  pthread_t th{};
  pid_t tid = 0;        // gettid() before the dump
  pid_t tid_after = 0;  // gettid() once woken after SIGTERM
};
Worker g_workers[kExtraThreads];
long g_nworkers = 0;
int g_go = 0;  // futex word: 1 wakes the workers

pid_t Gettid() { return pid_t(syscall(SYS_gettid)); }

[[noreturn]] void SetupFail(const char* what) {
  fprintf(stderr, "ckpt-bench-victim: container: node %ld: %s: %s\n", g_index, what,
          strerror(errno));
  _exit(2);
}

// A failed check after restore: say what, go on checking, exit 1 at the end.
void Bad(const char* f, ...) __attribute__((format(printf, 1, 2)));
void Bad(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof(buf), f, ap);
  va_end(ap);
  fprintf(stderr, "ckpt-bench-victim: container: node %ld (pid %d): %s\n", g_index, int(g_pid),
          buf);
  g_ok = false;
}

void OnAlarm(int) {
  static const char msg[] = "ckpt-bench-victim: container: a node's checks took too long\n";
  (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
  _exit(1);
}

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Word w of page p of node i's memory; never zero.
uint64_t MemWord(long i, size_t p, size_t w) {
  return Mix(g_seed ^ Mix(uint64_t(i) * 1000003 + p * kWords + w)) | 1;
}

size_t MsgSize(int k) { return size_t(kMsgBase + kMsgStep * k); }
char MsgByte(int k, size_t b) { return char(Mix(g_seed + uint64_t(k) * 7919 + b)); }

struct Msg {
  long mtype;
  char mtext[kMsgBase + kMsgStep * kMessages];
};

// "" if a datagram sent to ourselves over 127.0.0.1 arrives intact.
std::string UdpOverLo() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return std::string("socket: ") + strerror(errno);
  std::string err;
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  const uint64_t token = Mix(g_seed ^ uint64_t(time(nullptr)));
  uint64_t got = 0;
  pollfd p = {s, POLLIN, 0};
  if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    err = std::string("bind 127.0.0.1: ") + strerror(errno);
  else if (getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    err = std::string("getsockname: ") + strerror(errno);
  else if (sendto(s, &token, sizeof(token), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)) !=
           ssize_t(sizeof(token)))
    err = std::string("sendto 127.0.0.1: ") + strerror(errno);
  else if (poll(&p, 1, kUdpWaitMs) != 1)
    err = "no datagram over lo within 5 s";
  else if (recv(s, &got, sizeof(got), 0) != ssize_t(sizeof(got)) || got != token)
    err = "the datagram over lo came back wrong";
  close(s);
  return err;
}

// Root, mode ns: names, lo, the queue.
void SetUpNamespaces() {
  if (getpid() != 1) {
    fprintf(stderr,
            "ckpt-bench-victim: container: pid %d, not 1: not started in a new pid namespace\n",
            int(getpid()));
    _exit(2);
  }
  if (sethostname(kHostname, strlen(kHostname)) != 0) SetupFail("sethostname");
  if (setdomainname(kDomainname, strlen(kDomainname)) != 0) SetupFail("setdomainname");

  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) SetupFail("socket");
  ifreq ifr = {};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0) SetupFail("SIOCGIFFLAGS lo");
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) SetupFail("SIOCSIFFLAGS lo up");
  close(s);
  std::string udp = UdpOverLo();
  if (!udp.empty()) {
    fprintf(stderr, "ckpt-bench-victim: container: lo: %s\n", udp.c_str());
    _exit(2);
  }

  g_msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  if (g_msqid < 0) SetupFail("msgget");
  for (int k = 0; k < kMessages; k++) {
    Msg m;
    m.mtype = k + 1;
    for (size_t b = 0; b < MsgSize(k); b++) m.mtext[b] = MsgByte(k, b);
    if (msgsnd(g_msqid, &m, MsgSize(k), IPC_NOWAIT) != 0) SetupFail("msgsnd");
  }
}

void CheckNamespaces() {
  utsname u;
  if (uname(&u) != 0)
    Bad("uname: %s", strerror(errno));
  else if (strcmp(u.nodename, kHostname) != 0 || strcmp(u.domainname, kDomainname) != 0)
    Bad("hostname/domain name are %s/%s, were %s/%s", u.nodename, u.domainname, kHostname,
        kDomainname);
  std::string udp = UdpOverLo();
  if (!udp.empty()) Bad("lo: %s", udp.c_str());

  msqid_ds ds;
  if (msgctl(g_msqid, IPC_STAT, &ds) != 0) {
    Bad("message queue %d: %s", g_msqid, strerror(errno));
    return;
  }
  if (ds.msg_qnum != msgqnum_t(kMessages))
    Bad("message queue %d holds %lu messages, had %d", g_msqid, (unsigned long)ds.msg_qnum,
        kMessages);
  for (int k = 0; k < kMessages; k++) {
    Msg m;
    ssize_t r = msgrcv(g_msqid, &m, sizeof(m.mtext), 0, IPC_NOWAIT);
    if (r < 0) {
      Bad("message queue %d: message %d: %s", g_msqid, k, strerror(errno));
      return;
    }
    bool same = m.mtype == k + 1 && size_t(r) == MsgSize(k);
    for (size_t b = 0; same && b < MsgSize(k); b++) same = m.mtext[b] == MsgByte(k, b);
    if (!same)
      Bad("message queue %d: message %d is type %ld, %zd bytes (want type %d, %zu bytes)%s",
          g_msqid, k, m.mtype, r, k + 1, MsgSize(k), m.mtype == k + 1 ? ", contents differ" : "");
  }
  Msg m;
  if (msgrcv(g_msqid, &m, sizeof(m.mtext), 0, IPC_NOWAIT) >= 0)
    Bad("message queue %d: a message of type %ld after the %d expected", g_msqid, m.mtype,
        kMessages);
}

void* WorkerMain(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  __atomic_store_n(&w->tid, Gettid(), __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&g_go, __ATOMIC_SEQ_CST) == 0)
    syscall(SYS_futex, &g_go, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  w->tid_after = Gettid();
  return nullptr;
}

void SetUpMemoryAndThreads() {
  void* m =
      mmap(nullptr, kMemPages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) SetupFail("mmap");
  g_mem = static_cast<uint64_t*>(m);
  for (size_t p = 0; p < size_t(kMemPages); p++)
    for (size_t w = 0; w < kWords; w++) g_mem[p * kWords + w] = MemWord(g_index, p, w);

  g_nworkers = ThreadsOf(g_index) - 1;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (long k = 0; k < g_nworkers; k++) {
    int e = pthread_create(&g_workers[k].th, &attr, WorkerMain, &g_workers[k]);
    if (e != 0) {
      errno = e;
      SetupFail("pthread_create");
    }
  }
  pthread_attr_destroy(&attr);
  for (long k = 0; k < g_nworkers; k++) {
    for (int t = 0; __atomic_load_n(&g_workers[k].tid, __ATOMIC_SEQ_CST) == 0; t++) {
      if (t > 10000) {
        errno = ETIMEDOUT;
        SetupFail("a thread did not start");
      }
      usleep(1000);
    }
  }
}

void CheckMemory() {
  long bad = 0;
  size_t first = 0;
  for (size_t i = 0; i < size_t(kMemPages) * kWords; i++)
    if (g_mem[i] != MemWord(g_index, i / kWords, i % kWords) && bad++ == 0) first = i;
  if (bad)
    Bad("%ld of %zu memory words differ, first page %zu word %zu (0x%llx)", bad,
        size_t(kMemPages) * kWords, first / kWords, first % kWords,
        (unsigned long long)g_mem[first]);
}

void CheckThreads() {
  long tasks = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') tasks++;
    closedir(d);
  }
  if (tasks != 1 + g_nworkers)
    Bad("/proc/self/task has %ld threads, want %ld", tasks, 1 + g_nworkers);
  __atomic_store_n(&g_go, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, &g_go, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
  for (long k = 0; k < g_nworkers; k++) {
    int e = pthread_join(g_workers[k].th, nullptr);
    if (e != 0)
      Bad("thread %ld: pthread_join: %s", k, strerror(e));
    else if (g_workers[k].tid_after != g_workers[k].tid)
      Bad("thread %ld has tid %d, had %d", k, int(g_workers[k].tid_after), int(g_workers[k].tid));
  }
}

// After SIGTERM: every check, then the children's.
[[noreturn]] void CheckAndExit() {
  alarm(kCheckTimeoutS);
  if (getpid() != g_pid) Bad("getpid() says %d", int(getpid()));
  if (getppid() != g_ppid) Bad("parent is %d, was %d", int(getppid()), int(g_ppid));
  CheckMemory();
  CheckThreads();
  if (g_index == 0 && g_ns) CheckNamespaces();
  std::vector<bool> signalled(g_kids.size());
  for (size_t k = 0; k < g_kids.size(); k++) {
    signalled[k] = kill(g_kids[k], SIGTERM) == 0;
    if (!signalled[k]) Bad("cannot signal child %d: %s", int(g_kids[k]), strerror(errno));
  }
  for (size_t k = 0; k < g_kids.size(); k++) {
    if (!signalled[k]) continue;
    int st = 0;
    pid_t r;
    while ((r = waitpid(g_kids[k], &st, 0)) < 0 && errno == EINTR) {
    }
    if (r != g_kids[k])
      Bad("child %d cannot be waited for: %s", int(g_kids[k]), strerror(errno));
    else if (WIFSIGNALED(st))
      Bad("child %d was killed by signal %d", int(g_kids[k]), WTERMSIG(st));
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      Bad("child %d exited with status %d", int(g_kids[k]), WEXITSTATUS(st));
  }
  _exit(g_ok ? 0 : 1);
}

[[noreturn]] void WaitForTerm() {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  for (;;) {
    int s = sigwaitinfo(&term, nullptr);
    if (s == SIGTERM) break;
    if (s < 0 && errno != EINTR) SetupFail("sigwaitinfo");
  }
  CheckAndExit();
}

// The process of node i (the root when i == 0): children, memory, threads,
// report, wait.
[[noreturn]] void Node(long i, int report[2]) {
  g_index = i;
  g_pid = getpid();
  g_ppid = getppid();
  const long d = Direct(g_n);
  long first = i == 0 ? 1 : d + 1 + (i - 1) * kFanout;
  long last = i == 0 ? d : first + kFanout - 1;
  for (long c = first; c <= last && c < g_n; c++) {
    pid_t p = fork();
    if (p < 0) SetupFail("fork");
    if (p == 0) {
      g_kids.clear();
      Node(c, report);
    }
    g_kids.push_back(p);
  }
  if (i != 0 && report[0] >= 0) {  // only the root reads
    close(report[0]);
    report[0] = -1;
  }
  SetUpMemoryAndThreads();
  if (write(report[1], "r", 1) != 1) SetupFail("report");
  close(report[1]);
  if (i == 0) {
    long got = 0;
    char buf[256];
    for (;;) {
      ssize_t r = read(report[0], buf, sizeof(buf));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) SetupFail("read reports");
      if (r == 0) break;
      got += r;
    }
    close(report[0]);
    if (got != g_n) {
      fprintf(stderr, "ckpt-bench-victim: container: %ld of %ld processes reported ready\n", got,
              g_n);
      _exit(2);
    }
    static const char kReady[] = "READY\n";
    if (write(STDOUT_FILENO, kReady, sizeof(kReady) - 1) != ssize_t(sizeof(kReady) - 1))
      SetupFail("write READY");
  }
  WaitForTerm();
}

}  // namespace

int bench_container_victim_main(char** argv) {
  char* end = nullptr;
  errno = 0;
  g_n = strtol(argv[2], &end, 10);
  if (errno || end == argv[2] || *end || g_n < kMinProcs || g_n > kMaxProcs ||
      (strcmp(argv[3], "ns") != 0 && strcmp(argv[3], "bare") != 0)) {
    fprintf(stderr, "ckpt-bench-victim: container N ns|bare: N in [%ld, %ld]\n", kMinProcs,
            kMaxProcs);
    return 2;
  }
  g_ns = strcmp(argv[3], "ns") == 0;
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g_seed = Mix(uint64_t(ts.tv_nsec) ^ (uint64_t(ts.tv_sec) << 30));

  // Blocked in every thread of every process from here on (inherited);
  // the bound on the checks is a handler, which pid 1 of a namespace needs.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &term, nullptr) != 0) SetupFail("sigprocmask");
  struct sigaction sa = {};
  sa.sa_handler = OnAlarm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, nullptr) != 0) SetupFail("sigaction SIGALRM");

  if (g_ns) SetUpNamespaces();
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) SetupFail("pipe");
  Node(0, report);
}
