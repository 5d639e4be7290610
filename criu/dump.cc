// Dump orchestration: only sequencing lives here; each step is elsewhere.
#include "criu/dump.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "base/fault.h"
#include "base/io.h"
#include "base/log.h"
#include "compel/infect.h"
#include "compel/seize.h"
#include "criu/action_hooks.h"
#include "criu/cgroup.h"
#include "criu/cgroup_freeze.h"
#include "criu/files/deleted_node.h"
#include "criu/files/fd_dump.h"
#include "criu/lsm.h"
#include "criu/mem_dump.h"
#include "criu/mem_snapshot.h"
#include "criu/mem_track.h"
#include "criu/page_compress.h"
#include "criu/net/net_dump.h"
#include "criu/ns/ipc_ns.h"
#include "criu/ns/mnt_ns.h"  // mnt ns
#include "criu/ns/namespaces.h"
#include "criu/ns/net_ns.h"
#include "criu/ns/pid_ns.h"
#include "criu/ns/sem_undo.h"
#include "criu/ns/user_ns.h"
#include "criu/proc_parse.h"
#include "criu/pstree.h"
#include "criu/regs_pb.h"
#include "criu/rseq_dump.h"
#include "criu/sched_state.h"
#include "criu/seccomp.h"
#include "criu/shm_files.h"
#include "criu/shared_tables.h"
#include "criu/task_stop.h"
#include "criu/fown.h"
#include "criu/security.h"
#include "criu/shmem.h"
#include "criu/stats.h"
#include "images/image_dir.h"
#include "parasite/blobs.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
#include "proto/ns.pb.h"
#include "proto/pstree.pb.h"

