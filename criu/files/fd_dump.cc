#include "criu/files/fd_dump.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {
namespace {

// True if two fds of pid refer to the same open file description (dup'ed
// or inherited): they must share it, offset included, after restore.
bool SameFile(pid_t pid, const FdContext& a, const FdContext& b) {
  if (a.st.st_dev != b.st.st_dev || a.st.st_ino != b.st.st_ino) return false;
  constexpr int kKcmpFile = 0;
  return syscall(SYS_kcmp, pid, pid, kKcmpFile, a.fd, b.fd) == 0;
}

}  // namespace

Result<TaskFds> CollectFds(pid_t pid, bool shell_job) {
  TaskFds t;
  t.pid = pid;
  TRY_ASSIGN(std::vector<int> fds, proc::ListFds(pid));
  for (int fd : fds) {
    TRY_ASSIGN(FdContext c, InspectFd(pid, fd, shell_job));
    TRY_ASSIGN(const FileHandler* h, Classify(c));
    t.fds.push_back(std::move(c));
    t.handlers.push_back(h);
  }
  return t;
}

Status WriteFds(images::ImageDir& dir, const TaskFds& t) {
  using images::ImageType;
  pid_t pid = t.pid;
  TRY_ASSIGN(images::ImageWriter fdw, dir.OpenWriter(ImageType::kFdinfo, pid));
  TRY_ASSIGN(images::ImageWriter fw, dir.OpenWriter(ImageType::kFiles));
  std::vector<uint32_t> ids(t.fds.size());
  uint32_t next_id = 1;
  for (size_t i = 0; i < t.fds.size(); i++) {
    const FdContext& c = t.fds[i];
    for (size_t j = 0; j < i && !ids[i]; j++)
      if (SameFile(pid, t.fds[j], c)) ids[i] = ids[j];
    if (!ids[i]) {
      ids[i] = next_id++;
      pb::FileEntry fe;
      fe.set_id(ids[i]);
      fe.set_kind(t.handlers[i]->kind);
      TRY(t.handlers[i]->dump(c, &fe));
      TRY(fw.Write(fe));
    }
    pb::FdinfoEntry fd;
    fd.set_fd(uint32_t(c.fd));
    fd.set_file_id(ids[i]);
    fd.set_cloexec(c.info.flags & O_CLOEXEC);
    TRY(fdw.Write(fd));
    LOG_DBG("pid " + std::to_string(pid) + " fd " + std::to_string(c.fd) + ": " +
            t.handlers[i]->name + " " + c.link);
  }
  TRY(fdw.Close());
  return fw.Close();
}

}  // namespace ckpt::files
