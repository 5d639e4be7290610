#include "criu/ns/namespaces.h"

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/log.h"
#include "criu/cgroup_fs.h"
#include "criu/ns/pid_ns.h"
#include "criu/proc_parse.h"
#include "criu/pstree.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace ckpt::ns {
namespace {

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

int CloneFlag(Kind k) {
  switch (k) {
    case Kind::kPid:
      return CLONE_NEWPID;
    case Kind::kNet:
      return CLONE_NEWNET;
    case Kind::kIpc:
      return CLONE_NEWIPC;
    case Kind::kUts:
      return CLONE_NEWUTS;
    case Kind::kMnt:
      return CLONE_NEWNS;
    case Kind::kUser:
      return CLONE_NEWUSER;
    case Kind::kCgroup:
      return CLONE_NEWCGROUP;
    case Kind::kTime:
      return CLONE_NEWTIME;
  }
  return 0;
}

std::string NsPath(pid_t pid, Kind k, bool for_children) {
  std::string p = pid ? "/proc/" + std::to_string(pid) : std::string("/proc/self");
  return p + "/ns/" + KindName(k) + (for_children ? "_for_children" : "");
}

UniqueFd OpenNs(pid_t pid, Kind k) {
  return UniqueFd(open(NsPath(pid, k, false).c_str(), O_RDONLY | O_CLOEXEC));
}

// "monotonic S N" / "boottime S N" lines.
Result<pb::TimeNsEntry> ReadTimeOffsets(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/timens_offsets";
  TRY_ASSIGN(std::string text, io::ReadFile(path));
  pb::TimeNsEntry t;
  t.set_monotonic_sec(0), t.set_monotonic_nsec(0), t.set_boottime_sec(0), t.set_boottime_nsec(0);
  std::istringstream in(text);
  std::string clock;
  int64_t sec, nsec;
  while (in >> clock >> sec >> nsec) {
    if (clock == "monotonic" || clock == "1")
      t.set_monotonic_sec(sec), t.set_monotonic_nsec(nsec);
    else if (clock == "boottime" || clock == "7")
      t.set_boottime_sec(sec), t.set_boottime_nsec(nsec);
    else
      return Error(path + ": unknown clock " + clock);
  }
  return t;
}

// `path`: /proc/self/timens_offsets for the namespace ckpt's next child
// gets, or the holder's (user_ns.h) for one made inside the user namespace.
Status WriteTimeOffsets(const pb::TimeNsEntry& t, const std::string& path) {
  if (t.monotonic_nsec() < 0 || t.monotonic_nsec() >= 1000000000 || t.boottime_nsec() < 0 ||
      t.boottime_nsec() >= 1000000000)
    return Error("namespaces.img: clock offset with bad nanoseconds");
  std::string text = "monotonic " + std::to_string(t.monotonic_sec()) + " " +
                     std::to_string(t.monotonic_nsec()) + "\nboottime " +
                     std::to_string(t.boottime_sec()) + " " + std::to_string(t.boottime_nsec()) +
                     "\n";
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  if (write(fd.get(), text.data(), text.size()) != ssize_t(text.size()))
    return Error::Errno("setting the time namespace's clock offsets");
  return Ok();
}

// The cgroup2 mountpoint showing `cgroup` (ckpt's view).
Result<std::string> CgroupMountFor(const std::string& cgroup) {
  TRY_ASSIGN(cgroupfs::Mount m, cgroupfs::FindMount(cgroup));
  if (m.root != "/")
    return Error("the cgroup2 mount shows " + m.root + ", not the whole hierarchy");
  return m.mountpoint;
}

// Moves ckpt (every thread) into the cgroup directory `dir`.
Status MoveSelfInto(const std::string& dir) {
  std::string me = std::to_string(getpid());
  UniqueFd fd(open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd || write(fd.get(), me.data(), me.size()) != ssize_t(me.size()))
    return Error::Errno("moving ckpt into " + dir);
  return Ok();
}

}  // namespace

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kPid:
      return "pid";
    case Kind::kNet:
      return "net";
    case Kind::kIpc:
      return "ipc";
    case Kind::kUts:
      return "uts";
    case Kind::kMnt:
      return "mnt";
    case Kind::kUser:
      return "user";
    case Kind::kCgroup:
      return "cgroup";
    case Kind::kTime:
      return "time";
  }
  return "?";
}