namespace ckpt {
namespace {

using images::ImageType;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// Everything read from /proc before the parasite goes in.
struct TaskInfo {
  proc::Stat stat;
  proc::Status status;
  std::vector<proc::MapEntry> maps;
  files::TaskFds fds;
  std::string exe, cwd, root;
  std::string auxv;
  std::vector<pb::PosixTimerEntry> timers;  // ids and notification from /proc
  // Queued signals, peeked while every thread is stopped (before infection).
  std::map<pid_t, std::vector<std::string>> pending;
  std::vector<std::string> shared_pending;
  // rseq registrations, read while every thread is stopped (criu/rseq_dump.h).
  std::map<pid_t, pb::RseqEntry> rseq;
};

// /proc/PID/timers: "ID:", "signal: SIG/VALUE", "notify: KIND/pid|tid.N", "ClockID:".
Result<std::vector<pb::PosixTimerEntry>> ReadPosixTimers(pid_t pid) {
  TRY_ASSIGN(std::string text, io::ReadFile("/proc/" + std::to_string(pid) + "/timers"));
  std::vector<pb::PosixTimerEntry> out;
  std::istringstream in(text);
  std::string key;
  while (in >> key) {
    if (key == "ID:") {
      int id;
      in >> id;
      out.emplace_back();
      out.back().set_id(id);
      out.back().set_interval_ns(0);
      out.back().set_value_ns(0);
    } else if (out.empty()) {
      return Error(Who(pid) + ": malformed timers file");
    } else if (key == "signal:") {
      std::string v;
      in >> v;
      size_t slash = v.find('/');
      out.back().set_signo(atoi(v.c_str()));
      out.back().set_value(
          slash == std::string::npos ? 0 : strtoull(v.c_str() + slash + 1, nullptr, 16));
    } else if (key == "notify:") {
      std::string v;
      in >> v;  // e.g. signal/pid.42, none/pid.42, signal/tid.43
      size_t slash = v.find('/');
      std::string kind = v.substr(0, slash);
      int notify = kind == "none" ? SIGEV_NONE : kind == "thread" ? SIGEV_THREAD : SIGEV_SIGNAL;
      if (v.find("/tid.") != std::string::npos) {
        notify |= SIGEV_THREAD_ID;
        out.back().set_notify_tid(atoi(v.c_str() + v.find("/tid.") + 5));
      }
      out.back().set_notify(notify);
    } else if (key == "ClockID:") {
      int c;
      in >> c;
      out.back().set_clock(c);
    }
  }
  return out;
}

// A task of a tree with its own mount namespace: its files' and cwd's
// paths as it sees them (the restore opens them in the restored mounts);
// one on a mount outside its namespace (opened before its pivot_root,
// passed in) cannot be opened there, and is refused.
Status UseTaskPaths(pid_t pid, TaskInfo& t) {
  std::vector<std::string> links = {"cwd"};
  std::vector<files::FdContext*> which;
  for (size_t i = 0; i < t.fds.fds.size(); i++)
    if (t.fds.handlers[i]->kind == pb::FILE_REG) {  // files reopened by path
      links.push_back("fd/" + std::to_string(t.fds.fds[i].fd));
      which.push_back(&t.fds.fds[i]);
    }
  TRY_ASSIGN(std::vector<ns::TaskPath> paths, ns::TaskPaths(pid, links));
  if (paths.size() != links.size()) return Error(Who(pid) + ": paths of its files not found");
  if (!paths[0].in_ns)
    return Error(Who(pid) + ": its working directory " + t.cwd +
                 " is on a mount outside its mount namespace");
  t.cwd = paths[0].path;
  for (size_t i = 0; i < which.size(); i++) {
    const ns::TaskPath& p = paths[i + 1];
    if (!p.in_ns)
      return Error(Who(pid) + " fd " + std::to_string(which[i]->fd) + ": " + which[i]->link +
                   " is on a mount outside its mount namespace (opened before it entered it, or "
                   "passed in): not supported");
    which[i]->link = p.path;
  }
  return Ok();
}

Result<TaskInfo> Inspect(const compel::SeizedProcess& proc, const Options& o, bool own_mnt_ns) {
  pid_t pid = proc.pid();
  TaskInfo t;
  for (pid_t tid : proc.threads()) {
    TRY_ASSIGN(t.pending[tid], compel::PeekPendingSignals(tid, false));
    TRY_ASSIGN(std::optional<pb::RseqEntry> rseq, ReadRseqRegistration(tid));
    if (rseq) t.rseq[tid] = *rseq;
  }
  TRY_ASSIGN(t.shared_pending, compel::PeekPendingSignals(pid, true));
  TRY_ASSIGN(t.stat, proc::ReadStat(pid));
  TRY_ASSIGN(t.status, proc::ReadStatus(pid));
  std::string base = "/proc/" + std::to_string(pid) + "/";
  TRY_ASSIGN(t.exe, io::ReadLink(base + "exe"));
  TRY_ASSIGN(t.cwd, io::ReadLink(base + "cwd"));
  TRY_ASSIGN(t.root, io::ReadLink(base + "root"));
  TRY_ASSIGN(t.auxv, io::ReadFile(base + "auxv"));
  TRY_ASSIGN(t.maps, proc::ReadSmaps(pid));
  TRY_ASSIGN(t.fds, files::CollectFds(pid, {.shell_job = o.shell_job,
                                            .ext_unix_sk = o.ext_unix_sk,
                                            .tcp_established = o.tcp_established,
                                            .skip_in_flight = o.skip_in_flight,
                                            .externals = &o.external,
                                            .orphan_pts_master = o.orphan_pts_master}));
  if (own_mnt_ns) TRY(UseTaskPaths(pid, t));
  TRY_ASSIGN(t.timers, ReadPosixTimers(pid));
  if (t.timers.size() > abi::kMaxPosixTimers) return Error(Who(pid) + ": too many POSIX timers");
  // A removed working directory is made again at restore (deleted_node.h);
  // a name it still has elsewhere (a bind mount) could not be found.
  struct stat cwd_st;
  if (files::IsDeletedLink(t.cwd) &&
      (stat((base + "cwd").c_str(), &cwd_st) < 0 || cwd_st.st_nlink != 0))
    return Error(Who(pid) + ": working directory " + t.cwd + " was deleted but is still reachable");
  return t;
}

Status WriteOne(images::ImageDir& dir, ImageType type, uint32_t id,
                const google::protobuf::Message& m) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(type, id));
  TRY(w.Write(m));
  return w.Close();
}

Status FillMm(pid_t pid, const TaskInfo& t, const abi::ParasiteMisc& misc, pb::MmEntry* mm) {
  const proc::Stat& s = t.stat;
  mm->set_start_code(s.start_code);
  mm->set_end_code(s.end_code);
  mm->set_start_data(s.start_data);
  mm->set_end_data(s.end_data);
  mm->set_start_brk(s.start_brk);
  mm->set_brk(misc.brk);
  mm->set_start_stack(s.start_stack);
  mm->set_arg_start(s.arg_start);
  mm->set_arg_end(s.arg_end);
  mm->set_env_start(s.env_start);
  mm->set_env_end(s.env_end);
  mm->set_exe_path(t.exe);
  if (t.auxv.size() % 8) return Error(Who(pid) + ": odd auxv size");
  for (size_t i = 0; i + 8 <= t.auxv.size(); i += 8) {
    uint64_t v;
    memcpy(&v, t.auxv.data() + i, 8);
    mm->add_auxv(v);
  }
  return CollectVmas(pid, t.maps, mm);
}

