#include "criu/shm_files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/proc_parse.h"
#include "proto/shm_file.pb.h"

namespace ckpt {
namespace {

constexpr size_t kChunk = 1 << 20;

std::string DataName(uint32_t id) { return "shm-file-" + std::to_string(id) + ".img"; }

// Copies the data extents of `in` (SEEK_DATA/SEEK_HOLE: tmpfs and the
// image's filesystem both report them) to the same offsets of `out`, which
// is then exactly `size` bytes long. Holes stay holes.
Status CopyExtents(int in, int out, uint64_t size, const std::string& what) {
  std::string buf(kChunk, '\0');
  off_t off = 0;
  while (uint64_t(off) < size) {
    off_t data = lseek(in, off, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) return Error::Errno(what + ": SEEK_DATA");
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) return Error::Errno(what + ": SEEK_HOLE");
    if (uint64_t(hole) > size) hole = off_t(size);
    for (off_t p = data; p < hole;) {
      size_t n = size_t(std::min<off_t>(off_t(kChunk), hole - p));
      ssize_t r = pread(in, buf.data(), n, p);
      if (r < 0) return Error::Errno(what + ": read");
      if (r == 0) return Error(what + ": ends before its " + std::to_string(size) + " bytes");
      if (pwrite(out, buf.data(), size_t(r), p) != r) return Error::Errno(what + ": write");
      p += r;
    }
    off = hole;
  }
  if (ftruncate(out, off_t(size)) < 0) return Error::Errno(what + ": truncate");
  return Ok();
}

Result<ino_t> MntNs(const std::string& proc) {
  struct stat st;
  if (stat((proc + "/ns/mnt").c_str(), &st) < 0) return Error::Errno("stat " + proc + "/ns/mnt");
  return st.st_ino;
}

// An absolute path with no ".", ".." or empty components.
bool CleanPath(const std::string& p) {
  if (p.size() < 2 || p[0] != '/' || p.back() == '/') return false;
  size_t i = 1;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    std::string c = p.substr(i, j - i);
    if (c.empty() || c == "." || c == "..") return false;
    i = j + 1;
  }
  return true;
}

Result<UniqueFd> OpenNoSymlinks(const std::string& path, uint64_t flags, uint64_t mode = 0) {
  open_how how = {};
  how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof(how));
  if (fd < 0) return Error::Errno("open " + path);
  return UniqueFd(int(fd));
}

