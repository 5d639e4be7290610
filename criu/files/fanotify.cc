// fanotify(7) groups. fdinfo shows the group and its marks
// (fanotify_fdinfo in fs/notify/fdinfo.c):
//   fanotify flags:0 event-flags:8000
//   fanotify ino:3c51a sdev:fe00000 mflags:0 mask:28 ignored_mask:0
//            fhandle-bytes:8 fhandle-type:1 f_handle:1ac5030000000000
//   fanotify mnt_id:1b mflags:0 mask:20 ignored_mask:0
//   fanotify sdev:fe00000 mflags:0 mask:20 ignored_mask:0
// Saved: the init flags and event flags, and each mark as a path: an
// inode mark by its file handle (resolved as inotify's watches are), a
// mount mark by the mount point of that mount in the task's mount
// namespace, a filesystem mark by a mount point of that device. Restore:
// fanotify_init, then fanotify_mark ADD for each mask and ignored mask.
// Events queued at dump time are lost (reading them would consume them;
// a permission event would be answered); mark flags other than
// FAN_MARK_IGNORED_SURV_MODIFY and FAN_MARK_EVICTABLE are refused.
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <sstream>

#include "base/io.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
constexpr uint32_t kKnownMflags = FAN_MARK_IGNORED_SURV_MODIFY | FAN_MARK_EVICTABLE;

bool Match(const FdContext& c) { return c.link == "anon_inode:[fanotify]"; }

