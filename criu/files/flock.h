// File locks held on open files: flock(2) locks, OFD locks (fcntl
// F_OFD_SETLK) and leases (fcntl F_SETLEASE, read or write), which belong
// to an open file description, and POSIX locks (fcntl F_SETLK), which
// belong to a process.
//
// Dump: /proc/PID/fdinfo/FD shows, as "lock:" lines, the flock and OFD
// locks of the fd's open file description and the POSIX locks that PID set
// through it. An open file is dumped once, from its first holder; POSIX
// locks other processes of the tree set through the same description are
// found through /proc/locks (owner pid and inode), then read from that
// process's fdinfo.
//
// Restore: flock and OFD locks and leases are taken again right after the file is
// opened (in the one process that opens every file, before it forks: the
// lock follows the description, as it did); POSIX locks are taken again by
// their owner, in the file's in_task hook, once its fds are in place (fork
// does not pass POSIX locks on, so nobody else holds them). Every lock is
// taken without waiting: a lock someone else holds now fails the restore,
// naming the file, the range and the holder.
//
// A kind of file opts in by calling CheckLocks from check, DumpLocks from
// dump, RestoreFileLocks from open, RestoreTaskLocks from in_task and
// ValidateLocks from validate (regfile.cc and chrdev.cc do).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/files/file_types.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

using LockList = google::protobuf::RepeatedPtrField<pb::FileLock>;

// Refuses locks that cannot be restored (a lease being broken, NFS
// delegations, mandatory locks), before the task is infected: "pid 4 fd 3:
// lease being broken (BREAKING READ) on /f is not supported". A lease
// break in progress has no interface to start again; the breaker waits.
Status CheckLocks(const FdContext& c);

// Appends the locks of c's open file description: its flock and OFD locks,
// c.pid's POSIX locks set through it, and those of other processes of the
// dumped tree that share the description.
Status DumpLocks(const FdContext& c, LockList* out);

// On a freshly opened fd of the file: takes its flock and OFD locks again.
// `what` names the file in errors.
Status RestoreFileLocks(int fd, const LockList& locks, const std::string& what);

// In a restored task, fd at its number: takes the POSIX locks this process
// (getpid()) held again.
Status RestoreTaskLocks(int fd, const LockList& locks, const std::string& what);

// Checks the lock records of an entry read from an image.
Status ValidateLocks(const LockList& locks, const std::string& what);

// For criu/restore_task.cc, in a restored task once its fds are at their
// numbers and before RestoreTaskLocks ran: any close(2) of a file drops the
// POSIX locks the process holds on it, so the fd the restorer maps a file
// through and then closes would drop them. If this process (getpid()) is
// to hold POSIX locks on the file `st` names, returns one of its own fds
// (from `fds`) of that file the file can be mapped through (readable, and
// writable if `write`), for the restorer to map and leave open; -1 if
// there is none (or no lock).
int LockedFdFor(const std::vector<pb::FdinfoEntry>& fds,
                const std::map<uint32_t, pb::FileEntry>& files, const struct stat& st, bool write);

// True if ckpt (this process) is the tracer of pid: during a dump, the
// tasks of the dumped tree are exactly those (zombies have no files).
bool SeizedByUs(pid_t pid);

// "POSIX write lock [10, 29]", "flock (shared)": a lock for messages.
std::string DescribeLock(const pb::FileLock& l);

}  // namespace ckpt::files