Result<uint64_t> NsId(pid_t pid, Kind k, bool for_children) {
  std::string path = NsPath(pid, k, for_children);
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return Error::Errno("stat " + path);
  return uint64_t(st.st_ino);
}

Status InNamespaceOf(pid_t pid, Kind k, const std::function<Status()>& fn) {
  UniqueFd ns = OpenNs(pid, k);
  if (!ns) return Error::Errno("open " + NsPath(pid, k, false));
  Status result = Ok();
  std::thread t([&] {
    if (setns(ns.get(), CloneFlag(k)) < 0) {
      result =
          Error::Errno(std::string("joining the ") + KindName(k) + " namespace of " + Who(pid));
      return;
    }
    result = fn();
  });
  t.join();
  return result;
}

Result<pb::NamespacesEntry> CollectNamespaces(const std::vector<TreeTask>& tree,
                                              bool cgroups_saved) {
  pb::NamespacesEntry e;
  pid_t root = tree[0].pid;
  const Kind kinds[] = {Kind::kNet,  Kind::kIpc,    Kind::kUts, Kind::kMnt,
                        Kind::kUser, Kind::kCgroup, Kind::kTime};
  for (Kind k : kinds) {
    TRY_ASSIGN(uint64_t mine, NsId(0, k));
    TRY_ASSIGN(uint64_t theirs, NsId(root, k));
    for (const TreeTask& t : tree) {
      if (t.zombie) continue;  // a zombie has no namespaces left
      TRY_ASSIGN(uint64_t id, NsId(t.pid, k));
      if (id != theirs)
        return Error(Who(t.pid) + " is in another " + KindName(k) +
                     " namespace than the tree's root (" + Who(root) + "): nested " + KindName(k) +
                     " namespaces are not supported");
      if (k == Kind::kTime) {
        TRY_ASSIGN(uint64_t kids, NsId(t.pid, k, true));
        if (kids != id)
          return Error(Who(t.pid) +
                       " made a time namespace for its future children "
                       "(unshare(CLONE_NEWTIME)): not supported");
      }
    }
    if (theirs == mine) continue;
    switch (k) {
      case Kind::kNet:
        e.set_net(true);
        break;
      case Kind::kIpc:
        e.set_ipc(true);
        break;
      case Kind::kUts:
        e.set_uts(true);
        break;
      case Kind::kTime:
        e.set_time(true);
        break;
      case Kind::kUser:
        e.set_user(true);
        break;
      case Kind::kCgroup:
        if (cgroups_saved) {  // its root is in cgroup.img (criu/cgroup.h)
          e.set_cgroup(true);
          break;
        }
        LOG_WARN(Who(root) +
                 ": its cgroup namespace is not ckpt's; with --manage-cgroups=ignore "
                 "it is not saved: the restored tree lives in restore's");
        break;
      case Kind::kMnt: {
        // A container (a root directory of its own) has its mounts saved;
        // a copy of ckpt's namespace over the same root (ip netns exec,
        // unshare -m) comes back in restore's, its files opened by the
        // same paths.
        struct stat mine_root, their_root;
        std::string rp = "/proc/" + std::to_string(root) + "/root/";
        if (stat("/", &mine_root) < 0 || stat(rp.c_str(), &their_root) < 0)
          return Error::Errno(Who(root) + ": stat of its root directory");
        if (mine_root.st_dev != their_root.st_dev || mine_root.st_ino != their_root.st_ino) {
          e.set_mnt(true);
          break;
        }
        LOG_WARN(Who(root) +
                 ": its mount namespace is not ckpt's but has the same root: "
                 "not saved, the restored tree lives in restore's");
        break;
      }
      default:
        return Error(Who(root) + ": its " + KindName(k) + " namespace is not ckpt's: " +
                     KindName(k) + " namespaces are not supported yet (run ckpt inside it)");
    }
  }
  // Pid namespaces: nesting is fine (pid_ns.h); pending ones are not.
  for (const TreeTask& t : tree) {
    if (t.zombie) continue;
    TRY_ASSIGN(uint64_t id, NsId(t.pid, Kind::kPid));
    // Unreadable (ENOENT) while the new namespace has no process yet.
    auto kids = NsId(t.pid, Kind::kPid, true);
    if (!kids.ok() || *kids != id)
      return Error(Who(t.pid) +
                   " made a pid namespace for its future children "
                   "(unshare(CLONE_NEWPID)) without a child in it yet: not supported");
  }
  TRY_ASSIGN(proc::Status rs, proc::ReadStatus(root));
  e.set_pid(rs.ns_pid.size() > 1);
  if (e.uts()) {
    pb::UtsNsEntry* u = e.mutable_uts_ns();
    TRY(InNamespaceOf(root, Kind::kUts, [u]() -> Status {
      struct utsname n;
      if (uname(&n) < 0) return Error::Errno("uname");
      u->set_nodename(n.nodename);
      u->set_domainname(n.domainname);
      return Ok();
    }));
  }
  if (e.time()) {
    TRY_ASSIGN(*e.mutable_time_ns(), ReadTimeOffsets(root));
  }
  if (e.user()) {
    TRY_ASSIGN(*e.mutable_user_ns(), CollectUserNs(tree, e));
  }
  return e;
}

