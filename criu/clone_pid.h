// fork() with a chosen pid: clone3(2) with set_tid (CAP_SYS_ADMIN in the
// pid namespace). Returns like fork(): 0 in the child, the pid in the
// parent, -1 with errno (EEXIST: the pid is taken) on failure.
#pragma once

#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace ckpt {

inline pid_t ForkWithPid(pid_t pid) {
  struct clone_args a;
  memset(&a, 0, sizeof(a));
  a.exit_signal = SIGCHLD;
  a.set_tid = uintptr_t(&pid);
  a.set_tid_size = 1;
  return pid_t(syscall(SYS_clone3, &a, sizeof(a)));
}

}  // namespace ckpt
