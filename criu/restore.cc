// Restore orchestration: load and check images, clone the root with its
// pid (it creates the rest of the tree), trace every thread through its
// restorer to the rt_sigreturn, then let the whole tree go.
#include "criu/restore.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "base/fault.h"
#include "base/io.h"
#include "base/log.h"
#include "compel/infect.h"
#include "compel/regs.h"
#include "criu/action_hooks.h"
#include "criu/cgroup.h"
#include "criu/files/inherit_fd.h"
#include "criu/files/orphan_pty.h"
#include "criu/lazy_pages.h"
#include "criu/page_compress.h"
#include "criu/lazy_source.h"
#include "criu/net/net_restore.h"
#include "criu/ns/ipc_ns.h"
#include "criu/ns/mnt_ns.h"  // mnt ns
#include "criu/ns/namespaces.h"
#include "criu/ns/net_ns.h"
#include "criu/proc_parse.h"
#include "criu/fd_limit.h"
#include "criu/files/fd_install.h"
#include "criu/restore_tree.h"
#include "criu/sched_state.h"
#include "criu/fown.h"
#include "criu/task_stop.h"
#include "criu/stats.h"
#include "criu/seccomp.h"
#include "criu/shm_files.h"
#include "criu/security.h"
#include "criu/shared_tables.h"
#include "criu/shmem.h"
#include "criu/task_images.h"

namespace ckpt {
namespace {

constexpr int kRestoreTimeoutSec = 300;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// Non-blocking: tasks may still be alive (and hold the write end).
std::string ReadChildErrors(int fd) {
  fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) msg.append(buf, n);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  return msg;
}

// Where each thread of the tree is on its way through the restorer.
enum class Stage { kRunning, kTrapped, kInSigreturn, kDone };

// The tasks' real pids: in pid namespaces a task's pid here (ckpt's
// namespace) may differ from the dump's when that one was taken. Each new
// task or thread is matched to its image when its creator's fork or clone
// event arrives: among the creator's image children (in the order it
// creates them) or threads, the one with its innermost pid.
class Tracer {
 public:
  Tracer(const TreeImages& tree, int err_fd) : tree_(tree), err_fd_(err_fd) {
    for (const TaskImages& t : tree.tasks) {
      if (t.zombie())
        zombies_++;
      else
        threads_ += size_t(t.core.threads_size());
    }
    real_tids_.resize(tree.tasks.size());
    for (size_t i = 0; i < tree.tasks.size(); i++)
      real_tids_[i].assign(size_t(tree.tasks[i].pstree.threads_size()), 0);
  }
  ~Tracer() { KillAll(); }

  // ckpt created the root: its real pid.
  void CreatedRoot(pid_t pid) {
    created_.insert(pid);
    Place(pid, 0, 0);
    stage_[pid] = Stage::kRunning;
  }
  void SetCgroups(const CgroupRestore* cg) { cgroups_ = cg; }
  // Runs until every thread sits stopped right after its rt_sigreturn.
  Status Run();
  // Unmaps the restorers, puts the exact registers back, detaches all.
  Status Release();
  // The real pid of tasks[idx] (after Run).
  pid_t RealPid(size_t idx) const { return real_tids_[idx][0]; }

 private:
  struct Place_ {
    int task, thread;
  };
  Status Fail(pid_t pid, const std::string& what) {
    // A task's own message says why; what we saw of it comes second.
    std::string msg = ReadChildErrors(err_fd_);
    std::string who = Who(pid);
    auto it = where_.find(pid);
    if (it != where_.end() && tree_.tasks[it->second.task].pid() != pid)
      who += " (pid " + std::to_string(tree_.tasks[it->second.task].pid()) + " of the dump)";
    if (msg.empty()) return Error(who + ": " + what);
    return Error(msg + " (" + who + ": " + what + ")");
  }
  void Place(pid_t real, int task, int thread) {
    where_[real] = {task, thread};
    real_tids_[task][thread] = real;
  }
  Status Match(pid_t creator, pid_t child, bool thread);
  Status OnStop(pid_t w, int st);
  void KillAll();

