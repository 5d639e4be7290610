// Regular files unlinked while open (the /proc link ends in " (deleted)",
// O_TMPFILE files included): their contents are saved, and restore
// recreates the file under its old name in its old directory and unlinks it
// at once, so the link reads the same. Files that still have another name
// (st_nlink > 0) are refused without --link-remap: the other name cannot be
// found. A deleted file that a task of the tree also maps, shared (POSIX
// shm unlinked at once, as UCX and Open MPI do) or private (a program that
// maps its scratch file and keeps the fd, or a child that maps it), is one
// object with the mapping:
// criu/shmem.cc saves and makes it (again at its old path, unlinked), and
// the fd is opened on that object, given back the file's size, owner, mode
// and mtime. A private mapping's own (copied-on-write) pages are the task's
// memory, saved with it; the others show the object, as they showed the file.
//
// --link-remap (CRIU's): the dump gives the file a name again, a hard link
// "link_remap.INODE.CKPTPID" in its old directory (linkat of
// /proc/PID/fd/N), and saves no contents; restore links it back under its
// old name if that is free, opens it, and removes both names, so the
// restored fd is the same inode (shared with its other names). The kernel
// lets linkat give a name back only to a file that still has one or to an
// O_TMPFILE file made without O_EXCL (a file whose last name was removed
// has i_nlink 0 and linkat fails with ENOENT): other deleted files are
// copied as without the option. --ghost-limit SIZE: copying a file larger
// than SIZE is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/file_data.h"
#include "criu/files/file_types.h"
#include "criu/ns/user_ns.h"

namespace ckpt::files {
namespace {

constexpr const char* kSuffix = " (deleted)";

bool Match(const FdContext& c) {
  const std::string& l = c.link;
  size_t s = strlen(kSuffix);
  return S_ISREG(c.st.st_mode) && l.size() > s && l[0] == '/' &&
         l.compare(l.size() - s, s, kSuffix) == 0;
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  // (A file with other names needs --link-remap: refused in Dump, which sees
  // the options. One the tree also maps shared is the mapping's object.)
  return Ok();
}

// --link-remap: a new name for the file next to its old one, or "" if the
// kernel gives none (ENOENT: no name left and not linkable; EXDEV, ...).
Result<std::string> LinkRemap(const FdContext& c, const std::string& path, DumpContext& ctx) {
  std::string dir = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
  std::string link = (dir == "/" ? "" : dir) + "/link_remap." + std::to_string(c.st.st_ino) + "." +
                     std::to_string(getpid());
  std::string proc = "/proc/" + std::to_string(c.pid) + "/fd/" + std::to_string(c.fd);
  if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, link.c_str(), AT_SYMLINK_FOLLOW) == 0) {
    ctx.AddLink(link);
    // The same inode? (Another mount namespace's path could lead elsewhere.)
    struct stat st;
    if (stat(link.c_str(), &st) == 0 && st.st_ino == c.st.st_ino && st.st_dev == c.st.st_dev)
      return link;
    return Error("--link-remap: " + link + " is not the deleted file");
  }
  if (c.st.st_nlink > 0)
    return Error::Errno("deleted file " + c.link + " (" +
                        std::to_string(c.st.st_nlink) + " other name(s)): --link-remap: linkat " +
                        link);
  LOG_DBG(Where(c) + ": deleted file " + path + " cannot be linked (" + strerror(errno) +
          "): its contents are saved");
  return std::string();
}