// One thread's registers, masks, stacks and queued signals.
Status FillThread(pid_t tid, compel::Infection& inf, int mem_fd, const TaskInfo& t,
                  pb::ThreadEntry* th) {
  const abi::ParasiteArgs* a = inf.args();
  th->set_tid(uint32_t(tid));
  auto comm = io::ReadFile("/proc/" + std::to_string(inf.leader()) + "/task/" +
                           std::to_string(tid) + "/comm");
  if (comm.ok()) th->set_comm(comm->substr(0, comm->find('\n')));
  uint64_t head = 0;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, tid, &head, &len) == 0) {
    th->set_robust_list(head);
    th->set_robust_len(len);
  }
  compel::Regs regs;
  uint64_t mask;
  abi::KStack alt;
  if (uint32_t(tid) == uint32_t(inf.leader())) {
    regs = inf.orig_regs();
    mask = inf.orig_sigmask();
    alt = a->misc.sigaltstack;
    th->set_clear_tid(a->misc.clear_tid);
  } else {
    TRY_ASSIGN(regs, compel::GetRegs(tid));
    TRY_ASSIGN(mask, compel::GetSigmask(tid));
    uint64_t scratch = inf.remote_args() + offsetof(abi::ParasiteArgs, thread_altstack);
    TRY_ASSIGN(long r, compel::RemoteSyscallRestoring(tid, mem_fd, inf.exec_addr(), SYS_sigaltstack,
                                                      0, long(scratch)));
    if (r < 0) return Error::Errno("tid " + std::to_string(tid) + ": sigaltstack", int(-r));
    alt = a->thread_altstack;
    uint64_t tid_scratch = inf.remote_args() + offsetof(abi::ParasiteArgs, thread_tid_addr);
    constexpr long kPrGetTidAddress = 40;
    TRY_ASSIGN(r, compel::RemoteSyscallRestoring(tid, mem_fd, inf.exec_addr(), SYS_prctl,
                                                 kPrGetTidAddress, long(tid_scratch)));
    if (r < 0) return Error::Errno("tid " + std::to_string(tid) + ": PR_GET_TID_ADDRESS", int(-r));
    th->set_clear_tid(a->thread_tid_addr);
  }
  // A restored task must not rely on the kernel's in-flight restart state.
  compel::PrepareSyscallRestart(regs.gp);
  RegsToProto(regs, th->mutable_regs());
  th->set_blk_sigset(mask);
  pb::SigaltstackEntry* ss = th->mutable_sigaltstack();
  ss->set_sp(alt.sp);
  ss->set_size(alt.size);
  ss->set_flags(uint32_t(alt.flags));
  if (auto rs = t.rseq.find(tid); rs != t.rseq.end()) *th->mutable_rseq() = rs->second;
  for (auto& p : t.pending.at(tid)) th->add_pending(p);
  return Ok();
}

