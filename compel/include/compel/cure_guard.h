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

// Process `pid` may have snapshot children (criu/mem_snapshot.h, named
// "ckpt-snapshot"): said before the first is forked, so that a ckpt dying
// even inside the fork is covered. If ckpt dies before
// SnapshotsReleased(pid), the guard (after curing any infection of `pid`)
// kills every such child of `pid` and makes `pid` reap it
// (compel/remote_reap.h).
void MayHoldSnapshots(pid_t pid);
void SnapshotsReleased(pid_t pid);

}  // namespace ckpt::compel::guard
