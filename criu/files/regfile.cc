// Regular files and directories, reopened by path at their offset, with
// their open flags (O_DIRECT, O_APPEND, O_NONBLOCK, ... as they were) and
// their file locks (flock.h). Also O_PATH fds of any kind of file (a
// symlink opened with O_NOFOLLOW, a FIFO, a device, a socket file): they
// have no offset and no open file state beyond the path, so they are
// reopened by path with O_PATH.
//
// A file opened through /proc/self/fd/N (or /proc/PID/fd/N) is an open of
// the file behind that link: /proc shows the file's own path, so it is
// dumped and restored like any other open of that path.
//
// Changes to a regular file since the dump are checked cheaply at restore
// from its size and mtime. A file that shrank below an fd's offset (where
// that offset was within the file at dump time) fails the restore, naming
// the fd and the path: the process would read from, or write at, a place
// that no longer holds what it had. Any other change of size or mtime is a
// warning in the log: files legitimately grow (logs) or get touched.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "criu/files/deleted_node.h"
#include "criu/files/file_types.h"
#include "criu/files/flock.h"
#include "criu/files/proc_file.h"

namespace ckpt::files {
namespace {

constexpr const char* kDeleted = " (deleted)";

bool Match(const FdContext& c) {
  if (c.link.empty() || c.link[0] != '/') return false;
  return S_ISREG(c.st.st_mode) || S_ISDIR(c.st.st_mode) || (c.info.flags & O_PATH);
}

int64_t MtimeNs(const struct stat& st) {
  return int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// "pid 4 fd 3: " when the dump recorded the first holder.
std::string HolderOf(const pb::RegFileEntry& r) { return r.has_holder() ? r.holder() + ": " : ""; }

// Unlinked regular files are kGhostFileHandler's; what is left here is an
// unlinked directory (always empty: made again, deleted_node.h) or an
// O_PATH fd of another unlinked file.
Status Check(const FdContext& c, const std::vector<FdContext>&) {
  const std::string& l = c.link;
  if (IsDeletedLink(l) && S_ISDIR(c.st.st_mode) && c.st.st_nlink == 0) return CheckLocks(c);
  if (l.size() > strlen(kDeleted) &&
      l.compare(l.size() - strlen(kDeleted), std::string::npos, kDeleted) == 0)
    return Error(Where(c) + ": deleted " + (S_ISDIR(c.st.st_mode) ? "directory " : "file ") + l +
                 " is not supported");
  return CheckLocks(c);
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::RegFileEntry* r = e->mutable_reg();
  r->set_path(c.link);
  if (IsDeletedLink(c.link) && S_ISDIR(c.st.st_mode)) {
    r->set_path(StripDeleted(c.link));
    r->set_deleted(true);
  }
  r->set_flags(c.info.flags);
  if (pid_t p = TreeProcPid(c.link)) r->set_proc_pid(uint32_t(p));
  r->set_pos((c.info.flags & O_PATH) ? 0 : c.info.pos);
  r->set_size(uint64_t(c.st.st_size));
  r->set_mode(c.st.st_mode);
  r->set_holder(Where(c));
  if (S_ISREG(c.st.st_mode)) r->set_mtime_ns(MtimeNs(c.st));
  if (!(c.info.flags & O_PATH)) TRY(DumpLocks(c, r->mutable_locks()));
  return Ok();
}

// Compares the file opened at restore with what the dump saw (see the top).
Status CheckUnchanged(const pb::RegFileEntry& r, const struct stat& st) {
  if (r.has_mode() && ((st.st_mode ^ r.mode()) & S_IFMT))
    return Error(HolderOf(r) + r.path() + " is no longer the same kind of file");
  if (!S_ISREG(st.st_mode)) return Ok();
  uint64_t size = uint64_t(st.st_size);
  bool offset_matters =
      !(r.flags() & O_PATH) && !((r.flags() & O_APPEND) && (r.flags() & O_ACCMODE) == O_WRONLY);
  if (offset_matters && r.has_size() && r.pos() > size && r.pos() <= r.size())
    return Error(HolderOf(r) + r.path() + " shrank to " + std::to_string(size) +
                 " bytes since the dump, below the fd's offset " + std::to_string(r.pos()) +
                 " (it had " + std::to_string(r.size()) + ")");
  if (r.has_size() && size != r.size())
    LOG_WARN(HolderOf(r) + "file " + r.path() + " changed size since the dump (" +
             std::to_string(r.size()) + " -> " + std::to_string(size) + " bytes)");
  else if (r.has_mtime_ns() && MtimeNs(st) != r.mtime_ns())
    LOG_WARN(HolderOf(r) + "file " + r.path() + " was modified since the dump (mtime differs)");
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::RegFileEntry& r = e.reg();
  // Creation flags did their work at the original open; don't repeat them.
  int flags = int(r.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
  // An O_PATH fd of a symlink is the link itself.
  if ((flags & O_PATH) && r.has_mode() && S_ISLNK(r.mode())) flags |= O_NOFOLLOW;
  if (r.proc_pid()) return ProcFileStandIn(r);  // opened by its holders later (proc_file.h)
  int fd;
  if (r.deleted()) {
    TRY_ASSIGN(fd, OpenDeletedNode(r.path(), S_IFDIR | (r.mode() & 07777), 0, flags),
               HolderOf(r).empty() ? "" : r.holder());
  } else {
    fd = open(r.path().c_str(), flags);
  }
  if (fd < 0) return Error::Errno(HolderOf(r) + "open " + r.path());
  struct stat st;
  Status s;
  if (fstat(fd, &st) < 0)
    s = Error::Errno(HolderOf(r) + "fstat " + r.path());
  else
    s = CheckUnchanged(r, st);
  if (s.ok() && !(flags & O_PATH) && lseek(fd, off_t(r.pos()), SEEK_SET) < 0 && errno != ESPIPE)
    s = Error::Errno(HolderOf(r) + "seek " + r.path());
  if (s.ok()) s = RestoreFileLocks(fd, r.locks(), r.path());
  if (!s.ok()) {
    close(fd);
    return std::move(s.error());
  }
  return fd;
}

// POSIX locks belong to the process that took them: each takes its own.
Status InTask(const pb::FileEntry& e, int fd) {
  return RestoreTaskLocks(fd, e.reg().locks(), e.reg().path());
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_reg() || e.reg().path().empty() || e.reg().path()[0] != '/' ||
      (e.reg().deleted() && !S_ISDIR(e.reg().mode())))
    return Error("file " + std::to_string(e.id()) + ": bad regular file entry");
  return ValidateLocks(e.reg().locks(), "file " + std::to_string(e.id()));
}

}  // namespace

const FileHandler kRegFileHandler = {.kind = pb::FILE_REG,
                                     .name = "regular file",
                                     .match = Match,
                                     .check = Check,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr,
                                     .in_task = InTask,
                                     .check_images = nullptr,
                                     .in_task_fds = [](const pb::FileEntry& e,
                                                       const std::vector<int>& fds) -> Status {
                                       if (!e.reg().proc_pid()) return Ok();
                                       return ReopenProcFile(e.reg(), fds);
                                     }};

}  // namespace ckpt::files
