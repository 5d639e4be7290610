#include "criu/ns/tmpfs_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <vector>

#include "base/unique_fd.h"
#include "criu/ns/user_ns.h"
#include "proto/mnt_ns.pb.h"

namespace ckpt::ns {
namespace {

constexpr size_t kChunk = 1 << 20;  // bytes of file data per record

int64_t Ns(const struct timespec& t) { return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; }
struct timespec Ts(int64_t ns) {
  struct timespec t;
  t.tv_sec = ns / 1000000000;
  t.tv_nsec = ns % 1000000000;
  if (t.tv_nsec < 0) t.tv_sec--, t.tv_nsec += 1000000000;
  return t;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

Status DumpXattrs(int fd, pb::TmpfsFile* f, const std::string& where) {
  std::vector<char> names(65536);
  ssize_t n = flistxattr(fd, names.data(), names.size());
  if (n < 0) return Error::Errno(where + ": listing xattrs");
  for (ssize_t i = 0; i < n;) {
    std::string name(names.data() + i);
    i += ssize_t(name.size()) + 1;
    std::vector<char> v(65536);
    ssize_t len = fgetxattr(fd, name.c_str(), v.data(), v.size());
    if (len < 0) return Error::Errno(where + ": reading xattr " + name);
    pb::TmpfsXattr* x = f->add_xattrs();
    x->set_name(name);
    x->set_value(std::string(v.data(), size_t(len)));
  }
  return Ok();
}

Status DumpData(int fd, uint64_t size, images::ImageWriter& w, const std::string& where) {
  std::vector<char> buf(kChunk);
  off_t off = 0;
  while (uint64_t(off) < size) {
    off_t data = lseek(fd, off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // a hole up to the end
      return Error::Errno(where + ": SEEK_DATA");
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return Error::Errno(where + ": SEEK_HOLE");
    for (off_t p = data; p < hole;) {
      size_t want = size_t(std::min<off_t>(hole - p, off_t(kChunk)));
      ssize_t got = pread(fd, buf.data(), want, p);
      if (got < 0) return Error::Errno(where + ": read");
      if (got == 0) break;  // shrank meanwhile: the tree is frozen, only outsiders could
      pb::TmpfsRecord r;
      r.mutable_chunk()->set_offset(uint64_t(p));
      r.mutable_chunk()->set_data(std::string(buf.data(), size_t(got)));
      TRY(w.Write(r));
      p += got;
    }
    off = hole;
  }
  return Ok();
}

struct Walker {
  images::ImageWriter& w;
  std::string what;
  std::map<std::pair<dev_t, ino_t>, std::string> inodes;  // names of files with several links

  Status Entry(int parent, const std::string& name, const std::string& path) {
    std::string where = what + ": " + (path.empty() ? "/" : path);
    struct stat st;
    if (fstatat(parent, name.empty() ? "" : name.c_str(), &st,
                AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0)) < 0)
      return Error::Errno(where + ": stat");
    pb::TmpfsRecord rec;
    pb::TmpfsFile* f = rec.mutable_file();
    f->set_path(path);
    f->set_mode(st.st_mode);
    f->set_uid(st.st_uid);
    f->set_gid(st.st_gid);
    f->set_atime_ns(Ns(st.st_atim));
    f->set_mtime_ns(Ns(st.st_mtim));
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = inodes.find(key);
      if (it != inodes.end()) {
        f->set_hardlink(it->second);
        return w.Write(rec);
      }
      inodes[key] = path;
    }
    if (S_ISLNK(st.st_mode)) {
      std::vector<char> t(size_t(st.st_size) + 2);
      ssize_t n = readlinkat(parent, name.c_str(), t.data(), t.size());
      if (n < 0 || size_t(n) >= t.size()) return Error::Errno(where + ": readlink");
      f->set_target(std::string(t.data(), size_t(n)));
      return w.Write(rec);
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) f->set_rdev(st.st_rdev);
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return w.Write(rec);

    UniqueFd fd(openat(parent, name.empty() ? "." : name.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_NONBLOCK |
                           (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0)));
    if (!fd) return Error::Errno(where + ": open");
    TRY(DumpXattrs(fd.get(), f, where));
    if (S_ISREG(st.st_mode)) {
      f->set_size(uint64_t(st.st_size));
      TRY(w.Write(rec));
      return DumpData(fd.get(), uint64_t(st.st_size), w, where);
    }
    TRY(w.Write(rec));
    // A directory: its entries, sorted (the image is the same for the same tree).
    int dfd = dup(fd.get());
    if (dfd < 0) return Error::Errno(where + ": dup");
    DIR* d = fdopendir(dfd);
    if (!d) {
      close(dfd);
      return Error::Errno(where + ": opendir");
    }
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    int err = errno;
    closedir(d);
    if (err) return Error::Errno(where + ": readdir", err);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) TRY(Entry(fd.get(), n, Join(path, n)));
    return Ok();
  }
};

// Checks an image path: relative, no empty, "." or ".." components.
bool GoodPath(const std::string& p) {
  if (p.empty() || p[0] == '/' || p.back() == '/' || p.find('\0') != std::string::npos)
    return false;
  size_t start = 0;
  for (;;) {
    size_t e = p.find('/', start);
    std::string c = p.substr(start, e == std::string::npos ? std::string::npos : e - start);
    if (c.empty() || c == "." || c == "..") return false;
    if (e == std::string::npos) return true;
    start = e + 1;
  }
}

// The directory holding `path` (below base, no symlinks, no other mount),
// and the last component.
Result<std::pair<UniqueFd, std::string>> Parent(int base, const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
  int fd = int(syscall(SYS_openat2, base, dir.c_str(), &how, sizeof(how)));
  if (fd < 0) return Error::Errno("its directory " + dir);
  return std::make_pair(UniqueFd(fd), slash == std::string::npos ? path : path.substr(slash + 1));
}

struct Pending {  // a file being filled: finished at the next file record
  UniqueFd fd;
  pb::TmpfsFile f;
  uint64_t filled = 0;  // end of the last chunk (chunks come in order)
};

Status SetXattrs(int fd, const pb::TmpfsFile& f) {
  for (const auto& x : f.xattrs())
    if (fsetxattr(fd, x.name().c_str(), x.value().data(), x.value().size(), 0) < 0)
      return Error::Errno("setting xattr " + x.name());
  return Ok();
}

// Owner, then mode (chown clears set-id bits), xattrs, times, through an fd.
Status FinishFd(int fd, const pb::TmpfsFile& f, bool times, const pb::UserNsEntry* u) {
  if (fchown(fd, UidInside(u, f.uid()), GidInside(u, f.gid())) < 0) return Error::Errno("chown");
  if (fchmod(fd, f.mode() & 07777) < 0) return Error::Errno("chmod");
  TRY(SetXattrs(fd, f));
  if (times) {
    struct timespec t[2] = {Ts(f.atime_ns()), Ts(f.mtime_ns())};
    if (futimens(fd, t) < 0) return Error::Errno("setting times");
  }
  return Ok();
}

}  // namespace