  const TreeImages& tree_;
  int err_fd_;
  size_t threads_ = 0, zombies_ = 0;
  std::map<pid_t, Place_> where_;              // real tid -> its image
  std::vector<std::vector<pid_t>> real_tids_;  // per task, per thread: real tid
  std::map<pid_t, Stage> stage_;               // live threads only
  std::map<pid_t, uint64_t> trap_ip_;
  std::set<pid_t> unplaced_;  // stopped at birth before their creator's event
  std::set<pid_t> created_;   // only these may be killed on failure
  const CgroupRestore* cgroups_ = nullptr;
  bool armed_ = true;
};

Status Tracer::Match(pid_t creator, pid_t child, bool thread) {
  created_.insert(child);
  auto c = where_.find(creator);
  if (c == where_.end()) return Fail(creator, "unknown task created " + Who(child));
  const TaskImages& parent = tree_.tasks[size_t(c->second.task)];
  TRY_ASSIGN(proc::Status st, proc::ReadStatus(child));
  pid_t inner = st.ns_pid.empty() ? child : st.ns_pid.back();
  bool placed = false;
  if (thread) {
    for (int i = 1; i < parent.pstree.threads_size() && !placed; i++)
      if (parent.vtid(i) == inner && !real_tids_[size_t(c->second.task)][size_t(i)]) {
        Place(child, c->second.task, i);
        placed = true;
      }
  } else {
    for (int k : parent.children)
      if (tree_.tasks[size_t(k)].vpid() == inner && !real_tids_[size_t(k)][0]) {
        Place(child, k, 0);
        placed = true;
        break;
      }
  }
  if (!placed)
    return Fail(creator, "created " + Who(child) + " (" + std::to_string(inner) +
                             " in its namespace), which is not in the images");
  const TaskImages& t = tree_.tasks[size_t(where_[child].task)];
  if (!t.zombie()) stage_[child] = Stage::kRunning;
  if (t.pid() != child)
    LOG_INFO(Who(t.pid()) + " of the dump is " + Who(child) + " here (its outer pid was taken)");
  // cgroups: into its cgroup before it runs (and forks) anything.
  if (!thread && cgroups_) TRY(cgroups_->Place(child, uint32_t(t.pid())));
  if (unplaced_.erase(child) && ptrace(PTRACE_CONT, child, nullptr, nullptr) < 0)
    return Error::Errno("PTRACE_CONT " + Who(child));
  return Ok();
}

Status Tracer::OnStop(pid_t w, int st) {
  int sig = WSTOPSIG(st);
  int event = st >> 16;
  if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_VFORK) {
    unsigned long child = 0;
    ptrace(PTRACE_GETEVENTMSG, w, nullptr, &child);
    TRY(Match(w, pid_t(child), event == PTRACE_EVENT_CLONE));
    if (ptrace(PTRACE_CONT, w, nullptr, nullptr) < 0) return Error::Errno("PTRACE_CONT");
    return Ok();
  }
  if (event == PTRACE_EVENT_STOP) {  // a new task's first stop, or a group stop
    created_.insert(w);
    if (!where_.count(w)) {  // its creator's event comes next: then it goes on
      unplaced_.insert(w);
      return Ok();
    }
    if (ptrace(PTRACE_CONT, w, nullptr, nullptr) < 0) return Error::Errno("PTRACE_CONT");
    return Ok();
  }
  auto it = stage_.find(w);
  if (sig == (SIGTRAP | 0x80) && it != stage_.end()) {
    if (it->second == Stage::kTrapped) {  // entering rt_sigreturn
      it->second = Stage::kInSigreturn;
      if (ptrace(PTRACE_SYSCALL, w, nullptr, nullptr) < 0) return Error::Errno("PTRACE_SYSCALL");
    } else if (it->second == Stage::kInSigreturn) {
      it->second = Stage::kDone;  // stays stopped until Release
    } else {
      return Fail(w, "unexpected system call stop");
    }
    return Ok();
  }
  if (sig == SIGTRAP && it != stage_.end() && it->second == Stage::kRunning) {
    TRY_ASSIGN(compel::Regs r, compel::GetRegs(w));
    trap_ip_[w] = r.gp.rip;
    it->second = Stage::kTrapped;
    if (ptrace(PTRACE_SYSCALL, w, nullptr, nullptr) < 0) return Error::Errno("PTRACE_SYSCALL");
    return Ok();
  }
  // A zombie-to-be ends by the signal that killed it (ExitLike): a crash
  // signal (SIGSEGV, SIGTRAP, ...) is then the one it is meant to die of.
  if (auto z = where_.find(w); z != where_.end() && tree_.tasks[size_t(z->second.task)].zombie()) {
    uint32_t want = tree_.tasks[size_t(z->second.task)].pstree.exit_status();
    if (WIFSIGNALED(want) && int(WTERMSIG(want)) == sig) {
      if (ptrace(PTRACE_CONT, w, nullptr, (void*)(long)sig) < 0) return Error::Errno("PTRACE_CONT");
      return Ok();
    }
  }
  if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP) {
    siginfo_t si = {};
    ptrace(PTRACE_GETSIGINFO, w, nullptr, &si);
    user_regs_struct r = {};
    ptrace(PTRACE_GETREGS, w, nullptr, &r);
    char buf[160];
    snprintf(buf, sizeof(buf), "signal %d (code %d, address %p) at ip %llx while restoring", sig,
             si.si_code, si.si_addr, r.rip);
    return Fail(w, buf);
  }
  // Anything else (SIGCHLD of a zombie being made, ...) is the task's.
  if (ptrace(PTRACE_CONT, w, nullptr, (void*)(long)sig) < 0) return Error::Errno("PTRACE_CONT");
  return Ok();
}