Status Dump(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  pb::GhostFileEntry* d = e->mutable_ghost();
  if (c.st.st_nlink > 0 && !ctx.options().link_remap)
    return Error("deleted file " + c.link + " that still has " + std::to_string(c.st.st_nlink) +
                 " other name(s) is not supported (use --link-remap)");
  d->set_path(c.link.substr(0, c.link.size() - strlen(kSuffix)));
  d->set_flags(c.info.flags);
  d->set_pos(c.info.pos);
  d->set_size(uint64_t(c.st.st_size));
  d->set_mode(c.st.st_mode & 07777);
  d->set_uid(c.st.st_uid);
  d->set_gid(c.st.st_gid);
  d->set_mtime_ns(int64_t(c.st.st_mtim.tv_sec) * 1000000000 + c.st.st_mtim.tv_nsec);
  // Mapped shared or private, by the holder or another task of the tree:
  // mem_dump.cc saves either as an object by inode.
  TRY_ASSIGN(bool mapped, ctx.TreeMaps(c.pid, c.st), Where(c));
  if (mapped) d->set_shmid(c.st.st_ino);  // the mapping's object: restored with it
  DumpContext::Object o = ctx.Share(
      "ghost:" + std::to_string(c.st.st_dev) + ":" + std::to_string(c.st.st_ino), e->id());
  if (o.first && mapped) *o.has_data = false;  // shmem-<shmid>.img has the contents
  // The first entry of the file decides; later ones find the link it made.
  if (o.first && !mapped && ctx.options().link_remap) {
    TRY_ASSIGN(std::string link, LinkRemap(c, d->path(), ctx));
    if (!link.empty()) {
      d->set_link_path(link);
      *o.has_data = false;
    }
  }
  if (!o.first && !mapped && ctx.options().link_remap) {
    std::string probe = "/link_remap." + std::to_string(c.st.st_ino) + "." + std::to_string(getpid());
    std::string dir = d->path().substr(0, std::max<size_t>(d->path().rfind('/'), 1));
    std::string link = (dir == "/" ? "" : dir) + probe;
    struct stat st;
    if (lstat(link.c_str(), &st) == 0 && st.st_ino == c.st.st_ino) d->set_link_path(link);
  }
  if (o.first && !mapped && d->link_path().empty()) {
    uint64_t limit = ctx.options().ghost_limit;
    if (limit && uint64_t(c.st.st_size) > limit)
      return Error("deleted file " + d->path() + " is " +
                   std::to_string(c.st.st_size) + " bytes, more than --ghost-limit " +
                   std::to_string(limit) + " (raise it, or keep the file linked: --link-remap)");
    TRY_ASSIGN(int raw, OpenProcFd(c.pid, c.fd, O_RDONLY));
    UniqueFd fd(raw);
    TRY_ASSIGN(*o.has_data, DumpFileData(ctx.dir(), o.id, fd.get(), d->size()));
  }
  d->set_object_id(o.id);
  d->set_has_data(*o.has_data);
  return Ok();
}

bool IsTmpfile(uint32_t flags) { return (flags & __O_TMPFILE) == __O_TMPFILE; }

