#include "criu/restore_tree.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/fault.h"
#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/clone_pid.h"
#include "criu/files/fd_install.h"
#include "criu/files/fd_restore.h"
#include "criu/files/file_types.h"
#include "criu/files/pid_view.h"
#include "criu/files/tty.h"
#include "criu/ns/ipc_ns.h"
#include "criu/ns/mnt_ns.h"  // mnt ns
#include "criu/ns/namespaces.h"
#include "criu/ns/pid_ns.h"
#include "criu/ns/sem_undo.h"
#include "criu/ns/user_ns.h"
#include "criu/shared_tables.h"
#include "criu/cow_premap.h"
#include "criu/shmem.h"

namespace ckpt {
namespace {

constexpr int kBarrierTimeoutSec = 120;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// Counts one more task; the last one wakes every waiter (waking on every
// step would cost N^2 wakeups for a tree of N).
void Bump(uint32_t* v, uint32_t want) {
  if (__atomic_add_fetch(v, 1, __ATOMIC_SEQ_CST) >= want)
    syscall(SYS_futex, v, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

// Waits until *v reaches `want`, or another task failed.
Status Barrier(uint32_t* v, uint32_t want, TreeSync* sync, const char* what) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    uint32_t cur = __atomic_load_n(v, __ATOMIC_SEQ_CST);
    if (cur >= want) return Ok();
    if (__atomic_load_n(&sync->failed, __ATOMIC_SEQ_CST))
      return Error(std::string("another task failed while waiting for ") + what);
    struct timespec now, tmo = {0, 100 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec > kBarrierTimeoutSec)
      return Error(std::string("timed out waiting for ") + what);
    syscall(SYS_futex, v, FUTEX_WAIT, cur, &tmo, nullptr, 0);
  }
}

std::string InUse(pid_t pid) {
  std::string comm = "?";
  auto c = io::ReadFile("/proc/" + std::to_string(pid) + "/comm");
  if (c.ok()) comm = c->substr(0, c->find('\n'));
  return Who(pid) + " is already in use (by '" + comm + "'): cannot restore";
}

// Creates task idx with its pids: every level of its chain, or, if the
// outermost pid is taken, all but that one (the tree does not see it).
Result<pid_t> RawClone(const TreeImages& tree, int idx, uint64_t extra_flags = 0) {
  const TaskImages& t = tree.tasks[idx];
  std::vector<pid_t> ids = ns::SetTidOf(t.pstree);
  // An init of a pid namespace: one level deeper than its parent (for the
  // root: than ckpt's namespace, which is the chains' outermost level).
  int parent_levels = 1;
  if (idx > 0)
    for (const TaskImages& p : tree.tasks)
      if (p.pid() == pid_t(t.pstree.ppid())) parent_levels = std::max(1, p.pstree.ns_pid_size());
  uint64_t flags = int(ids.size()) > parent_levels ? CLONE_NEWPID : 0;
  flags |= extra_flags;
  TRY_ASSIGN(uint64_t fs_flag, FsCloneFlag(tree, idx));  // criu/shared_tables.h
  flags |= fs_flag;
  TRY_ASSIGN(uint64_t files_flag, FilesCloneFlag(tree, idx));  // criu/shared_tables.h
  flags |= files_flag;
  if (idx == 0 && tree.namespaces.ipc()) flags |= CLONE_NEWIPC;
  // user namespaces (criu/ns/user_ns.h): the root is born with the tree's
  // user namespace (which then owns its new namespaces); the others are
  // forked inside it, which cannot choose their pid in ckpt's pid namespace.
  size_t n = ids.size();
  if (idx == 0) flags |= ns::RootUserNsCloneFlags(tree.namespaces);
  if (idx == 0 && tree.namespaces.mnt()) flags |= CLONE_NEWNS;  // mnt ns
  if (idx > 0 && tree.namespaces.user()) n = ns::TidsSettableInside(n);
  pid_t r = ForkWithPids(ids.data(), n, flags);
  if (r < 0 && errno == EEXIST && n == ids.size() && ids.size() > 1) {
    LOG_INFO(Who(t.pid()) + ": outer pid " + std::to_string(ids.back()) +
             " is taken; the kernel picks another (the tree sees " + std::to_string(ids[0]) + ")");
    r = ForkWithPids(ids.data(), ids.size() - 1, flags);
  }
  if (r < 0) {
    if (errno == EEXIST) return Error(InUse(ids.back()), EEXIST);
    return Error::Errno("clone3 with pid " + std::to_string(ids[0]));
  }
  return pid_t(r);
}

[[noreturn]] void ExitLike(uint32_t status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_UNBLOCK, &s, nullptr);
    kill(getpid(), sig);
  }
  _exit(WEXITSTATUS(status));
}