// The mount point (as ckpt sees it, through the task's root) of the mount
// with this id, or of any mount of device `dev` when id < 0.
Result<std::string> MountPath(pid_t pid, long id, dev_t dev) {
  TRY_ASSIGN(std::string mounts, io::ReadFile("/proc/" + std::to_string(pid) + "/mountinfo"));
  std::istringstream in(mounts);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    long mid, parent;
    std::string majmin, mroot, mpoint;
    f >> mid >> parent >> majmin >> mroot >> mpoint;
    unsigned ma, mi;
    if (sscanf(majmin.c_str(), "%u:%u", &ma, &mi) != 2) continue;
    if (id >= 0 ? mid != id : makedev(ma, mi) != dev) continue;
    // Undo mountinfo's octal escapes.
    std::string p;
    for (size_t i = 0; i < mpoint.size(); i++) {
      if (mpoint[i] == '\\' && i + 3 < mpoint.size()) {
        p.push_back(char(std::stoi(mpoint.substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        p.push_back(mpoint[i]);
      }
    }
    return p;
  }
  return Error(id >= 0 ? "mount " + std::to_string(id) + " is not in its mount namespace"
                       : "no mount of device " + std::to_string(major(dev)) + ":" +
                             std::to_string(minor(dev)));
}

Status Fill(const FdContext& c, pb::FanotifyEntry* d) {
  for (const std::string& line : FdinfoLines(c.fdinfo, "fanotify ")) {
    auto tok = FdinfoTokens(line);
    if (tok.count("event-flags")) {
      TRY_ASSIGN(uint64_t fl, TokenNumber(tok, "flags", 16, "fanotify flags"));
      TRY_ASSIGN(uint64_t ev, TokenNumber(tok, "event-flags", 16, "fanotify event-flags"));
      d->set_init_flags(uint32_t(fl));
      d->set_event_flags(uint32_t(ev));
      continue;
    }
    const std::string what = "fanotify mark";
    TRY_ASSIGN(uint64_t mflags, TokenNumber(tok, "mflags", 16, what));
    TRY_ASSIGN(uint64_t mask, TokenNumber(tok, "mask", 16, what));
    TRY_ASSIGN(uint64_t ignored, TokenNumber(tok, "ignored_mask", 16, what));
    if (mflags & ~uint64_t(kKnownMflags))
      return Error("fanotify mark with flags " + std::to_string(mflags) + " is not supported");
    pb::FanotifyMark* m = d->add_marks();
    m->set_mflags(uint32_t(mflags));
    m->set_mask(mask);
    m->set_ignored_mask(ignored);
    if (tok.count("ino")) {
      TRY_ASSIGN(uint64_t ino, TokenNumber(tok, "ino", 16, what));
      TRY_ASSIGN(uint64_t sdev, TokenNumber(tok, "sdev", 16, what));
      TRY_ASSIGN(uint64_t bytes, TokenNumber(tok, "fhandle-bytes", 16, what));
      TRY_ASSIGN(uint64_t type, TokenNumber(tok, "fhandle-type", 16, what));
      std::string hex = tok["f_handle"];
      if (bytes > MAX_HANDLE_SZ || hex.size() != 2 * bytes)
        return Error("fdinfo: bad fanotify file handle");
      file_handle h = {uint32_t(bytes), int(type)};
      std::string handle(reinterpret_cast<const char*>(&h), sizeof(h));
      for (size_t i = 0; i < bytes; i++) {
        TRY_ASSIGN(uint64_t b, ParseNumber(hex.substr(2 * i, 2), 16, "f_handle"));
        handle.push_back(char(b));
      }
      dev_t dev = makedev(unsigned(sdev >> 20), unsigned(sdev & 0xfffff));
      TRY_ASSIGN(std::string path, ResolveFileHandle(c.pid, dev, ino, handle, "fanotify inode mark"));
      m->set_type(pb::FAN_INODE_MARK);
      m->set_path(path);
    } else if (tok.count("mnt_id")) {
      TRY_ASSIGN(uint64_t id, TokenNumber(tok, "mnt_id", 16, what));
      TRY_ASSIGN(std::string p, MountPath(c.pid, long(id), 0), "fanotify mount mark");
      m->set_type(pb::FAN_MOUNT_MARK);
      m->set_path(p);
    } else if (tok.count("sdev")) {
      TRY_ASSIGN(uint64_t sdev, TokenNumber(tok, "sdev", 16, what));
      dev_t dev = makedev(unsigned(sdev >> 20), unsigned(sdev & 0xfffff));
      TRY_ASSIGN(std::string p, MountPath(c.pid, -1, dev), "fanotify filesystem mark");
      m->set_type(pb::FAN_FS_MARK);
      m->set_path(p);
    } else {
      return Error("unknown fanotify mark '" + line + "'");
    }
  }
  if (!d->has_init_flags()) return Error("fdinfo shows no fanotify group");
  return Ok();
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  pb::FanotifyEntry d;
  TRY(Fill(c, &d), Where(c));
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::FanotifyEntry* d = e->mutable_fanotify();
  d->set_flags(c.info.flags);
  return Fill(c, d);
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::FanotifyEntry& d = e.fanotify();
  // The init flags as they were (fdinfo shows FAN_CLOEXEC and
  // FAN_NONBLOCK among them); the file's O_NONBLOCK as it is now.
  int fd = fanotify_init(d.init_flags(), d.event_flags());
  if (fd < 0) return Error::Errno("fanotify_init");
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | (int(d.flags()) & O_NONBLOCK));
  for (const pb::FanotifyMark& m : d.marks()) {
    unsigned type = m.type() == pb::FAN_MOUNT_MARK ? FAN_MARK_MOUNT
                    : m.type() == pb::FAN_FS_MARK  ? FAN_MARK_FILESYSTEM
                                                   : 0;
    unsigned base = FAN_MARK_ADD | type | (m.mflags() & FAN_MARK_EVICTABLE);
    int r = 0;
    if (m.mask()) r = fanotify_mark(fd, base, m.mask(), AT_FDCWD, m.path().c_str());
    if (r == 0 && m.ignored_mask())
      r = fanotify_mark(fd,
                        base | FAN_MARK_IGNORED_MASK | (m.mflags() & FAN_MARK_IGNORED_SURV_MODIFY),
                        m.ignored_mask(), AT_FDCWD, m.path().c_str());
    if (r < 0) {
      int err = errno;
      close(fd);
      return Error::Errno("fanotify mark on " + m.path(), err);
    }
  }
  return fd;
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_fanotify()) return Error("file " + std::to_string(e.id()) + ": bad fanotify entry");
  for (const pb::FanotifyMark& m : e.fanotify().marks())
    if (m.path().empty() || m.path()[0] != '/' || (m.mflags() & ~kKnownMflags))
      return Error("file " + std::to_string(e.id()) + ": bad fanotify mark");
  return Ok();
}

}  // namespace

const FileHandler kFanotifyHandler = {.kind = pb::FILE_FANOTIFY,
                                      .name = "fanotify",
                                      .match = Match,
                                      .check = Check,
                                      .dump = Dump,
                                      .open = Open,
                                      .validate = Validate,
                                      .deps = nullptr};

}  // namespace ckpt::files
