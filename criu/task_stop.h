// Job-control stops (issue 14 item 5): a process stopped by SIGSTOP,
// SIGTSTP, SIGTTIN or SIGTTOU when it is dumped comes back stopped, and
// SIGCONT resumes it.
//
// Dump: compel::SeizedProcess::stop_signal() says which signal stopped
// the process (PTRACE_SEIZE of a task in group stop reports a
// PTRACE_EVENT_STOP carrying that signal); dump.cc stores it as
// TaskCoreEntry.stop_signal. Leave-running needs nothing: PTRACE_DETACH
// puts a task whose group stop is in effect back into it.
//
// Restore: StopRestoredTask(real_pid, core) in ckpt, right before it
// detaches the task's threads (each sits stopped after its rt_sigreturn):
// SIGSTOP is queued, so the first thread to return to the dumped code
// takes it and the whole process enters a group stop before running any
// instruction of its own. DetachTree (below) then makes the parent's view
// match the dump: a stop it had collected is collected again for it; one
// it had not is reported (with SIGSTOP as the signal). SIGSTOP and not the dumped
// signal: the kernel drops SIGTSTP/SIGTTIN/SIGTTOU in an orphaned process
// group, and a handler or mask installed since would divert them.
//
// Ptrace: a process traced by another process (inside the tree or not)
// cannot be dumped, and the seize says so naming the tracer
// (compel/src/seize.cc): ptrace admits one tracer and ckpt must be it, and
// the other tracer's hold (its options, which stop the tracee sits in and
// what the tracer expects next) has no kernel interface to be read back or
// set up again.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "criu/task_images.h"
#include "proto/core.pb.h"

namespace ckpt {

Status StopRestoredTask(pid_t real_pid, const pb::TaskCoreEntry& core);

// Dump: whether the parent (live in the tree, every thread seized and not
// infected) has already collected the stop report of its stopped child:
// a remote waitid(P_PID, child, WSTOPPED | WNOWAIT | WNOHANG) in the
// parent, its siginfo on the parent's stack far below the stack pointer
// (the bytes are put back). Only the parent can ask.
Result<bool> StopCollected(pid_t parent, int parent_mem_fd, pid_t child);

// Restore: detaches every live task of the tree (real_tids[i]: the real
// tids of tree.tasks[i]). A stopped task whose parent had collected its
// stop (stop_collected) stops first while its parent is still held, and
// the parent collects the new report by a remote wait4(WUNTRACED |
// WNOHANG), and loses the SIGCHLD the stop sent it unless one was pending
// at dump: the parent sees no stop it had not seen. Call after
// StopRestoredTask for every task.
Status DetachTree(const TreeImages& tree, const std::vector<std::vector<pid_t>>& real_tids);

// SIGTRAP set to SIG_IGN: the restorer's int3 resets it to SIG_DFL (the
// kernel does that for a forced signal the task ignores). Returns the
// victim address of the dumped SIGTRAP action inside the restorer region
// that starts at region_start (RestoreArgs::sigacts), for ckpt's remote
// rt_sigaction(SIGTRAP, addr, NULL, 8) in the leader before it unmaps the
// region; 0 when SIGTRAP is not ignored.
uint64_t IgnoredSigtrapAction(const pb::TaskCoreEntry& core, uint64_t region_start);

}  // namespace ckpt
