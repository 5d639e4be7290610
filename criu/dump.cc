// Dump orchestration: only sequencing lives here; each step is elsewhere.
#include "criu/dump.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "base/io.h"
#include "base/log.h"
#include "compel/infect.h"
#include "compel/seize.h"
#include "criu/files/fd_dump.h"
#include "criu/mem_dump.h"
#include "criu/proc_parse.h"
#include "criu/regs_pb.h"
#include "images/image_dir.h"
#include "parasite/blobs.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
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
};

Result<TaskInfo> Inspect(pid_t pid, const Options& o) {
  TaskInfo t;
  TRY_ASSIGN(t.stat, proc::ReadStat(pid));
  TRY_ASSIGN(t.status, proc::ReadStatus(pid));
  if (t.status.threads != 1)
    return Error(Who(pid) + ": has " + std::to_string(t.status.threads) +
                 " threads; multi-threaded processes are not supported yet");
  std::string base = "/proc/" + std::to_string(pid) + "/";
  TRY_ASSIGN(t.exe, io::ReadLink(base + "exe"));
  TRY_ASSIGN(t.cwd, io::ReadLink(base + "cwd"));
  TRY_ASSIGN(t.root, io::ReadLink(base + "root"));
  TRY_ASSIGN(t.auxv, io::ReadFile(base + "auxv"));
  TRY_ASSIGN(t.maps, proc::ReadSmaps(pid));
  TRY_ASSIGN(t.fds, files::CollectFds(pid, o.shell_job));
  const std::string del = " (deleted)";
  if (t.cwd.size() > del.size() && t.cwd.compare(t.cwd.size() - del.size(), del.size(), del) == 0)
    return Error(Who(pid) + ": working directory " + t.cwd + " was deleted");
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

Status FillCore(pid_t pid, const TaskInfo& t, compel::Infection& inf, pb::TaskCoreEntry* core) {
  const abi::ParasiteArgs* a = inf.args();
  core->set_pid(uint32_t(pid));
  core->set_comm(std::string(a->misc.comm, strnlen(a->misc.comm, sizeof(a->misc.comm))));
  pb::ThreadEntry* th = core->add_threads();
  th->set_tid(uint32_t(pid));
  compel::Regs regs = inf.orig_regs();
  // A restored task must not rely on the kernel's in-flight restart state.
  compel::PrepareSyscallRestart(regs.gp);
  RegsToProto(regs, th->mutable_regs());
  th->set_blk_sigset(inf.orig_sigmask());
  struct {
    uint64_t ptr;
    uint32_t size, signature, flags, pad;
  } rseq = {};
  constexpr int kPtraceGetRseqConfiguration = 0x420f;
  if (ptrace(__ptrace_request(kPtraceGetRseqConfiguration), pid, (void*)sizeof(rseq), &rseq) ==
          long(sizeof(rseq)) &&
      rseq.ptr) {
    pb::RseqEntry* re = th->mutable_rseq();
    re->set_ptr(rseq.ptr);
    re->set_size(rseq.size);
    re->set_signature(rseq.signature);
  }
  pb::SigaltstackEntry* ss = th->mutable_sigaltstack();
  ss->set_sp(a->misc.sigaltstack.sp);
  ss->set_size(a->misc.sigaltstack.size);
  ss->set_flags(uint32_t(a->misc.sigaltstack.flags));
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
  pb::CredsEntry* c = core->mutable_creds();
  const proc::Status& s = t.status;
  c->set_uid(s.uid[0]), c->set_euid(s.uid[1]), c->set_suid(s.uid[2]), c->set_fsuid(s.uid[3]);
  c->set_gid(s.gid[0]), c->set_egid(s.gid[1]), c->set_sgid(s.gid[2]), c->set_fsgid(s.gid[3]);
  for (uint32_t g : s.groups) c->add_groups(g);
  c->set_cap_inh(s.cap_inh), c->set_cap_prm(s.cap_prm), c->set_cap_eff(s.cap_eff);
  c->set_cap_bnd(s.cap_bnd), c->set_cap_amb(s.cap_amb);
  for (int r = 0; r < RLIM_NLIMITS; r++) {
    struct rlimit64 rl;
    if (prlimit64(pid, __rlimit_resource(r), nullptr, &rl) < 0)
      return Error::Errno(Who(pid) + ": prlimit " + std::to_string(r));
    pb::RlimitEntry* e = core->add_rlimits();
    e->set_resource(uint32_t(r));
    e->set_cur(rl.rlim_cur);
    e->set_max(rl.rlim_max);
  }
  core->set_umask(a->misc.umask);
  core->set_personality(a->misc.personality);
  core->set_dumpable(uint32_t(a->misc.dumpable));
  core->set_pdeath_sig(uint32_t(a->misc.pdeath_sig));
  core->set_child_subreaper(a->misc.child_subreaper != 0);
  core->set_no_new_privs(a->misc.no_new_privs != 0);
  return Ok();
}

Status Call(compel::Infection& inf, abi::ParasiteCmd cmd, const char* what) {
  TRY_ASSIGN(int64_t r, inf.Call(cmd));
  if (r < 0) return Error::Errno(std::string("parasite: ") + what, int(-r));
  return Ok();
}

}  // namespace

