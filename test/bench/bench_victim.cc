// ckpt-bench-victim: the processes that ckpt-bench checkpoints and restores.
//
//   ckpt-bench-victim SIZE_MIB                 memory
//   ckpt-bench-victim tree N FANOUT            N processes
//   ckpt-bench-victim threads T                one process, T threads
//   ckpt-bench-victim fds N DIR DISTINCT       one process, N extra fds
//   ckpt-bench-victim tcp N                    N loopback TCP connections (bench_victim_tcp.cc)
//   ckpt-bench-victim container N ns|bare      N processes under a namespaces' pid 1
//                                              (bench_victim_container.cc)
//   ckpt-bench-victim precopy MIB RATE         MIB of memory, RATE MiB/s rewritten at
//                                              random (bench_victim_precopy.cc)
//
// Every mode writes "READY\n" on stdout once it is fully set up, then sleeps
// until SIGTERM. On SIGTERM it checks that the restore gave it back what it
// had and exits 0 if so, 1 if not (with the reason on stderr), 2 on a setup
// error, 3 if a resource limit is too low for the requested size.
//
// memory: maps SIZE_MIB of private anonymous memory, fills every page with
// non-zero pseudo-random data, remembers a checksum of it and sleeps in a
// pause() loop. On SIGTERM it recomputes the checksum. On a mismatch it
// regenerates the expected data (a pure function of a seed and the page
// index) and reports how many pages differ and what the first bad one looks
// like, which is what one needs to debug a restore. Everything the SIGTERM
// handler does is async-signal-safe (memory reads, write(2), _exit), so the
// verification runs in the handler itself and the main loop has no
// check-then-pause race.
//
// tree: the process is node 0 of an N-node tree in which node i is the
// parent of nodes FANOUT*i+1 .. FANOUT*i+FANOUT. Every node forks its own
// children, then reports to the root over a pipe and closes it; the root
// prints READY once all N-1 others have reported (so no pipe is left open
// when ckpt dumps), then every node sleeps in pause(). On SIGTERM (handled
// in the handler, async-signal-safe: kill, waitpid, write, _exit) a node
// checks getpid()/getppid() against what they were before the dump,
// SIGTERMs its children, waits for each of them and exits 0 only if each
// child is still its child and exited 0. So the root exits 0 only if the
// whole tree came back with the right shape and every node in it was fine.
//
// threads: the main thread blocks SIGTERM, starts T-1 workers, each of which
// records its tid and sleeps in FUTEX_WAIT, and waits in sigwaitinfo(). On
// SIGTERM it checks that /proc/self/task is exactly itself plus the
// recorded worker tids, wakes the workers (each checks gettid() against
// its recorded tid) and joins them all with a deadline.
//
// fds: raises the RLIMIT_NOFILE soft limit as far as needed (up to the hard
// limit; exit 3 if that is too low), creates min(DISTINCT, N) files in DIR
// and opens each once (fds 3, 4, ...), with the file offset of file k set
// to k (file 0: 4242), then dup()s file 0 until it has N extra fds, all
// contiguous from 3. On SIGTERM it counts /proc/self/fd (must be exactly
// 0..N+2), and checks every fd: right inode, right offset, and that the
// dups still share one open file description with fd 3 (seek one, look at
// fd 3).

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench_victim_compress.h"   // the compress mode
#include "bench_victim_container.h"  // the container mode
#include "bench_victim_freeze.h"     // the freeze mode
#include "bench_victim_precopy.h"    // the precopy mode
#include "bench_victim_tcp.h"        // the tcp mode

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kWordsPerPage = kPage / sizeof(uint64_t);