Status FillCore(pid_t pid, TaskInfo& t, compel::Infection& inf, int mem_fd,
                const std::vector<pid_t>& threads, pb::TaskCoreEntry* core) {
  const abi::ParasiteArgs* a = inf.args();
  core->set_pid(uint32_t(pid));
  core->set_comm(std::string(a->misc.comm, strnlen(a->misc.comm, sizeof(a->misc.comm))));
  for (pid_t tid : threads) TRY(FillThread(tid, inf, mem_fd, t, core->add_threads()));
  for (auto& p : t.shared_pending) core->add_shared_pending(p);
  for (uint32_t sig = 1; sig <= abi::kNumSignals; sig++) {
    const abi::KSigaction& k = a->sigacts[sig - 1];
    if (sig == 9 || sig == 19) continue;
    pb::SigactionEntry* e = core->add_sigactions();
    e->set_sig(sig);
    e->set_handler(k.handler);
    e->set_flags(k.flags);
    e->set_restorer(k.restorer);
    e->set_mask(k.mask);
  }
  for (uint32_t w = 0; w < 3; w++) {
    const abi::KItimerval& it = a->itimers[w];
    pb::ItimerEntry* e = core->add_itimers();
    e->set_which(w);
    e->set_interval_us(uint64_t(it.interval.sec) * 1000000 + uint64_t(it.interval.usec));
    e->set_value_us(uint64_t(it.value.sec) * 1000000 + uint64_t(it.value.usec));
  }
  for (size_t i = 0; i < t.timers.size(); i++) {
    pb::PosixTimerEntry* e = core->add_posix_timers();
    *e = t.timers[i];
    const abi::KItimerspec& v = a->timer_vals[i];
    e->set_interval_ns(uint64_t(v.interval.sec) * 1000000000ull + uint64_t(v.interval.nsec));
    e->set_value_ns(uint64_t(v.value.sec) * 1000000000ull + uint64_t(v.value.nsec));
    e->set_overrun(a->timer_overrun[i]);
  }
  pb::CredsEntry* c = core->mutable_creds();
  const proc::Status& s = t.status;
  c->set_uid(s.uid[0]), c->set_euid(s.uid[1]), c->set_suid(s.uid[2]), c->set_fsuid(s.uid[3]);
  c->set_gid(s.gid[0]), c->set_egid(s.gid[1]), c->set_sgid(s.gid[2]), c->set_fsgid(s.gid[3]);
  for (uint32_t g : s.groups) c->add_groups(g);
  c->set_cap_inh(s.cap_inh), c->set_cap_prm(s.cap_prm), c->set_cap_eff(s.cap_eff);
  c->set_cap_bnd(s.cap_bnd), c->set_cap_amb(s.cap_amb);
  for (int r = 0; r < RLIM_NLIMITS && r < 16; r++) {
    pb::RlimitEntry* e = core->add_rlimits();
    e->set_resource(uint32_t(r));
    e->set_cur(a->misc.rlimits[r][0]);
    e->set_max(a->misc.rlimits[r][1]);
  }
  core->set_umask(a->misc.umask);
  core->set_personality(a->misc.personality);
  core->set_dumpable(uint32_t(a->misc.dumpable));
  core->set_pdeath_sig(uint32_t(a->misc.pdeath_sig));
  core->set_child_subreaper(a->misc.child_subreaper != 0);
  core->set_no_new_privs(a->misc.no_new_privs != 0);
  core->set_securebits(a->misc.securebits);
  core->set_thp_disable(a->misc.thp_disable > 0);
  core->set_timerslack_ns(a->misc.timerslack_ns);
  return Ok();
}

// Whether a task of the tree has a child there (whose pages may still be
// its own, shared copy-on-write: criu/mem_dump.h PageIndex).
bool HasChildren(const std::vector<TreeTask>& tree, pid_t pid) {
  return std::any_of(tree.begin(), tree.end(), [&](const TreeTask& t) { return t.ppid == pid; });
}

Status Call(compel::Infection& inf, abi::ParasiteCmd cmd, const char* what, uint32_t nr = 0) {
  TRY_ASSIGN(int64_t r, inf.Call(cmd, nr));
  if (r < 0) return Error::Errno(std::string("parasite: ") + what, int(-r));
  return Ok();
}