// The file, unlinked, with its contents, owner, mode and mtime. An
// O_TMPFILE file is made again with O_TMPFILE (and the link reads
// "DIR/#INODE (deleted)" with its new inode number).
Result<int> Create(const pb::GhostFileEntry& d, const RestoreOpts& o) {
  const std::string& p = d.path();
  std::string dir = p.substr(0, std::max<size_t>(p.rfind('/'), 1));
  UniqueFd fd;
  auto create = [&]() -> Status {
    if (!IsTmpfile(d.flags())) {
      fd.reset(open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (fd && unlink(p.c_str()) < 0) return Error::Errno("unlink " + p);
      if (!fd && errno != EEXIST) return Error::Errno("recreate deleted file " + p);
      if (!fd)
        LOG_WARN("deleted file " + p + ": the name exists again; restoring it as an O_TMPFILE");
    }
    if (!fd) {
      int acc = (int(d.flags()) & O_ACCMODE) == O_WRONLY ? O_WRONLY : O_RDWR;
      fd.reset(open(dir.c_str(), acc | O_TMPFILE | O_CLOEXEC, 0600));
      if (!fd) return Error::Errno("O_TMPFILE in " + dir);
    }
    return Ok();
  };
  // In the tree's user namespace the file is made with its owner's fs ids
  // (criu/ns/user_ns.h): one of ckpt's could not be given away.
  if (o.user_ns)
    TRY(ns::WithFsIds(ns::UidInside(o.user_ns, d.uid()), ns::GidInside(o.user_ns, d.gid()),
                      create));
  else
    TRY(create());
  if (ftruncate(fd.get(), off_t(d.size())) < 0) return Error::Errno("size " + p);
  if (d.has_data()) TRY(RestoreFileData(o.ctx->dir(), d.object_id(), fd.get(), d.size()));
  if (fchown(fd.get(), ns::UidInside(o.user_ns, d.uid()), ns::GidInside(o.user_ns, d.gid())) < 0 ||
      fchmod(fd.get(), d.mode()) < 0)
    return Error::Errno("owner and mode of " + p);
  timespec times[2] = {{0, UTIME_OMIT},
                       {time_t(d.mtime_ns() / 1000000000), long(d.mtime_ns() % 1000000000)}};
  futimens(fd.get(), times);
  return fd.release();
}

// The O_TMPFILE open itself (F_GETFL shows O_TMPFILE only on that one):
// a dup of it with this entry's status flags and offset.
Result<int> TakeTmpfile(int base, const pb::GhostFileEntry& d) {
  UniqueFd fd(fcntl(base, F_DUPFD_CLOEXEC, 0));
  if (!fd) return Error::Errno("dup O_TMPFILE");
  int fl = int(d.flags()) & (O_APPEND | O_NONBLOCK | O_NOATIME | O_DIRECT);
  if ((fl && fcntl(fd.get(), F_SETFL, fl) < 0) || lseek(fd.get(), off_t(d.pos()), SEEK_SET) < 0)
    return Error::Errno("O_TMPFILE flags and offset");
  return fd.release();
}

// --link-remap: the file by the name the dump gave it, back under its old
// name for the open if that is free (so the /proc link reads the same),
// then both names removed.
Result<int> OpenLinked(const pb::GhostFileEntry& d) {
  const std::string& p = d.path();
  const std::string& l = d.link_path();
  bool at_old = link(l.c_str(), p.c_str()) == 0;
  if (!at_old) LOG_WARN("deleted file " + p + ": the name exists again; opened as " + l);
  UniqueFd fd(open(at_old ? p.c_str() : l.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  int err = errno;
  if (at_old) unlink(p.c_str());
  if (!fd) {
    errno = err;
    return Error::Errno("deleted file " + p + ": open its --link-remap name " + l);
  }
  if (unlink(l.c_str()) < 0) return Error::Errno("deleted file " + p + ": unlink " + l);
  return fd.release();
}

// The mapping's object made this file: RestoreShmem sized it to whole
// pages its mappings reach, and gave it ckpt's owner. The file's own size
// (a mapping's page past the end faults again, as it did), owner, mode and
// mtime. Before any task maps it.
Status FromObject(int fd, const pb::GhostFileEntry& d, const RestoreOpts& o) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("deleted file " + d.path() + ": stat its object");
  if (uint64_t(st.st_size) != d.size() && ftruncate(fd, off_t(d.size())) < 0)
    return Error::Errno("deleted file " + d.path() + ": size " + std::to_string(d.size()));
  if (fchown(fd, ns::UidInside(o.user_ns, d.uid()), ns::GidInside(o.user_ns, d.gid())) < 0 ||
      fchmod(fd, d.mode()) < 0)
    return Error::Errno("owner and mode of " + d.path());
  timespec times[2] = {{0, UTIME_OMIT},
                       {time_t(d.mtime_ns() / 1000000000), long(d.mtime_ns() % 1000000000)}};
  futimens(fd, times);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("deleted file needs a restore context (files::OpenFiles)");
  const pb::GhostFileEntry& d = e.ghost();
  std::string key = "ghost:" + std::to_string(d.object_id());
  int base = o.ctx->Find(key);
  if (base < 0 && d.has_shmid()) {
    // Mapped too: the mapping's object (criu/shmem.h) is this file, with
    // its contents.
    auto it = o.shmem ? o.shmem->find(d.shmid()) : decltype(o.shmem->end()){};
    if (!o.shmem || it == o.shmem->end())
      return Error("deleted file " + d.path() + ": its shared memory object is missing");
    UniqueFd fd(fcntl(it->second, F_DUPFD_CLOEXEC, 3));
    if (!fd) return Error::Errno("dup deleted file " + d.path());
    TRY(FromObject(fd.get(), d, o));
    TRY_ASSIGN(base, o.ctx->Keep(key, fd.release()));
  } else if (base < 0 && !d.link_path().empty()) {
    TRY_ASSIGN(int fd, OpenLinked(d));
    TRY_ASSIGN(base, o.ctx->Keep(key, fd));
  }
  if (base < 0) {
    TRY_ASSIGN(int fd, Create(d, o));
    TRY_ASSIGN(base, o.ctx->Keep(key, fd));
    int acc = fcntl(base, F_GETFL) & O_ACCMODE;
    if (IsTmpfile(d.flags()) && acc == (int(d.flags()) & O_ACCMODE)) return TakeTmpfile(base, d);
  }
  return ReopenAt(base, d.flags(), d.pos(), "deleted file " + d.path());
}

Status Validate(const pb::FileEntry& e) {
  const pb::GhostFileEntry& d = e.ghost();
  if (!e.has_ghost() || d.object_id() == 0 || d.path().size() < 2 || d.path()[0] != '/' ||
      d.path().back() == '/' || d.mode() > 07777 || d.mtime_ns() < 0 ||
      (d.has_link_path() && (d.link_path().size() < 2 || d.link_path()[0] != '/' ||
                             d.link_path().find("/link_remap.") == std::string::npos)))
    return Error("file " + std::to_string(e.id()) + ": bad deleted file entry");
  return Ok();
}

}  // namespace

const FileHandler kGhostFileHandler = {.kind = pb::FILE_GHOST,
                                       .name = "deleted file",
                                       .match = Match,
                                       .check = Check,
                                       .dump = Dump,
                                       .open = Open,
                                       .validate = Validate,
                                       .deps = nullptr};

}  // namespace ckpt::files
