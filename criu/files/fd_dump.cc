#include "criu/files/fd_dump.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <utility>

#include "base/log.h"
#include "criu/files/file_context.h"
#include "criu/files/unix_sk.h"
#include "criu/ns/mnt_ns.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// kcmp(KCMP_FILE) orders open file descriptions by (obfuscated) address:
// 0 same, 1 less, 2 greater. Should it fail, fds are told apart by number,
// as distinct files (what the kernel would not let us prove otherwise).
bool FdDumper::FileOrder::operator()(const FileKey& a, const FileKey& b) const {
  const struct stat& sa = a.fd->st;
  const struct stat& sb = b.fd->st;
  if (sa.st_dev != sb.st_dev) return sa.st_dev < sb.st_dev;
  if (sa.st_ino != sb.st_ino) return sa.st_ino < sb.st_ino;
  constexpr int kKcmpFile = 0;
  long r = syscall(SYS_kcmp, a.pid, b.pid, kKcmpFile, a.fd->fd, b.fd->fd);
  if (r == 0 || r == 1 || r == 2) return r == 1;
  return std::make_pair(a.pid, a.fd->fd) < std::make_pair(b.pid, b.fd->fd);
}

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
    auto [it, added] = seen_.emplace(FileKey{pid, &c}, next_id_);
    ids[i] = it->second;
    if (added) {
      next_id_++;
      fresh[i] = true;
      ctx_->SawFile(pid, c.fd, ids[i]);
    }
    by_fd[c.fd] = ids[i];
  }
  ctx_->SetTask(&t.fds, std::move(by_fd));
  ctx_->set_held_file_dumper([this, pid](UniqueFd fd, const std::string& what) {
    return AddHeld(pid, std::move(fd), what);
  });
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

Result<uint32_t> FdDumper::AddHeld(pid_t pid, UniqueFd fd, const std::string& what) {
  pid_t self = getpid();
  auto c = InspectFd(self, fd.get(), FdOptions{});
  if (!c.ok()) return Error(what + ": " + c.error().message());
  TRY_ASSIGN(const FileHandler* h, ClassifyInFlight(*c, what));
  if (ctx_->options().task_paths && h->kind == pb::FILE_REG) {
    // ckpt's readlink of a file on a mount of another namespace reads the
    // path from that namespace's root, right for a tree that pivot_rooted,
    // not for one chrooted inside it or for a file from outside it.
    TRY_ASSIGN(ns::TaskPath p, ns::HeldFilePath(pid, fd.get(), what));
    if (!p.in_ns)
      return Error(what + ": " + c->link + " is on a mount outside the mount namespace of pid " +
                   std::to_string(pid) + " (passed in from outside it): not supported");
    c->link = p.path;
  }
  held_.push_back(std::make_unique<FdContext>(std::move(*c)));
  held_fds_.push_back(std::move(fd));
  const FdContext& hc = *held_.back();
  auto [it, added] = seen_.emplace(FileKey{self, &hc}, next_id_);
  if (!added) return it->second;  // the same open file as one seen before
  uint32_t id = next_id_++;
  if (h->check) TRY(h->check(hc, ctx_->task_fds()), what);
  pb::FileEntry fe;
  fe.set_id(id);
  fe.set_kind(h->kind);
  TRY(h->dump(hc, *ctx_, &fe), what + ": " + h->name + " " + hc.link);
  if (fe.has_reg()) fe.mutable_reg()->set_holder(what);  // not ckpt's own pid and fd
  TRY(files_.Write(fe));
  LOG_DBG(what + ": " + h->name + " " + hc.link + " in flight (file " + std::to_string(id) +
          ")");
  return id;
}

Status FdDumper::Close() {
  TRY(ctx_->Finish());
  return files_.Close();
}

}  // namespace ckpt::files
