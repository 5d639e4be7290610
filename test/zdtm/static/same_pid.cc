// same_pid: identity and per-process settings. Verifies getpid() (glibc and
// raw syscall), /proc/self/stat and /proc/self, session and process group
// (the runner makes the test a session leader), the task name set with
// PR_SET_NAME, and every rlimit (RLIMIT_NOFILE soft lowered, RLIMIT_CORE
// set to a distinct soft/hard pair).
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr const char* kName = "zdtm-same-pid";  // 13 chars: fits TASK_COMM_LEN

pid_t stat_pid() { return static_cast<pid_t>(atol(zdtm_read_file("/proc/self/stat").c_str())); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const pid_t pid = getpid();
  const pid_t sid = getsid(0), pgid = getpgid(0);
  if (prctl(PR_SET_NAME, kName)) fail("PR_SET_NAME: %s", strerror(errno));

  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_cur > 200 ? 200 : rl.rlim_cur / 2;
  if (setrlimit(RLIMIT_NOFILE, &rl)) fail("setrlimit NOFILE: %s", strerror(errno));
  getrlimit(RLIMIT_CORE, &rl);
  rlim_t core_hard =
      rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (64 << 20) ? (64 << 20) : rl.rlim_max;
  rl = {core_hard / 4, core_hard};  // lowering the hard limit needs no privilege
  if (setrlimit(RLIMIT_CORE, &rl)) fail("setrlimit CORE: %s", strerror(errno));
  rlimit before[RLIM_NLIMITS];
  for (int r = 0; r < RLIM_NLIMITS; r++) getrlimit(static_cast<__rlimit_resource>(r), &before[r]);

  test_ready();
  test_wait();

  if (getpid() != pid) fail("getpid() %d, want %d", getpid(), pid);
  if (syscall(SYS_getpid) != pid) fail("SYS_getpid %ld, want %d", syscall(SYS_getpid), pid);
  if (syscall(SYS_gettid) != pid) fail("SYS_gettid %ld, want %d", syscall(SYS_gettid), pid);
  if (stat_pid() != pid) fail("/proc/self/stat pid %d, want %d", stat_pid(), pid);
  char link[64] = {};
  if (readlink("/proc/self", link, sizeof(link) - 1) < 0 || atoi(link) != pid)
    fail("/proc/self -> %s, want %d", link, pid);
  if (getsid(0) != sid) fail("session %d, want %d", getsid(0), sid);
  if (getpgid(0) != pgid) fail("process group %d, want %d", getpgid(0), pgid);

  char name[17] = {};
  if (prctl(PR_GET_NAME, name)) fail("PR_GET_NAME: %s", strerror(errno));
  if (strcmp(name, kName) != 0) fail("task name '%s', want '%s'", name, kName);
  std::string comm = zdtm_read_file("/proc/self/comm");
  if (comm != std::string(kName) + "\n") fail("/proc/self/comm '%s'", comm.c_str());

  for (int r = 0; r < RLIM_NLIMITS; r++) {
    rlimit now;
    getrlimit(static_cast<__rlimit_resource>(r), &now);
    if (now.rlim_cur != before[r].rlim_cur || now.rlim_max != before[r].rlim_max)
      fail("rlimit %d: %lu/%lu, want %lu/%lu", r, (unsigned long)now.rlim_cur,
           (unsigned long)now.rlim_max, (unsigned long)before[r].rlim_cur,
           (unsigned long)before[r].rlim_max);
  }
  pass();
}
