// ns_root: the tree's root is the init (pid 1) of its own pid namespace
// (zdtm-run --ns pid,...), with
//   A   a child in a process group of its own, B in A's group;
//   N   a child that is the init of a nested pid namespace, with N1 (its
//       pid 2) under it;
//   Z   a zombie (exit status 7, reaped only after restore);
//   T   a second thread of the root.
// Before the dump everyone's ids are recorded as the root and each task
// see them; after restore every task reports its own view again (getpid,
// getppid, getpgid, getsid, gettid) and the root's view (kill 0, waitpid)
// must match.
//   --uts   hostname and domain name set before the dump, checked after.
//   --time  (zdtm-run --ns time) the clock offsets of /proc/self/timens_offsets
//           are the same after restore and CLOCK_MONOTONIC/BOOTTIME did not
//           go back.
//   --cgroup (zdtm-run --ns cgroup) /proc/self/cgroup says "0::/" (the root
//           of its own cgroup namespace), before and after.
// In every case /proc/self/cgroup reads the same after restore.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "zdtm.h"

namespace {

int g_go[2], g_report[2], g_end[2];

std::string Ids(const char* who) {
  char buf[160];
  snprintf(buf, sizeof(buf), "%s pid=%d ppid=%d pgid=%d sid=%d\n", who, getpid(), getppid(),
           getpgid(0), getsid(0));
  return buf;
}

// A child: reports its ids once now and once after the restore (when the
// root writes a byte for it), then waits for SIGTERM-free exit on EOF.
[[noreturn]] void Child(const char* who) {
  close(g_go[1]);
  close(g_report[0]);
  close(g_end[1]);
  std::string line = Ids(who);
  if (write(g_report[1], line.data(), line.size()) < 0) _exit(2);
  char c;
  while (read(g_go[0], &c, 1) < 0 && errno == EINTR) {
  }
  line = Ids(who);
  if (write(g_report[1], line.data(), line.size()) < 0) _exit(2);
  // Stay until the root is gone (EOF) so nothing is reparented early.
  while (read(g_end[0], &c, 1) != 0) {
  }
  _exit(0);
}

// Reads `n` report lines, keyed by their first word.
std::map<std::string, std::string> Collect(int n) {
  std::map<std::string, std::string> out;
  std::string buf;
  while (int(out.size()) < n) {
    char tmp[256];
    ssize_t r = read(g_report[0], tmp, sizeof(tmp));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) fail("report pipe: %s", r ? strerror(errno) : "EOF");
    buf.append(tmp, size_t(r));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      out[line.substr(0, line.find(' '))] = line;
    }
  }
  return out;
}

pid_t g_n1;  // N1's pid as N sees it
int NestedInit(void*) {
  // N: pid 1 of a nested namespace, with a child.
  g_n1 = fork();
  if (g_n1 == 0) Child("N1");
  Child("N");
}

pid_t g_tid_before, g_tid_after;
volatile int g_thread_go;
void* ThreadMain(void*) {
  g_tid_before = pid_t(syscall(SYS_gettid));
  while (!__atomic_load_n(&g_thread_go, __ATOMIC_SEQ_CST)) usleep(1000);
  g_tid_after = pid_t(syscall(SYS_gettid));
  return nullptr;
}