Status JoinNetNamespaceOf(pid_t pid) {
  TRY_ASSIGN(uint64_t mine, NsId(0, Kind::kNet));
  TRY_ASSIGN(uint64_t theirs, NsId(pid, Kind::kNet));
  if (mine == theirs) return Ok();
  UniqueFd ns = OpenNs(pid, Kind::kNet);
  if (!ns || setns(ns.get(), CLONE_NEWNET) < 0)
    return Error::Errno("joining the network namespace of " + Who(pid));
  LOG_INFO("dumping inside the network namespace of " + Who(pid));
  return Ok();
}

Result<pb::NamespacesEntry> ReadNamespaces(const images::ImageDir& dir) {
  pb::NamespacesEntry e;
  if (!dir.Exists(images::ImageType::kNamespaces)) return e;
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kNamespaces));
  TRY_ASSIGN(bool got, r.Read(e));
  if (!got) return Error("namespaces.img is empty");
  if (e.uts() != e.has_uts_ns()) return Error("namespaces.img: uts namespace without its names");
  if (e.time() != e.has_time_ns()) return Error("namespaces.img: time namespace without offsets");
  if (e.user() != e.has_user_ns()) return Error("namespaces.img: user namespace without its maps");
  if (e.user()) TRY(CheckUserNsImage(e.user_ns()));
  return e;
}

