#include "criu/files/file_context.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/io.h"
#include "criu/files/flock.h"  // SeizedByUs
#include "criu/proc_parse.h"

namespace ckpt::files {

DumpContext::~DumpContext() {
  for (const std::string& l : links_) unlink(l.c_str());
}

uint32_t DumpContext::FileIdOf(int fd) const {
  auto it = ids_.find(fd);
  return it == ids_.end() ? 0 : it->second;
}

uint32_t DumpContext::EpollTargetId(pid_t pid, int efd, int tfd) const {
  kcmp_epoll_slot slot = {uint32_t(efd), uint32_t(tfd), 0};
  for (const SeenFile& f : files_)
    if (syscall(SYS_kcmp, f.pid, pid, KCMP_EPOLL_TFD, f.fd, &slot) == 0) return f.id;
  return 0;
}

Result<bool> DumpContext::TreeMaps(pid_t pid, const struct stat& st) {
  TRY_ASSIGN(bool mapped, Mapped(pid, st));
  if (mapped) return true;
  if (!tree_pids_) {
    tree_pids_.emplace();
    DIR* d = opendir("/proc");
    if (!d) return Error::Errno("open /proc");
    while (dirent* e = readdir(d)) {
      pid_t p = pid_t(atoi(e->d_name));
      if (p > 0 && SeizedByUs(p)) tree_pids_->push_back(p);
    }
    closedir(d);
  }
  for (pid_t p : *tree_pids_) {
    if (p == pid) continue;
    auto m = Mapped(p, st);  // (a task whose maps cannot be read maps nothing we keep)
    if (m.ok() && *m) return true;
  }
  return false;
}

DumpContext::Object DumpContext::Share(const std::string& key, uint32_t file_id) {
  auto [it, inserted] = objects_.emplace(key, std::make_pair(file_id, false));
  return {it->second.first, inserted, &it->second.second};
}

void DumpContext::SawPipeEnd(uint64_t ino, bool write_end, bool peer_alive,
                             const std::string& where) {
  PipeSeen& p = pipes_[ino];
  if (p.where.empty()) p.where = where;
  if (write_end) {
    p.write = true;
    p.readers_alive |= peer_alive;
  } else {
    p.read = true;
    p.writers_alive |= peer_alive;
  }
}

Status DumpContext::Finish() const {
  for (const auto& [ino, p] : pipes_) {
    std::string name = "pipe:[" + std::to_string(ino) + "]";
    if (p.read && !p.write && p.writers_alive)
      return Error(p.where + ": " + name +
                   " whose write end is held outside the dumped tree is not supported");
    if (p.write && !p.read && p.readers_alive)
      return Error(p.where + ": " + name +
                   " whose read end is held outside the dumped tree is not supported");
  }
  return Ok();
}

RestoreContext::~RestoreContext() {
  for (auto& kv : kept_) close(kv.second);
}

int RestoreContext::Opened(uint32_t file_id) const {
  auto it = opened_.find(file_id);
  return it == opened_.end() ? -1 : it->second;
}

int RestoreContext::Find(const std::string& key) const {
  auto it = kept_.find(key);
  if (it != kept_.end()) return it->second;
  auto h = handed_.find(key);
  return h == handed_.end() ? -1 : h->second;
}

Result<int> RestoreContext::Keep(const std::string& key, int fd, uint32_t for_file) {
  if (kept_.count(key)) {
    close(fd);
    return Error("restore context: " + key + " kept twice");
  }
  int at = for_file ? FreeHome(for_file, fd) : -1;
  if (at >= 0 && at != fd && dup3(fd, at, O_CLOEXEC) < 0) at = -1;
  int e = 0;
  if (at < 0) {
    at = fcntl(fd, F_DUPFD_CLOEXEC, min_fd_);
    e = errno;
  }
  if (at != fd) close(fd);
  if (at < 0) return Error::Errno("keep " + key, e);
  kept_[key] = at;
  return at;
}

int RestoreContext::FreeHome(uint32_t file_id, int fd) const {
  if (!homes_) return -1;
  auto home = homes_->find(file_id);
  if (home == homes_->end()) return -1;
  int h = home->second;
  if (h == fd || (fcntl(h, F_GETFD) < 0 && errno == EBADF)) return h;
  return -1;
}

int RestoreContext::Hand(const std::string& key) {
  auto it = kept_.find(key);
  if (it == kept_.end()) return -1;
  int fd = it->second;
  kept_.erase(it);
  handed_[key] = fd;
  return fd;
}

const std::vector<uint32_t>& RestoreContext::SharersOf(uint32_t object_id) const {
  static const std::vector<uint32_t> kNone;
  auto it = sharers_.find(object_id);
  return it == sharers_.end() ? kNone : it->second;
}

const pb::FileEntry* RestoreContext::EntryOf(uint32_t file_id) const {
  if (!files_) return nullptr;
  auto it = files_->find(file_id);
  return it == files_->end() ? nullptr : &it->second;
}

Result<int> Reopen(int fd, int flags, const std::string& what) {
  std::string p = "/proc/self/fd/" + std::to_string(fd);
  // The /proc link must be followed: O_NOFOLLOW, which stays in an fd's
  // flags (shm_open(3) always adds it), would make the open fail with ELOOP.
  // It is dropped (it acted only when the file was opened; F_GETFL of the
  // new description no longer shows it).
  int r = open(p.c_str(), flags & ~O_NOFOLLOW);
  if (r < 0) return Error::Errno("reopen " + what);
  return r;
}

Result<int> ReopenAt(int fd, uint32_t flags, uint64_t pos, const std::string& what) {
  int f = int(flags) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC | O_TMPFILE);
  TRY_ASSIGN(int r, Reopen(fd, f | O_CLOEXEC, what));
  if (lseek(r, off_t(pos), SEEK_SET) < 0) {
    int e = errno;
    close(r);
    return Error::Errno("seek " + what, e);
  }
  return r;
}

Result<bool> MappedShared(pid_t pid, const struct stat& st) {
  TRY_ASSIGN(std::string text, io::ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ParseMaps(text));
  for (const proc::MapEntry& m : maps)
    if (m.shared && m.inode == st.st_ino && m.dev_major == major(st.st_dev) &&
        m.dev_minor == minor(st.st_dev))
      return true;
  return false;
}

Result<bool> Mapped(pid_t pid, const struct stat& st) {
  TRY_ASSIGN(std::string text, io::ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ParseMaps(text));
  for (const proc::MapEntry& m : maps)
    if (m.inode == st.st_ino && m.dev_major == major(st.st_dev) && m.dev_minor == minor(st.st_dev))
      return true;
  return false;
}

Result<int> OpenProcFd(pid_t pid, int fd, int flags) {
  std::string p = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  int r = open(p.c_str(), flags | O_CLOEXEC);
  if (r < 0) return Error::Errno("open " + p);
  return r;
}

}  // namespace ckpt::files
