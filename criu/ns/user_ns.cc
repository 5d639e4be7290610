#include "criu/ns/user_ns.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/nsfs.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "base/io.h"
#include "base/log.h"
#include "criu/ns/namespaces.h"
#include "criu/proc_parse.h"
#include "criu/pstree.h"

namespace ckpt::ns {
namespace {

// The kernel's limit on lines in uid_map / gid_map (Linux 4.15+).
constexpr int kMaxExtents = 340;
// NGROUPS_MAX.
constexpr int kMaxGroups = 65536;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }
std::string Proc(pid_t pid) { return "/proc/" + std::to_string(pid) + "/"; }

using Extents = google::protobuf::RepeatedPtrField<pb::IdMapExtent>;

// "first lower count" lines.
Result<Extents> ParseMap(const std::string& path) {
  TRY_ASSIGN(std::string text, io::ReadFile(path));
  Extents out;
  std::istringstream in(text);
  uint64_t first, lower, count;
  while (in >> first >> lower >> count) {
    pb::IdMapExtent* x = out.Add();
    x->set_first(uint32_t(first));
    x->set_lower_first(uint32_t(lower));
    x->set_count(uint32_t(count));
  }
  if (!in.eof()) return Error(path + ": unexpected contents");
  return out;
}

std::string MapText(const Extents& m) {
  std::string s;
  for (const pb::IdMapExtent& x : m)
    s += std::to_string(x.first()) + " " + std::to_string(x.lower_first()) + " " +
         std::to_string(x.count()) + "\n";
  return s;
}

// The map on one line, for messages.
std::string MapOneLine(const Extents& m) {
  std::string s = MapText(m);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  std::replace(s.begin(), s.end(), '\n', ',');
  return s;
}

// An id of the parent (ckpt's) seen from inside; false if not mapped.
bool ToInside(const Extents& m, uint32_t id, uint32_t* out) {
  for (const pb::IdMapExtent& x : m)
    if (id >= x.lower_first() && uint64_t(id) < uint64_t(x.lower_first()) + x.count()) {
      *out = x.first() + (id - x.lower_first());
      return true;
    }
  return false;
}

Result<uint64_t> InodeOf(int fd, const std::string& what) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("fstat " + what);
  return uint64_t(st.st_ino);
}

// The user namespace owning pid's namespace of kind `name`, as an inode;
// 0 if it lies above ckpt's (the kernel will not say).
Result<uint64_t> OwnerOf(pid_t pid, const char* name) {
  std::string path = Proc(pid) + "ns/" + name;
  UniqueFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error::Errno("open " + path);
  UniqueFd owner(ioctl(ns.get(), NS_GET_USERNS));
  if (!owner) {
    if (errno == EPERM) return uint64_t(0);
    return Error::Errno("NS_GET_USERNS on " + path);
  }
  return InodeOf(owner.get(), "the owner of " + path);
}

// What the kernel shows for an unmapped id (overflowuid/overflowgid).
uint32_t Overflow(const char* file) {
  auto t = io::ReadFile(std::string("/proc/sys/kernel/") + file);
  return t.ok() ? uint32_t(strtoul(t->c_str(), nullptr, 10)) : 65534;
}
uint32_t OverflowGid() { return Overflow("overflowgid"); }

Status CheckExtents(const Extents& m, const char* which) {
  std::string who = std::string("namespaces.img: the user namespace's ") + which;
  if (m.empty()) return Error(who + " is empty");
  if (m.size() > kMaxExtents)
    return Error(who + " has more than " + std::to_string(kMaxExtents) + " lines");
  for (const pb::IdMapExtent& x : m) {
    if (x.count() == 0) return Error(who + " has a line of no ids");
    if (uint64_t(x.first()) + x.count() > 0xffffffffull ||
        uint64_t(x.lower_first()) + x.count() > 0xffffffffull)
      return Error(who + " has a line past the last id");
  }
  return Ok();
}

Status WriteProcFile(const std::string& path, const std::string& text, const std::string& what) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path + " (" + what + ")");
  // One write: the kernel takes a map only whole, and only once.
  ssize_t n = write(fd.get(), text.data(), text.size());
  if (n != ssize_t(text.size())) {
    if (n >= 0) errno = EIO;
    return Error::Errno("writing " + what + " to " + path);
  }
  return Ok();
}

}  // namespace

// ---- dump ----

