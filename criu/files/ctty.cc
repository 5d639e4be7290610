// /dev/tty held open (FILE_CTTY): busybox and other shells open it to
// reach their controlling terminal; inside a container that terminal is
// the console, a pty slave whose master is the runtime's.
//
// Opening /dev/tty gives an open file of the opener's controlling terminal
// at that moment, so the fd stands for "this task's terminal", not for a
// path. Dump: accepted (without --shell-job, which reopens every outer
// terminal by path, kTtyHandler) when the task has a controlling terminal
// that is a pty slave the dump restores itself, i.e. one the same task also
// holds as an fd (the pair of the tree, or the console with
// --orphan-pts-master); refused otherwise, naming the terminal. Saved as a
// ChrFileEntry (path, flags, rdev 5:0).
//
// Restore. The file is opened (OpenFiles, in the root task) before the
// sessions have their terminals, so open() makes a placeholder (an
// eventfd); in_task, run in each task holding it once its fds are in
// place and its session has its terminal again (tty.h), opens /dev/tty and
// puts it over every fd of the task that holds the placeholder, keeping
// their close-on-exec flags. Tasks sharing the file each get their own
// open file of the same terminal (flags set later with F_SETFL are then
// not shared; a terminal has no offset).
#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "criu/files/tty.h"

namespace ckpt::files {
namespace {

bool IsDevTty(const FdContext& c) {
  return S_ISCHR(c.st.st_mode) && major(c.st.st_rdev) == 5 && minor(c.st.st_rdev) == 0;
}

// The controlling terminal of pid (/proc/PID/stat tty_nr, the kernel's
// new_encode_dev), 0 if none.
dev_t ControllingTty(pid_t pid) {
  auto text = io::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return 0;
  size_t p = text->rfind(')');
  if (p == std::string::npos) return 0;
  char state;
  int ppid, pgrp, sid;
  unsigned long long nr;
  if (sscanf(text->c_str() + p + 1, " %c %d %d %d %llu", &state, &ppid, &pgrp, &sid, &nr) != 5 ||
      nr == 0)
    return 0;
  return makedev(unsigned((nr >> 8) & 0xfff), unsigned((nr & 0xff) | ((nr >> 12) & 0xfff00)));
}

Status CheckCtty(const FdContext& c, const std::vector<FdContext>& all) {
  dev_t tty = ControllingTty(c.pid);
  if (tty == 0)
    return Error(Where(c) + ": /dev/tty is open but the task has no controlling terminal");
  std::string name = "terminal " + std::to_string(major(tty)) + ":" + std::to_string(minor(tty));
  if (!IsPtySlave(tty))
    return Error(Where(c) + ": /dev/tty names " + name +
                 ", which is not a pty (use --shell-job if it is the shell's terminal)");
  for (const FdContext& o : all) {
    if (!S_ISCHR(o.st.st_mode) || o.st.st_rdev != tty) continue;
    if (PtySlaveInTree(o) || o.orphan_pts_master) return Ok();
    break;
  }
  return Error(Where(c) + ": /dev/tty names " + name +
               " (/dev/pts/" + std::to_string((major(tty) - 136) * 256 + minor(tty)) +
               "), which the task does not hold as a pty of the dumped tree or as a console "
               "(--orphan-pts-master); use --shell-job if it is the shell's terminal");
}

Status DumpCtty(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::ChrFileEntry* d = e->mutable_chr();
  d->set_path("/dev/tty");
  d->set_flags(c.info.flags);
  d->set_rdev(uint32_t(c.st.st_rdev));
  return Ok();
}

Status ValidateCtty(const pb::FileEntry& e) {
  if (!e.has_chr() || e.chr().rdev() != uint32_t(makedev(5, 0)))
    return Error("a /dev/tty entry without its device (5:0)");
  return Ok();
}

Result<int> OpenPlaceholder(const pb::FileEntry&, const RestoreOpts&) {
  int fd = eventfd(0, EFD_CLOEXEC);
  if (fd < 0) return Error::Errno("eventfd (placeholder of /dev/tty)");
  return fd;
}

bool SameFile(int a, int b) {
  pid_t me = getpid();
  return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

Status PutInPlace(int tty, int fd) {
  int fdflags = fcntl(fd, F_GETFD);
  if (fdflags < 0) return Error::Errno("F_GETFD");
  if (dup3(tty, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) return Error::Errno("dup3");
  return Ok();
}

Status InTaskCtty(const pb::FileEntry& e, int fd) {
  int flags = int(e.chr().flags()) & (O_ACCMODE | O_NONBLOCK | O_APPEND);
  UniqueFd tty(open("/dev/tty", flags | O_NOCTTY | O_CLOEXEC));
  if (!tty)
    return Error::Errno("/dev/tty" + std::string(errno == ENXIO
                                                      ? " (the task has no controlling terminal "
                                                        "after restore)"
                                                      : ""));
  // Every other fd of the task on the placeholder (the same file at
  // several numbers), then `fd` itself.
  if (DIR* d = opendir("/proc/thread-self/fd")) {
    std::vector<int> others;
    while (struct dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      int n = atoi(de->d_name);
      if (n != fd && n != tty.get() && n != dirfd(d) && SameFile(n, fd)) others.push_back(n);
    }
    closedir(d);
    for (int n : others) TRY(PutInPlace(tty.get(), n), "fd " + std::to_string(n));
  }
  TRY(PutInPlace(tty.get(), fd));
  LOG_DBG("fd " + std::to_string(fd) + ": /dev/tty reopened on the restored terminal");
  return Ok();
}

}  // namespace

const FileHandler kCttyHandler = {
    .kind = pb::FILE_CTTY,
    .name = "/dev/tty",
    .match = [](const FdContext& c) { return !c.shell_job && IsDevTty(c); },
    .check = CheckCtty,
    .dump = DumpCtty,
    .open = OpenPlaceholder,
    .validate = ValidateCtty,
    .deps = nullptr,
    .in_task = InTaskCtty};

}  // namespace ckpt::files