Status Tracer::Run() {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  size_t done = 0, zombies_gone = 0;
  while (done < threads_ || zombies_gone < zombies_) {
    int st;
    pid_t w = waitpid(-1, &st, __WALL | WNOHANG);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("waitpid");
    }
    if (w == 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec > kRestoreTimeoutSec)
        return Fail(RealPid(0), "restore timed out");
      usleep(500);
      continue;
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      auto it = where_.find(w);
      if (it != where_.end() && tree_.tasks[size_t(it->second.task)].zombie()) {
        // A zombie-to-be did its part, ending as the image says (no core
        // dump: ExitLike forbids it).
        uint32_t want = tree_.tasks[size_t(it->second.task)].pstree.exit_status() & ~0x80u;
        if (uint32_t(st) != want)
          return Fail(w, "the zombie-to-be ended with status " + std::to_string(st) + ", not " +
                             std::to_string(want));
        zombies_gone++;
        continue;
      }
      std::string how = WIFEXITED(st) ? "exited with " + std::to_string(WEXITSTATUS(st))
                                      : "was killed by signal " + std::to_string(WTERMSIG(st));
      return Fail(w, "the task " + how);
    }
    Stage before = stage_.count(w) ? stage_[w] : Stage::kRunning;
    TRY(OnStop(w, st));
    if (stage_.count(w) && before != Stage::kDone && stage_[w] == Stage::kDone) done++;
  }
  return Ok();
}