Status OpenTreeFiles(const TreeImages& tree, const images::ImageDir& dir, const Options& o,
                     TreeFds& fds) {
  // Every file once, dependencies first.
  files::RestoreOpts ro{.shell_job = o.shell_job,
                        .tcp_established = o.tcp_established,
                        .tcp_close = o.tcp_close,
                        .ctx = nullptr,
                        .shmem = &fds.shmem,
                        .user_ns = tree.namespaces.user() ? &tree.namespaces.user_ns() : nullptr,
                        .inherited = fds.inherited,
                        .orphan_pty_sk = fds.orphan_pty_sk};
  // Files the root holds are opened at its own numbers (fd_install.h).
  TRY_ASSIGN(fds.files,
             files::OpenFiles(dir, tree.files, ro, fds.base, fds.homes));
  return Ok();
}

// The root, alone in its new IPC namespace: every object of it, then the
// segments the tree attaches (the namespace dies with a failed restore:
// nothing to undo).
Status FillIpcNamespace(const TreeImages& tree, const images::ImageDir& dir,
                        bool defer_rmid = false) {
  std::vector<const pb::MmEntry*> mms;
  for (const TaskImages& t : tree.tasks)
    if (!t.zombie()) mms.push_back(&t.mm);
  auto attached = [&]() -> Status {
    std::vector<int> created;
    // Those marked removed: ckpt removes them once the tree has them attached.
    TRY_ASSIGN(std::vector<int> doomed, RestoreSysvShm(dir, mms, &created));
    (void)doomed;
    return Ok();
  };
  return ns::RestoreIpcNamespace(dir, attached, defer_rmid);
}