uint64_t* g_mem = nullptr;
size_t g_pages = 0;
uint64_t g_seed = 0;
uint64_t g_checksum = 0;

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Expected value of word `w` of page `p`. The first word of every page is
// forced non-zero, so no page is ever all zeros (ckpt may skip zero pages).
inline uint64_t expected_word(size_t p, size_t w) {
  uint64_t v = splitmix64(g_seed ^ (p * kWordsPerPage + w) * 0xd6e8feb86659fd93ULL);
  if (w == 0) v |= 1;
  return v;
}

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Order-sensitive 4-lane hash over all words: detects changed, zeroed,
// swapped or shifted pages.
uint64_t checksum() {
  constexpr uint64_t k = 0x9fb21c651e98df25ULL;
  uint64_t h0 = 1, h1 = 2, h2 = 3, h3 = 4;
  const uint64_t* p = g_mem;
  const uint64_t* end = g_mem + g_pages * kWordsPerPage;
  for (; p < end; p += 4) {
    h0 = rotl(h0 ^ p[0], 29) * k;
    h1 = rotl(h1 ^ p[1], 29) * k;
    h2 = rotl(h2 ^ p[2], 29) * k;
    h3 = rotl(h3 ^ p[3], 29) * k;
  }
  return splitmix64(h0 ^ rotl(h1, 16) ^ rotl(h2, 32) ^ rotl(h3, 48) ^ g_pages);
}

// ---- async-signal-safe output -------------------------------------------

void put(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t r = write(STDERR_FILENO, s, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    s += r;
    n -= static_cast<size_t>(r);
  }
}

void put_u(uint64_t v, int base = 10) {
  char buf[24];
  char* e = buf + sizeof(buf) - 1;
  *e = 0;
  char* s = e;
  do {
    *--s = "0123456789abcdef"[v % static_cast<unsigned>(base)];
    v /= static_cast<unsigned>(base);
  } while (v != 0);
  if (base == 16) put("0x");
  put(s);
}

void report_mismatch(uint64_t got) {
  put("ckpt-bench-victim: memory checksum mismatch (expected ");
  put_u(g_checksum, 16);
  put(", got ");
  put_u(got, 16);
  put(")\n");
  size_t bad = 0, zero = 0, first = SIZE_MAX;
  for (size_t p = 0; p < g_pages; p++) {
    const uint64_t* page = g_mem + p * kWordsPerPage;
    bool is_bad = false, is_zero = true;
    for (size_t w = 0; w < kWordsPerPage; w++) {
      if (page[w] != expected_word(p, w)) is_bad = true;
      if (page[w] != 0) is_zero = false;
    }
    if (is_bad) {
      bad++;
      if (is_zero) zero++;
      if (first == SIZE_MAX) first = p;
    }
  }
  put("ckpt-bench-victim: ");
  put_u(bad);
  put(" of ");
  put_u(g_pages);
  put(" pages differ (");
  put_u(zero);
  put(" of them all-zero)");
  if (first != SIZE_MAX) {
    put("; first bad page at ");
    put_u(reinterpret_cast<uintptr_t>(g_mem + first * kWordsPerPage), 16);
    put(" (page ");
    put_u(first);
    put(")");
  }
  put("\n");
}

void on_sigterm(int) {
  uint64_t got = checksum();
  if (got == g_checksum) _exit(0);
  report_mismatch(got);
  _exit(1);
}

[[noreturn]] void die(const char* what) {
  put("ckpt-bench-victim: ");
  put(what);
  put(": ");
  put(strerror(errno));
  put("\n");
  _exit(2);
}

int memory_main(char** argv) {
  char* end = nullptr;
  errno = 0;
  unsigned long long mib = strtoull(argv[1], &end, 10);
  if (errno != 0 || end == argv[1] || *end != 0 || mib == 0 || mib > (1ULL << 22)) {
    put("ckpt-bench-victim: SIZE_MIB must be an integer in [1, 4194304]\n");
    return 2;
  }
  g_pages = static_cast<size_t>(mib) * (1 << 20) / kPage;

  void* m =
      mmap(nullptr, g_pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die("mmap");
  g_mem = static_cast<uint64_t*>(m);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  g_seed = splitmix64(static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(getpid()) << 32));

  for (size_t p = 0; p < g_pages; p++) {
    uint64_t* page = g_mem + p * kWordsPerPage;
    for (size_t w = 0; w < kWordsPerPage; w++) page[w] = expected_word(p, w);
  }
  g_checksum = checksum();

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr) != 0) die("sigaction");

  static const char kReady[] = "READY\n";
  if (write(STDOUT_FILENO, kReady, sizeof(kReady) - 1) != static_cast<ssize_t>(sizeof(kReady) - 1))
    die("write READY");

  for (;;) pause();
}