Status Tracer::Release() {
  for (size_t ti = 0; ti < tree_.tasks.size(); ti++) {
    const TaskImages& t = tree_.tasks[ti];
    if (t.zombie()) continue;
    pid_t pid = RealPid(ti);
    uint64_t trap = trap_ip_.at(pid);
    TRY_ASSIGN(std::string maps_text, io::ReadFile("/proc/" + std::to_string(pid) + "/maps"));
    TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ParseMaps(maps_text));
    uint64_t start = 0, end = 0;
    for (const auto& m : maps)
      if (trap >= m.start && trap < m.end) start = m.start, end = m.end;
    if (!start) return Error(Who(pid) + ": restorer region not found");
    std::string mem = "/proc/" + std::to_string(pid) + "/mem";
    UniqueFd mem_fd(open(mem.c_str(), O_RDWR | O_CLOEXEC));
    if (!mem_fd) return Error::Errno("open " + mem);
    // The whole region, as its RestoreArgs say: parking the vdso inside it
    // split it into several mappings (found by the soak: the tail stayed).
    {
      uint64_t self[2];  // self_start, self_len
      uint64_t at = start + ((blobs::Restorer().size + 4095) & ~uint64_t(4095)) +
                    offsetof(abi::RestoreArgs, self_start);
      static_assert(offsetof(abi::RestoreArgs, self_len) == offsetof(abi::RestoreArgs, self_start) + 8);
      if (pread(mem_fd.get(), self, sizeof(self), off_t(at)) == ssize_t(sizeof(self)) &&
          self[0] == start && self[1] >= end - start)
        end = start + self[1];
    }
    TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(pid, start, end));
    for (int i = 0; i < t.core.threads_size(); i++) {
      pid_t tid = real_tids_[ti][size_t(i)];
      TRY_ASSIGN(compel::Regs now, compel::GetRegs(tid));
      if (now.gp.rip != t.regs[i].gp.rip || now.gp.rsp != t.regs[i].gp.rsp)
        return Error(Who(tid) + ": rt_sigreturn did not land on the dumped registers");
      if (i == 0) {
        // Signals stay pending (not delivered to us) while we borrow the task.
        TRY_ASSIGN(uint64_t mask, compel::GetSigmask(tid));
        TRY(compel::SetSigmask(tid, ~0ull));
        // An ignored SIGTRAP, reset by the restorer's int3 (criu/task_stop.h).
        if (uint64_t act = IgnoredSigtrapAction(t.core, start)) {
          TRY_ASSIGN(long ra, compel::RemoteSyscall(tid, mem_fd.get(), exec, now.gp,
                                                    SYS_rt_sigaction, SIGTRAP, long(act), 0, 8));
          if (ra != 0) return Error::Errno(Who(pid) + ": SIGTRAP back to SIG_IGN", int(-ra));
        }
        TRY_ASSIGN(long r, compel::RemoteSyscall(tid, mem_fd.get(), exec, now.gp, SYS_munmap,
                                                 long(start), long(end - start)));
        TRY(compel::SetSigmask(tid, mask));
        if (r != 0) return Error::Errno(Who(pid) + ": unmapping the restorer", int(-r));
      }
      // Registers exactly as dumped (the xstate too, as ptrace read it).
      compel::Regs fin = t.regs[i];
      fin.gp = now.gp;
      TRY(compel::SetRegs(tid, fin, true));
    }
  }
  // Issue 14: scheduling (criu/sched_state.h), SIGIO owners (criu/fown.h),
  // job-control stops (criu/task_stop.h): every task and fd is in place.
  std::map<pid_t, pid_t> real_tid_of;  // the dump's tids -> these
  for (size_t ti = 0; ti < tree_.tasks.size(); ti++)
    for (int k = 0; k < tree_.tasks[ti].pstree.threads_size(); k++)
      real_tid_of[pid_t(tree_.tasks[ti].pstree.threads(k))] = real_tids_[ti][size_t(k)];
  for (size_t ti = 0; ti < tree_.tasks.size(); ti++) {
    const TaskImages& t = tree_.tasks[ti];
    if (t.zombie()) continue;
    if (t.core.has_sched()) TRY(RestoreSchedOutside(RealPid(ti), real_tids_[ti], t.core.sched()));
    TRY(RestoreFowns(RealPid(ti), t.core, real_tid_of));
    TRY(StopRestoredTask(RealPid(ti), t.core));
  }
  // Detaches every task; parents collect stops they had collected at dump
  // (criu/task_stop.h).
  TRY(DetachTree(tree_, real_tids_));
  armed_ = false;
  return Ok();
}

void Tracer::KillAll() {
  if (!armed_) return;
  for (pid_t p : created_) kill(p, SIGKILL);
  // We are a subreaper while restoring: every orphan comes to us.
  int st;
  while (waitpid(-1, &st, __WALL) > 0 || errno == EINTR) {
  }
}

Status WritePidfile(const Options& o, pid_t pid) {
  if (o.pidfile.empty()) return Ok();
  std::string path = o.pidfile;
  if (path[0] != '/') path = o.images_dir + "/" + path;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Error::Errno("open pidfile " + path);
  std::string s = std::to_string(pid);
  return io::WriteFull(fd.get(), s.data(), s.size());
}

}  // namespace