struct Clocks {
  std::string offsets;
  struct timespec mono, boot;
};
Clocks ReadClocks() {
  Clocks c;
  c.offsets = zdtm_read_file("/proc/self/timens_offsets");
  clock_gettime(CLOCK_MONOTONIC, &c.mono);
  clock_gettime(CLOCK_BOOTTIME, &c.boot);
  return c;
}
bool Before(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool uts = false, timens = false, cgroupns = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--uts")) uts = true;
    if (!strcmp(argv[i], "--time")) timens = true;
    if (!strcmp(argv[i], "--cgroup")) cgroupns = true;
  }
  if (getpid() != 1) fail("not the init of a pid namespace (pid %d): run with --ns pid", getpid());
  if (uts) {
    if (sethostname("ckpt-ns-root", 12) || setdomainname("zdtm.example", 12))
      fail("sethostname: %s", strerror(errno));
  }
  if (pipe(g_go) || pipe(g_report) || pipe(g_end)) fail("pipe: %s", strerror(errno));

  pid_t a = fork();
  if (a == 0) {
    setpgid(0, 0);
    Child("A");
  }
  setpgid(a, a);
  pid_t b = fork();
  if (b == 0) {
    setpgid(0, a);
    Child("B");
  }
  setpgid(b, a);
  static char stack[64 * 1024];
  pid_t n = clone(NestedInit, stack + sizeof(stack), CLONE_NEWPID | SIGCHLD, nullptr);
  if (n < 0) fail("clone(CLONE_NEWPID): %s", strerror(errno));
  pid_t z = fork();
  if (z == 0) _exit(7);
  pthread_t th;
  if (pthread_create(&th, nullptr, ThreadMain, nullptr)) fail("pthread_create");
  std::map<std::string, std::string> before = Collect(4);
  siginfo_t si;
  if (waitid(P_PID, id_t(z), &si, WEXITED | WNOWAIT)) fail("waitid Z: %s", strerror(errno));
  while (!__atomic_load_n(&g_tid_before, __ATOMIC_SEQ_CST)) usleep(1000);
  Clocks c0 = ReadClocks();
  std::string cg0 = zdtm_read_file("/proc/self/cgroup");
  if (cgroupns && cg0.find("0::/\n") == std::string::npos)
    fail("not the root of its cgroup namespace: %s", cg0.c_str());
  struct utsname u0;
  uname(&u0);
  test_msg("A=%d B=%d N=%d Z=%d T=%d", a, b, n, z, g_tid_before);

  test_ready();
  test_wait();

  if (write(g_go[1], "gggg", 4) != 4) fail("go: %s", strerror(errno));
  std::map<std::string, std::string> after = Collect(4);
  for (auto& [who, line] : before)
    if (after[who] != line) fail("%s: was '%s', now '%s'", who.c_str(), line.c_str(), after[who].c_str());
  // The ids the tasks see are the ones the root uses.
  char want[64];
  snprintf(want, sizeof(want), "A pid=%d ppid=1 pgid=%d sid=1", a, a);
  if (after["A"] != want) fail("A: '%s', want '%s'", after["A"].c_str(), want);
  snprintf(want, sizeof(want), "N pid=1 ppid=0 pgid=0 sid=0");
  if (after["N"] != want) fail("N: '%s', want '%s'", after["N"].c_str(), want);
  snprintf(want, sizeof(want), "N1 pid=2 ppid=1 pgid=0 sid=0");
  if (after["N1"] != want) fail("N1: '%s', want '%s'", after["N1"].c_str(), want);
  for (pid_t p : {a, b, n})
    if (kill(p, 0)) fail("kill(%d, 0): %s", p, strerror(errno));
  int st;
  if (waitpid(z, &st, 0) != z || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
    fail("zombie %d: waitpid gave status %#x", z, st);
  __atomic_store_n(&g_thread_go, 1, __ATOMIC_SEQ_CST);
  pthread_join(th, nullptr);
  if (g_tid_after != g_tid_before) fail("thread tid %d, was %d", g_tid_after, g_tid_before);

  struct utsname u1;
  uname(&u1);
  if (strcmp(u0.nodename, u1.nodename) || strcmp(u0.domainname, u1.domainname))
    fail("uts: %s/%s, was %s/%s", u1.nodename, u1.domainname, u0.nodename, u0.domainname);
  if (uts && strcmp(u1.nodename, "ckpt-ns-root")) fail("hostname %s", u1.nodename);
  Clocks c1 = ReadClocks();
  std::string cg1 = zdtm_read_file("/proc/self/cgroup");
  if (cg1 != cg0) fail("/proc/self/cgroup '%s', was '%s'", cg1.c_str(), cg0.c_str());
  if (c1.offsets != c0.offsets)
    fail("clock offsets '%s', were '%s'", c1.offsets.c_str(), c0.offsets.c_str());
  if (timens && c0.offsets.find("1000") == std::string::npos)
    fail("no time namespace offsets: '%s'", c0.offsets.c_str());
  if (!Before(c0.mono, c1.mono) || !Before(c0.boot, c1.boot)) fail("a clock went back");

  close(g_end[1]);  // children exit on EOF
  for (pid_t p : {a, b, n})
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      fail("child %d ended with %#x", p, st);
  pass();
}
