// Reaping a child on its parent's behalf: the parent runs wait4(2) itself.
//
// A process forked inside a victim (the snapshot child of
// criu/mem_snapshot.h) has the victim as its parent: once it exited, only
// the victim can collect it, and a zombie left there would show in ps and
// in the next dump of the tree. So the victim is made to reap it:
//
//   TRY_ASSIGN(long r, RemoteReap(victim_pid, child_pid_as_victim_sees_it));
//   // r == child: reaped; 0: not exited yet; -ECHILD: not (or no longer) its child
//
// One live thread of `pid` is seized (PTRACE_SEIZE + PTRACE_INTERRUPT),
// runs wait4(child, NULL, WNOHANG | __WALL, NULL), is put back exactly
// where it was (a system call it was blocked in restarts) and detached;
// its other threads run on. Fails (naming the process) if no thread can be
// seized, e.g. while another tracer holds it.
#pragma once

#include <sys/types.h>

#include "base/result.h"

namespace ckpt::compel {

Result<long> RemoteReap(pid_t pid, pid_t child);

}  // namespace ckpt::compel