Status RunTask(const TreeImages& tree, int idx, const images::ImageDir& dir, const Options& o,
               TreeFds& fds, TreeSync* sync) {
  const TaskImages& t = tree.tasks[idx];
  const TaskImages& root = tree.tasks[0];
  pid_t pid = t.pid();
  uint32_t n = uint32_t(tree.tasks.size());
  // With --shell-job the root stays in ckpt's session and group (the
  // shell's job); tasks that shared the root's session or group follow.
  bool outer_sid = o.shell_job && t.pstree.sid() == root.pstree.sid();
  bool outer_pgid = o.shell_job && t.pstree.pgid() == root.pstree.pgid();

  {
    files::PidView view;
    view.self = pid;
    for (const TaskImages& o : tree.tasks) view.inner[o.pid()] = o.vpid();
    files::SetPidView(std::move(view));
  }
  if (fds.go_fd >= 0) {  // wait until ckpt traces us
    if (fds.go_w >= 0) close(fds.go_w);
    char c;
    if (read(fds.go_fd, &c, 1) != 1) return Error("ckpt went away");
    close(fds.go_fd);
    fds.go_fd = -1;
  }
  // user namespaces (criu/ns/namespaces.h): a time namespace the tree's
  // user namespace owns is made by the root, inside it.
  if (idx == 0) TRY(ns::EnterOwnedTimeNs(tree.namespaces));
  if (!outer_sid && t.pstree.sid() == uint32_t(pid)) {
    if (setsid() < 0) return Error::Errno("setsid");
  } else if (!outer_pgid && t.pstree.pgid() == uint32_t(pid)) {
    if (setpgid(0, 0) < 0) return Error::Errno("setpgid");
  }
  // A subreaper in the image adopts the members its helper children leave.
  if (!t.zombie() && t.core.child_subreaper()) prctl(PR_SET_CHILD_SUBREAPER, 1);
  // (In a user namespace of its own, ckpt did it: FillIpcNamespaceOf; the
  // semaphores the root used last are the root's to set.)
  if (idx == 0 && tree.namespaces.ipc() && !fds.in_user_ns) TRY(FillIpcNamespace(tree, dir));
  if (idx == 0 && tree.namespaces.ipc() && fds.in_user_ns)
    TRY(ns::RestoreSemValuesOf(dir, t.vpid()));
  // Its SEM_UNDO list (criu/ns/sem_undo.h), once the semaphores exist.
  if (!t.zombie()) TRY(ns::RestoreSemUndo(t.core));
  // mnt ns: after the IPC sysctls (ckpt's /proc/sys), before any file is opened.
  if (idx == 0 && tree.namespaces.mnt())
    TRY(ns::RestoreMountNamespace(
        dir, {.externals = o.external,
              .root = o.root,
              .user_ns = tree.namespaces.user() ? &tree.namespaces.user_ns() : nullptr}));
  if (idx == 0) TRY(OpenTreeFiles(tree, dir, o, fds));
  // A session leader takes its controlling terminal (a pty of the tree)
  // before it creates the rest of its session: they inherit it at fork.
  bool leads_session = !outer_sid && t.pstree.sid() == uint32_t(pid);
  if (leads_session && !t.zombie()) TRY(files::RestoreControllingTty(tree.files, fds.files));
  Bump(&sync->created, n);

  // Private anonymous memory in place before the children are forked:
  // what they shared at dump they share again (criu/cow_premap.h).
  // Not under lazy restore: its memory is not read before the tree runs.
  if (!t.helper && fds.lazy_fd < 0) TRY(PremapCow(t, dir));
  for (int c : t.children) {
    auto r = CloneTask(tree, c, dir, o, fds, sync);
    if (!r.ok()) return std::move(r.error());
  }
  TRY(Barrier(&sync->created, n, sync, "all tasks to be created"));
  CKPT_FAULT("restore-forked");

  // Phase 2: join process groups, now that every leader exists.
  // A group or session of an outer pid namespace is not visible (0) in
  // the task's own: it came with the fork, as it did originally.
  pid_t want = t.vpgid();
  if (!outer_pgid && want != 0 && getpgid(0) != want) {
    if (setpgid(0, want) < 0) return Error::Errno("joining process group " + std::to_string(want));
  }
  pid_t sid = getsid(0);
  if (!outer_sid && t.vsid() != 0 && sid != t.vsid())
    return Error("ends up in session " + std::to_string(sid) + " instead of " +
                 std::to_string(t.vsid()) + " (this session layout needs helper tasks)");
  Bump(&sync->grouped, n);
  TRY(Barrier(&sync->grouped, n, sync, "process groups"));
  // Every process group exists now: the terminal's foreground group too.
  if (leads_session && !t.zombie()) TRY(files::RestoreForegroundGroup(tree.files, fds.files));

  if (t.zombie()) {
    // user namespaces: the uid a parent's waitid() reports is the zombie's,
    // not saved: it takes the root's (the namespace's ids) rather than
    // ckpt's, which is not even mapped there.
    if (fds.in_user_ns && tree.tasks[0].core.has_creds()) {
      const pb::CredsEntry& rc = tree.tasks[0].core.creds();
      if (setresgid(rc.gid(), rc.gid(), rc.gid()) < 0 ||
          setresuid(rc.uid(), rc.uid(), rc.uid()) < 0)
        return Error::Errno("taking the root's ids for a zombie");
    }
    ExitLike(t.pstree.exit_status());
  }
  for (int c : t.children)
    if (tree.tasks[c].helper) {
      int st;
      while (waitpid(tree.tasks[c].vpid(), &st, __WALL) < 0 && errno == EINTR) {
      }
    }
  return EnterRestorer(t, dir, o, fds);
}

