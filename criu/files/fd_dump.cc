#include "criu/files/fd_dump.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>

#include "base/log.h"
#include "criu/files/file_context.h"
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

Result<TaskFds> CollectFds(pid_t pid, const FdOptions& o) {
  TaskFds t;
  t.pid = pid;
  TRY_ASSIGN(std::vector<int> fds, proc::ListFds(pid));
  for (int fd : fds) {
    TRY_ASSIGN(FdContext c, InspectFd(pid, fd, o));
    TRY_ASSIGN(const FileHandler* h, Classify(c));
    t.fds.push_back(std::move(c));
    t.handlers.push_back(h);
  }
  for (size_t i = 0; i < t.fds.size(); i++)
    if (t.handlers[i]->check) TRY(t.handlers[i]->check(t.fds[i], t.fds));
  return t;
}

Result<FdDumper> FdDumper::Create(images::ImageDir& dir, net::NetDump& net) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kFiles));
  return FdDumper(std::move(w), std::make_unique<DumpContext>(dir, net));
}

Status FdDumper::AddTask(images::ImageDir& dir, const TaskFds& task) {
  pid_t pid = task.pid;
  keep_.push_back(std::make_unique<TaskFds>(task));
  const TaskFds& t = *keep_.back();
  // Ids first, so an entry may name the files of other fds (epoll targets).
  std::vector<uint32_t> ids(t.fds.size());
  std::vector<bool> fresh(t.fds.size());
  std::map<int, uint32_t> by_fd;
  for (size_t i = 0; i < t.fds.size(); i++) {
    const FdContext& c = t.fds[i];
    for (const Seen& s : seen_)
      if (SameFile(s.pid, *s.fd, pid, c)) {
        ids[i] = s.id;
        break;
      }
    if (!ids[i]) {
      ids[i] = next_id_++;
      fresh[i] = true;
      seen_.push_back({pid, &c, ids[i]});
      ctx_->SawFile(pid, c.fd, ids[i]);
    }
    by_fd[c.fd] = ids[i];
  }
  ctx_->SetTask(&t.fds, std::move(by_fd));
  TRY_ASSIGN(images::ImageWriter fdw, dir.OpenWriter(images::ImageType::kFdinfo, pid));
  for (size_t i = 0; i < t.fds.size(); i++) {
    const FdContext& c = t.fds[i];
    if (fresh[i]) {
      pb::FileEntry fe;
      fe.set_id(ids[i]);
      fe.set_kind(t.handlers[i]->kind);
      TRY(t.handlers[i]->dump(c, *ctx_, &fe), Where(c));
      TRY(files_.Write(fe));
    }
    pb::FdinfoEntry fd;
    fd.set_fd(uint32_t(c.fd));
    fd.set_file_id(ids[i]);
    fd.set_cloexec(c.info.flags & O_CLOEXEC);
    TRY(fdw.Write(fd));
    LOG_DBG(Where(c) + ": " + t.handlers[i]->name + " " + c.link + " (file " +
            std::to_string(ids[i]) + ")");
  }
  return fdw.Close();
}

Status FdDumper::Close() {
  TRY(ctx_->Finish());
  return files_.Close();
}

}  // namespace ckpt::files