// The directory `path`, made (0700, owned by uid:gid) with any missing
// directories above it when it is gone, but only inside a tmpfs (an MPI
// session directory under a tmpfs /tmp, removed when the job ended).
Result<UniqueFd> OpenOrMakeDir(const std::string& path, uint32_t uid, uint32_t gid, int depth = 0) {
  auto fd = OpenNoSymlinks(path, O_PATH | O_DIRECTORY);
  if (fd.ok() || fd.error().err() != ENOENT || path == "/" || depth > 64) return fd;
  size_t slash = path.rfind('/');
  TRY_ASSIGN(UniqueFd up, OpenOrMakeDir(slash ? path.substr(0, slash) : "/", uid, gid, depth + 1));
  struct statfs sf;
  if (fstatfs(up.get(), &sf) < 0) return Error::Errno("statfs above " + path);
  if (sf.f_type != TMPFS_MAGIC)
    return Error("directory " + path + " is gone, and what holds it is not a tmpfs");
  std::string name = path.substr(slash + 1);
  if (mkdirat(up.get(), name.c_str(), 0700) < 0 && errno != EEXIST)
    return Error::Errno("make directory " + path);
  if (fchownat(up.get(), name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return Error::Errno("owner of directory " + path);
  LOG_INFO("directory " + path + " was gone: made again");
  UniqueFd made(openat(up.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!made) return Error::Errno("open directory " + path);
  return made;
}

Status PutBack(const images::ImageDir& dir, const pb::ShmFileEntry& e) {
  const std::string& p = e.path();
  std::string what = "shm file " + p + (e.has_holder() ? " (" + e.holder() + ")" : "");
  std::string parent = p.substr(0, std::max<size_t>(p.rfind('/'), 1));
  std::string base = p.substr(p.rfind('/') + 1);
  TRY_ASSIGN(UniqueFd pdir, OpenOrMakeDir(parent, e.uid(), e.gid()), what);
  struct statfs sf;
  if (fstatfs(pdir.get(), &sf) < 0) return Error::Errno(what + ": statfs " + parent);
  if (sf.f_type != TMPFS_MAGIC)
    return Error(what + ": " + parent +
                 " is no longer on a tmpfs: not writing the dumped "
                 "contents there");
  // Its contents (checked against checksums.img) once the place is right.
  TRY_ASSIGN(UniqueFd in, dir.OpenRaw(DataName(e.id())));
  bool made = false;
  UniqueFd fd(openat(pdir.get(), base.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno == ENOENT) {
    fd.reset(openat(pdir.get(), base.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    e.mode() & 07777));
    made = bool(fd);
  }
  if (!fd) return Error::Errno(what + ": open");
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return Error::Errno(what + ": stat");
  if (!S_ISREG(st.st_mode)) return Error(what + ": no longer a regular file");
  // Emptied first: what the program wrote after the dump must not show
  // through the holes of the dumped contents.
  if (ftruncate(fd.get(), 0) < 0) return Error::Errno(what + ": truncate");
  TRY(CopyExtents(in.get(), fd.get(), e.size(), what));
  if (fchown(fd.get(), e.uid(), e.gid()) < 0 || fchmod(fd.get(), e.mode() & 07777) < 0)
    return Error::Errno(what + ": owner and mode");
  if (e.has_mtime_ns()) {  // as the dump saw it: an fd of the file finds it unchanged
    timespec times[2] = {{0, UTIME_OMIT},
                         {time_t(e.mtime_ns() / 1000000000), long(e.mtime_ns() % 1000000000)}};
    futimens(fd.get(), times);
  }
  LOG_INFO(what + ": " + std::to_string(e.size()) + " bytes put back" +
           (made ? " (the file was gone: made again)" : ""));
  return Ok();
}

}  // namespace

Status DumpShmFiles(const std::vector<pid_t>& pids, images::ImageDir& dir) {
  TRY_ASSIGN(ino_t own_ns, MntNs("/proc/self"));
  struct Found {
    pid_t pid;
    proc::MapEntry m;
  };
  std::map<std::pair<dev_t, ino_t>, Found> found;
  for (pid_t pid : pids) {
    std::string proc = "/proc/" + std::to_string(pid);
    TRY_ASSIGN(ino_t ns, MntNs(proc));
    if (ns != own_ns) continue;  // its tmpfs mounts are the mount namespace's (see the top)
    TRY_ASSIGN(std::string text, io::ReadFile(proc + "/maps"));
    TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ParseMaps(text));
    for (const proc::MapEntry& m : maps) {
      if (!m.shared || m.inode == 0 || m.path.empty() || m.path[0] != '/') continue;
      char link[128];
      snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, m.start, m.end);
      struct statfs sf;
      struct stat st;
      if (statfs(link, &sf) < 0 || stat(link, &st) < 0)
        return Error::Errno("pid " + std::to_string(pid) + ": mapping " + link);
      // Deleted ones are shared memory of their own (criu/shmem.h).
      if (sf.f_type != TMPFS_MAGIC || !S_ISREG(st.st_mode) || st.st_nlink == 0) continue;
      found.emplace(std::make_pair(st.st_dev, st.st_ino), Found{pid, m});
    }
  }
  if (found.empty()) return Ok();
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kShmFiles));
  uint32_t id = 0;
  for (const auto& [key, f] : found) {
    char range[64];
    snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, f.m.start, f.m.end);
    std::string holder = "pid " + std::to_string(f.pid) + ": mapping " + range;
    std::string what = "shm file " + f.m.path + " (" + holder + ")";
    UniqueFd in(open(("/proc/" + std::to_string(f.pid) + "/map_files/" + range).c_str(),
                     O_RDONLY | O_CLOEXEC));
    if (!in) return Error::Errno(what + ": open");
    struct stat st;
    if (fstat(in.get(), &st) < 0) return Error::Errno(what + ": stat");
    pb::ShmFileEntry e;
    e.set_id(++id);
    e.set_path(f.m.path);
    e.set_size(uint64_t(st.st_size));
    e.set_mode(st.st_mode & 07777);
    e.set_uid(st.st_uid);
    e.set_gid(st.st_gid);
    e.set_holder(holder);
    e.set_mtime_ns(int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
    TRY_ASSIGN(UniqueFd out, dir.CreateRaw(DataName(id)));
    TRY(CopyExtents(in.get(), out.get(), e.size(), what));
    TRY(w.Write(e));
    LOG_DBG(what + ": " + std::to_string(e.size()) + " bytes saved");
  }
  return w.Close();
}

Status RestoreShmFiles(const images::ImageDir& dir) {
  if (!dir.Exists(images::ImageType::kShmFiles)) return Ok();
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kShmFiles));
  std::vector<pb::ShmFileEntry> all;
  std::set<uint32_t> ids;
  std::set<std::string> paths;
  for (;;) {
    pb::ShmFileEntry e;
    TRY_ASSIGN(bool more, r.Read(e));
    if (!more) break;
    if (e.id() == 0 || !ids.insert(e.id()).second || !CleanPath(e.path()) ||
        !paths.insert(e.path()).second || e.mode() > 07777 || e.mtime_ns() < 0)
      return Error(r.name() + ": bad entry for " + e.path());
    all.push_back(std::move(e));
  }
  for (const pb::ShmFileEntry& e : all) TRY(PutBack(dir, e));
  return Ok();
}

}  // namespace ckpt