// A stand-in for the exited leader `pid` of a session or group of
// `member`; `chain` is its pid at every namespace level, as the member saw it.
Result<int> AddHelper(TreeImages& tree, pid_t pid, uint32_t sid, int parent,
                      const google::protobuf::RepeatedField<uint32_t>& chain,
                      const google::protobuf::RepeatedField<uint32_t>& sid_chain) {
  for (uint32_t v : chain)
    if (v == 0)
      return Error("the exited leader " + std::to_string(pid) +
                   " of a session or group is not visible in every pid namespace of its members");
  TaskImages h;
  *h.pstree.mutable_ns_pid() = chain;
  *h.pstree.mutable_ns_pgid() = chain;
  *h.pstree.mutable_ns_sid() = sid_chain;
  if (!chain.empty()) *h.pstree.add_thread_ns_tids()->mutable_id() = chain;
  h.helper = true;
  h.pstree.set_pid(uint32_t(pid));
  h.pstree.set_ppid(uint32_t(tree.tasks[parent].pid()));
  h.pstree.set_pgid(uint32_t(pid));
  h.pstree.set_sid(sid);
  h.pstree.add_threads(uint32_t(pid));
  h.pstree.set_zombie(true);  // exits after the group phase, like a zombie
  h.pstree.set_exit_status(0);
  tree.tasks.push_back(std::move(h));
  int idx = int(tree.tasks.size()) - 1;
  tree.tasks[parent].children.push_back(idx);
  return idx;
}

}  // namespace

Status PlanHelpers(TreeImages& tree) {
  std::map<pid_t, int> index;
  for (size_t i = 0; i < tree.tasks.size(); i++) index[tree.tasks[i].pid()] = int(i);
  const uint32_t root_sid = tree.tasks[0].pstree.sid();
  const uint32_t root_pgid = tree.tasks[0].pstree.pgid();
  size_t n = tree.tasks.size();
  // Sessions whose leader is gone: a helper with the leader's pid calls
  // setsid() and forks the topmost members; when it exits they are
  // reparented to their real parent, which must be a subreaper.
  std::map<uint32_t, int> session_helper;
  for (size_t i = 1; i < n; i++) {
    const TaskImages& t = tree.tasks[i];
    uint32_t s = t.pstree.sid();
    if (s == root_sid || (index.count(pid_t(s)) && !session_helper.count(s))) continue;
    int parent = index.at(pid_t(t.pstree.ppid()));
    if (tree.tasks[parent].pstree.sid() == s) continue;  // inherits it
    auto it = session_helper.find(s);
    if (it == session_helper.end()) {
      const TaskImages& p = tree.tasks[parent];
      if (p.zombie() || !p.core.child_subreaper())
        return Error("pid " + std::to_string(t.pid()) + " is in session " + std::to_string(s) +
                     " whose leader has exited, and its parent " + std::to_string(p.pid()) +
                     " is not a child subreaper: this layout cannot be recreated");
      TRY_ASSIGN(int h, AddHelper(tree, pid_t(s), s, parent, t.pstree.ns_sid(), t.pstree.ns_sid()));
      it = session_helper.emplace(s, h).first;
      index[pid_t(s)] = it->second;
    } else if (tree.tasks[it->second].pstree.ppid() != t.pstree.ppid()) {
      return Error("session " + std::to_string(s) +
                   " (leader exited) has members under different parents: not supported");
    }
    auto& kids = tree.tasks[parent].children;
    kids.erase(std::remove(kids.begin(), kids.end(), int(i)), kids.end());
    tree.tasks[it->second].children.push_back(int(i));
  }
  // Groups whose leader is gone: a helper with the leader's pid, forked by
  // a task of the same session, makes the group for the others to join.
  for (size_t i = 1; i < n; i++) {
    const TaskImages& t = tree.tasks[i];
    uint32_t g = t.pstree.pgid();
    if (g == root_pgid || index.count(pid_t(g))) continue;
    int parent = -1;
    auto leader = index.find(pid_t(t.pstree.sid()));
    if (leader != index.end() && !tree.tasks[leader->second].zombie()) parent = leader->second;
    for (size_t j = 0; parent < 0 && j < n; j++)
      if (!tree.tasks[j].zombie() && tree.tasks[j].pstree.sid() == t.pstree.sid()) parent = int(j);
    if (parent < 0)
      return Error("process group " + std::to_string(g) + " (leader exited) has no live task " +
                   "in its session to recreate it");
    uint32_t sid = t.pstree.sid();
    TRY_ASSIGN(index[pid_t(g)],
               AddHelper(tree, pid_t(g), sid, parent, t.pstree.ns_pgid(), t.pstree.ns_sid()));
  }
  for (size_t i = n; i < tree.tasks.size(); i++) {
    std::string kids;
    for (int c : tree.tasks[i].children) kids += " " + std::to_string(tree.tasks[c].pid());
    LOG_DBG("helper task " + std::to_string(tree.tasks[i].pid()) + " under " +
            std::to_string(tree.tasks[i].pstree.ppid()) + ", forks:" + kids);
  }
  return Ok();
}

