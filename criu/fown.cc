#include "criu/fown.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "base/unique_fd.h"
#include "compel/seize.h"

namespace ckpt {
namespace {

std::string Who(pid_t pid, int fd) {
  return "pid " + std::to_string(pid) + " fd " + std::to_string(fd);
}

Result<UniqueFd> PidFd(pid_t pid) {
  UniqueFd fd(int(syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return Error::Errno("pid " + std::to_string(pid) + ": pidfd_open");
  return fd;
}

Result<UniqueFd> CopyOf(int pidfd, pid_t pid, int fd) {
  UniqueFd copy(int(syscall(SYS_pidfd_getfd, pidfd, fd, 0)));
  if (!copy) return Error::Errno(Who(pid, fd) + ": pidfd_getfd");
  return copy;
}

}  // namespace

std::set<pid_t> FownTreeIds(const std::vector<TreeTask>& tree) {
  std::set<pid_t> ids;
  for (const TreeTask& t : tree) {
    ids.insert(t.pid);
    ids.insert(t.pgid);
    ids.insert(t.sid);
    if (t.proc)
      for (pid_t tid : t.proc->threads()) ids.insert(tid);
  }
  return ids;
}

Result<std::vector<pb::FownEntry>> DumpFowns(pid_t pid, const std::vector<int>& fds,
                                             const std::set<pid_t>& tree_ids) {
  std::vector<pb::FownEntry> out;
  if (fds.empty()) return out;
  TRY_ASSIGN(UniqueFd pidfd, PidFd(pid));
  for (int fd : fds) {
    TRY_ASSIGN(UniqueFd copy, CopyOf(pidfd.get(), pid, fd));
    f_owner_ex owner = {};
    if (fcntl(copy.get(), F_GETOWN_EX, &owner) < 0) {
      if (errno == EBADF) continue;  // an O_PATH fd: no owner, no signals
      return Error::Errno(Who(pid, fd) + ": F_GETOWN_EX");
    }
    int sig = fcntl(copy.get(), F_GETSIG);
    int fl = fcntl(copy.get(), F_GETFL);
    if (sig < 0 || fl < 0) return Error::Errno(Who(pid, fd) + ": F_GETSIG/F_GETFL");
    if (owner.pid == 0 && sig == 0 && !(fl & O_ASYNC)) continue;
    if (owner.pid != 0 && !tree_ids.count(owner.pid))
      return Error(Who(pid, fd) + ": its SIGIO owner (" +
                   (owner.type == F_OWNER_PGRP ? "process group " : "pid ") +
                   std::to_string(owner.pid) +
                   ") is not in the dumped tree (F_SETOWN to an outside process)");
    pb::FownEntry e;
    e.set_fd(uint32_t(fd));
    e.set_owner_type(uint32_t(owner.type));
    e.set_owner(owner.pid);
    if (sig) e.set_signum(uint32_t(sig));
    if (fl & O_ASYNC) e.set_async(true);
    out.push_back(e);
  }
  return out;
}

Status RestoreFowns(pid_t real_pid, const pb::TaskCoreEntry& core,
                    const std::map<pid_t, pid_t>& real_tid_of) {
  if (core.fown_size() == 0) return Ok();
  TRY_ASSIGN(UniqueFd pidfd, PidFd(real_pid));
  for (const pb::FownEntry& e : core.fown()) {
    int fd = int(e.fd());
    TRY_ASSIGN(UniqueFd copy, CopyOf(pidfd.get(), real_pid, fd));
    if (e.owner() != 0) {
      // A process group or session whose leader exited keeps its number.
      auto it = real_tid_of.find(e.owner());
      f_owner_ex owner = {static_cast<__pid_type>(e.owner_type()), it == real_tid_of.end() ? e.owner() : it->second};
      if (owner.type != F_OWNER_TID && owner.type != F_OWNER_PID && owner.type != F_OWNER_PGRP)
        return Error(Who(real_pid, fd) + ": bad owner type " + std::to_string(owner.type));
      if (fcntl(copy.get(), F_SETOWN_EX, &owner) < 0)
        return Error::Errno(Who(real_pid, fd) + ": F_SETOWN_EX " + std::to_string(owner.pid));
    }
    if (e.signum() > uint32_t(SIGRTMAX))
      return Error(Who(real_pid, fd) + ": bad F_SETSIG signal " + std::to_string(e.signum()));
    if (fcntl(copy.get(), F_SETSIG, int(e.signum())) < 0)
      return Error::Errno(Who(real_pid, fd) + ": F_SETSIG " + std::to_string(e.signum()));
  }
  return Ok();
}

Status RestoreFownAsync(const pb::TaskCoreEntry& core) {
  for (const pb::FownEntry& e : core.fown()) {
    if (!e.async()) continue;
    int fd = int(e.fd());
    int fl = fcntl(fd, F_GETFL);
    // Cleared first: F_SETFL registers the fd number only when O_ASYNC
    // changes, and the file may have it already from where it was opened.
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_ASYNC) < 0 || fcntl(fd, F_SETFL, fl | O_ASYNC) < 0)
      return Error::Errno(Who(getpid(), fd) + ": F_SETFL O_ASYNC");
  }
  return Ok();
}

}  // namespace ckpt