// Parses a decimal integer in [lo, hi]; false if it is not one.
bool parse_int(const char* s, long lo, long hi, long* out) {
  char* end = nullptr;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != 0 || v < lo || v > hi) return false;
  *out = v;
  return true;
}

void write_ready() {
  static const char kReady[] = "READY\n";
  if (write(STDOUT_FILENO, kReady, sizeof(kReady) - 1) != static_cast<ssize_t>(sizeof(kReady) - 1))
    die("write READY");
}

// One message line on stderr, prefixed; async-signal-safe.
void say(const char* a, uint64_t v1 = UINT64_MAX, const char* b = nullptr, uint64_t v2 = UINT64_MAX,
         const char* c = nullptr, uint64_t v3 = UINT64_MAX, const char* d = nullptr) {
  put("ckpt-bench-victim: ");
  put(a);
  if (v1 != UINT64_MAX) put_u(v1);
  if (b) put(b);
  if (v2 != UINT64_MAX) put_u(v2);
  if (c) put(c);
  if (v3 != UINT64_MAX) put_u(v3);
  if (d) put(d);
  put("\n");
}

// ------------------------------------------------------------------ tree --

namespace tree {

constexpr long kMaxFanout = 64;

long g_n = 0, g_fanout = 0;
pid_t g_self = 0, g_parent = 0;  // getpid()/getppid() before the dump
pid_t g_kids[kMaxFanout];
int g_nkids = 0;
int g_rd = -1, g_wr = -1;  // the readiness pipe

void on_sigterm(int) {
  int saved = errno;
  bool ok = true;
  pid_t me = getpid(), pp = getppid();
  if (me != g_self) {
    say("tree node ", static_cast<uint64_t>(g_self), ": getpid() now says ",
        static_cast<uint64_t>(me));
    ok = false;
  }
  if (pp != g_parent) {
    say("tree node ", static_cast<uint64_t>(g_self), ": parent is now ", static_cast<uint64_t>(pp),
        ", was ", static_cast<uint64_t>(g_parent));
    ok = false;
  }
  bool signalled[kMaxFanout];
  for (int k = 0; k < g_nkids; k++) {
    signalled[k] = kill(g_kids[k], SIGTERM) == 0;
    if (!signalled[k]) {
      say("tree node ", static_cast<uint64_t>(me), ": cannot signal child ",
          static_cast<uint64_t>(g_kids[k]), ": ", UINT64_MAX, strerror(errno));
      ok = false;
    }
  }
  for (int k = 0; k < g_nkids; k++) {
    if (!signalled[k]) continue;
    int st = 0;
    pid_t r;
    do r = waitpid(g_kids[k], &st, 0);
    while (r < 0 && errno == EINTR);
    if (r != g_kids[k]) {
      say("tree node ", static_cast<uint64_t>(me), ": child ", static_cast<uint64_t>(g_kids[k]),
          errno == ECHILD ? " is not my child any more" : " cannot be waited for");
      ok = false;
    } else if (WIFSIGNALED(st)) {
      say("tree node ", static_cast<uint64_t>(me), ": child ", static_cast<uint64_t>(g_kids[k]),
          " was killed by signal ", static_cast<uint64_t>(WTERMSIG(st)));
      ok = false;
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      say("tree node ", static_cast<uint64_t>(me), ": child ", static_cast<uint64_t>(g_kids[k]),
          " exited with status ", static_cast<uint64_t>(WEXITSTATUS(st)));
      ok = false;
    }
  }
  errno = saved;
  _exit(ok ? 0 : 1);
}

// Runs in the process of node i: forks its children (each of which runs
// node() for itself), reports, sleeps.
[[noreturn]] void node(long i) {
  for (long c = g_fanout * i + 1; c <= g_fanout * i + g_fanout && c < g_n; c++) {
    pid_t p = fork();
    if (p < 0) die("fork");
    if (p == 0) {
      g_nkids = 0;
      g_self = getpid();
      g_parent = getppid();
      close(g_rd);
      g_rd = -1;
      node(c);
    }
    g_kids[g_nkids++] = p;
  }
  if (i != 0) {
    ssize_t w;
    do w = write(g_wr, "x", 1);
    while (w < 0 && errno == EINTR);
    if (w != 1) die("write to the readiness pipe");
    close(g_wr);
    for (;;) pause();
  }
  close(g_wr);
  long got = 0;
  char buf[512];
  for (;;) {
    ssize_t r = read(g_rd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) die("read the readiness pipe");
    if (r == 0) break;
    got += r;
  }
  close(g_rd);
  if (got != g_n - 1) {
    say("tree: only ", static_cast<uint64_t>(got), " of ", static_cast<uint64_t>(g_n - 1),
        " other processes started");
    _exit(2);
  }
  write_ready();
  for (;;) pause();
}

int main(char** argv) {
  if (!parse_int(argv[2], 1, 1000000, &g_n) || !parse_int(argv[3], 1, kMaxFanout, &g_fanout)) {
    put("ckpt-bench-victim: tree N FANOUT: N in [1, 1000000], FANOUT in [1, 64]\n");
    return 2;
  }
  g_self = getpid();
  g_parent = getppid();
  int p[2];
  if (pipe(p) != 0) die("pipe");
  g_rd = p[0];
  g_wr = p[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr) != 0) die("sigaction");
  node(0);
}

}  // namespace tree

