// Files from outside the tree that the dump was told about with CRIU's
// --external keys (FILE_EXT):
//
//   tty[RDEV:DEV]      a terminal, by the st_rdev and st_dev stat(2) gives
//                      for the fd, in hex ("tty[8800:19]")
//   file[MNT_ID:INODE] any file, by the mnt_id of /proc/PID/fdinfo/FD and
//                      its inode, in hex
//
// Nothing of such a file is saved but its key and the fd's flags (and, for
// a terminal that was the controlling terminal of the dumping task's
// session, that session and its foreground group): restore takes it from
// the caller, --inherit-fd fd[N]:KEY (inherit_fd.h), and refuses to start
// without one; the session leader makes an inherited terminal its
// controlling terminal again (in_task: only the leader has it then, the
// others of the session do not inherit it). This handler comes first in
// the registry, so a key takes precedence over every other way of dumping
// the fd.
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "base/io.h"
#include "base/log.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"
#include "criu/files/pid_view.h"
#include "criu/files/tty.h"

namespace ckpt::files {

std::string Hex(uint64_t v) {
  char b[24];
  snprintf(b, sizeof(b), "%llx", static_cast<unsigned long long>(v));
  return b;
}

std::string TtyKey(uint64_t rdev, uint64_t dev) {
  return "tty[" + Hex(rdev) + ":" + Hex(dev) + "]";
}

namespace {

// The key of c named by an --external, or "".
std::string ExternalKey(const FdContext& c) {
  if (!c.externals || c.externals->empty()) return "";
  std::string tty, file;
  if (S_ISCHR(c.st.st_mode) && IsTtyDevice(c.st.st_rdev)) tty = TtyKey(c.st.st_rdev, c.st.st_dev);
  if (auto mnt = FdinfoValue(c.fdinfo, "mnt_id"))
    file = "file[" + Hex(strtoull(mnt->c_str(), nullptr, 10)) + ":" + Hex(c.st.st_ino) + "]";
  for (const std::string& x : *c.externals) {
    if (!tty.empty() && x == tty) return tty;
    if (!file.empty() && x == file) return file;
  }
  return "";
}

bool Match(const FdContext& c) { return !ExternalKey(c).empty(); }

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::ExtFileEntry* x = e->mutable_ext();
  x->set_key(ExternalKey(c));
  x->set_flags(c.info.flags);
  x->set_path(c.link);
  if (S_ISCHR(c.st.st_mode) && IsTtyDevice(c.st.st_rdev)) {
    // /proc/PID/stat after the name: state ppid pgrp session tty_nr tpgid.
    auto text = io::ReadFile("/proc/" + std::to_string(c.pid) + "/stat");
    size_t p = text.ok() ? text->rfind(')') : std::string::npos;
    char state;
    int ppid, pgrp, sid, tpgid;
    unsigned long long tty;
    uint64_t ma = major(c.st.st_rdev), mi = minor(c.st.st_rdev);
    uint64_t want = (mi & 0xff) | (ma << 8) | ((mi & ~0xffull) << 12);  // new_encode_dev
    if (p != std::string::npos &&
        sscanf(text->c_str() + p + 1, " %c %d %d %d %llu %d", &state, &ppid, &pgrp, &sid, &tty,
               &tpgid) == 6 &&
        tty == want && sid == c.pid) {
      x->set_ctty_sid(uint32_t(sid));
      if (tpgid > 0) x->set_fg_pgrp(uint32_t(tpgid));
    }
  }
  return Ok();
}

// In the session leader whose controlling terminal it was: takes it again.
Status InTask(const pb::FileEntry& e, int fd) {
  const pb::ExtFileEntry& x = e.ext();
  if (!x.has_ctty_sid() || pid_t(x.ctty_sid()) != DumpPidOfSelf() || getsid(0) != getpid() ||
      tcgetsid(fd) == getpid())
    return Ok();
  if (ioctl(fd, TIOCSCTTY, 0) < 0) {
    LOG_WARN("session " + std::to_string(getpid()) + ": the inherited terminal " + x.key() +
             " cannot be its controlling terminal again: " + strerror(errno));
    return Ok();
  }
  if (x.has_fg_pgrp()) {
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    sigprocmask(SIG_BLOCK, &ttou, &old);
    if (tcsetpgrp(fd, ToOwnView(pid_t(x.fg_pgrp()))) < 0)
      LOG_WARN("the inherited terminal " + x.key() + ": foreground group " +
               std::to_string(x.fg_pgrp()) + " not set again: " + strerror(errno));
    sigprocmask(SIG_SETMASK, &old, nullptr);
  }
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  // OpenFiles takes an inherited fd before it calls this; CheckInherited
  // refused the restore already if there is none.
  return Error(e.ext().key() + " (" + e.ext().path() +
               ") was external at dump: restore needs --inherit-fd fd[N]:" + e.ext().key());
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_ext() || e.ext().key().empty())
    return Error("file " + std::to_string(e.id()) + ": bad external file entry");
  return Ok();
}

}  // namespace

const FileHandler kExtFileHandler = {.kind = pb::FILE_EXT,
                                     .name = "external file",
                                     .match = Match,
                                     .check = nullptr,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr,
                                     .in_task = InTask};

}  // namespace ckpt::files