// Dumps one live process of the tree (seized, not yet infected).
Status DumpTask(const Options& o, const KernelFeatures& kf, images::ImageDir& dir,
                PageTarget& pages_to, files::FdDumper& fds, ShmemDumper& shmem, TreeTask& task,
                uint32_t pages_id,
                const PageIndex* parent_pages, PageIndex* pages,
                const pb::NamespacesEntry& namespaces,
                const std::vector<pb::SemUndoEntry>& sem_undo, const TaskTrack* prev,
                const std::set<pid_t>& tree_ids, const TreeSharing& sharing,
                const std::map<pid_t, bool>& stop_collected, SnapshotSet& snaps,
                DumpStats& total) {
  pid_t pid = task.pid;
  compel::SeizedProcess& proc = *task.proc;
  TRY_ASSIGN(TaskInfo info, Inspect(proc, o, namespaces.mnt()));
  pb::TaskCoreEntry core;
  // Issue 14: scheduling (criu/sched_state.h), a job-control stop
  // (criu/task_stop.h), SIGIO owners (criu/fown.h); before the parasite.
  TRY_ASSIGN(*core.mutable_sched(), DumpSchedState(pid, proc.threads(), proc.mem_fd()));
  if (proc.stop_signal()) core.set_stop_signal(uint32_t(proc.stop_signal()));
  if (sharing.fs_with_parent.count(pid)) core.set_fs_shared_with_parent(true);
  if (sharing.files_with_parent.count(pid)) core.set_files_shared_with_parent(true);
  if (auto c = stop_collected.find(pid); c != stop_collected.end() && c->second)
    core.set_stop_collected(true);
  {
    std::vector<int> fd_numbers;
    for (const files::FdContext& f : info.fds.fds) fd_numbers.push_back(f.fd);
    TRY_ASSIGN(std::vector<pb::FownEntry> fown, DumpFowns(pid, fd_numbers, tree_ids));
    for (pb::FownEntry& e : fown) *core.add_fown() = std::move(e);
  }
  pb::MmEntry mm;
  PageDumpStats stats;
  bool deferred = false;  // pages written from a snapshot once the tree runs (mem_snapshot.h)
  {
    LOG_INFO("Infecting " + Who(pid) + " (" + std::to_string(proc.threads().size()) + " threads)");
    // SIGPIPE already queued for the leader (or the process)?
    bool sigpipe = false;
    for (const std::vector<std::string>* q : {&info.pending.at(pid), &info.shared_pending})
      for (const std::string& si : *q)
        sigpipe |= reinterpret_cast<const siginfo_t*>(si.data())->si_signo == SIGPIPE;
    // Declared before the infection: destroyed after it (see PagePipe).
    TRY_ASSIGN(PagePipe pipe, PagePipe::Create());
    TRY_ASSIGN(std::unique_ptr<compel::Infection> inf,
               compel::Infection::Start(proc, blobs::Parasite(), sigpipe));
    TRY(Call(*inf, abi::kCmdDumpMisc, "misc"));
    TRY(Call(*inf, abi::kCmdDumpSigacts, "sigactions"));
    for (size_t i = 0; i < info.timers.size(); i++) inf->args()->timer_ids[i] = info.timers[i].id();
    TRY(Call(*inf, abi::kCmdDumpTimers, "timers", uint32_t(info.timers.size())));
    TRY(FillMm(pid, info, inf->args()->misc, &mm));
    TRY(shmem.Add(pid, mm));
    TRY(FillCore(pid, info, *inf, proc.mem_fd(), proc.threads(), &core));
    // user namespaces (criu/ns/user_ns.h): credentials as the task sees them.
    if (namespaces.user())
      TRY(ns::CredsIntoUserNs(namespaces.user_ns(), pid, core.mutable_creds()));
    for (const pb::SemUndoEntry& e : sem_undo) *core.add_sem_undo() = e;
    int64_t mem_start = NowUs();
    TRY_ASSIGN(deferred, snaps.Take(*inf, pid, info.maps, mm, pages_id, parent_pages, pages));
    if (!deferred) {
      LOG_INFO("Dumping pages of " + Who(pid));
      TRY_ASSIGN(stats, DumpPages(pid, proc.mem_fd(), *inf, mm, pages_to, kf, pages_id,
                                  parent_pages, pages, pipe, prev));
    }
    total.memdump_us += NowUs() - mem_start;
    CKPT_FAULT("dump-before-cure");
    TRY(inf->Cure(), "curing " + Who(pid));
  }
  total.pages_scanned += stats.pages_scanned;
  total.pages_written += stats.pages_written;
  total.pages_zero += stats.zero_pages_skipped;
  total.pages_in_parent += stats.pages_in_parent;
  total.pages_in_prev += stats.pages_in_prev;
  total.tasks++;
  if (!deferred)  // else logged once written from its snapshot
    LOG_INFO(Who(pid) + ": " + std::to_string(stats.pages_written) + " pages written, " +
             std::to_string(stats.zero_pages_skipped) + " zero pages skipped, " +
             std::to_string(stats.pages_in_parent) + " shared with the parent, " +
             std::to_string(stats.pages_in_prev) + " in the previous images, " +
             std::to_string(stats.pages_scanned) + " scanned");
  TRY(WriteOne(dir, ImageType::kCore, pid, core));
  TRY(WriteOne(dir, ImageType::kMm, pid, mm));
  pb::FsEntry fs;
  fs.set_cwd(files::StripDeleted(info.cwd));
  fs.set_root(info.root);
  struct stat cwd_st;
  if (files::IsDeletedLink(info.cwd) &&
      stat(("/proc/" + std::to_string(pid) + "/cwd").c_str(), &cwd_st) == 0) {
    fs.set_cwd_deleted(true);
    fs.set_cwd_mode(cwd_st.st_mode & 07777);
  }
  TRY(WriteOne(dir, ImageType::kFs, pid, fs));
  return fds.AddTask(dir, info.fds);
}

}  // namespace