// --------------------------------------------------------------- threads --

namespace threads {

long g_workers = 0;
int g_go = 0;  // futex word: workers sleep while it is 0
std::vector<pid_t> g_tids;
int g_started = 0;
int g_bad = 0;

long futex(int* addr, int op, int val) {
  return syscall(SYS_futex, addr, op, val, nullptr, nullptr, 0);
}

void* worker(void* arg) {
  long i = reinterpret_cast<long>(arg);
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  __atomic_store_n(&g_tids[static_cast<size_t>(i)], tid, __ATOMIC_RELEASE);
  __atomic_add_fetch(&g_started, 1, __ATOMIC_ACQ_REL);
  while (__atomic_load_n(&g_go, __ATOMIC_ACQUIRE) == 0) futex(&g_go, FUTEX_WAIT_PRIVATE, 0);
  pid_t now = static_cast<pid_t>(syscall(SYS_gettid));
  if (now != g_tids[static_cast<size_t>(i)]) {
    say("worker thread ", static_cast<uint64_t>(g_tids[static_cast<size_t>(i)]),
        ": gettid() now says ", static_cast<uint64_t>(now));
    __atomic_add_fetch(&g_bad, 1, __ATOMIC_ACQ_REL);
  }
  return nullptr;
}

int main(char** argv) {
  long t = 0;
  if (!parse_int(argv[2], 1, 100000, &t)) {
    put("ckpt-bench-victim: threads T: T in [1, 100000]\n");
    return 2;
  }
  g_workers = t - 1;
  g_tids.assign(static_cast<size_t>(g_workers), 0);
  const pid_t pid = getpid();

  // SIGTERM stays blocked everywhere; the main thread takes it with sigwaitinfo.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &term, nullptr) != 0) die("sigprocmask");

  std::vector<pthread_t> th(static_cast<size_t>(g_workers));
  for (long i = 0; i < g_workers; i++) {
    int e =
        pthread_create(&th[static_cast<size_t>(i)], nullptr, worker, reinterpret_cast<void*>(i));
    if (e != 0) {
      errno = e;
      say("pthread_create of worker ", static_cast<uint64_t>(i), ": ", UINT64_MAX, strerror(e));
      _exit(e == EAGAIN ? 3 : 2);
    }
  }
  for (int waited = 0; __atomic_load_n(&g_started, __ATOMIC_ACQUIRE) < g_workers; waited++) {
    if (waited > 60000) {
      say("threads: workers did not start within 60 s");
      _exit(2);
    }
    usleep(1000);
  }
  write_ready();

  for (;;) {
    int s = sigwaitinfo(&term, nullptr);
    if (s == SIGTERM) break;
    if (s < 0 && errno != EINTR) die("sigwaitinfo");
  }

  bool ok = true;
  if (getpid() != pid) {
    say("threads: getpid() now says ", static_cast<uint64_t>(getpid()), ", was ",
        static_cast<uint64_t>(pid));
    ok = false;
  }
  // /proc/self/task must be exactly the main thread plus the workers.
  std::vector<pid_t> want(g_tids);
  want.push_back(pid);
  std::sort(want.begin(), want.end());
  std::vector<pid_t> have;
  DIR* d = opendir("/proc/self/task");
  if (!d) die("opendir /proc/self/task");
  while (struct dirent* e = readdir(d))
    if (e->d_name[0] != '.') have.push_back(static_cast<pid_t>(atol(e->d_name)));
  closedir(d);
  std::sort(have.begin(), have.end());
  if (have != want) {
    std::vector<pid_t> missing, extra;
    std::set_difference(want.begin(), want.end(), have.begin(), have.end(),
                        std::back_inserter(missing));
    std::set_difference(have.begin(), have.end(), want.begin(), want.end(),
                        std::back_inserter(extra));
    say("threads: /proc/self/task has ", have.size(), " threads, expected ", want.size());
    if (!missing.empty())
      say("threads: ", missing.size(), " tids missing, e.g. ", static_cast<uint64_t>(missing[0]));
    if (!extra.empty())
      say("threads: ", extra.size(), " unexpected tids, e.g. ", static_cast<uint64_t>(extra[0]));
    ok = false;
  }

  __atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
  futex(&g_go, FUTEX_WAKE_PRIVATE, INT_MAX);
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 30;
  long joined = 0;
  for (long i = 0; i < g_workers; i++) {
    int e = pthread_timedjoin_np(th[static_cast<size_t>(i)], nullptr, &deadline);
    if (e == 0) {
      joined++;
    } else {
      say("threads: joining worker ", static_cast<uint64_t>(g_tids[static_cast<size_t>(i)]), ": ",
          UINT64_MAX, strerror(e));
      ok = false;
      break;
    }
  }
  if (joined != g_workers)
    say("threads: joined only ", static_cast<uint64_t>(joined), " of ",
        static_cast<uint64_t>(g_workers), " workers");
  if (__atomic_load_n(&g_bad, __ATOMIC_ACQUIRE) != 0) ok = false;
  _exit(ok ? 0 : 1);
}

}  // namespace threads

