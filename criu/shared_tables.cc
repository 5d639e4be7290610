#include "criu/shared_tables.h"

#include <linux/kcmp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>
#include <string>

#include "compel/seize.h"

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
  // fs structs shared along parent links restore; find each one's top.
  std::map<pid_t, pid_t> fs_top;  // pid -> topmost ancestor it shares its fs struct with
  for (const TreeTask* t : live) {  // parents come before children
    auto parent = by_pid.find(t->ppid);
    bool with_parent = false;
    if (parent != by_pid.end()) {
      TRY_ASSIGN(with_parent, Same(t->pid, t->ppid, kFs));
    }
    if (with_parent) out.fs_with_parent.insert(t->pid);
    fs_top[t->pid] = with_parent ? fs_top.at(t->ppid) : t->pid;
  }
  for (size_t i = 0; i < live.size(); i++)
    for (size_t j = i + 1; j < live.size(); j++) {
      pid_t a = live[i]->pid, b = live[j]->pid;
      TRY_ASSIGN(bool files, Same(a, b, kFiles));
      if (files)
        return Error(Who(a) + " and " + Who(b) + " share one " + kFiles.what + " (a clone with " +
                     kFiles.flag + " but no CLONE_VM): not supported yet");
      TRY_ASSIGN(bool fs, Same(a, b, kFs));
      if (fs && fs_top.at(a) != fs_top.at(b))
        return Error(Who(a) + " and " + Who(b) + " share one " + kFs.what +
                     " but not through their parents: not supported yet");
    }
  return out;
}

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
        return Error(Who(t.pid()) + " shared its parent's fs struct (CLONE_FS), but a helper task "
                     "(for an exited session or group leader) must create it here: not supported");
  return uint64_t(CLONE_FS);
}

}  // namespace ckpt