Result<pb::UserNsEntry> CollectUserNs(const std::vector<TreeTask>& tree,
                                      const pb::NamespacesEntry& e) {
  pid_t root = tree[0].pid;
  pb::UserNsEntry u;
  TRY_ASSIGN(uint64_t mine, NsId(0, Kind::kUser));
  TRY_ASSIGN(uint64_t theirs, NsId(root, Kind::kUser));
  {
    std::string path = Proc(root) + "ns/user";
    UniqueFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) return Error::Errno("open " + path);
    UniqueFd parent(ioctl(ns.get(), NS_GET_PARENT));
    uint64_t pino = 0;
    if (parent) {
      TRY_ASSIGN(pino, InodeOf(parent.get(), "the parent of " + path));
    }
    if (pino != mine)
      return Error(Who(root) +
                   ": its user namespace was not made in ckpt's but in one nested "
                   "inside it: the maps of the levels in between cannot be read; run ckpt in "
                   "the user namespace's parent");
  }
  TRY_ASSIGN(*u.mutable_uid_map(), ParseMap(Proc(root) + "uid_map"));
  TRY_ASSIGN(*u.mutable_gid_map(), ParseMap(Proc(root) + "gid_map"));
  if (u.uid_map().empty() || u.gid_map().empty())
    return Error(Who(root) + ": its user namespace has no " +
                 (u.uid_map().empty() ? "uid" : "gid") +
                 " map (never written): its tasks' ids cannot be named");
  TRY_ASSIGN(std::string sg, io::ReadFile(Proc(root) + "setgroups"));
  u.set_setgroups_deny(sg.rfind("deny", 0) == 0);
  TRY_ASSIGN(proc::Status rs, proc::ReadStatus(root));
  for (uint32_t g : rs.groups) u.add_host_groups(g);

  // Who owns the tree's other namespaces: its user namespace or ckpt's.
  struct Own {
    bool is_own;
    const char* name;
    void (pb::UserNsEntry::*set)(bool);
  };
  const Own kinds[] = {{e.pid(), "pid", &pb::UserNsEntry::set_owns_pid},
                       {e.uts(), "uts", &pb::UserNsEntry::set_owns_uts},
                       {e.ipc(), "ipc", &pb::UserNsEntry::set_owns_ipc},
                       {e.net(), "net", &pb::UserNsEntry::set_owns_net},
                       {e.time(), "time", &pb::UserNsEntry::set_owns_time},
                       {e.cgroup(), "cgroup", &pb::UserNsEntry::set_owns_cgroup}};
  for (const Own& k : kinds) {
    if (!k.is_own) continue;
    TRY_ASSIGN(uint64_t owner, OwnerOf(root, k.name));
    if (owner == theirs)
      (u.*k.set)(true);
    else if (owner != mine)
      return Error(Who(root) + ": its " + k.name + " namespace belongs to a user namespace that " +
                   "is neither ckpt's nor the tree's: not supported");
  }
  // Made by the clone that makes the user namespace: owned by it.
  bool mnt_theirs = true;
  if (e.mnt()) {
    TRY_ASSIGN(uint64_t owner, OwnerOf(root, "mnt"));
    mnt_theirs = owner == theirs;
  }
  const char* not_theirs = e.pid() && !u.owns_pid()   ? "pid"
                           : e.ipc() && !u.owns_ipc() ? "IPC"
                           : !mnt_theirs              ? "mount"
                                                      : nullptr;
  if (not_theirs)
    return Error(Who(root) + ": its " + not_theirs +
                 " namespace belongs to ckpt's user namespace, not to the tree's own: not "
                 "supported");
  // Its IPC namespace is filled from outside the tree (restore_tree.h,
  // FillIpcNamespaceOf): the segments' creator is gone once the tree runs,
  // so with kernel.shm_rmid_forced on, one that no task attaches would be
  // destroyed at once.
  if (e.ipc()) {
    int loose = 0;
    TRY(InNamespaceOf(root, Kind::kIpc, [&]() -> Status {
      TRY_ASSIGN(std::string forced, io::ReadFile("/proc/sys/kernel/shm_rmid_forced"));
      if (atoi(forced.c_str()) == 0) return Ok();
      TRY_ASSIGN(std::string shm, io::ReadFile("/proc/sysvipc/shm"));
      // key shmid perms size cpid lpid nattch ...: the header, then a line each.
      std::istringstream in(shm);
      std::string line;
      std::getline(in, line);
      while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string key, id, perms, size, cpid, lpid;
        long nattch = -1;
        if (f >> key >> id >> perms >> size >> cpid >> lpid >> nattch && nattch == 0) loose++;
      }
      return Ok();
    }));
    if (loose)
      return Error(Who(root) + ": its IPC namespace has kernel.shm_rmid_forced on and " +
                   std::to_string(loose) +
                   " SysV segment(s) no task attaches: in a user "
                   "namespace of the tree's own, restore could not keep them");
  }
  // clone3 set_tid from inside the user namespace only reaches pid
  // namespaces it owns: without one, only a lone task keeps its pid.
  bool lone = tree.size() == 1 && tree[0].proc && tree[0].proc->threads().size() == 1;
  if (!lone && !e.pid())
    return Error(Who(root) +
                 ": a tree in a user namespace of its own with more than one task "
                 "or thread needs a pid namespace made inside that user namespace (clone with "
                 "CLONE_NEWUSER | CLONE_NEWPID): its tasks could not be given their pids");
  LOG_INFO(Who(root) + ": user namespace of its own, uid map " + MapOneLine(u.uid_map()) +
           ", gid map " + MapOneLine(u.gid_map()) +
           (u.setgroups_deny() ? ", setgroups denied" : ""));
  return u;
}