// ------------------------------------------------------------------- fds --

namespace fds {

constexpr off_t kOffset0 = 4242;  // offset of file 0, and so of every dup of it

off_t expected_offset(long k, long distinct) {
  return k == 0 || k >= distinct ? kOffset0 : static_cast<off_t>(k);
}

int main(char** argv) {
  long n = 0, distinct = 0;
  if (!parse_int(argv[2], 0, 10000000, &n) || !parse_int(argv[4], 1, 1000000, &distinct)) {
    put("ckpt-bench-victim: fds N DIR DISTINCT: N in [0, 10000000], DISTINCT >= 1\n");
    return 2;
  }
  const std::string dir = argv[3];
  distinct = std::min(distinct, n);

  // Room for stdio, the N fds, and opendir()'s fd in the check.
  const rlim_t need = static_cast<rlim_t>(n) + 3 + 8;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit");
  if (rl.rlim_cur < need) {
    if (rl.rlim_max < need) {
      say("fds: RLIMIT_NOFILE hard limit is ", static_cast<uint64_t>(rl.rlim_max), ", too low for ",
          static_cast<uint64_t>(n), " fds (needs ", static_cast<uint64_t>(need), ")");
      _exit(3);
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit RLIMIT_NOFILE");
  }

  std::vector<ino_t> ino(static_cast<size_t>(distinct));
  for (long k = 0; k < n; k++) {
    int fd;
    if (k < distinct) {
      char name[32];
      snprintf(name, sizeof(name), "/fd-%06ld", k);
      fd = open((dir + name).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
      if (fd < 0) die("open a file in the fds dir");
      struct stat st;
      if (fstat(fd, &st) != 0) die("fstat");
      ino[static_cast<size_t>(k)] = st.st_ino;
      if (lseek(fd, expected_offset(k, distinct), SEEK_SET) < 0) die("lseek");
    } else {
      fd = dup(3);
      if (fd < 0) die("dup");
    }
    if (fd != 3 + k) {
      say("fds: got fd ", static_cast<uint64_t>(fd), ", expected ", static_cast<uint64_t>(3 + k),
          " (fds not contiguous from 3)");
      _exit(2);
    }
  }

  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &term, nullptr) != 0) die("sigprocmask");
  write_ready();
  for (;;) {
    int s = sigwaitinfo(&term, nullptr);
    if (s == SIGTERM) break;
    if (s < 0 && errno != EINTR) die("sigwaitinfo");
  }

  // 1. /proc/self/fd is exactly 0 .. n+2 (plus the directory's own fd).
  bool ok = true;
  DIR* d = opendir("/proc/self/fd");
  if (!d) die("opendir /proc/self/fd");
  const long self_fd = dirfd(d);
  long count = 0, outside = 0, first_outside = -1;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    long fd = atol(e->d_name);
    if (fd == self_fd) continue;
    count++;
    if (fd > n + 2) {
      if (outside++ == 0) first_outside = fd;
    }
  }
  closedir(d);
  if (count != n + 3 || outside != 0) {
    say("fds: /proc/self/fd has ", static_cast<uint64_t>(count), " fds, expected ",
        static_cast<uint64_t>(n + 3));
    if (outside != 0)
      say("fds: ", static_cast<uint64_t>(outside), " of them above the expected range, e.g. fd ",
          static_cast<uint64_t>(first_outside));
    ok = false;
  }

