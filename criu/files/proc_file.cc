#include "criu/files/proc_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "criu/files/flock.h"  // SeizedByUs
#include "criu/proc_parse.h"

namespace ckpt::files {

pid_t TreeProcPid(const std::string& path) {
  if (path.rfind("/proc/", 0) != 0) return 0;
  size_t end = path.find('/', 6);
  std::string num = path.substr(6, end == std::string::npos ? std::string::npos : end - 6);
  if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return 0;
  pid_t pid = pid_t(atol(num.c_str()));
  if (pid <= 0) return 0;
  if (SeizedByUs(pid)) return pid;
  auto st = proc::ReadStatus(pid);
  return st.ok() && st->state == 'Z' && SeizedByUs(st->ppid) ? pid : 0;
}

Result<int> ProcFileStandIn(const pb::RegFileEntry& r) {
  int acc = int(r.flags()) & O_ACCMODE;
  int fd = open("/dev/null", (acc == O_WRONLY ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Error::Errno("open /dev/null (stand-in for " + r.path() + ")");
  return fd;
}

Status ReopenProcFile(const pb::RegFileEntry& r, const std::vector<int>& fds) {
  int flags = int(r.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
  int fd = open(r.path().c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Error::Errno("open " + r.path() + " (in the restored tree)");
  Status s;
  if (!(flags & O_PATH) && r.pos() && lseek(fd, off_t(r.pos()), SEEK_SET) < 0)
    s = Error::Errno("seek " + r.path());
  for (size_t i = 0; s.ok() && i < fds.size(); i++) {
    int fdflags = fcntl(fds[i], F_GETFD);
    if (dup3(fd, fds[i], (fdflags > 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0)
      s = Error::Errno(r.path() + ": dup3 onto fd " + std::to_string(fds[i]));
  }
  close(fd);
  return s;
}

}  // namespace ckpt::files