Status Dump(const Options& o, const KernelFeatures& kf) {
  pid_t root = o.pid;
  if (kill(root, 0) < 0 && errno == ESRCH) return Error(Who(root) + ": no such process");
  if (root == getpid()) return Error("ckpt cannot dump itself");
  {  // criu/security.h: a tree the caller could not trace is refused untouched
    TRY_ASSIGN(security::Caller caller, security::Caller::Current());
    TRY(security::CheckMayDump(caller, root, o.tcp_established));
  }
  TRY(RunAction(o, {Action::kPreDump, root}));  // action hooks: a no leaves the tree untouched
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Create(o.images_dir));
  dir->SetSync(o.sync);  // --no-sync

  LOG_INFO("Seizing the tree of " + Who(root));
  DumpStats stats;  // --display-stats (criu/stats.h)
  int64_t freeze_start = NowUs();
  // --timeout: freezing and seizing give up past it, naming the task.
  auto deadline = std::make_unique<compel::SeizeDeadline>(o.timeout * 1000);
  // -R: copy-on-write snapshots (criu/mem_snapshot.h), where nothing needs
  // the tree frozen until the end: no action hook or notification (they
  // run with the tree frozen), no incremental tracking, no lazy pages, no
  // --freeze-cgroup (frozen again at the end, it would freeze the child).
  // Declared before `tree`: destroyed after it, with the tree running.
  SnapshotSet snaps(o.leave_running && o.cow_snapshot && o.action_scripts.empty() && !o.notify &&
                    !o.lazy_pages && o.prev_images_dir.empty() && !o.track_mem &&
                    o.freeze_cgroup.empty());
  // Destroying `tree` on any error resumes every task as it was.
  std::vector<TreeTask> tree;
  // cgroups (criu/cgroup_freeze.h): frozen before the seize; destroyed
  // before `tree`, it puts the cgroup back as found while the tasks are
  // still held.
  std::unique_ptr<CgroupFreezer> frozen;
  if (!o.freeze_cgroup.empty()) {
    TRY_ASSIGN(frozen, o.timeout ? CgroupFreezer::Freeze(o.freeze_cgroup, o.timeout * 1000)
                                 : CgroupFreezer::Freeze(o.freeze_cgroup));
  }
  TRY_ASSIGN(tree, SeizeTree(root));
  deadline.reset();
  int64_t frozen_start = NowUs();
  stats.freezing_us = frozen_start - freeze_start;
  CKPT_FAULT("dump-seized");
  // CLONE_FILES and CLONE_FS along parent links kept (criu/shared_tables.h).
  TRY_ASSIGN(const TreeSharing sharing, CheckSharedTables(tree));
  const std::set<pid_t> tree_ids = FownTreeIds(tree);
  // Stopped tasks: did the parent collect the stop (criu/task_stop.h)?
  std::map<pid_t, bool> stop_collected;
  for (const TreeTask& t : tree) {
    if (!t.proc || !t.proc->stop_signal()) continue;
    for (const TreeTask& p : tree)
      if (p.pid == t.ppid && p.proc) {
        TRY_ASSIGN(stop_collected[t.pid], StopCollected(p.pid, p.proc->mem_fd(), t.pid));
      }
  }
  // Incremental dumps (criu/mem_track.h): what changed since the previous
  // step, read from ckpt's own namespaces (the tracker's socket is there).
  // Destroyed before `tree`: on failure the tracking ends, then the tree runs.
  std::unique_ptr<ChainStep> chain;
  if (!o.prev_images_dir.empty() || o.track_mem) {
    TRY_ASSIGN(chain, ChainStep::Begin(o.images_dir, o.prev_images_dir, tree));
  }
  // The tree's namespaces are checked before anything is touched.
  TRY_ASSIGN(pb::NamespacesEntry namespaces,
             ns::CollectNamespaces(tree, o.cgroup_mode != CgroupMode::kIgnore));
  TRY_ASSIGN(int pid_base, ns::PidNsBase(tree));
  // Memory goes to the image directory, or to a page server
  // (criu/page_xfer.h), reached from ckpt's own network namespace: connected
  // before ckpt joins the tree's (a migrated tree's link is down by then).
  std::unique_ptr<PageTarget> pages_to;
  if (o.page_server) {
    TRY_ASSIGN(pages_to, PageTarget::Remote(o.address, o.port));
  } else {
    TRY_ASSIGN(pages_to, PageTarget::Local(*dir));
  }
  if (o.compress) {
    TRY_ASSIGN(pages_to, CompressPages(std::move(pages_to), o.compress_level));
  }
  LOG_INFO(pages_to->Describe());
  if (namespaces.net()) {
    // Read from ckpt's own namespace (veth peers are named as it sees
    // them); then ckpt works inside the tree's for the rest of the dump.
    if (!(o.empty_ns & CLONE_NEWNET))  // --empty-ns net: not saved
      TRY(ns::DumpNetNamespace(root, {.externals = o.external}, *dir));
    TRY(ns::JoinNetNamespaceOf(root));
  }
  // cgroups (criu/cgroup.h): every task's cgroup, with --manage-cgroups the
  // cgroups' settings; checked before any parasite goes in.
  {
    std::vector<pid_t> live;
    for (const TreeTask& t : tree)
      if (t.proc) live.push_back(t.pid);
    if (frozen) {
      TRY(frozen->CheckTasks(live));
      TRY(frozen->Thaw());
    }
    if (o.cgroup_mode != CgroupMode::kIgnore) {
      TRY_ASSIGN(pb::CgroupEntry cg, CollectCgroups(live, o));
      TRY(WriteCgroups(cg, *dir));
    }
  }
  // Before any parasite: seccomp filters are suspended for ckpt's remote
  // system calls (and read), LSM labels read.
  SeccompDumper seccomp;
  TRY_ASSIGN(LsmDumper lsm, LsmDumper::Create());
  for (const TreeTask& t : tree) {
    if (!t.proc) continue;
    TRY(seccomp.AddProcess(t.pid, t.proc->threads()));
    TRY(lsm.AddProcess(t.pid, t.proc->threads()));
    // Before anything runs in a thread (criu/rseq_dump.h).
    for (pid_t tid : t.proc->threads()) TRY(AbortRseqCritical(tid, t.proc->mem_fd()));
  }

  // Before any socket is touched: the dumped connections' packets stop
  // here until the restore (or until a failed dump lets them go).
  net::NetDump net;
  if (o.tcp_established && o.network_lock) {
    std::vector<pid_t> live;
    for (const TreeTask& t : tree)
      if (t.proc) live.push_back(t.pid);
    TRY(net.LockConnections(live));
    CKPT_FAULT("dump-netlocked");
  }
  TRY(RunAction(o, {Action::kNetworkLock, root}));  // action hooks
  // SysV semaphore undo lists (criu/ns/sem_undo.h), where semaphores
  // exist at all (every multi-threaded task has a list, mostly empty).
  ns::SemUndoPlan sem_undo;
  {
    auto sems = namespaces.ipc() ? ns::ReadSysvipcOf(root, "sem")
                                 : io::ReadFile("/proc/sysvipc/sem");
    bool any_sem = sems.ok() && sems->find('\n') != std::string::npos &&
                   sems->find('\n') + 1 < sems->size();
    std::map<pid_t, size_t> live;
    for (const TreeTask& t : tree)
      if (t.proc) live[t.pid] = t.proc->threads().size();
    if (any_sem) {
      TRY_ASSIGN(sem_undo, ns::PlanSemUndo(live, namespaces.ipc(), root));
    }
    for (const auto& [p, why] : sem_undo.unreadable)
      LOG_WARN(Who(p) + " may hold SysV semaphore undo adjustments (SEM_UNDO), which cannot be "
               "read here (" + why + "): a restored task starts without them");
  }
  TRY_ASSIGN(files::FdDumper fds, files::FdDumper::Create(*dir, net));
  fds.SetOptions({.link_remap = o.link_remap,
                  .ghost_limit = o.ghost_limit,
                  .evasive_devices = o.evasive_devices,
                  .task_paths = bool(namespaces.mnt())});
  ShmemDumper shmem;
  TRY_ASSIGN(images::ImageWriter psw, dir->OpenWriter(ImageType::kPstree));
  uint32_t pages_id = 1;
  std::map<pid_t, PageIndex> page_index;  // of dumped tasks, for their children
  for (TreeTask& t : tree) {
    pb::PstreeEntry ps;
    ps.set_pid(uint32_t(t.pid));
    ps.set_ppid(uint32_t(t.ppid));
    ps.set_pgid(uint32_t(t.pgid));
    ps.set_sid(uint32_t(t.sid));
    if (pid_base >= 0)
      TRY(ns::FillNsPids(t.pid, t.zombie ? std::vector<pid_t>{t.pid} : t.proc->threads(), pid_base,
                         &ps));
    if (t.zombie) {
      ps.set_zombie(true);
      ps.set_exit_status(uint32_t(t.exit_status));
      ps.add_threads(uint32_t(t.pid));
    } else {
      for (pid_t tid : t.proc->threads()) ps.add_threads(uint32_t(tid));
      auto parent = page_index.find(t.ppid);
      std::vector<pb::SemUndoEntry> undo;
      if (std::find(sem_undo.readable.begin(), sem_undo.readable.end(), t.pid) !=
          sem_undo.readable.end()) {
        TRY_ASSIGN(undo, ns::ReadSemUndo(t.pid, t.proc->mem_fd(), root));
      }
      Status st = DumpTask(o, kf, *dir, *pages_to, fds, shmem, t, pages_id++,
                           parent == page_index.end() ? nullptr : &parent->second,
                           HasChildren(tree, t.pid) ? &page_index[t.pid] : nullptr,
                           namespaces, undo,
                           chain ? chain->ForPid(t.pid) : nullptr, tree_ids, sharing,
                           stop_collected, snaps, stats);
      if (!st.ok()) {
        // Name the process once: most messages already start with it.
        if (st.error().message().rfind("pid ", 0) != 0) st.error().Context(Who(t.pid));
        return std::move(st.error());
      }
    }
    TRY(psw.Write(ps));
  }
  TRY(psw.Close());
  TRY(fds.Close());
  TRY(shmem.Write(*dir));
  {  // tmpfs files mapped shared (POSIX shm): criu/shm_files.h
    std::vector<pid_t> live;
    for (const TreeTask& t : tree)
      if (!t.zombie) live.push_back(t.pid);
    TRY(DumpShmFiles(live, *dir));
  }
  TRY(WriteOne(*dir, ImageType::kNamespaces, 0, namespaces));
  // The tree's own namespaces' contents (it is still frozen).
  if (namespaces.ipc()) TRY(ns::DumpIpcNamespace(root, shmem.SysvIds(), *dir));
  if (namespaces.mnt()) TRY(ns::DumpMountNamespace(root, {.externals = o.external, .skip = o.skip_mnt}, *dir));
  TRY(seccomp.Write(*dir));
  TRY(lsm.Write(*dir));
  if (chain) {  // incremental: memtrack.img, and with -R the tracking goes on
    if (o.leave_running && o.track_mem) TRY(chain->StartTracker(o.track_mem_timeout));
    TRY(chain->WriteImage(*dir));
  }
  bool resumed = false;
  if (!snaps.empty()) {
    // Everything but the snapshots' pages is written: the tree runs again.
    TRY(net.Finish(false));  // connections go on, unlocked
    frozen.reset();
    for (auto it = tree.rbegin(); it != tree.rend(); ++it)
      if (it->proc) it->proc->Detach();
    resumed = true;
    stats.frozen_us = NowUs() - frozen_start;
    LOG_INFO("The tree ran again after being frozen for " +
             std::to_string((NowUs() - freeze_start) / 1000) + " ms; writing its memory from " +
             "copy-on-write snapshots");
    CKPT_FAULT("dump-resumed");
    TRY(snaps.DumpAll(*pages_to, kf, stats));
    snaps.Release();
  }
  TRY(pages_to->Commit());  // the memory is safe before the inventory says "complete"

  pb::InventoryEntry inv;
  inv.set_format_version(images::kFormatVersion);
  struct utsname u;
  uname(&u);
  inv.set_kernel(u.release);
  inv.set_arch(u.machine);
  inv.set_root_pid(uint32_t(root));
  inv.set_page_size(uint32_t(sysconf(_SC_PAGESIZE)));
  inv.set_tool_version("ckpt 0.1");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  inv.set_dump_time_ns(uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec));
  inv.set_shell_job(o.shell_job);
  // The lock stays after a dump that kills the tree; restore removes it.
  if (!o.leave_running && !net.KeptLockName().empty()) inv.set_netlock_table(net.KeptLockName());
  CKPT_FAULT("dump-before-inventory");
  TRY(dir->Commit(inv));
  fds.KeepLinks();  // --link-remap: the names stay for the restore
  if (chain) TRY(chain->Commit());
  TRY(RunAction(o, {Action::kPostDump, root}));  // action hooks: a no resumes the tree

  if (!resumed) {
    // The images are complete: a ckpt that dies from here on takes the
    // tree with it, as the dump would have (compel/seize.h).
    if (!o.leave_running)
      for (const TreeTask& t : tree)
        if (t.proc) TRY(t.proc->DieWithTracer());
    if (o.leave_running)
      TRY(net.Finish(false));  // connections go on, unlocked
    else
      TRY(net.BeforeKill());  // closed in repair mode: silently
    frozen.reset();  // cgroups: as found (frozen again if it was) before the tasks go
    // Children before parents: the init of a pid namespace, once killed,
    // waits for every task of its namespace to be reaped, and those still
    // traced by us would wait for us.
    for (auto it = tree.rbegin(); it != tree.rend(); ++it) {
      if (!it->proc) continue;
      if (o.leave_running)
        it->proc->Detach();
      else
        TRY(it->proc->Kill());
    }
    if (!o.leave_running) TRY(net.Finish(true));
    stats.frozen_us = NowUs() - frozen_start;
    if (o.leave_running)
      LOG_INFO("The tree ran again after being frozen for " +
               std::to_string((NowUs() - freeze_start) / 1000) + " ms");
  }
  if (o.display_stats) fputs(FormatDumpStats(stats).c_str(), stdout);
  LOG_INFO("Dump of the tree of " + Who(root) + " complete (" + std::to_string(tree.size()) +
           " processes); " + (o.leave_running ? "left running" : "killed"));
  return Ok();
}

}  // namespace ckpt