Status Dump(const Options& o, const KernelFeatures& kf) {
  pid_t pid = o.pid;
  if (kill(pid, 0) < 0 && errno == ESRCH) return Error(Who(pid) + ": no such process");
  if (pid == getpid()) return Error("ckpt cannot dump itself");
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Create(o.images_dir));

  LOG_INFO("Seizing " + Who(pid));
  TRY_ASSIGN(std::unique_ptr<compel::SeizedProcess> proc, compel::SeizedProcess::Seize(pid));
  TRY_ASSIGN(TaskInfo info, Inspect(pid, o));
  if (info.stat.sid != pid && !o.shell_job && info.stat.sid != getsid(0))
    LOG_DBG(Who(pid) + ": session " + std::to_string(info.stat.sid) + " is outside the tree");

  pb::TaskCoreEntry core;
  pb::MmEntry mm;
  PageDumpStats stats;
  {
    LOG_INFO("Infecting " + Who(pid));
    TRY_ASSIGN(std::unique_ptr<compel::Infection> inf,
               compel::Infection::Start(*proc, blobs::Parasite()));
    TRY(Call(*inf, abi::kCmdDumpMisc, "misc"));
    TRY(Call(*inf, abi::kCmdDumpSigacts, "sigactions"));
    TRY(FillMm(pid, info, inf->args()->misc, &mm));
    TRY(FillCore(pid, info, *inf, &core));
    LOG_INFO("Dumping pages of " + Who(pid));
    TRY_ASSIGN(stats, DumpPages(pid, proc->mem_fd(), *inf, mm, *dir, kf, 1));
    TRY(inf->Cure(), "curing " + Who(pid));
  }
  LOG_INFO("Pages: " + std::to_string(stats.pages_written) + " written, " +
           std::to_string(stats.zero_pages_skipped) + " zero pages skipped, " +
           std::to_string(stats.pages_scanned) + " scanned");

  pb::PstreeEntry ps;
  ps.set_pid(uint32_t(pid));
  ps.set_ppid(0);
  ps.set_pgid(uint32_t(info.stat.pgid));
  ps.set_sid(uint32_t(info.stat.sid));
  ps.add_threads(uint32_t(pid));
  TRY(WriteOne(*dir, ImageType::kPstree, 0, ps));
  TRY(WriteOne(*dir, ImageType::kCore, pid, core));
  TRY(WriteOne(*dir, ImageType::kMm, pid, mm));
  pb::FsEntry fs;
  fs.set_cwd(info.cwd);
  fs.set_root(info.root);
  TRY(WriteOne(*dir, ImageType::kFs, pid, fs));
  TRY(files::WriteFds(*dir, info.fds));

  pb::InventoryEntry inv;
  inv.set_format_version(images::kFormatVersion);
  struct utsname u;
  uname(&u);
  inv.set_kernel(u.release);
  inv.set_arch(u.machine);
  inv.set_root_pid(uint32_t(pid));
  inv.set_page_size(uint32_t(sysconf(_SC_PAGESIZE)));
  inv.set_tool_version("ckpt 0.1");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  inv.set_dump_time_ns(uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec));
  inv.set_shell_job(o.shell_job);
  TRY(dir->Commit(inv));

  if (o.leave_running) {
    proc->Detach();
    LOG_INFO("Dump of " + Who(pid) + " complete; left running");
  } else {
    TRY(proc->Kill());
    LOG_INFO("Dump of " + Who(pid) + " complete; killed");
  }
  return Ok();
}

}  // namespace ckpt
