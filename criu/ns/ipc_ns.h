// The contents of an IPC namespace: SysV message queues (with their
// messages), semaphore sets (with values and, where visible, the pid of the
// last operation), shared memory segments no task of the tree attaches
// (with contents), POSIX message queues (with prioritised messages), and
// the namespace's sysctls. Images: ipc-ns.img (proto/ipc_ns.proto) and
// sysvshm-<id>.img per unattached segment.
//
// Dump: DumpIpcNamespace reads the namespace through a forked child that
// enters it (setns) and a private mount namespace (to mount an mqueue
// filesystem and list POSIX queues); ckpt itself never changes namespace.
// Reading is not destructive for SysV objects (msgrcv MSG_COPY, semctl,
// a read-only attach, with kernel.shm_rmid_forced turned off meanwhile:
// with it on, the detach would destroy the segment). POSIX queues have no peek: every message is received
// and sent back at once, in the same order (priority, then FIFO). A queue
// holding messages and an mq_notify registration is refused (sending into
// the emptied queue would fire the notification). Call it while the tree
// is frozen, and while ckpt is single-threaded (it forks).
//
// Restore: RestoreIpcNamespace runs in a process already inside a new,
// empty IPC namespace (the tree's root, before it opens files or forks):
// limits first (raised where an object needs more than the dumped value,
// e.g. a queue whose qbytes were lowered below its contents), every object
// with its id (kernel.*_next_id), key, owner, creator, mode and contents,
// then the exact dumped sysctls, shm_rmid_forced last.
//
// SEM_UNDO adjustments of the tasks are criu/ns/sem_undo.h's: read where
// that is exact, lost (with a warning) elsewhere; TasksWithSemUndo names
// the tasks that have such a list. Not saved (no kernel interface): times (msg/sem/shm
// stime, rtime, ctime, atime, dtime) and last sender/receiver pids of
// queues and segments; semaphore pids that the tree's pid namespace does
// not show. Reading an unattached segment moves its atime/dtime/lpid; a
// POSIX queue's inode times change when it is read and refilled.
#pragma once

#include <sys/types.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/image_dir.h"

namespace ckpt::ns {

// Saves the IPC namespace `pid` lives in into dir. `attached_shm_ids` are
// the SysV segments some task of the tree maps (saved by criu/shmem.cc);
// they are skipped. Errors name the object: "IPC namespace of pid 42:
// POSIX message queue /jobs: ...". On error nothing of the namespace has
// changed (a POSIX queue refill that fails says how many messages were lost).
Status DumpIpcNamespace(pid_t pid, const std::set<int>& attached_shm_ids, images::ImageDir& dir);

// The tasks of `pids` that have a SEM_UNDO list: those whose adjustments
// a restore loses (no kernel interface reads them). Told by kcmp(2)
// KCMP_SYSVSEM against ckpt, which never made one: a task gets a list at
// its first semop with SEM_UNDO and keeps it (threads share it). A list
// whose adjustments are all back to zero is reported too. Call it for the
// tree in any IPC namespace; warn, or refuse, with the pids.
Result<std::vector<pid_t>> TasksWithSemUndo(const std::vector<pid_t>& pids);

// Runs fn in a forked child inside the IPC namespace of pid and returns
// the string it returns (or its error, prefixed "IPC namespace of pid N: ").
// For the few IPC calls ckpt must make in the tree's namespace from
// outside, e.g. removing again the attached segments that were marked for
// removal (criu/shmem.cc's RestoreSysvShm "doomed" ids) once the tree is
// restored: shmctl(id, IPC_RMID) in ckpt's namespace would hit another
// segment, or none.
Result<std::string> RunInIpcNamespace(pid_t pid, const std::function<Result<std::string>()>& fn);

// The text of /proc/sysvipc/<file> ("shm", "msg" or "sem") as the IPC
// namespace of pid shows it (the kernel answers for the namespace of the
// process that opens the file), read by a forked child that enters it.
// For criu/mem_dump.cc, which describes the SysV segments the tree maps:
// in ckpt's own /proc/sysvipc/shm the same id is another segment, or none.
Result<std::string> ReadSysvipcOf(pid_t pid, const std::string& file);

// Checks ipc-ns.img and the segment files it names, creating nothing:
// call with the other image checks, before any process exists.
Status CheckIpcNamespaceImage(const images::ImageDir& dir);

// In a process inside a fresh, empty IPC namespace: recreates everything
// saved by DumpIpcNamespace. Runs CheckIpcNamespaceImage first. Forks
// short-lived vfork-style helpers (clone3 with set_tid, not reported to a
// tracer using PTRACE_O_TRACEFORK/TRACECLONE, never SIGCHLD) to give
// semaphores their last-operation pids. On error the namespace is left
// half-filled: the caller discards it. `also` (if given) runs once the
// objects exist and before the last sysctls (shm_rmid_forced, the next-id
// requests): the segments the tree attaches are made there.
// defer_shm_rmid_forced: leave kernel.shm_rmid_forced for
// WriteShmRmidForced, once the tree has its segments attached (for a
// filler that is not the tree's root: criu/ns/user_ns.h; with it on, the
// filler's exit would destroy the segments it made and nobody attaches).
Status RestoreIpcNamespace(const images::ImageDir& dir, const std::function<Status()>& also = {},
                           bool defer_shm_rmid_forced = false);
// In the tree's root, when another process filled its IPC namespace: the
// semaphores whose last-operation pid was `pid` (the root's own, which no
// helper can take) get their value set again by the caller.
Status RestoreSemValuesOf(const images::ImageDir& dir, pid_t pid);
// Inside the IPC namespace: writes the dumped kernel.shm_rmid_forced (the
// half RestoreIpcNamespace left with defer_shm_rmid_forced).
Status WriteShmRmidForced(const images::ImageDir& dir);

}  // namespace ckpt::ns