Result<int> Restore(const Options& o, const KernelFeatures& kf, pid_t* root_pid) {
  RestoreStats stats;  // --display-stats (criu/stats.h)
  int64_t restore_start = NowUs();
  TRY(RunAction(o, {Action::kPreRestore}));  // action hooks
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(o.images_dir));
  TRY_ASSIGN(TreeImages tree, LoadTreeImages(*dir, o.lsm_profile),
             "reading images from " + o.images_dir);
  TRY(UnpackPages(*dir, tree));  // --compress'ed pages (criu/page_compress.h)
  TRY(PlanHelpers(tree));
  // Processes sharing one fd table (criu/shared_tables.h): checked, ordered.
  TRY_ASSIGN(FdTableSync fd_tables, FdTableSync::Plan(tree));
  {  // criu/security.h: only credentials the caller could give itself
    TRY_ASSIGN(security::Caller caller, security::Caller::Current());
    TRY(security::CheckMayRestore(caller, tree, o.tcp_established));
  }
  // --lazy-pages (criu/lazy_pages.h): the daemon must be there before anything exists.
  UniqueFd lazy_conn;
  uint64_t lazy_features = 0;
  if (o.lazy_pages) {
    TRY(CheckLazyTree(tree));
    TRY_ASSIGN(lazy_conn, ConnectLazyDaemon(o.images_dir, &lazy_features));
  } else {
    TRY(RefuseHeldPages(o.images_dir));
  }
  // --inherit-fd (criu/files/inherit_fd.h): checked before anything exists.
  TRY_ASSIGN(files::InheritedFds inherited, files::InheritedFds::Prepare(o, tree, tree.max_fd + 1));
  pid_t root = tree.tasks[0].pid();
  if (!kf.clone3_set_tid) return Error("this kernel cannot create a process with a chosen pid");
  if (tree.inventory.shell_job() && !o.shell_job)
    LOG_WARN("the dump was taken with --shell-job; terminal fds need --shell-job to restore");
  // Pids the tree keeps here. In pid namespaces only the outermost level is
  // ours to check, and a taken one is left to the kernel (restore_tree.cc).
  for (const TaskImages& t : tree.tasks) {
    if (t.pstree.ns_pid_size() > 1) continue;
    for (uint32_t tid : t.pstree.threads())
      if (kill(pid_t(tid), 0) == 0 || errno != ESRCH) {
        std::string comm = "?";
        auto c = io::ReadFile("/proc/" + std::to_string(tid) + "/comm");
        if (c.ok()) comm = c->substr(0, c->find('\n'));
        return Error(Who(pid_t(tid)) + " is already in use (by '" + comm + "'): cannot restore");
      }
  }
  // cgroups (criu/cgroup.h): checked and made before anything else exists
  // (a mount of the tree may show one); declared before the Tracer, so
  // removed after it reaped the tasks.
  TRY_ASSIGN(std::unique_ptr<CgroupRestore> cgroups, CgroupRestore::Prepare(*dir, o));
  if (tree.namespaces.ipc()) TRY(ns::CheckIpcNamespaceImage(*dir));
  if (tree.namespaces.mnt())  // mnt ns: built by the root (restore_tree.cc)
    TRY(ns::CheckMountNamespaceImage(*dir, {.externals = o.external, .root = o.root}));
  // ckpt enters the tree's own namespaces (uts, net, time) and fills them
  // before anything of the tree is made: everything below happens there.
  // (The root makes and fills its own IPC namespace: restore_tree.cc.)
  TRY_ASSIGN(std::unique_ptr<ns::NsRestore> namespaces,
             ns::NsRestore::Enter(tree.namespaces, o.join_ns));
  // (A network namespace the tree's user namespace owns comes with the
  // root: filled once it exists, below.)
  // --empty-ns net: made, left empty; --join-ns net: someone else's.
  bool fill_net = !(o.empty_ns & CLONE_NEWNET) && !(namespaces->joined() & CLONE_NEWNET);
  if (tree.namespaces.net() && !namespaces->net_with_root() && fill_net)
    TRY(ns::RestoreNetNamespace(*dir, {.externals = o.external, .weak_sysctls = o.weak_sysctls},
                                 namespaces->host_netns()));

  if (tree.namespaces.cgroup()) TRY(namespaces->EnterCgroupNamespace(cgroups->NsRootDir()));
  CKPT_FAULT("restore-namespaces");

  // Everything every task inherits: shared memory, the error pipe, the log.
  std::vector<const pb::MmEntry*> mms;
  for (const TaskImages& t : tree.tasks)
    if (!t.zombie()) mms.push_back(&t.mm);
  TreeFds fds;
  fds.base = tree.max_fd + 1;
  fds.entries = &tree.files;
  fds.inherited = &inherited;
  files::OrphanPtys orphans;  // --orphan-pts-master (criu/files/orphan_pty.h)
  if (o.orphan_pts_master) {
    TRY_ASSIGN(orphans, files::OrphanPtys::Create(fds.base));
    fds.orphan_pty_sk = orphans.task_end();
  }
  TRY_ASSIGN(fds.shmem, RestoreShmem(*dir, mms, !tree.namespaces.mnt()));
  TRY(RestoreShmFiles(*dir));  // tmpfs files mapped shared get their contents back
  // Segments recreated for a restore that fails must not stay behind.
  struct SysvCleanup {
    std::vector<int> ids;
    bool armed = true;
    ~SysvCleanup() {
      if (armed)
        for (int id : ids) shmctl(id, IPC_RMID, nullptr);
    }
  } sysv_cleanup;
  std::vector<int> doomed_sysv;
  if (!tree.namespaces.ipc()) {
    TRY_ASSIGN(doomed_sysv, RestoreSysvShm(*dir, mms, &sysv_cleanup.ids));
  } else {
    doomed_sysv = DoomedSysvShm(mms);
  }
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd err_r(errp[0]);
  fds.err_fd = errp[1];
  fds.log_fd = dup(log::Fd());
  fds.lazy_fd = lazy_conn.get();
  fds.lazy_features = lazy_features;
  TRY_ASSIGN(TreeSync * sync, CreateTreeSync());
  fd_tables.set_failed_flag(&sync->failed);
  fds.fd_tables = &fd_tables;
  // Before any socket exists: packets of the connections being restored
  // wait until every one of them is whole.
  net::NetRestore net;
  if (!namespaces->net_with_root()) TRY(net.Lock(tree, o));

  // The root holds every file of the tree at once, above the numbers being
  // restored (criu/fd_limit.h; each task's own limits come back in its
  // restorer).
  fds.homes = files::HomesOf(tree.tasks[0].fds);
  TRY(RaiseFdLimitFor(
      FdNumbersNeeded(tree.max_fd, tree.files.size(), tree.files.size() - fds.homes.size())));
  // Orphans of a failed restore must come back to us to be reaped.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  LOG_INFO("Creating the tree of " + Who(root) + " (" + std::to_string(tree.tasks.size()) +
           " processes, " + std::to_string(tree.nr_threads) + " threads)");
  // The root waits for our go: it must be traced before it forks anything.
  int gop[2];
  if (pipe2(gop, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd go_r(gop[0]), go_w(gop[1]);
  fds.go_fd = go_r.get();
  fds.go_w = go_w.get();
  fds.in_user_ns = tree.namespaces.user();
  Tracer tracer(tree, err_r.get());
  tracer.SetCgroups(cgroups.get());
  // user namespaces (criu/ns/user_ns.h): the root is born with the tree's
  // user namespace, inheriting the groups ckpt takes for it; once it
  // exists ckpt writes its maps and joins its uts and network namespaces.
  TRY(namespaces->BeforeRootClone());
  int64_t fork_start = NowUs();
  auto root_clone = CloneTask(tree, 0, *dir, o, fds, sync);
  Status after_clone = namespaces->AfterRootClone(root_clone.ok() ? *root_clone : -1);
  TRY_ASSIGN(pid_t child, std::move(root_clone));
  tracer.CreatedRoot(child);
  TRY(std::move(after_clone));
  CKPT_FAULT("restore-root-cloned");
  TRY(RunAction(o, {Action::kSetupNamespaces, child}));  // action hooks
  if (namespaces->net_with_root()) {
    if (fill_net)
      TRY(ns::RestoreNetNamespace(*dir, {.externals = o.external, .weak_sysctls = o.weak_sysctls},
                                 namespaces->host_netns()));
    TRY(net.Lock(tree, o));
  }
  if (tree.namespaces.user() && tree.namespaces.ipc()) TRY(FillIpcNamespaceOf(tree, *dir, child));
  TRY(RunAction(o, {Action::kPostSetupNamespaces, child}));  // action hooks
  go_r.reset();
  inherited.CloseCopies();
  orphans.CloseTaskEnd();
  close(fds.err_fd);
  close(fds.log_fd);
  for (auto& kv : fds.shmem) close(kv.second);
  // EXITKILL: a ckpt that dies before letting the tree go takes it along.
  long opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL;
  // Restored seccomp filters must not stop the restorer, the traced
  // rt_sigreturn or our remote munmap: suspended until we detach (every
  // task and thread inherits the option from the root).
  if (TreeHasSeccomp(tree)) opts |= kSuspendSeccomp;
  if (ptrace(PTRACE_SEIZE, child, nullptr, (void*)opts) < 0)
    return Error::Errno("PTRACE_SEIZE " + Who(child) +
                        ((opts & kSuspendSeccomp)
                             ? " with PTRACE_O_SUSPEND_SECCOMP (the dump has seccomp filters: "
                               "ckpt needs CAP_SYS_ADMIN and no seccomp filter of its own)"
                             : ""));
  TRY(cgroups->Place(child, uint32_t(root)));  // cgroups: before it runs
  if (write(go_w.get(), "g", 1) != 1) return Error::Errno("start restore");
  go_w.reset();

  TRY(tracer.Run());
  if (lazy_conn) {  // every restorer sent its userfaultfd: the daemon must hold them all
    size_t sent = 0;
    for (const TaskImages& t : tree.tasks) sent += !t.zombie() && !t.helper;
    TRY(LazyRestoreDone(lazy_conn.get(), sent));
  }
  stats.forking_us = NowUs() - fork_start;
  TRY(orphans.HandOut(o, tracer.RealPid(0)));  // before any task runs
  TRY(cgroups->ApplyLimits());  // cgroups: every task is in place
  std::vector<pid_t> real_pids;
  for (size_t i = 0; i < tree.tasks.size(); i++) real_pids.push_back(tracer.RealPid(i));
  TRY(RunAction(o, {Action::kNetworkUnlock, real_pids[0]}));  // action hooks
  TRY(net.Finish(tree, real_pids, *dir, o));
  // user namespaces: the IPC namespace was filled from outside the tree
  // (restore_tree.h); its shm_rmid_forced waited for the attaches.
  if (tree.namespaces.user() && tree.namespaces.ipc()) {
    auto r = ns::RunInIpcNamespace(real_pids[0], [&]() -> Result<std::string> {
      TRY(ns::WriteShmRmidForced(*dir));
      return std::string();
    });
    if (!r.ok()) return std::move(r.error());
  }
  TRY(RunAction(o, {Action::kPostRestore, real_pids[0]}));  // action hooks
  TRY(RunAction(o, {Action::kPreResume, real_pids[0]}));
  CKPT_FAULT("restore-before-resume");
  TRY(tracer.Release());
  if (lazy_conn) LazyTreeRuns(lazy_conn.get());  // the daemon copies the rest now
  lazy_conn.reset();
  cgroups->Commit();
  sysv_cleanup.armed = false;
  // Removed, as at dump, once attached (in the tree's IPC namespace).
  auto remove_doomed = [&]() -> Result<std::string> {
    for (int id : doomed_sysv) shmctl(id, IPC_RMID, nullptr);
    return std::string();
  };
  if (!tree.namespaces.ipc()) {
    (void)remove_doomed();
  } else if (!doomed_sysv.empty()) {
    auto r = ns::RunInIpcNamespace(real_pids[0], remove_doomed);
    if (!r.ok()) LOG_WARN("removing the SysV segments marked removed: " + r.error().message());
  }
  munmap(sync, 4096);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  root = real_pids[0];
  LOG_INFO("Restored the tree of " + Who(tree.tasks[0].pid()) +
           (root != tree.tasks[0].pid() ? " as " + Who(root) : std::string()));
  // action hooks: the tree runs already; as CRIU, a failure here is reported, not undone.
  Status resumed = RunAction(o, {Action::kPostResume, root});
  if (!resumed.ok()) LOG_WARN(resumed.error().message());
  TRY(WritePidfile(o, root));
  if (o.status_fd >= 0) {  // --status-fd, as CRIU: one byte once the tree runs
    if (write(o.status_fd, "", 1) != 1) LOG_WARN("writing to --status-fd failed");
    close(o.status_fd);
  }
  if (root_pid) *root_pid = root;
  stats.restore_us = NowUs() - restore_start;
  stats.tasks = tree.tasks.size();
  if (o.display_stats) fputs(FormatRestoreStats(stats).c_str(), stdout);
  if (o.restore_detached || o.rst_sibling) return 0;

  int st;
  while (waitpid(root, &st, 0) < 0) {
    if (errno != EINTR) return Error::Errno("waitpid " + std::to_string(root));
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

}  // namespace ckpt
