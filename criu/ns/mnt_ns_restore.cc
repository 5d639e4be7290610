// CheckMountNamespaceImage and RestoreMountNamespace (mnt_ns.h).
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <set>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/tty.h"  // ReservePtyFile
#include "criu/ns/mnt_ns.h"
#include "criu/ns/mountinfo.h"
#include "criu/ns/tmpfs_image.h"
#include "criu/ns/user_ns.h"

namespace ckpt::ns {
namespace {

constexpr uint64_t kAttrMask = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                               MOUNT_ATTR_NOEXEC | MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME |
                               MOUNT_ATTR_NOSYMFOLLOW;

const std::map<pb::MountKind, const char*> kFsType = {
    {pb::MOUNT_TMPFS, "tmpfs"},     {pb::MOUNT_PROC, "proc"},     {pb::MOUNT_SYSFS, "sysfs"},
    {pb::MOUNT_DEVPTS, "devpts"},   {pb::MOUNT_MQUEUE, "mqueue"}, {pb::MOUNT_CGROUP2, "cgroup2"},
    {pb::MOUNT_OVERLAY, "overlay"}, {pb::MOUNT_CGROUP1, "cgroup"}};

std::string Name(const pb::MountEntry& e) {
  return "mount " + std::to_string(e.id()) + " at " + e.mountpoint() + " (" + e.fstype() + ")";
}

// Absolute, no empty, "." or ".." components, no trailing slash.
bool CleanAbsolute(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
  if (p == "/") return true;
  if (p.back() == '/') return false;
  size_t start = 1;
  for (;;) {
    size_t e = p.find('/', start);
    std::string c = p.substr(start, e == std::string::npos ? std::string::npos : e - start);
    if (c.empty() || c == "." || c == "..") return false;
    if (e == std::string::npos) return true;
    start = e + 1;
  }
}

std::string JoinPath(const std::string& base, const std::string& rel) {
  if (rel.empty()) return base;
  return base == "/" ? "/" + rel : base + "/" + rel;
}

// The messages a filesystem context logged (fsopen(2): read from its fd).
std::string FsLog(int fsfd) {
  std::string out;
  char buf[512];
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(fsfd, buf, sizeof(buf) - 1);
    if (n <= 0) break;
    out += (out.empty() ? " (" : "; ") + std::string(buf, size_t(n));
  }
  return out.empty() ? out : out + ")";
}

Status SetOption(int fsfd, const std::string& opt) {
  size_t eq = opt.find('=');
  int r = eq == std::string::npos
              ? fsconfig(fsfd, FSCONFIG_SET_FLAG, opt.c_str(), nullptr, 0)
              : fsconfig(fsfd, FSCONFIG_SET_STRING, opt.substr(0, eq).c_str(),
                         opt.substr(eq + 1).c_str(), 0);
  if (r < 0) {
    Error e = Error::Errno("option " + opt);
    return Error(e.message() + FsLog(fsfd), e.err());
  }
  return Ok();
}

// A new filesystem of the entry's kind and options; returns a detached
// mount of its root.
Result<UniqueFd> MakeFs(const pb::MountEntry& e, const pb::UserNsEntry* user_ns) {
  UniqueFd fs(fsopen(kFsType.at(e.kind()), FSOPEN_CLOEXEC));
  if (!fs) return Error::Errno(std::string("fsopen ") + kFsType.at(e.kind()));
  if (fsconfig(fs.get(), FSCONFIG_SET_STRING, "source", e.source().c_str(), 0) < 0)
    return Error::Errno("source " + e.source() + FsLog(fs.get()));
  // In the tree's user namespace, uid=/gid= options are its ids (user_ns.h).
  for (const std::string& o : e.fs_opts()) TRY(SetOption(fs.get(), MountOptionInside(user_ns, o)));
  // A read-only tmpfs is filled first and made read-only after.
  if (e.fs_ro() && e.kind() != pb::MOUNT_TMPFS) TRY(SetOption(fs.get(), "ro"));
  if (fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0) {
    Error err = Error::Errno("creating the filesystem");
    return Error(err.message() + FsLog(fs.get()), err.err());
  }
  int m = fsmount(fs.get(), FSMOUNT_CLOEXEC, 0);
  if (m < 0) return Error::Errno("fsmount");
  return UniqueFd(m);
}

// mkdir -p of `rel` below dirfd (plain root-owned directories), opened.
Result<UniqueFd> MakeDirs(int dirfd, const std::string& rel) {
  UniqueFd cur(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return Error::Errno("open the filesystem's root");
  size_t start = 0;
  while (start < rel.size()) {
    size_t e = rel.find('/', start);
    std::string c = rel.substr(start, e == std::string::npos ? std::string::npos : e - start);
    if (mkdirat(cur.get(), c.c_str(), 0755) < 0 && errno != EEXIST) return Error::Errno("mkdir " + c);
    UniqueFd next(openat(cur.get(), c.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return Error::Errno("open " + c);
    cur = std::move(next);
    if (e == std::string::npos) break;
    start = e + 1;
  }
  return cur;
}

Status SetPropagation(int fd, uint64_t type, const std::string& what) {
  struct mount_attr a = {};
  a.propagation = type;
  if (mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
    return Error::Errno(what + ": setting its propagation");
  return Ok();
}

Status SetGroup(int from, int to, const std::string& what) {
  if (move_mount(from, "", to, "", MOVE_MOUNT_SET_GROUP | MOVE_MOUNT_F_EMPTY_PATH |
                                        MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return Error::Errno(what + ": joining its peer group (MOVE_MOUNT_SET_GROUP)");
  return Ok();
}

Result<UniqueFd> Clone(int dirfd, const std::string& rel, const std::string& what) {
  int fd = open_tree(dirfd, rel.empty() ? "" : rel.c_str(),
                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW |
                         (rel.empty() ? AT_EMPTY_PATH : 0));
  if (fd < 0) return Error::Errno(what + ": cloning " + (rel.empty() ? "its source" : rel));
  return UniqueFd(fd);
}

}  // namespace

Result<std::vector<pb::MountEntry>> CheckMountNamespaceImage(const images::ImageDir& dir,
                                                             const MntNsOptions& o) {
  TRY_ASSIGN(std::vector<MntExternal> externals, ParseMntExternals(o.externals));
  std::map<std::string, std::string> path_of;
  for (const MntExternal& x : externals) path_of[x.inside] = x.outside;
  std::vector<pb::MountEntry> out;
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kMntNs));
  const std::string img = r.name();
  for (;;) {
    pb::MountEntry e;
    TRY_ASSIGN(bool got, r.Read(e));
    if (!got) break;
    out.push_back(std::move(e));
  }
  if (out.empty()) return Error(img + " holds no mount");
  std::map<uint32_t, size_t> index;
  std::set<uint32_t> groups;
  std::map<std::string, int> contents;  // tmpfs dev -> entries holding its files
  for (const pb::MountEntry& e : out)
    if (e.shared()) groups.insert(e.shared());
  for (size_t i = 0; i < out.size(); i++) {
    pb::MountEntry& e = out[i];
    std::string what = img + ": " + Name(e);
    if (e.id() == 0 || index.count(e.id())) return Error(what + ": bad or repeated id");
    if (!CleanAbsolute(e.mountpoint()) || !CleanAbsolute(e.root()))
      return Error(what + ": bad mount point or root");
    if (i == 0) {
      if (e.parent_id() != 0 || e.mountpoint() != "/")
        return Error(what + ": the first mount must be the root");
      if (!e.is_dir()) return Error(what + ": the root is not a directory");
    } else {
      auto p = index.find(e.parent_id());
      if (p == index.end()) return Error(what + ": its parent " + std::to_string(e.parent_id()) +
                                         " does not come before it");
      if (!PathIsUnder(e.mountpoint(), out[p->second].mountpoint()))
        return Error(what + ": not below its parent's mount point");
    }
    if (e.attrs() & ~kAttrMask) return Error(what + ": unknown mount attributes");
    if (e.master() && e.master() == e.shared()) return Error(what + ": its own master");
    if (e.kind() == pb::MOUNT_HOST) {
      std::string src;
      if (e.has_external()) {
        auto x = path_of.find(e.external());
        if (x == path_of.end())
          return Error(img + ": " + Name(e) + " is external: restore needs --external mnt[" +
                       e.external() + "]:PATH");
        src = x->second;
      } else if (!o.root.empty() && e.dev() == out[0].dev() && PathIsUnder(e.root(), out[0].root()) &&
                 out[0].kind() == pb::MOUNT_HOST && !out[0].has_external()) {
        src = JoinPath(o.root, PathRelativeTo(e.root(), out[0].root()));
      } else if (e.has_host_path() && CleanAbsolute(e.host_path())) {
        src = e.host_path();
      } else {
        return Error(img + ": " + Name(e) + " has no source here: " +
                     (i == 0 || e.dev() == out[0].dev() ? "give --root DIR" : "bad image"));
      }
      struct stat st;
      if (stat(src.c_str(), &st) < 0) return Error::Errno(what + ": its source " + src);
      if (bool(S_ISDIR(st.st_mode)) != e.is_dir())
        return Error(what + ": its source " + src + " is not a " +
                     (e.is_dir() ? "directory" : "file"));
      e.set_host_path(src);
    } else {
      auto t = kFsType.find(e.kind());
      if (t == kFsType.end() || e.fstype() != t->second)
        return Error(what + ": kind and filesystem type disagree");
      if (e.contents()) {
        if (e.kind() != pb::MOUNT_TMPFS) return Error(what + ": contents for a non-tmpfs");
        contents[e.dev()]++;
        if (!dir.Exists(images::ImageType::kTmpfs, e.id()))
          return Error(what + ": " + images::FileName(images::ImageType::kTmpfs, e.id()) +
                       " is missing");
      }
    }
    index[e.id()] = i;
  }
  for (const pb::MountEntry& e : out) {
    std::string what = img + ": " + Name(e);
    if (e.kind() == pb::MOUNT_TMPFS) {
      if (contents[e.dev()] != 1) return Error(what + ": its filesystem's contents are not saved once");
      for (const pb::MountEntry& c : out)
        if (c.contents() && c.dev() == e.dev() && !PathIsUnder(e.root(), c.root()))
          return Error(what + ": not below the saved part of its filesystem");
    }
    // Peers share one filesystem (of one kind).
    for (const pb::MountEntry& p : out)
      if (e.shared() && p.shared() == e.shared() && (p.dev() != e.dev() || p.kind() != e.kind()))
        return Error(what + ": peer group " + std::to_string(e.shared()) +
                     " spans several filesystems");
  }
  return out;
}

Status RestoreMountNamespace(const images::ImageDir& dir, const MntNsOptions& o) {
  TRY_ASSIGN(std::vector<pb::MountEntry> ms, CheckMountNamespaceImage(dir, o), "mount namespace");
  // Nothing done here may reach ckpt's namespace.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0)
    return Error::Errno("mount namespace: making every mount a slave");

  // Detached mounts: each filesystem of the tree's own once (filled), and
  // a clone of it, or of a host path, for each mount.
  std::map<std::string, UniqueFd> fs_root;  // dev -> the filesystem's root
  std::vector<UniqueFd> fds(ms.size());
  std::map<uint32_t, size_t> index;
  for (size_t i = 0; i < ms.size(); i++) {
    const pb::MountEntry& e = ms[i];
    std::string what = "mount namespace: " + Name(e);
    index[e.id()] = i;
    if (e.kind() == pb::MOUNT_HOST) {
      TRY_ASSIGN(fds[i], Clone(AT_FDCWD, e.host_path(), what));
    } else {
      auto it = fs_root.find(e.dev());
      if (it == fs_root.end()) {
        TRY_ASSIGN(UniqueFd root, MakeFs(e, o.user_ns), what);
        if (e.kind() == pb::MOUNT_TMPFS) {
          for (const pb::MountEntry& c : ms) {
            if (!c.contents() || c.dev() != e.dev()) continue;
            TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kTmpfs, c.id()),
                       what);
            auto fill = [&]() -> Status {
              TRY_ASSIGN(UniqueFd at, MakeDirs(root.get(), c.root().substr(1)), what);
              return RestoreTmpfs(at.get(), r, what, o.user_ns);
            };
            // A filesystem made in the tree's user namespace takes new files
            // only from fs ids mapped there (user_ns.h).
            TRY(o.user_ns ? WithMappedFsIds(*o.user_ns, fill) : fill());
          }
          if (e.fs_ro()) {
            UniqueFd pick(fspick(root.get(), "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC));
            if (!pick) return Error::Errno(what + ": fspick");
            TRY(SetOption(pick.get(), "ro"), what);
            if (fsconfig(pick.get(), FSCONFIG_CMD_RECONFIGURE, nullptr, nullptr, 0) < 0)
              return Error::Errno(what + ": making it read-only");
          }
        }
        it = fs_root.emplace(e.dev(), std::move(root)).first;
      }
      // A bind of a pty (runc's /dev/console): the pty first (files/tty.h).
      if (e.kind() == pb::MOUNT_DEVPTS) TRY(files::ReservePtyFile(it->second.get(), e.root().substr(1)), what);
      TRY_ASSIGN(fds[i], Clone(it->second.get(), e.root().substr(1), what));
    }
    struct mount_attr a = {};
    a.attr_set = e.attrs();
    a.attr_clr = kAttrMask;
    a.propagation = e.unbindable() ? MS_UNBINDABLE : MS_PRIVATE;
    if (mount_setattr(fds[i].get(), "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
      return Error::Errno(what + ": setting " + MountOptionsString(e.attrs()));
    if (i == 0) continue;
    // Onto its parent, in the (still detached) tree.
    const pb::MountEntry& p = ms[index.at(e.parent_id())];
    int pfd = fds[index.at(e.parent_id())].get();
    std::string rel = PathRelativeTo(e.mountpoint(), p.mountpoint());
    UniqueFd target;
    if (!rel.empty()) {
      struct open_how how = {};
      how.flags = O_PATH | O_CLOEXEC;
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
      target.reset(int(syscall(SYS_openat2, pfd, rel.c_str(), &how, sizeof(how))));
      if (!target) return Error::Errno(what + ": its mount point in " + Name(p));
    }
    if (move_mount(fds[i].get(), "", target ? target.get() : pfd, "",
                   MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      return Error::Errno(what + ": attaching it");
  }
  fs_root.clear();

  // The tree goes over our root (in our namespace now: groups can be set).
  if (move_mount(fds[0].get(), "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return Error::Errno("mount namespace: attaching the restored root");

  // Peer groups and masters, through helper clones: each group's helper
  // is made shared (a new group) and, if its members are slaves, first a
  // slave of its master's helper; then every member joins. A helper is a
  // clone of the member with the widest root (others are below it).
  std::map<uint32_t, UniqueFd> group_helper, slave_helper;
  std::set<uint32_t> groups;
  for (const pb::MountEntry& e : ms)
    if (e.shared()) groups.insert(e.shared());
  auto widest = [&](auto pick) -> int {
    int best = -1;
    for (size_t i = 0; i < ms.size(); i++)
      if (pick(ms[i]) && (best < 0 || ms[i].root().size() < ms[size_t(best)].root().size()))
        best = int(i);
    return best;
  };
  std::function<Result<int>(uint32_t)> helper_of;
  helper_of = [&](uint32_t g) -> Result<int> {
    auto it = group_helper.find(g);
    if (it != group_helper.end()) return it->second.get();
    int w = widest([&](const pb::MountEntry& e) { return e.shared() == g; });
    const pb::MountEntry& lead = ms[size_t(w)];
    std::string what = "mount namespace: peer group " + std::to_string(g) + " of " + Name(lead);
    for (const pb::MountEntry& e : ms)
      if (e.shared() == g && !PathIsUnder(e.root(), lead.root()))
        return Error(what + ": its members show unrelated parts of one filesystem");
    TRY_ASSIGN(UniqueFd h, Clone(fds[size_t(w)].get(), "", what));
    TRY(SetPropagation(h.get(), MS_PRIVATE, what));
    if (lead.master() && groups.count(lead.master())) {
      group_helper[g] = UniqueFd();  // a cycle of masters ends here
      TRY_ASSIGN(int m, helper_of(lead.master()));
      if (m < 0) return Error(what + ": its masters form a cycle");
      TRY(SetGroup(m, h.get(), what));
      TRY(SetPropagation(h.get(), MS_SLAVE, what));
    }
    TRY(SetPropagation(h.get(), MS_SHARED, what));
    int fd = h.get();
    group_helper[g] = std::move(h);
    return fd;
  };
  for (size_t i = 0; i < ms.size(); i++) {
    const pb::MountEntry& e = ms[i];
    std::string what = "mount namespace: " + Name(e);
    if (e.shared()) {
      TRY_ASSIGN(int h, helper_of(e.shared()));
      TRY(SetGroup(h, fds[i].get(), what));
    } else if (e.master() && groups.count(e.master())) {
      auto it = slave_helper.find(e.master());
      if (it == slave_helper.end()) {
        TRY_ASSIGN(int m, helper_of(e.master()));
        TRY_ASSIGN(UniqueFd s, Clone(m, "", what));
        TRY(SetPropagation(s.get(), MS_SLAVE, what));
        it = slave_helper.emplace(e.master(), std::move(s)).first;
      }
      TRY(SetGroup(it->second.get(), fds[i].get(), what));
    } else if (e.master() && e.kind() == pb::MOUNT_HOST) {
      // A master outside the tree: a clone of its source here is a slave
      // of the same master when that source receives mounts from ckpt's
      // namespace (everything was made a slave above); else it is private.
      TRY_ASSIGN(UniqueFd src, Clone(AT_FDCWD, e.host_path(), what));
      if (move_mount(src.get(), "", fds[i].get(), "",
                     MOVE_MOUNT_SET_GROUP | MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        LOG_WARN(what + ": its master (peer group " + std::to_string(e.master()) +
                 ", outside the tree) is not shared here; it comes back private");
    }
  }
  group_helper.clear();
  slave_helper.clear();

  if (fchdir(fds[0].get()) < 0) return Error::Errno("mount namespace: entering the restored root");
  if (syscall(SYS_pivot_root, ".", ".") < 0) return Error::Errno("mount namespace: pivot_root");
  if (umount2(".", MNT_DETACH) < 0) return Error::Errno("mount namespace: detaching the old root");
  if (chdir("/") < 0) return Error::Errno("mount namespace: chdir /");
  LOG_INFO("mount namespace: " + std::to_string(ms.size()) + " mounts restored");
  return Ok();
}

}  // namespace ckpt::ns