  // 2. Every fd: the right file, the right offset, dups still shared.
  long missing = 0, wrong_file = 0, wrong_off = 0, unshared = 0, first_bad = -1;
  for (long k = 0; k < n; k++) {
    int fd = static_cast<int>(3 + k);
    struct stat st;
    bool bad = false;
    if (fstat(fd, &st) != 0) {
      missing++;
      bad = true;
    } else {
      if (st.st_ino != ino[static_cast<size_t>(k < distinct ? k : 0)]) wrong_file++, bad = true;
      if (lseek(fd, 0, SEEK_CUR) != expected_offset(k, distinct)) wrong_off++, bad = true;
      if (k >= distinct && !bad) {
        off_t probe = kOffset0 + 1 + (k % 1000);
        if (lseek(fd, probe, SEEK_SET) != probe || lseek(3, 0, SEEK_CUR) != probe)
          unshared++, bad = true;
        lseek(fd, kOffset0, SEEK_SET);
      }
    }
    if (bad && first_bad < 0) first_bad = fd;
  }
  if (missing || wrong_file || wrong_off || unshared) {
    say("fds: ", static_cast<uint64_t>(missing), " missing, ", static_cast<uint64_t>(wrong_file),
        " on the wrong file, ", static_cast<uint64_t>(wrong_off), " with the wrong offset");
    if (unshared)
      say("fds: ", static_cast<uint64_t>(unshared),
          " dups of fd 3 no longer share its open file description");
    say("fds: first bad fd ", static_cast<uint64_t>(first_bad));
    ok = false;
  }
  _exit(ok ? 0 : 1);
}

}  // namespace fds

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (argc == 2 && mode[0] >= '0' && mode[0] <= '9') return memory_main(argv);
  if (argc == 4 && strcmp(mode, "tree") == 0) return tree::main(argv);
  if (argc == 3 && strcmp(mode, "threads") == 0) return threads::main(argv);
  if (argc == 5 && strcmp(mode, "fds") == 0) return fds::main(argv);
  if (argc == 3 && strcmp(mode, "tcp") == 0) return bench_tcp_victim_main(argv);
  if (argc == 4 && strcmp(mode, "container") == 0) return bench_container_victim_main(argv);
  if (argc == 4 && strcmp(mode, "precopy") == 0) return bench_precopy_victim_main(argv);
  if (argc == 3 && strcmp(mode, "compress") == 0) return bench_compress_victim_main(argv);
  if (argc == 4 && strcmp(mode, "freeze") == 0) return bench_freeze_victim_main(argv);
  put("usage: ckpt-bench-victim SIZE_MIB\n"
      "       ckpt-bench-victim tree N FANOUT\n"
      "       ckpt-bench-victim threads T\n"
      "       ckpt-bench-victim fds N DIR DISTINCT\n"
      "       ckpt-bench-victim tcp N\n"
      "       ckpt-bench-victim container N ns|bare\n");
  return 2;
}
