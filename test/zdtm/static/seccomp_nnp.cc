// seccomp_nnp: a filter installed with CAP_SYS_ADMIN by a process without
// no_new_privs, which then became uid 1000 without any capability; one
// thread (N) set no_new_privs on itself only.
//   leader  NoNewPrivs 0, Seccomp 2, one filter (getpriority -> EDOM),
//           CapEff 0, uid 1000
//   N       NoNewPrivs 1, the same filter
// Checked before READY and after SIGTERM. After SIGTERM also: the leader
// cannot add a filter (EACCES: neither no_new_privs nor CAP_SYS_ADMIN),
// N can (getpgid -> EXDEV, for N only).
#include <pthread.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>

#include "seccomp_util.h"

namespace {

int g_cmd[2], g_done[2];
pid_t g_ntid;

void check(const char* who, const char* nnp, int nfilters, bool getpgid_blocked) {
  long r = syscall(SYS_getpriority, 0, 0);
  if (r != -1 || errno != EDOM)
    fail("%s: getpriority returned %ld errno %d, want EDOM", who, r, errno);
  r = syscall(SYS_getpgid, 0);
  if (getpgid_blocked != (r == -1 && errno == EXDEV))
    fail("%s: getpgid returned %ld errno %d", who, r, errno);
  std::string v;
  if ((v = thread_status("NoNewPrivs")) != nnp)
    fail("%s: NoNewPrivs %s, want %s", who, v.c_str(), nnp);
  if ((v = thread_status("Seccomp")) != "2") fail("%s: Seccomp %s", who, v.c_str());
  if ((v = thread_status("Seccomp_filters")) != std::to_string(nfilters))
    fail("%s: Seccomp_filters %s, want %d", who, v.c_str(), nfilters);
  if ((v = thread_status("CapEff")) != "0000000000000000") fail("%s: CapEff %s", who, v.c_str());
  if ((v = thread_status("Uid")) != "1000\t1000\t1000\t1000") fail("%s: Uid %s", who, v.c_str());
}

void* thread_n(void*) {
  g_ntid = pid_t(syscall(SYS_gettid));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("N: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
  for (;;) {
    char c = 0;
    ssize_t n = read(g_cmd[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) fail("N: read command");
    if (c == 'c') check("N", "1", 1, false);
    if (c == 'C') {
      check("N", "1", 1, false);
      if (seccomp_install({{SYS_getpgid, SECCOMP_RET_ERRNO | EXDEV}}) != 0)
        fail("N: adding a filter under no_new_privs: %s", strerror(errno));
      check("N", "1", 2, true);
    }
    if (write(g_done[1], &c, 1) != 1) fail("N: write");
    if (c == 'C') return nullptr;
  }
}

void ask(char c) {
  if (write(g_cmd[1], &c, 1) != 1) fail("write: %s", strerror(errno));
  char a;
  if (read(g_done[0], &a, 1) != 1) fail("N did not answer");
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  if (pipe(g_cmd) || pipe(g_done)) fail("pipe: %s", strerror(errno));
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 0) fail("started with no_new_privs");
  // Root without no_new_privs: CAP_SYS_ADMIN lets us install it.
  if (seccomp_install({{SYS_getpriority, SECCOMP_RET_ERRNO | EDOM}}) != 0)
    fail("seccomp without no_new_privs (needs CAP_SYS_ADMIN): %s", strerror(errno));
  pthread_t th;
  if (pthread_create(&th, nullptr, thread_n, nullptr)) fail("pthread_create");
  ask('s');  // N has set its no_new_privs
  // Every thread (glibc's setxid broadcast): all capabilities go.
  if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000))
    fail("setresuid: %s", strerror(errno));
  check("leader", "0", 1, false);
  ask('c');
  test_ready();
  test_wait();
  check("leader", "0", 1, false);
  ask('C');
  pthread_join(th, nullptr);
  if (seccomp_install({{SYS_getpgid, SECCOMP_RET_ERRNO | EXDEV}}) != -1 || errno != EACCES)
    fail("leader could add a filter without no_new_privs or CAP_SYS_ADMIN (errno %d)", errno);
  check("leader", "0", 1, false);
  pass();
}