Result<std::unique_ptr<NsRestore>> NsRestore::Enter(const pb::NamespacesEntry& e,
                                                    const std::vector<JoinNs>& join) {
  std::unique_ptr<NsRestore> r(new NsRestore());
  r->e_ = e;
  // Kinds the tree's user namespace owns come with the root (user_ns.h).
  int with_root = int(RootUserNsCloneFlags(e)) & (CLONE_NEWUTS | CLONE_NEWNET);
  if (e.user() && e.time() && e.user_ns().owns_time()) with_root |= CLONE_NEWTIME;
  r->net_with_root_ = with_root & CLONE_NEWNET;
  int flags = 0;
  auto save = [&](bool own, Kind k, UniqueFd* fd) -> Status {
    if (!own) return Ok();
    *fd = OpenNs(0, k);
    if (!*fd) return Error::Errno(std::string("open ckpt's own ") + KindName(k) + " namespace");
    if (!(with_root & CloneFlag(k))) flags |= CloneFlag(k);
    return Ok();
  };
  TRY(save(e.uts(), Kind::kUts, &r->saved_uts_));
  TRY(save(e.net(), Kind::kNet, &r->saved_net_));
  TRY(save(e.time(), Kind::kTime, &r->saved_time_));
  for (const JoinNs& j : join) {
    int flag = j.ns == "net" ? CLONE_NEWNET : j.ns == "uts" ? CLONE_NEWUTS : 0;
    std::string what = "--join-ns " + j.ns + ":" + j.file;
    if (!flag) return Error(what + ": only net and uts namespaces can be joined");
    if (!(flag == CLONE_NEWNET ? e.net() : e.uts()))
      return Error(what + ": the dumped tree had no " + j.ns + " namespace of its own");
    if (with_root & flag)
      return Error(what + ": the tree's user namespace owns its " + j.ns + " namespace");
    UniqueFd fd(open(j.file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::Errno(what);
    if (setns(fd.get(), flag) < 0) return Error::Errno(what + ": setns");
    flags &= ~flag;
    r->joined_ |= flag;
    LOG_INFO("restoring inside the existing " + j.ns + " namespace " + j.file);
  }
  if (!flags) return r;
  if (unshare(flags) < 0) return Error::Errno("creating the tree's namespaces (unshare)");
  if (flags & CLONE_NEWUTS) {
    const pb::UtsNsEntry& u = e.uts_ns();
    if (sethostname(u.nodename().data(), u.nodename().size()) < 0)
      return Error::Errno("sethostname " + u.nodename());
    if (setdomainname(u.domainname().data(), u.domainname().size()) < 0)
      return Error::Errno("setdomainname " + u.domainname());
  }
  if (flags & CLONE_NEWTIME) TRY(WriteTimeOffsets(e.time_ns(), "/proc/self/timens_offsets"));
  LOG_INFO(std::string("restoring inside new namespaces:") +
           ((flags & CLONE_NEWUTS) ? " uts" : "") + ((flags & CLONE_NEWNET) ? " net" : "") +
           ((flags & CLONE_NEWTIME) ? " time" : ""));
  return r;
}

Status NsRestore::BeforeRootClone() {
  if (!e_.user()) return Ok();
  int n = getgroups(0, nullptr);
  saved_groups_.resize(size_t(n > 0 ? n : 0));
  if (n < 0 || getgroups(n, saved_groups_.data()) != n) return Error::Errno("getgroups");
  std::vector<gid_t> g(e_.user_ns().host_groups().begin(), e_.user_ns().host_groups().end());
  if (setgroups(g.size(), g.data()) < 0)
    return Error::Errno("taking the tree root's supplementary groups for its clone");
  groups_changed_ = true;
  if (!cgroup_ns_root_.empty()) {
    // A new cgroup namespace is rooted at its creator's cgroup.
    TRY_ASSIGN(std::string own, io::ReadFile("/proc/self/cgroup"));
    size_t at = own.find("0::");
    if (at == std::string::npos) return Error("ckpt is in no cgroup v2 cgroup");
    std::string own_path = own.substr(at + 3, own.find('\n', at) - at - 3);
    TRY_ASSIGN(std::string mountpoint, CgroupMountFor(own_path));
    cgroup_own_dir_ = mountpoint + (own_path == "/" ? "" : own_path);
    TRY(MoveSelfInto(cgroup_ns_root_));
    cgroup_moved_ = true;
  }
  return Ok();
}

Status NsRestore::AfterRootClone(pid_t root) {
  if (!e_.user()) return Ok();
  if (groups_changed_ && setgroups(saved_groups_.size(), saved_groups_.data()) < 0)
    return Error::Errno("taking ckpt's own supplementary groups back");
  groups_changed_ = false;
  if (cgroup_moved_) {
    TRY(MoveSelfInto(cgroup_own_dir_));
    cgroup_moved_ = false;
  }
  if (root <= 0) return Ok();
  TRY(WriteUserNsMaps(root, e_.user_ns()));
  auto join = [&](Kind k) -> Status {
    UniqueFd ns = OpenNs(root, k);
    if (!ns || setns(ns.get(), CloneFlag(k)) < 0)
      return Error::Errno(std::string("joining the ") + KindName(k) +
                          " namespace of the tree's root " + Who(root));
    return Ok();
  };
  if (RootUserNsCloneFlags(e_) & CLONE_NEWUTS) {
    TRY(join(Kind::kUts));
    const pb::UtsNsEntry& u = e_.uts_ns();
    if (sethostname(u.nodename().data(), u.nodename().size()) < 0)
      return Error::Errno("sethostname " + u.nodename());
    if (setdomainname(u.domainname().data(), u.domainname().size()) < 0)
      return Error::Errno("setdomainname " + u.domainname());
  }
  if (net_with_root_) TRY(join(Kind::kNet));
  return Ok();
}

Status EnterOwnedTimeNs(const pb::NamespacesEntry& e) {
  if (!e.user() || !e.time() || !e.user_ns().owns_time()) return Ok();
  if (unshare(CLONE_NEWTIME) < 0) return Error::Errno("making the tree's time namespace (unshare)");
  TRY(WriteTimeOffsets(e.time_ns(), "/proc/self/timens_offsets"));
  UniqueFd ns(open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC));
  if (!ns || setns(ns.get(), CLONE_NEWTIME) < 0)
    return Error::Errno("entering the tree's time namespace");
  return Ok();
}

Status NsRestore::EnterCgroupNamespace(const std::string& ns_root_dir) {
  if (ns_root_dir.empty())
    return Error("namespaces.img: a cgroup namespace without its root cgroup");
  // user_ns.h: one the tree's user namespace owns comes with the root's
  // clone, made while ckpt stands in ns_root_dir (BeforeRootClone).
  if (RootUserNsCloneFlags(e_) & CLONE_NEWCGROUP) {
    cgroup_ns_root_ = ns_root_dir;
    return Ok();
  }
  saved_cgroup_ = OpenNs(0, Kind::kCgroup);
  if (!saved_cgroup_) return Error::Errno("open ckpt's own cgroup namespace");
  // The new namespace is rooted where its creator is: ckpt steps into the
  // tree's namespace root for the unshare and back out.
  TRY_ASSIGN(std::string own, io::ReadFile("/proc/self/cgroup"));
  size_t at = own.find("0::");
  if (at == std::string::npos) return Error("ckpt is in no cgroup v2 cgroup");
  std::string own_path = own.substr(at + 3, own.find('\n', at) - at - 3);
  TRY_ASSIGN(std::string mountpoint, CgroupMountFor(own_path));
  std::string own_dir = mountpoint + (own_path == "/" ? "" : own_path);
  auto move = MoveSelfInto;
  TRY(move(ns_root_dir));
  int r = unshare(CLONE_NEWCGROUP);
  int e = errno;
  TRY(move(own_dir));
  if (r < 0) return Error::Errno("creating the tree's cgroup namespace", e);
  LOG_INFO("restoring inside a new cgroup namespace rooted at " + ns_root_dir);
  return Ok();
}

NsRestore::~NsRestore() {
  if (groups_changed_) (void)setgroups(saved_groups_.size(), saved_groups_.data());
  if (cgroup_moved_) (void)MoveSelfInto(cgroup_own_dir_);
  auto back = [](UniqueFd& fd, Kind k) {
    if (fd && setns(fd.get(), CloneFlag(k)) < 0)
      LOG_WARN(std::string("cannot go back to ckpt's own ") + KindName(k) +
               " namespace: " + strerror(errno));
  };
  back(saved_uts_, Kind::kUts);
  back(saved_net_, Kind::kNet);
  back(saved_time_, Kind::kTime);
  back(saved_cgroup_, Kind::kCgroup);
}

}  // namespace ckpt::ns