Status CredsIntoUserNs(const pb::UserNsEntry& u, pid_t pid, pb::CredsEntry* c) {
  auto uid = [&](uint32_t id, const char* what) -> Result<uint32_t> {
    uint32_t in;
    if (!ToInside(u.uid_map(), id, &in))
      return Error(Who(pid) + ": its " + what + " " + std::to_string(id) +
                   " is not mapped in its user namespace");
    return in;
  };
  auto gid = [&](uint32_t id, const char* what) -> Result<uint32_t> {
    uint32_t in;
    if (!ToInside(u.gid_map(), id, &in))
      return Error(Who(pid) + ": its " + what + " " + std::to_string(id) +
                   " is not mapped in its user namespace");
    return in;
  };
  TRY_ASSIGN(uint32_t r, uid(c->uid(), "uid"));
  TRY_ASSIGN(uint32_t e, uid(c->euid(), "effective uid"));
  TRY_ASSIGN(uint32_t s, uid(c->suid(), "saved uid"));
  TRY_ASSIGN(uint32_t f, uid(c->fsuid(), "fs uid"));
  c->set_uid(r), c->set_euid(e), c->set_suid(s), c->set_fsuid(f);
  TRY_ASSIGN(r, gid(c->gid(), "gid"));
  TRY_ASSIGN(e, gid(c->egid(), "effective gid"));
  TRY_ASSIGN(s, gid(c->sgid(), "saved gid"));
  TRY_ASSIGN(f, gid(c->fsgid(), "fs gid"));
  c->set_gid(r), c->set_egid(e), c->set_sgid(s), c->set_fsgid(f);

  std::vector<uint32_t> host(c->groups().begin(), c->groups().end());
  std::vector<uint32_t> root_groups(u.host_groups().begin(), u.host_groups().end());
  std::vector<uint32_t> a = host, b = root_groups;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  bool as_root = a == b;  // then it starts with them at restore
  if (!as_root && u.setgroups_deny())
    return Error(Who(pid) +
                 ": its supplementary groups differ from the tree root's and "
                 "setgroups is denied in its user namespace: they cannot be given back");
  uint32_t overflow = OverflowGid();
  c->clear_groups();
  for (uint32_t g : host) {
    uint32_t in;
    if (!ToInside(u.gid_map(), g, &in)) {
      if (!as_root)
        return Error(Who(pid) + ": its supplementary group " + std::to_string(g) +
                     " is not mapped in its user namespace and not one of the root's: it "
                     "cannot be given back");
      in = overflow;  // what getgroups() shows inside
    }
    c->add_groups(in);
  }
  return Ok();
}

// ---- restore ----

Status CheckUserNsImage(const pb::UserNsEntry& u) {
  TRY(CheckExtents(u.uid_map(), "uid map"));
  TRY(CheckExtents(u.gid_map(), "gid map"));
  if (u.host_groups_size() > kMaxGroups) return Error("namespaces.img: too many groups");
  return Ok();
}

uint64_t RootUserNsCloneFlags(const pb::NamespacesEntry& e) {
  if (!e.user()) return 0;
  const pb::UserNsEntry& u = e.user_ns();
  return CLONE_NEWUSER | (e.uts() && u.owns_uts() ? CLONE_NEWUTS : 0) |
         (e.net() && u.owns_net() ? CLONE_NEWNET : 0) |
         (e.cgroup() && u.owns_cgroup() ? CLONE_NEWCGROUP : 0);
}

