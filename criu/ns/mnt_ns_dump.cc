// DumpMountNamespace (mnt_ns.h): classify every mount of the tree's root
// task, find the sources of host mounts in ckpt's own namespace, save the
// tmpfs filesystems of the tree's own.
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "base/log.h"
#include "criu/ns/mnt_ns.h"
#include "criu/ns/mnt_ns_task.h"
#include "criu/ns/mountinfo.h"
#include "criu/ns/tmpfs_image.h"

namespace ckpt::ns {
namespace {

// Filesystems ckpt makes again when the tree has its own superblock.
const std::map<std::string, pb::MountKind> kOwnKinds = {
    {"tmpfs", pb::MOUNT_TMPFS},   {"proc", pb::MOUNT_PROC},       {"sysfs", pb::MOUNT_SYSFS},
    {"devpts", pb::MOUNT_DEVPTS}, {"mqueue", pb::MOUNT_MQUEUE},   {"cgroup2", pb::MOUNT_CGROUP2},
    {"overlay", pb::MOUNT_OVERLAY}};

std::string Describe(const MountInfo& m) {
  return m.mountpoint + " (" + m.fstype + " " + m.source + ")";
}

struct Seen {
  uint64_t mnt_id;
  dev_t dev;
  ino_t ino;
  bool is_dir;
};

Result<Seen> StatxMount(int dirfd, const std::string& path) {
  struct statx sx;
  if (statx(dirfd, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_MNT_ID | STATX_INO | STATX_TYPE, &sx) < 0)
    return Error::Errno("statx " + path);
  if (!(sx.stx_mask & STATX_MNT_ID)) return Error("statx " + path + ": no mount id");
  return Seen{sx.stx_mnt_id, makedev(sx.stx_dev_major, sx.stx_dev_minor), ino_t(sx.stx_ino),
              S_ISDIR(sx.stx_mode)};
}

// The mounts in tree order: the root, then each mount's children by id.
Result<std::vector<const MountInfo*>> TreeOrder(const std::vector<MountInfo>& mounts) {
  std::map<uint32_t, const MountInfo*> by_id;
  for (const MountInfo& m : mounts) by_id[m.id] = &m;
  const MountInfo* root = nullptr;
  for (const MountInfo& m : mounts)
    if (m.mountpoint == "/" && (!by_id.count(m.parent_id) || m.parent_id == m.id)) root = &m;
  if (!root)
    return Error("no mount has the task's root as its mount point (is the task chrooted inside "
                 "its mount namespace? its root must be a mount point)");
  std::map<uint32_t, std::vector<const MountInfo*>> kids;
  for (const MountInfo& m : mounts)
    if (&m != root) kids[m.parent_id].push_back(&m);
  std::vector<const MountInfo*> out;
  std::vector<const MountInfo*> stack = {root};
  while (!stack.empty()) {
    const MountInfo* m = stack.back();
    stack.pop_back();
    out.push_back(m);
    auto& k = kids[m->id];
    std::sort(k.begin(), k.end(), [](auto* a, auto* b) { return a->id > b->id; });
    for (const MountInfo* c : k) stack.push_back(c);  // popped lowest id first
  }
  if (out.size() != mounts.size()) {
    for (const MountInfo& m : mounts)
      if (std::find(out.begin(), out.end(), &m) == out.end())
        return Error(Describe(m) + ": its parent mount " + std::to_string(m.parent_id) +
                     " is not below the task's root");
  }
  return out;
}

// A path of ckpt's namespace showing the same directory (or file) as
// mount `m` of the task: a mount of ckpt's with the same device whose
// root is above m's, checked by inode and not hidden.
std::string FindHostPath(const MountInfo& m, const Seen& seen, const std::vector<MountInfo>& host) {
  for (const MountInfo& h : host) {
    if (h.dev != m.dev || !PathIsUnder(m.root, h.root)) continue;
    std::string rel = PathRelativeTo(m.root, h.root);
    std::string p = rel.empty() ? h.mountpoint : (h.mountpoint == "/" ? "/" + rel : h.mountpoint + "/" + rel);
    auto s = StatxMount(AT_FDCWD, p);
    if (!s.ok()) continue;
    if (s->dev == seen.dev && s->ino == seen.ino && s->is_dir == seen.is_dir) {
      // The path must lead to h itself, or to a mount of the same files.
      return p;
    }
  }
  return "";
}

bool OverlayPathOption(const std::string& opt, std::string* key, std::string* value) {
  size_t eq = opt.find('=');
  if (eq == std::string::npos) return false;
  *key = opt.substr(0, eq);
  *value = opt.substr(eq + 1);
  return *key == "lowerdir" || *key == "upperdir" || *key == "workdir" || *key == "lowerdir+" ||
         *key == "datadir+";
}

bool SameNs(pid_t pid, const char* kind) {
  struct stat a, b;
  std::string p = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  return stat(p.c_str(), &a) == 0 &&
         stat((std::string("/proc/self/ns/") + kind).c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

// Mount id -> root of pid's mounts as a task of pid's cgroup namespace
// sees them: a cgroup filesystem shows its root relative to the reader's
// cgroup namespace root (kernfs show_path). A child joins the namespace
// and reads /proc/PID/mountinfo into a pipe.
Result<std::map<uint32_t, std::string>> RootsSeenInCgroupNs(pid_t pid) {
  std::string p = "/proc/" + std::to_string(pid);
  UniqueFd ns(open((p + "/ns/cgroup").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error::Errno("open " + p + "/ns/cgroup");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd rd(fds[0]), wr(fds[1]);
  pid_t child = fork();
  if (child < 0) return Error::Errno("fork");
  if (child == 0) {
    rd.reset();
    if (setns(ns.get(), CLONE_NEWCGROUP) < 0) _exit(2);
    UniqueFd in(open((p + "/mountinfo").c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) _exit(3);
    char buf[8192];
    ssize_t n;
    while ((n = read(in.get(), buf, sizeof(buf))) > 0)
      if (write(wr.get(), buf, size_t(n)) != n) _exit(4);
    _exit(n < 0 ? 5 : 0);
  }
  wr.reset();
  std::string text;
  char buf[8192];
  ssize_t n;
  while ((n = read(rd.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, size_t(n));
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error("reading " + p + "/mountinfo inside its cgroup namespace failed (step " +
                 std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) + ")");
  TRY_ASSIGN(std::vector<MountInfo> seen, ParseMountInfo(text));
  std::map<uint32_t, std::string> out;
  for (const MountInfo& m : seen) out[m.id] = m.root;
  return out;
}

}  // namespace

Result<std::vector<MntExternal>> ParseMntExternals(const std::vector<std::string>& externals) {
  std::vector<MntExternal> out;
  for (const std::string& e : externals) {
    if (e.compare(0, 4, "mnt[") != 0) continue;
    size_t close = e.find("]:", 4);
    if (close == std::string::npos || close == 4 || close + 2 >= e.size())
      return Error("--external " + e + ": expected mnt[MOUNTPOINT]:KEY or mnt[KEY]:PATH");
    out.push_back({e.substr(4, close - 4), e.substr(close + 2)});
  }
  return out;
}

Status DumpMountNamespace(pid_t pid, const MntNsOptions& o, images::ImageDir& dir) {
  std::string who = "mount namespace of pid " + std::to_string(pid);
  TRY_ASSIGN(std::vector<MntExternal> externals, ParseMntExternals(o.externals));
  std::map<std::string, std::string> key_of;
  for (const MntExternal& x : externals) key_of[x.inside] = x.outside;
  TRY_ASSIGN(std::vector<MountInfo> mounts, ReadMountInfo(pid), who);
  TRY_ASSIGN(std::vector<MountInfo> host, ReadMountInfo(0), who);
  // --skip-mnt: gone with everything mounted below it.
  for (const std::string& skip : o.skip) {
    if (skip == "/") return Error(who + ": --skip-mnt /: the root mount cannot be skipped");
    size_t before = mounts.size();
    std::erase_if(mounts, [&](const MountInfo& m) {
      return m.mountpoint == skip || m.mountpoint.rfind(skip + "/", 0) == 0;
    });
    if (mounts.size() == before)
      return Error(who + ": --skip-mnt " + skip + ": no mount there");
    LOG_INFO(who + ": " + std::to_string(before - mounts.size()) + " mount(s) at and below " +
             skip + " not saved (--skip-mnt)");
  }
  // A mount with another stacked right on its root and nothing else on
  // it is out of the tree's reach (a copy of ckpt's namespace has such
  // pairs): dropped, the upper one takes its place.
  for (bool again = true; again;) {
    again = false;
    for (size_t i = 0; i < mounts.size() && !again; i++) {
      std::vector<size_t> kids;
      for (size_t j = 0; j < mounts.size(); j++)
        if (j != i && mounts[j].parent_id == mounts[i].id) kids.push_back(j);
      if (kids.size() != 1 || mounts[kids[0]].mountpoint != mounts[i].mountpoint) continue;
      LOG_WARN(who + ": " + Describe(mounts[i]) + " is covered by a mount at the same point: not saved");
      mounts[kids[0]].parent_id = mounts[i].parent_id;
      mounts.erase(mounts.begin() + long(i));
      again = true;
    }
  }
  TRY_ASSIGN(std::vector<const MountInfo*> order, TreeOrder(mounts), who);

  std::set<std::string> host_devs;
  std::set<uint32_t> host_groups, tree_groups;
  for (const MountInfo& h : host) {
    host_devs.insert(h.dev);
    if (h.shared) host_groups.insert(h.shared);
  }
  for (const MountInfo* m : order)
    if (m->shared) tree_groups.insert(m->shared);

  std::string root_dir = "/proc/" + std::to_string(pid) + "/root";
  UniqueFd rootfd(open(root_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) return Error::Errno(who + ": open " + root_dir);

  // cgroup v1 mounts in a cgroup namespace of the tree's own are made
  // again there; their roots as the namespace sees them.
  std::map<uint32_t, std::string> cgroupns_roots;
  bool own_cgroupns = !SameNs(pid, "cgroup");
  for (const MountInfo* m : order)
    if (m->fstype == "cgroup" && own_cgroupns && !key_of.count(m->mountpoint)) {
      TRY_ASSIGN(cgroupns_roots, RootsSeenInCgroupNs(pid), who);
      break;
    }

  std::vector<pb::MountEntry> entries;
  const MountInfo* root = order[0];
  for (const MountInfo* m : order) {
    std::string what = who + ": " + Describe(*m);
    // The mount must be the one its mount point leads to (else it is
    // hidden: stacked under another, or covered by a mount above it).
    std::string rel = m->mountpoint == "/" ? "." : m->mountpoint.substr(1);
    auto statx = StatxMount(rootfd.get(), rel);
    if (!statx.ok() && (statx.error().err() == ENOENT || statx.error().err() == ENOTDIR))
      return Error(what + ": hidden under another mount (its mount point is gone): not supported");
    TRY_ASSIGN(Seen seen, std::move(statx), what);
    if (seen.mnt_id != m->id)
      return Error(what + ": hidden under another mount (mount " + std::to_string(seen.mnt_id) +
                   " is at its mount point): not supported");
    pb::MountEntry e;
    e.set_id(m->id);
    e.set_parent_id(m == root ? 0 : m->parent_id);
    e.set_mountpoint(m->mountpoint);
    e.set_root(m->root);
    e.set_fstype(m->fstype);
    e.set_source(m->source);
    e.set_attrs(uint32_t(m->attrs));
    e.set_dev(m->dev);
    e.set_is_dir(seen.is_dir);
    for (const std::string& opt : m->fs_opts) {
      if (opt == "rw") continue;
      if (opt == "ro") {
        e.set_fs_ro(true);
        continue;
      }
      if (opt == "seclabel") continue;  // SELinux's marker, not an option
      e.add_fs_opts(opt);
    }
    auto own = kOwnKinds.find(m->fstype);
    auto key = key_of.find(m->mountpoint);
    if (key != key_of.end()) {
      e.set_kind(pb::MOUNT_HOST);
      e.set_external(key->second);
    } else if (m->fstype == "cgroup" && cgroupns_roots.count(m->id)) {
      e.set_kind(pb::MOUNT_CGROUP1);
      e.set_root(cgroupns_roots.at(m->id));
    } else if (own != kOwnKinds.end() && !host_devs.count(m->dev)) {
      e.set_kind(own->second);
    } else {
      e.set_kind(pb::MOUNT_HOST);
      std::string p = FindHostPath(*m, seen, host);
      // The root, and mounts of its filesystem below its root, may come
      // from --root at restore instead.
      bool below_root = m->dev == root->dev && PathIsUnder(m->root, root->root);
      if (p.empty() && !below_root)
        return Error(what + ": ckpt's mount namespace shows no path to its files (root " +
                     m->root + "); name it with --external mnt[" + m->mountpoint + "]:KEY");
      if (!p.empty()) e.set_host_path(p);
    }
    if (e.kind() == pb::MOUNT_OVERLAY) {
      for (const std::string& opt : m->fs_opts) {
        std::string k, v;
        if (!OverlayPathOption(opt, &k, &v)) continue;
        size_t start = 0;
        // lowerdir lists layers with ':' (a "::" separates data-only layers).
        for (;;) {
          size_t c = v.find(':', start);
          std::string layer = v.substr(start, c == std::string::npos ? std::string::npos : c - start);
          struct stat st;
          if (!layer.empty() && stat(layer.c_str(), &st) < 0)
            return Error::Errno(what + ": its layer " + layer + " (" + k +
                                ") is not a path of ckpt's mount namespace");
          if (c == std::string::npos) break;
          start = c + 1;
        }
      }
    }
    // Propagation: relations among the tree's mounts.
    if (m->shared) {
      if (host_groups.count(m->shared))
        return Error(what + ": in peer group " + std::to_string(m->shared) +
                     " with mounts of ckpt's mount namespace; make it private or a slave "
                     "(mount --make-rslave) in the tree");
      e.set_shared(m->shared);
    }
    if (m->master) {
      if (!tree_groups.count(m->master) && e.kind() != pb::MOUNT_HOST)
        LOG_WARN(what + ": a slave of peer group " + std::to_string(m->master) +
                 " outside the tree; it comes back private");
      else
        e.set_master(m->master);
    }
    e.set_unbindable(m->unbindable);
    entries.push_back(std::move(e));
  }

  // tmpfs of the tree's own: the mount with the widest root holds every
  // other mount of the same filesystem; its files are saved.
  std::map<std::string, std::vector<size_t>> tmpfs;
  for (size_t i = 0; i < entries.size(); i++)
    if (entries[i].kind() == pb::MOUNT_TMPFS) tmpfs[entries[i].dev()].push_back(i);
  for (auto& [dev, idx] : tmpfs) {
    size_t top = idx[0];
    for (size_t i : idx)
      if (entries[i].root().size() < entries[top].root().size()) top = i;
    for (size_t i : idx)
      if (!PathIsUnder(entries[i].root(), entries[top].root()))
        return Error(who + ": tmpfs mounts " + entries[top].mountpoint() + " and " +
                     entries[i].mountpoint() + " show unrelated parts of one filesystem: not supported");
    if (!entries[top].is_dir())
      return Error(who + ": " + entries[top].mountpoint() + ": a tmpfs file mounted alone: not supported");
    entries[top].set_contents(true);
    TRY_ASSIGN(std::vector<UniqueFd> clone, CloneMountsOf(pid, {entries[top].mountpoint()}), who);
    // Read through a read-only, noatime clone: readdir and readlink (which
    // O_NOATIME cannot cover) leave every atime as it was.
    struct mount_attr a = {};
    a.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME;
    a.attr_clr = MOUNT_ATTR__ATIME;
    if (mount_setattr(clone[0].get(), "", AT_EMPTY_PATH, &a, sizeof(a)) < 0)
      return Error::Errno(who + ": tmpfs " + entries[top].mountpoint() + ": making its clone noatime");
    TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kTmpfs, entries[top].id()));
    TRY(DumpTmpfs(clone[0].get(), w, who + ": tmpfs " + entries[top].mountpoint()));
  }

  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kMntNs));
  for (const pb::MountEntry& e : entries) TRY(w.Write(e));
  TRY(w.Close());
  LOG_INFO(who + ": " + std::to_string(entries.size()) + " mounts saved");
  return Ok();
}

}  // namespace ckpt::ns
