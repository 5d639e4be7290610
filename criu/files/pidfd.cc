// pidfds (pidfd_open(2), clone3 CLONE_PIDFD) of processes and threads of
// the dumped tree. fdinfo gives the target ("Pid:" as ckpt sees it,
// "NSpid:" at every pid namespace level below ckpt's) and the flags
// (O_NONBLOCK = PIDFD_NONBLOCK, O_EXCL = PIDFD_THREAD). Saved: the target's
// pid as the holder's pid namespace shows it, and the flags.
//
// Restore: every task of the tree must exist before a pidfd of it can be
// made, and the files are opened by the root before it forks (fd_restore.h).
// So the open makes a stand-in (a pidfd of the restoring root) and each
// task that holds the file replaces it once the whole tree exists, in its
// own pid namespace: pidfd_open(pid, flags) dup3()'d onto every fd number
// of that file (in_task_fds). Each task then has an open file of its own
// for it (flags and target are the same; pidfds have no other state).
//
// Refused, naming the target: a pidfd of a thread other than a leader
// (PIDFD_THREAD: threads are made after the fds are in place); a pidfd of
// a process outside the dumped tree
// (it is not restored; a pidfd can only be made for a live pid), of a
// process already reaped ("Pid: -1": the kernel has no interface that makes
// a pidfd of a reaped process), or of one the holder's pid namespace does
// not show. An epoll watching a pidfd watches the stand-in (not supported:
// refused by the epoll check only if it looks; see README).
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>
#include <vector>

#include "base/io.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"
#include "criu/files/flock.h"  // SeizedByUs
#include "criu/proc_parse.h"

namespace ckpt::files {
namespace {

constexpr uint32_t kPidfdFlags = O_NONBLOCK | O_EXCL;  // PIDFD_NONBLOCK, PIDFD_THREAD

bool Match(const FdContext& c) {
  return c.link == "anon_inode:[pidfd]" || c.link.rfind("pidfd:", 0) == 0;
}

std::vector<long> Numbers(const std::string& s) {
  std::vector<long> out;
  std::istringstream in(s);
  long v;
  while (in >> v) out.push_back(v);
  return out;
}

// The target as the holder's pid namespace shows it, or an error naming it.
Result<pid_t> TargetOf(const FdContext& c) {
  auto pid = FdinfoValue(c.fdinfo, "Pid");
  if (!pid) return Error(Where(c) + ": pidfd: fdinfo has no Pid: line");
  long p = atol(pid->c_str());
  if (p <= 0)
    return Error(Where(c) + ": pidfd of a process that has exited and been reaped: not supported "
                 "(the kernel has no interface that makes a pidfd of a reaped process)");
  // In the tree: seized by us, or a zombie whose parent is.
  bool ours = SeizedByUs(pid_t(p));
  if (!ours) {
    auto st = proc::ReadStatus(pid_t(p));
    ours = st.ok() && st->state == 'Z' && SeizedByUs(st->ppid);
  }
  if (!ours)
    return Error(Where(c) + ": pidfd of pid " + std::to_string(p) +
                 ", which is outside the dumped tree: not supported (only processes of the "
                 "tree are restored)");
  // Threads other than a leader are made by the restorer blob, after every
  // file is in place: no pidfd of one can be made then.
  auto target_status = proc::ReadStatus(pid_t(p));
  if (target_status.ok() && target_status->tgid != pid_t(p))
    return Error(Where(c) + ": pidfd of thread " + std::to_string(p) + " of pid " +
                 std::to_string(target_status->tgid) +
                 " (PIDFD_THREAD): not supported (ckpt restores the fds before the threads)");
  std::vector<long> target = Numbers(FdinfoValue(c.fdinfo, "NSpid").value_or(*pid));
  TRY_ASSIGN(proc::Status holder, proc::ReadStatus(c.pid), Where(c));
  size_t level = holder.ns_pid.empty() ? 0 : holder.ns_pid.size() - 1;
  if (level >= target.size() || target[level] <= 0)
    return Error(Where(c) + ": pidfd of pid " + std::to_string(p) +
                 ", which its pid namespace does not show: not supported");
  return pid_t(target[level]);
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  TRY(TargetOf(c));
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  TRY_ASSIGN(pid_t target, TargetOf(c));
  pb::PidfdEntry* d = e->mutable_pidfd();
  d->set_pid(uint32_t(target));
  d->set_flags(c.info.flags & kPidfdFlags);
  return Ok();
}

int PidfdOpen(pid_t pid, unsigned flags) {
  return int(syscall(SYS_pidfd_open, pid, flags));
}

// The stand-in, replaced in each holder (see the top).
Result<int> Open(const pb::FileEntry&, const RestoreOpts&) {
  int fd = PidfdOpen(getpid(), 0);
  if (fd < 0) return Error::Errno("pidfd_open (stand-in)");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

Status InTaskFds(const pb::FileEntry& e, const std::vector<int>& fds) {
  const pb::PidfdEntry& d = e.pidfd();
  int fd = PidfdOpen(pid_t(d.pid()), d.flags() & kPidfdFlags);
  if (fd < 0) return Error::Errno("pidfd_open of pid " + std::to_string(d.pid()));
  Status s;
  for (int n : fds) {
    int fdflags = fcntl(n, F_GETFD);
    if (dup3(fd, n, (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
      s = Error::Errno("pidfd of pid " + std::to_string(d.pid()) + ": dup3 onto fd " +
                       std::to_string(n));
      break;
    }
  }
  close(fd);
  return s;
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_pidfd() || e.pidfd().pid() == 0 || e.pidfd().pid() > 0x3fffffff ||
      (e.pidfd().flags() & ~kPidfdFlags))
    return Error("file " + std::to_string(e.id()) + ": bad pidfd entry");
  return Ok();
}

}  // namespace

const FileHandler kPidfdHandler = {.kind = pb::FILE_PIDFD,
                                   .name = "pidfd",
                                   .match = Match,
                                   .check = Check,
                                   .dump = Dump,
                                   .open = Open,
                                   .validate = Validate,
                                   .deps = nullptr,
                                   .in_task = nullptr,
                                   .in_task_fds = InTaskFds};

}  // namespace ckpt::files
