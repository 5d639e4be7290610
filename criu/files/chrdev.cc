// Character devices that are reopened by path: /dev/null, /dev/zero,
// /dev/full, /dev/random, /dev/urandom (memory devices, major 1), with
// their file locks (flock.h); and terminals from outside the dumped tree
// (the shell's) with --shell-job. Pseudo-terminals of the tree are
// kPtyHandler's (tty.cc), which also refuses outside terminals without
// --shell-job.
//
// A memory device node unlinked while open (mknod'ed somewhere, opened,
// removed) is made again at its old path with mknod, opened, and removed,
// so the fd's /proc link reads "PATH (deleted)" again. With
// --evasive-devices (CRIU's: use another name of the device when its own
// is gone) the dump saves it by its /dev name instead.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "criu/files/deleted_node.h"
#include "criu/files/file_context.h"
#include "criu/files/file_types.h"
#include "criu/files/flock.h"
#include "criu/files/tty.h"

namespace ckpt::files {
namespace {

// /dev/null, /dev/zero, ... by device number; nullptr for others.
const char* MemDevName(dev_t rdev) {
  if (major(rdev) != 1) return nullptr;
  switch (minor(rdev)) {
    case 3: return "/dev/null";
    case 5: return "/dev/zero";
    case 7: return "/dev/full";
    case 8: return "/dev/random";
    case 9: return "/dev/urandom";
  }
  return nullptr;
}

bool IsMemDev(dev_t rdev) {
  unsigned mi = minor(rdev);
  return major(rdev) == 1 && (mi == 3 || mi == 5 || mi == 7 || mi == 8 || mi == 9);
}
// A terminal from outside the dumped tree: not the pty multiplexer (a
// master is always the tree's own) nor a pty slave whose master the tree
// holds.
bool IsOuterTty(const FdContext& c) {
  if (!S_ISCHR(c.st.st_mode) || !IsTtyDevice(c.st.st_rdev) || IsPtyMaster(c.st.st_rdev))
    return false;
  return !(IsPtySlave(c.st.st_rdev) && PtySlaveInTree(c));
}

Status DumpChr(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::ChrFileEntry* d = e->mutable_chr();
  d->set_path(c.link);
  d->set_flags(c.info.flags);
  d->set_rdev(uint32_t(c.st.st_rdev));
  return Ok();
}

Status CheckMem(const FdContext& c, const std::vector<FdContext>&) { return CheckLocks(c); }

Status DumpMem(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  TRY(DumpChr(c, ctx, e));
  if (IsDeletedLink(c.link)) {
    pb::ChrFileEntry* d = e->mutable_chr();
    if (ctx.options().evasive_devices) {
      d->set_path(MemDevName(c.st.st_rdev));
    } else {
      d->set_path(StripDeleted(c.link));
      d->set_deleted(true);
      d->set_mode(c.st.st_mode & 07777);
    }
  }
  return DumpLocks(c, e->mutable_chr()->mutable_locks());
}

Result<int> OpenChr(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::ChrFileEntry& d = e.chr();
  int flags = int(d.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC);
  if (d.deleted()) {
    // The unlinked node: made, opened and removed again (deleted_node.h).
    auto made = OpenDeletedNode(d.path(), S_IFCHR | (d.mode() & 07777), dev_t(d.rdev()), flags);
    if (!made.ok())
      return Error(made.error().message() + " (dump with --evasive-devices to restore it as " +
                   MemDevName(dev_t(d.rdev())) + ")");
    int fd = *made;
    Status s = RestoreFileLocks(fd, d.locks(), d.path());
    if (!s.ok()) {
      close(fd);
      return std::move(s.error());
    }
    return fd;
  }
  int fd = open(d.path().c_str(), flags | O_NOCTTY);
  if (fd < 0 && errno == ENOENT) {
    // Opened on a /dev the restored tree's mounts do not show (before its
    // pivot_root, say: the path is relative to that mount): the memory
    // devices have one name each.
    const char* name = MemDevName(dev_t(d.rdev()));
    if (name) fd = open(name, flags | O_NOCTTY);
    if (fd < 0) errno = ENOENT;
  }
  if (fd < 0) return Error::Errno("open " + d.path());
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || uint32_t(st.st_rdev) != d.rdev()) {
    close(fd);
    return Error(d.path() + " is not the device it was at dump time");
  }
  Status s = RestoreFileLocks(fd, d.locks(), d.path());
  if (!s.ok()) {
    close(fd);
    return std::move(s.error());
  }
  return fd;
}

Status InTaskChr(const pb::FileEntry& e, int fd) {
  return RestoreTaskLocks(fd, e.chr().locks(), e.chr().path());
}

Result<int> OpenTty(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.shell_job)
    return Error("terminal " + e.chr().path() + " needs --shell-job to be restored");
  // Prefer the same terminal; otherwise the one ckpt itself runs on.
  int flags = int(e.chr().flags()) & (O_ACCMODE | O_APPEND | O_NONBLOCK);
  int fd = open(e.chr().path().c_str(), flags | O_NOCTTY);
  if (fd >= 0) return fd;
  for (int std_fd = 0; std_fd < 3; std_fd++)
    if (isatty(std_fd)) {
      std::string self = "/proc/self/fd/" + std::to_string(std_fd);
      fd = open(self.c_str(), flags | O_NOCTTY);
      if (fd >= 0) return fd;
    }
  return Error("terminal " + e.chr().path() + " is gone and ckpt has no terminal to use");
}

Status ValidateChr(const pb::FileEntry& e) {
  if (!e.has_chr() || e.chr().path().empty() ||
      (e.chr().deleted() && (e.chr().path()[0] != '/' || !MemDevName(dev_t(e.chr().rdev())))))
    return Error("file " + std::to_string(e.id()) + ": bad device entry");
  return ValidateLocks(e.chr().locks(), "file " + std::to_string(e.id()));
}

}  // namespace

const FileHandler kChrDevHandler = {
    .kind = pb::FILE_CHR,
    .name = "character device",
    .match = [](const FdContext& c) { return S_ISCHR(c.st.st_mode) && IsMemDev(c.st.st_rdev); },
    .check = CheckMem,
    .dump = DumpMem,
    .open = OpenChr,
    .validate = ValidateChr,
    .deps = nullptr,
    .in_task = InTaskChr};

const FileHandler kTtyHandler = {
    .kind = pb::FILE_TTY,
    .name = "terminal",
    .match = [](const FdContext& c) { return c.shell_job && IsOuterTty(c); },
    .check = nullptr,
    .dump = DumpChr,
    .open = OpenTty,
    .validate = ValidateChr,
    .deps = nullptr};

}  // namespace ckpt::files