Status DumpTmpfs(int dirfd, images::ImageWriter& w, const std::string& what) {
  Walker walker{w, what, {}};
  UniqueFd root(openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::Errno(what + ": open its root");
  TRY(walker.Entry(root.get(), "", ""));
  return w.Close();
}

Status RestoreTmpfs(int dirfd, images::ImageReader& r, const std::string& what,
                    const pb::UserNsEntry* user_ns) {
  const std::string img = r.name();
  std::vector<pb::TmpfsFile> dirs;  // times set last, deepest first
  Pending cur;
  bool first = true;
  auto finish = [&]() -> Status {
    if (!cur.fd) return Ok();
    TRY(FinishFd(cur.fd.get(), cur.f, true, user_ns), what + ": " + cur.f.path());
    cur.fd.reset();
    return Ok();
  };
  for (;;) {
    pb::TmpfsRecord rec;
    TRY_ASSIGN(bool got, r.Read(rec), what);
    if (!got) break;
    if (rec.has_chunk()) {
      const pb::TmpfsChunk& c = rec.chunk();
      if (!cur.fd || c.offset() < cur.filled || c.offset() + c.data().size() > cur.f.size() ||
          c.offset() + c.data().size() < c.offset())
        return Error(what + ": " + img + ": a data chunk at " + std::to_string(c.offset()) +
                     " outside its file");
      size_t done = 0;
      while (done < c.data().size()) {
        ssize_t n = pwrite(cur.fd.get(), c.data().data() + done, c.data().size() - done,
                           off_t(c.offset() + done));
        if (n <= 0) return Error::Errno(what + ": " + cur.f.path() + ": write");
        done += size_t(n);
      }
      cur.filled = c.offset() + c.data().size();
      continue;
    }
    if (!rec.has_file()) return Error(what + ": " + img + ": an empty record");
    TRY(finish());
    const pb::TmpfsFile& f = rec.file();
    std::string where = what + ": " + (f.path().empty() ? "/" : f.path());
    if (first) {
      first = false;
      if (!f.path().empty() || !S_ISDIR(f.mode()))
        return Error(what + ": " + img + ": does not start with its root directory");
      UniqueFd fd(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) return Error::Errno(where + ": open");
      TRY(FinishFd(fd.get(), f, false, user_ns), where);
      dirs.push_back(f);
      continue;
    }
    if (!GoodPath(f.path())) return Error(what + ": " + img + ": bad path '" + f.path() + "'");
    TRY_ASSIGN(auto parent, Parent(dirfd, f.path()), where);
    int pfd = parent.first.get();
    const char* name = parent.second.c_str();
    if (f.has_hardlink()) {
      if (!GoodPath(f.hardlink()))
        return Error(what + ": " + img + ": bad link '" + f.hardlink() + "'");
      TRY_ASSIGN(auto from, Parent(dirfd, f.hardlink()), where + ": link to " + f.hardlink());
      if (linkat(from.first.get(), from.second.c_str(), pfd, name, 0) < 0)
        return Error::Errno(where + ": link to " + f.hardlink());
      continue;
    }
    mode_t type = f.mode() & S_IFMT;
    if (type == S_IFDIR) {
      if (mkdirat(pfd, name, 0700) < 0) return Error::Errno(where + ": mkdir");
      UniqueFd fd(openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return Error::Errno(where + ": open");
      TRY(FinishFd(fd.get(), f, false, user_ns), where);
      dirs.push_back(f);
    } else if (type == S_IFREG) {
      cur.fd.reset(openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!cur.fd) return Error::Errno(where + ": create");
      if (ftruncate(cur.fd.get(), off_t(f.size())) < 0) return Error::Errno(where + ": truncate");
      cur.f = f;
      cur.filled = 0;
    } else if (type == S_IFLNK) {
      if (!f.has_target()) return Error(what + ": " + img + ": symlink " + f.path() + " without target");
      if (symlinkat(f.target().c_str(), pfd, name) < 0) return Error::Errno(where + ": symlink");
      if (fchownat(pfd, name, UidInside(user_ns, f.uid()), GidInside(user_ns, f.gid()),
                   AT_SYMLINK_NOFOLLOW) < 0)
        return Error::Errno(where + ": chown");
      struct timespec t[2] = {Ts(f.atime_ns()), Ts(f.mtime_ns())};
      if (utimensat(pfd, name, t, AT_SYMLINK_NOFOLLOW) < 0) return Error::Errno(where + ": times");
    } else if (type == S_IFCHR || type == S_IFBLK || type == S_IFIFO || type == S_IFSOCK) {
      if (mknodat(pfd, name, type | 0600, dev_t(f.rdev())) < 0) return Error::Errno(where + ": mknod");
      if (fchownat(pfd, name, UidInside(user_ns, f.uid()), GidInside(user_ns, f.gid()),
                   AT_SYMLINK_NOFOLLOW) < 0)
        return Error::Errno(where + ": chown");
      if (fchmodat(pfd, name, f.mode() & 07777, 0) < 0) return Error::Errno(where + ": chmod");
      struct timespec t[2] = {Ts(f.atime_ns()), Ts(f.mtime_ns())};
      if (utimensat(pfd, name, t, AT_SYMLINK_NOFOLLOW) < 0) return Error::Errno(where + ": times");
    } else {
      return Error(what + ": " + img + ": " + f.path() + " has an unknown file type");
    }
  }
  TRY(finish());
  if (first) return Error(what + ": " + img + " is empty");
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
    struct timespec t[2] = {Ts(it->atime_ns()), Ts(it->mtime_ns())};
    const char* p = it->path().empty() ? "." : it->path().c_str();
    if (utimensat(dirfd, p, t, AT_SYMLINK_NOFOLLOW) < 0)
      return Error::Errno(what + ": " + (it->path().empty() ? "/" : it->path()) + ": times");
  }
  return Ok();
}

}  // namespace ckpt::ns