Status FillIpcNamespaceOf(const TreeImages& tree, const images::ImageDir& dir, pid_t root) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd err_r(p[0]), err_w(p[1]);
  pid_t f = fork();
  if (f < 0) return Error::Errno("fork");
  if (f == 0) {
    err_r.reset();
    auto join = [&](const char* kind, int flag) -> Status {
      std::string path = "/proc/" + std::to_string(root) + "/ns/" + kind;
      UniqueFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || setns(ns.get(), flag) < 0) return Error::Errno("joining " + path);
      return Ok();
    };
    Status s = join("ipc", CLONE_NEWIPC);
    if (s.ok()) s = join("pid", CLONE_NEWPID);  // our children's pid namespace
    // We exit: shm_rmid_forced waits for the tree to attach its segments.
    if (s.ok()) s = FillIpcNamespace(tree, dir, true);
    if (!s.ok()) (void)!write(err_w.get(), s.error().message().data(), s.error().message().size());
    _exit(s.ok() ? 0 : 1);
  }
  err_w.reset();
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(err_r.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) msg.append(buf, size_t(n));
  int st;
  while (waitpid(f, &st, 0) < 0 && errno == EINTR) {
  }
  if (!msg.empty()) return Error(msg);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error("filling the tree's IPC namespace: the filler died (status " + std::to_string(st) +
                 ")");
  return Ok();
}

Result<TreeSync*> CreateTreeSync() {
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Error::Errno("mmap");
  return static_cast<TreeSync*>(p);
}

Result<pid_t> CloneTask(const TreeImages& tree, int idx, const images::ImageDir& dir,
                        const Options& o, TreeFds& fds, TreeSync* sync) {
  // RPC rst_sibling: the root is a child of ckpt's parent (which reaps it).
  TRY_ASSIGN(pid_t child, RawClone(tree, idx, idx == 0 && o.rst_sibling ? CLONE_PARENT : 0));
  if (child != 0) return child;
  Status s = RunTask(tree, idx, dir, o, fds, sync);
  __atomic_store_n(&sync->failed, 1, __ATOMIC_SEQ_CST);
  std::string msg = Who(tree.tasks[idx].pid()) + ": " + s.error().message() + "\n";
  (void)!write(fds.err_fd, msg.data(), msg.size());
  _exit(1);
}

}  // namespace ckpt
