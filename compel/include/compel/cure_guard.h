// The cure guard: puts a victim back when ckpt dies (SIGKILL, OOM) while
// something of it is inside.
//
// The parasite cures itself when its socket reaches EOF (it rt_sigreturns
// to the victim's own state), but it cannot unmap the region it runs from,
// and between the remote memfd_create and close the victim holds an fd of
// ours. So at the first infection ckpt forks a small process, the guard
// ("ckpt-cureguard": own session, every fd closed but a pipe from ckpt),
// and tells it what each victim holds right now:
//
//   guard::Holds(tid, memfd_in_victim, region, len);  // after each step
//   guard::Clear(tid);                                // cured
//
// When the pipe reaches EOF (ckpt exited or died) with something still
// held, the guard seizes that process (retrying while ckpt's ptrace link
// is going away), waits until the thread is out of the region, unmaps it
// and closes the fd with remote system calls, and detaches. A ckpt that
// exits normally waits for its guard (a static destructor), so no guard
// outlives it.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace ckpt::compel::guard {

// `memfd`: the fd number in the victim, or -1; `region`/`len`: the
// parasite region mapped in it, or 0. Starts the guard on first use; if
// that fails, logs it and carries on unguarded.
void Holds(pid_t tid, int memfd, uint64_t region, uint64_t len);
void Clear(pid_t tid);

// A snapshot child (criu/mem_snapshot.h) of process `pid`: `child` in
// ckpt's pid namespace, `child_nspid` as `pid` sees it. If ckpt dies while
// it is held, the guard kills it and makes `pid` reap it
// (compel/remote_reap.h), once any infection of `pid` is cured.
void HoldsSnapshot(pid_t pid, pid_t child, pid_t child_nspid);
void ReleasedSnapshot(pid_t child);

}  // namespace ckpt::compel::guard