Status WriteUserNsMaps(pid_t pid, const pb::UserNsEntry& u) {
  std::string base = Proc(pid);
  // "deny" must come before the gid map; "allow" is the default.
  if (u.setgroups_deny())
    TRY(WriteProcFile(base + "setgroups", "deny", "setgroups of the tree's user namespace"));
  TRY(WriteProcFile(base + "uid_map", MapText(u.uid_map()),
                    "the tree's uid map (" + MapOneLine(u.uid_map()) + ")"));
  TRY(WriteProcFile(base + "gid_map", MapText(u.gid_map()),
                    "the tree's gid map (" + MapOneLine(u.gid_map()) + ")"));
  LOG_INFO("the tree's user namespace: uid map " + MapOneLine(u.uid_map()) + ", gid map " +
           MapOneLine(u.gid_map()) + (u.setgroups_deny() ? ", setgroups denied" : ""));
  return Ok();
}

uint32_t UidInside(const pb::UserNsEntry* u, uint32_t uid) {
  uint32_t in = uid;
  if (u && !ToInside(u->uid_map(), uid, &in)) in = Overflow("overflowuid");
  return in;
}

uint32_t GidInside(const pb::UserNsEntry* u, uint32_t gid) {
  uint32_t in = gid;
  if (u && !ToInside(u->gid_map(), gid, &in)) in = OverflowGid();
  return in;
}

std::string MountOptionInside(const pb::UserNsEntry* u, const std::string& opt) {
  if (!u) return opt;
  bool is_uid = opt.rfind("uid=", 0) == 0, is_gid = opt.rfind("gid=", 0) == 0;
  if (!is_uid && !is_gid) return opt;
  char* end = nullptr;
  unsigned long v = strtoul(opt.c_str() + 4, &end, 10);
  if (!end || *end || v > 0xffffffffu) return opt;
  uint32_t in = is_uid ? UidInside(u, uint32_t(v)) : GidInside(u, uint32_t(v));
  return opt.substr(0, 4) + std::to_string(in);
}

Status WithFsIds(uint32_t uid, uint32_t gid, const std::function<Status()>& fn) {
  struct Ctx {
    uint32_t uid, gid;
    const std::function<Status()>* fn;
    Status result;
  } c{uid, gid, &fn, Ok()};
  constexpr size_t kStack = 512 * 1024;
  void* stack =
      mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return Error::Errno("mmap a helper stack");
  auto entry = [](void* arg) -> int {
    Ctx* c = static_cast<Ctx*>(arg);
    syscall(SYS_setfsgid, c->gid);
    syscall(SYS_setfsuid, c->uid);
    // setfs[ug]id report the old value, never an error: read them back.
    if (uint32_t(syscall(SYS_setfsuid, -1)) != c->uid ||
        uint32_t(syscall(SYS_setfsgid, -1)) != c->gid)
      c->result = Error("cannot take fs uid " + std::to_string(c->uid) + " and gid " +
                        std::to_string(c->gid) + " in the tree's user namespace");
    else
      c->result = (*c->fn)();
    return 0;
  };
  // No exit signal: only our waitpid(__WALL) sees it end.
  pid_t child =
      clone(entry, static_cast<char*>(stack) + kStack, CLONE_VM | CLONE_FILES | CLONE_VFORK, &c);
  int err = errno;
  Status out = Ok();
  if (child < 0) {
    out = Error::Errno("clone (a helper with the namespace's fs ids)", err);
  } else {
    int st;
    while (waitpid(child, &st, __WALL) < 0 && errno == EINTR) {
    }
    out = std::move(c.result);
  }
  munmap(stack, kStack);
  return out;
}

Status WithMappedFsIds(const pb::UserNsEntry& u, const std::function<Status()>& fn) {
  if (u.uid_map().empty() || u.gid_map().empty()) return Error("the user namespace maps no ids");
  return WithFsIds(u.uid_map(0).first(), u.gid_map(0).first(), fn);
}

size_t TidsSettableInside(size_t levels) { return levels > 1 ? levels - 1 : levels; }

bool KeepInheritedGroups(const google::protobuf::RepeatedField<uint32_t>& groups) {
  int n = getgroups(0, nullptr);
  if (n < 0 || n != groups.size()) return false;
  std::vector<gid_t> now(static_cast<size_t>(n));
  if (getgroups(n, now.data()) != n) return false;
  std::vector<uint32_t> want(groups.begin(), groups.end());
  std::vector<uint32_t> have(now.begin(), now.end());
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  return want == have;
}

}  // namespace ckpt::ns
