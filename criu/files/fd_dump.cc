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
bool SameFile(pid_t pa, const FdContext& a, pid_t pb, const FdContext& b) {
  if (a.st.st_dev != b.st.st_dev || a.st.st_ino != b.st.st_ino) return false;
  constexpr int kKcmpFile = 0;
  return syscall(SYS_kcmp, pa, pb, kKcmpFile, a.fd, b.fd) == 0;
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

Result<FdDumper> FdDumper::Create(images::ImageDir& dir) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kFiles));
  return FdDumper(std::move(w));
}

Status FdDumper::AddTask(images::ImageDir& dir, const TaskFds& task) {
  pid_t pid = task.pid;
  keep_.push_back(std::make_unique<TaskFds>(task));
  const TaskFds& t = *keep_.back();
  TRY_ASSIGN(images::ImageWriter fdw, dir.OpenWriter(images::ImageType::kFdinfo, pid));
  for (size_t i = 0; i < t.fds.size(); i++) {
    const FdContext& c = t.fds[i];
    uint32_t id = 0;
    for (const Seen& s : seen_)
      if (SameFile(s.pid, *s.fd, pid, c)) {
        id = s.id;
        break;
      }
    if (!id) {
      id = next_id_++;
      pb::FileEntry fe;
      fe.set_id(id);
      fe.set_kind(t.handlers[i]->kind);
      TRY(t.handlers[i]->dump(c, &fe));
      TRY(files_.Write(fe));
      seen_.push_back({pid, &c, id});
    }
    pb::FdinfoEntry fd;
    fd.set_fd(uint32_t(c.fd));
    fd.set_file_id(id);
    fd.set_cloexec(c.info.flags & O_CLOEXEC);
    TRY(fdw.Write(fd));
    LOG_DBG("pid " + std::to_string(pid) + " fd " + std::to_string(c.fd) + ": " +
            t.handlers[i]->name + " " + c.link + " (file " + std::to_string(id) + ")");
  }
  return fdw.Close();
}

Status FdDumper::Close() { return files_.Close(); }

}  // namespace ckpt::files
