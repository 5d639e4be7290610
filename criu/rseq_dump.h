// rseq at dump: a thread stopped inside a restartable sequence's critical
// section is moved to the section's abort handler, as the kernel would.
//
// Why: the kernel aborts a critical section (ip := abort_ip, rseq_cs := 0)
// only when the thread returns to user space after a preemption, migration
// or signal, and only if rseq_cs still describes the section then. Every
// remote system call ckpt runs in a thread (the parasite in the leader,
// sigaltstack/PR_GET_TID_ADDRESS in the others) returns to user space at
// ckpt's address, outside the section: the kernel then clears rseq_cs
// without aborting, and the thread, its registers put back inside the
// section, would go on as if never interrupted (the original with
// --leave-running, and the restored copy, which may run on another CPU).
//
// Contract: AbortRseqCritical(tid, mem_fd) is called for every thread of a
// seized process before anything runs in it (before the parasite goes in),
// with mem_fd the process's /proc/PID/mem opened read-write. A thread
// without rseq, with rseq_cs 0, or with its ip outside the section is left
// alone. A section the kernel would refuse (version != 0, abort_ip inside
// the section, wrong signature before abort_ip) is left alone with a
// warning: the kernel kills such a thread at its next abort anyway.
// Errors: the thread's registers or registration could not be read or
// written ("tid N: rseq: ...").
//
// ReadRseqRegistration(tid): the registration (area, length, signature)
// for core.img, read with PTRACE_GET_RSEQ_CONFIGURATION while the thread is
// in a ptrace stop: before the parasite runs in the leader, which is not
// stopped while it does (the request then fails, and the leader's
// registration would be lost). nullopt when the thread has none.
#pragma once

#include <sys/types.h>

#include <optional>

#include "base/result.h"
#include "proto/core.pb.h"

namespace ckpt {

Result<std::optional<pb::RseqEntry>> ReadRseqRegistration(pid_t tid);
Status AbortRseqCritical(pid_t tid, int mem_fd);

}  // namespace ckpt
