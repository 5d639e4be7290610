// fork() with a chosen pid: clone3(2) with set_tid (CAP_SYS_ADMIN in the
// pid namespace). Returns like fork(): 0 in the child, the pid in the
// parent, -1 with errno (EEXIST: the pid is taken) on failure.
#pragma once

#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace ckpt {

// With pid namespaces: ids[0] is the pid in the child's own namespace
// (the new one with CLONE_NEWPID in flags), the next in its parent
// namespace, and so on outwards; n may stop short of the outermost level
// (the kernel picks the pids of the levels left out).
inline pid_t ForkWithPids(const pid_t* ids, size_t n, uint64_t flags) {
  struct clone_args a;
  memset(&a, 0, sizeof(a));
  a.flags = flags;
  // clone3 takes no exit signal with CLONE_PARENT: the child gets ours.
  a.exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
  a.set_tid = uintptr_t(ids);
  a.set_tid_size = n;
  return pid_t(syscall(SYS_clone3, &a, sizeof(a)));
}

inline pid_t ForkWithPid(pid_t pid) { return ForkWithPids(&pid, 1, 0); }

}  // namespace ckpt
