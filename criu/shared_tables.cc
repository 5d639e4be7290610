#include "criu/shared_tables.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>
#include <string>

#include "base/unique_fd.h"
#include "compel/seize.h"
#include "criu/files/flock.h"

namespace ckpt {
namespace {

struct Kind {
  int kcmp;
  const char* what;  // what is shared
  const char* flag;  // the clone flag that shares it
};
constexpr Kind kFiles = {KCMP_FILES, "fd table", "CLONE_FILES"};
constexpr Kind kFs = {KCMP_FS, "fs struct (cwd, root, umask)", "CLONE_FS"};

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// true: the same object.
Result<bool> Same(pid_t a, pid_t b, const Kind& k) {
  long r = syscall(SYS_kcmp, a, b, k.kcmp, 0, 0);
  if (r < 0) return Error::Errno(Who(a) + ": kcmp " + k.flag + " with " + Who(b));
  return r == 0;
}

}  // namespace

Result<TreeSharing> CheckSharedTables(const std::vector<TreeTask>& tree) {
  TreeSharing out;
  std::vector<const TreeTask*> live;
  std::map<pid_t, const TreeTask*> by_pid;
  for (const TreeTask& t : tree) {
    if (!t.proc) continue;
    live.push_back(&t);
    by_pid[t.pid] = &t;
    for (pid_t tid : t.proc->threads()) {
      if (tid == t.pid) continue;
      for (const Kind* k : {&kFiles, &kFs}) {
        TRY_ASSIGN(bool same, Same(t.pid, tid, *k));
        if (!same)
          return Error(Who(t.pid) + " thread " + std::to_string(tid) + " has its own " + k->what +
                       " (unshare " + k->flag +
                       "): not supported (restored threads share their process's)");
      }
    }
  }
  // Fs structs and fd tables shared along parent links restore; find the
  // top of each group (parents come before children).
  std::map<pid_t, pid_t> fs_top, files_top;  // pid -> topmost ancestor sharing it
  for (const TreeTask* t : live) {
    bool fs = false, files = false;
    if (by_pid.count(t->ppid)) {
      TRY_ASSIGN(fs, Same(t->pid, t->ppid, kFs));
      TRY_ASSIGN(files, Same(t->pid, t->ppid, kFiles));
    }
    if (fs) out.fs_with_parent.insert(t->pid);
    if (files) out.files_with_parent.insert(t->pid);
    fs_top[t->pid] = fs ? fs_top.at(t->ppid) : t->pid;
    files_top[t->pid] = files ? files_top.at(t->ppid) : t->pid;
  }
  for (size_t i = 0; i < live.size(); i++)
    for (size_t j = i + 1; j < live.size(); j++) {
      pid_t a = live[i]->pid, b = live[j]->pid;
      TRY_ASSIGN(bool files, Same(a, b, kFiles));
      if (files && files_top.at(a) != files_top.at(b))
        return Error(Who(a) + " and " + Who(b) + " share one " + kFiles.what + " (" + kFiles.flag +
                     " without CLONE_VM) but not through their parents: not supported");
      TRY_ASSIGN(bool fs, Same(a, b, kFs));
      if (fs && fs_top.at(a) != fs_top.at(b))
        return Error(Who(a) + " and " + Who(b) + " share one " + kFs.what +
                     " but not through their parents: not supported yet");
    }
  return out;
}

namespace {

// The creator of task idx in this restore is its real parent (not a
// helper standing in for an exited session or group leader).
bool CreatedByParent(const TreeImages& tree, int idx) {
  const TaskImages& t = tree.tasks[size_t(idx)];
  for (const TaskImages& c : tree.tasks)
    for (int k : c.children)
      if (k == idx) return c.pid() == pid_t(t.pstree.ppid());
  return false;
}

int ParentOf(const TreeImages& tree, int idx) {
  for (size_t i = 0; i < tree.tasks.size(); i++)
    for (int k : tree.tasks[i].children)
      if (k == idx) return int(i);
  return -1;
}

bool SharesFiles(const TaskImages& t) { return !t.zombie() && t.core.files_shared_with_parent(); }

// The owner of task idx's fd table: itself, or its topmost ancestor
// sharing it (bounded: a tree has no cycles, but images could).
int TableOwner(const TreeImages& tree, int idx) {
  for (size_t steps = 0; steps <= tree.tasks.size() && SharesFiles(tree.tasks[size_t(idx)]);
       steps++) {
    int p = ParentOf(tree, idx);
    if (p < 0) break;
    idx = p;
  }
  return idx;
}

}  // namespace

Result<uint64_t> FsCloneFlag(const TreeImages& tree, int idx) {
  const TaskImages& t = tree.tasks[size_t(idx)];
  if (t.zombie() || !t.core.fs_shared_with_parent()) return uint64_t(0);
  // Each sharer chroot()s and chdir()s while restoring: a second chroot
  // into the same relative place would miss.
  if (t.fs.root() != "/")
    return Error(Who(t.pid()) + " shared its parent's fs struct (CLONE_FS) with the root " +
                 t.fs.root() + ": not supported (only with the root /)");
  for (const TaskImages& c : tree.tasks)
    for (int k : c.children)
      if (k == idx && c.pid() != pid_t(t.pstree.ppid()))
        return Error(Who(t.pid()) +
                     " shared its parent's fs struct (CLONE_FS), but a helper task "
                     "(for an exited session or group leader) must create it here: not supported");
  return uint64_t(CLONE_FS);
}

Result<uint64_t> FilesCloneFlag(const TreeImages& tree, int idx) {
  const TaskImages& t = tree.tasks[size_t(idx)];
  if (!SharesFiles(t)) return uint64_t(0);
  std::string who = Who(t.pid()) + " shared its parent's fd table (CLONE_FILES)";
  int p = ParentOf(tree, idx);
  if (p < 0) return Error(who + ", but it has no parent in the tree: bad image");
  if (!CreatedByParent(tree, idx))
    return Error(who +
                 ", but a helper task (for an exited session or group leader) must create "
                 "it here: not supported");
  const TaskImages& parent = tree.tasks[size_t(p)];
  if (parent.zombie())
    return Error(who + ", but its parent " + Who(parent.pid()) + " is a zombie: bad image");
  bool same = t.fds.size() == parent.fds.size();
  for (size_t i = 0; same && i < t.fds.size(); i++)
    same = t.fds[i].fd() == parent.fds[i].fd() && t.fds[i].file_id() == parent.fds[i].file_id() &&
           t.fds[i].cloexec() == parent.fds[i].cloexec();
  if (!same)
    return Error(who + ", but its fds differ from its parent's " + Who(parent.pid()) +
                 ": bad image");
  // Closing any fd of a file drops the POSIX locks its table holds on it,
  // and each restorer closes the fds it mapped files through: a file the
  // group both maps and holds POSIX locks on would lose them (only a
  // process alone in its table maps such a file through a kept fd).
  int owner = TableOwner(tree, idx);
  std::set<pid_t> group;
  std::set<std::string> mapped;
  for (size_t i = 0; i < tree.tasks.size(); i++) {
    if (TableOwner(tree, int(i)) != owner || tree.tasks[i].zombie()) continue;
    group.insert(tree.tasks[i].pid());
    for (const pb::VmaEntry& v : tree.tasks[i].mm.vmas())
      if (v.kind() == pb::VMA_FILE_PRIVATE || v.kind() == pb::VMA_FILE_SHARED)
        mapped.insert(v.path());
  }
  for (const pb::FdinfoEntry& f : t.fds) {
    auto e = tree.files.find(f.file_id());
    if (e == tree.files.end()) continue;
    const files::LockList* locks = e->second.has_reg()   ? &e->second.reg().locks()
                                   : e->second.has_chr() ? &e->second.chr().locks()
                                                         : nullptr;
    const std::string& path = e->second.has_reg()   ? e->second.reg().path()
                              : e->second.has_chr() ? e->second.chr().path()
                                                    : std::string();
    if (!locks || !mapped.count(path)) continue;
    for (const pb::FileLock& l : *locks)
      if (l.kind() == pb::LK_POSIX && group.count(pid_t(l.owner())))
        return Error(who + ", and " + Who(pid_t(l.owner())) + " holds POSIX locks on " + path +
                     " (fd " + std::to_string(f.fd()) +
                     "), which the processes of that table also map: not supported");
  }
  return uint64_t(CLONE_FILES);
}

FdTableSync& FdTableSync::operator=(FdTableSync&& o) noexcept {
  if (this == &o) return *this;
  if (counters_) munmap(counters_, len_);
  members_ = std::move(o.members_);
  counters_ = o.counters_;
  len_ = o.len_;
  failed_ = o.failed_;
  o.counters_ = nullptr;
  o.len_ = 0;
  return *this;
}

FdTableSync::~FdTableSync() {
  if (counters_) munmap(counters_, len_);
}

Result<FdTableSync> FdTableSync::Plan(const TreeImages& tree) {
  FdTableSync s;
  std::map<int, int> slot_of;  // owner index -> slot
  for (size_t i = 0; i < tree.tasks.size(); i++) {
    if (!SharesFiles(tree.tasks[i])) continue;
    TRY(FilesCloneFlag(tree, int(i)));
    int owner = TableOwner(tree, int(i));
    if (owner == int(i)) return Error(Who(tree.tasks[i].pid()) + ": fd table owner not found");
    auto it = slot_of.emplace(owner, int(slot_of.size())).first;
    Member& o = s.members_[tree.tasks[size_t(owner)].pid()];
    o.role = Role::kOwner;
    o.slot = it->second;
    o.sharers++;
    s.members_[tree.tasks[i].pid()] = {Role::kSharer, it->second, 0};
  }
  if (slot_of.empty()) return s;
  s.len_ = (sizeof(Counters) * slot_of.size() + 4095) & ~size_t(4095);
  void* p = mmap(nullptr, s.len_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Error::Errno("mmap for shared fd tables");
  s.counters_ = static_cast<Counters*>(p);
  return s;
}

FdTableSync::Role FdTableSync::RoleOf(pid_t pid) const {
  auto it = members_.find(pid);
  return it == members_.end() ? Role::kAlone : it->second.role;
}

namespace {

constexpr int kWaitTimeoutSec = 120;

void Add(uint32_t* v) {
  __atomic_add_fetch(v, 1, __ATOMIC_SEQ_CST);
  syscall(SYS_futex, v, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace

Status FdTableSync::Wait(const uint32_t* v, uint32_t want, const char* what) const {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    uint32_t cur = __atomic_load_n(v, __ATOMIC_SEQ_CST);
    if (cur >= want) return Ok();
    if (failed_ && __atomic_load_n(failed_, __ATOMIC_SEQ_CST))
      return Error(std::string("another task failed while waiting for ") + what);
    struct timespec now, tmo = {0, 100 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > kWaitTimeoutSec)
      return Error(std::string("timed out waiting for ") + what);
    syscall(SYS_futex, v, FUTEX_WAIT, cur, &tmo, nullptr, 0);
  }
}

Status FdTableSync::SharerArrive(pid_t pid) const {
  Counters& c = counters_[members_.at(pid).slot];
  Add(&c.arrived);
  return Wait(&c.started, 1, "the owner of its shared fd table to start");
}

Result<std::set<int>> FdTableSync::OwnerStart(pid_t pid) const {
  const Member& m = members_.at(pid);
  Counters& c = counters_[m.slot];
  TRY(Wait(&c.arrived, m.sharers, "the processes sharing its fd table"));
  std::set<int> open_now;
  UniqueFd dir(open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return Error::Errno("open /proc/self/fd");
  int self = dir.get();
  // getdents64 by hand: no allocation between reading and using the list.
  char buf[8192];
  for (;;) {
    long n = syscall(SYS_getdents64, self, buf, sizeof(buf));
    if (n < 0) return Error::Errno("read /proc/self/fd");
    if (n == 0) break;
    for (long off = 0; off < n;) {
      struct Dirent {
        uint64_t ino;
        int64_t off;
        uint16_t reclen;
        uint8_t type;
        char name[];
      };
      const auto* d = reinterpret_cast<const Dirent*>(buf + off);
      char* end = nullptr;
      long fd = strtol(d->name, &end, 10);
      if (end != d->name && *end == 0 && fd != self) open_now.insert(int(fd));
      off += d->reclen;
    }
  }
  Add(&c.started);
  return open_now;
}

Status FdTableSync::OwnerWaitPlaced(pid_t pid) const {
  const Member& m = members_.at(pid);
  return Wait(&counters_[m.slot].placed, m.sharers, "the processes sharing its fd table");
}

void FdTableSync::SharerPlaced(pid_t pid) const { Add(&counters_[members_.at(pid).slot].placed); }

void FdTableSync::OwnerInstalled(pid_t pid) const {
  Add(&counters_[members_.at(pid).slot].installed);
}

Status FdTableSync::SharerWaitInstalled(pid_t pid) const {
  return Wait(&counters_[members_.at(pid).slot].installed, 1,
              "the owner of its shared fd table to lay out its fds");
}

Status PlaceSharerServiceFds(const std::vector<int*>& slots, const std::set<int>& own, int base) {
  std::map<int, int> moved;  // old number -> copy (slots may share an fd)
  for (int* fd : slots) {
    if (*fd < 0) continue;
    auto it = moved.find(*fd);
    if (it == moved.end()) {
      int to = fcntl(*fd, F_DUPFD_CLOEXEC, base);
      if (to < 0) return Error::Errno("copying a service fd above " + std::to_string(base));
      it = moved.emplace(*fd, to).first;
    }
    *fd = it->second;
  }
  for (const auto& [old, copy] : moved)
    if (own.count(old)) close(old);
  return Ok();
}

Status TakeOwnPosixLocks(const std::vector<pb::FdinfoEntry>& fds,
                         const std::map<uint32_t, pb::FileEntry>& files) {
  std::set<uint32_t> done;
  for (const pb::FdinfoEntry& f : fds) {
    if (!done.insert(f.file_id()).second) continue;
    auto e = files.find(f.file_id());
    if (e == files.end()) continue;
    std::string what = "fd " + std::to_string(f.fd());
    if (e->second.has_reg())
      TRY(files::RestoreTaskLocks(int(f.fd()), e->second.reg().locks(), e->second.reg().path()),
          what);
    if (e->second.has_chr())
      TRY(files::RestoreTaskLocks(int(f.fd()), e->second.chr().locks(), e->second.chr().path()),
          what);
  }
  return Ok();
}

}  // namespace ckpt
