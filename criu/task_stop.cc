#include "criu/task_stop.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <string>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "compel/infect.h"
#include "compel/regs.h"
#include "parasite/abi.h"
#include "parasite/blobs.h"

namespace ckpt {

Status StopRestoredTask(pid_t real_pid, const pb::TaskCoreEntry& core) {
  if (!core.has_stop_signal() || core.stop_signal() == 0) return Ok();
  LOG_INFO("pid " + std::to_string(real_pid) + " was stopped (signal " +
           std::to_string(core.stop_signal()) + ") at dump: restored stopped");
  if (kill(real_pid, SIGSTOP) < 0)
    return Error::Errno("pid " + std::to_string(real_pid) + ": SIGSTOP (it was stopped at dump)");
  return Ok();
}

namespace {

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

char StateOf(pid_t pid) {
  auto text = io::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return 0;
  size_t p = text->rfind(')');
  return p != std::string::npos && p + 2 < text->size() ? (*text)[p + 2] : 0;
}

// The dumped process had SIGCHLD pending (shared or in its leader's queue).
bool SigchldPending(const pb::TaskCoreEntry& core) {
  auto has = [](const std::string& si) {
    int32_t signo = 0;
    if (si.size() >= 4) memcpy(&signo, si.data(), 4);
    return signo == SIGCHLD;
  };
  for (const std::string& si : core.shared_pending())
    if (has(si)) return true;
  if (core.threads_size() > 0)
    for (const std::string& si : core.threads(0).pending())
      if (has(si)) return true;
  return false;
}

// A stop of a child raises SIGCHLD in the parent only with a handler and
// without SA_NOCLDSTOP (SIG_DFL and SIG_IGN discard it).
bool StopRaisesSigchld(const pb::TaskCoreEntry& core) {
  constexpr uint64_t kSigDfl = 0, kSigIgn = 1;
  for (const pb::SigactionEntry& s : core.sigactions())
    if (s.sig() == SIGCHLD)
      return s.handler() != kSigDfl && s.handler() != kSigIgn && !(s.flags() & SA_NOCLDSTOP);
  return false;
}

void DetachThreads(const std::vector<pid_t>& tids, Status* st) {
  for (pid_t tid : tids)
    if (ptrace(PTRACE_DETACH, tid, nullptr, nullptr) < 0 && st->ok())
      *st = Error::Errno("PTRACE_DETACH " + Who(tid));
}

// The parent (held, stopped) collects the new stop report of each child.
Status CollectStops(pid_t parent, const pb::TaskCoreEntry& parent_core,
                    const std::vector<pid_t>& children) {
  for (pid_t c : children) {
    // The child takes its SIGSTOP once detached; bounded wait for it.
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (StateOf(c) != 'T') {
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - start.tv_sec > 10)
        return Error(Who(c) + ": did not stop again within 10 s (state " +
                     std::string(1, StateOf(c)) + ")");
      usleep(1000);
    }
  }
  std::string mem = "/proc/" + std::to_string(parent) + "/mem";
  UniqueFd mem_fd(open(mem.c_str(), O_RDWR | O_CLOEXEC));
  if (!mem_fd) return Error::Errno("open " + mem);
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(parent));
  for (pid_t c : children) {
    TRY_ASSIGN(long r, compel::RemoteSyscallRestoring(parent, mem_fd.get(), exec, SYS_wait4, c, 0,
                                                      WUNTRACED | WNOHANG, 0));
    if (r != c)
      return Error(Who(parent) + ": collecting the stop of its child " + Who(c) + " failed (" +
                   std::to_string(r) + ")");
  }
  if (StopRaisesSigchld(parent_core) && !SigchldPending(parent_core)) {
    // rt_sigtimedwait({SIGCHLD}, NULL, {0, 0}, 8): the set and the timeout
    // are the call's data (at exec + kRemoteDataOffset).
    char data[24] = {};
    uint64_t set = 1ull << (SIGCHLD - 1);
    memcpy(data, &set, 8);
    uint64_t d = exec + compel::kRemoteDataOffset;
    TRY_ASSIGN(long r, compel::RemoteSyscallRestoring(parent, mem_fd.get(), exec,
                                                      SYS_rt_sigtimedwait, long(d), 0, long(d + 8),
                                                      8, 0, 0, std::string(data, sizeof(data))));
    if (r != SIGCHLD && r != -EAGAIN)
      return Error(Who(parent) + ": dropping the SIGCHLD of its child's stop failed (" +
                   std::to_string(r) + ")");
  }
  return Ok();
}

}  // namespace

Result<bool> StopCollected(pid_t parent, int parent_mem_fd, pid_t child) {
  TRY_ASSIGN(compel::Regs regs, compel::GetRegs(parent));
  // Far below the stack pointer (beyond the red zone and any frame).
  uint64_t scratch = (regs.gp.rsp - 16384) & ~uint64_t(63);
  char saved[128], got[128];
  if (pread(parent_mem_fd, saved, sizeof(saved), off_t(scratch)) != ssize_t(sizeof(saved)))
    return Error::Errno(Who(parent) + ": reading its stack for waitid");
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(parent));
  auto r = compel::RemoteSyscallRestoring(parent, parent_mem_fd, exec, SYS_waitid, P_PID, child,
                                          long(scratch), WSTOPPED | WNOWAIT | WNOHANG, 0);
  bool read_ok = pread(parent_mem_fd, got, sizeof(got), off_t(scratch)) == ssize_t(sizeof(got));
  bool put_back = pwrite(parent_mem_fd, saved, sizeof(saved), off_t(scratch)) == ssize_t(sizeof(saved));
  if (!r.ok()) return std::move(r.error());
  if (!put_back || !read_ok) return Error::Errno(Who(parent) + ": its stack around waitid");
  if (*r < 0) return Error::Errno(Who(parent) + ": waitid for its child " + Who(child), int(-*r));
  int32_t reported = 0;
  memcpy(&reported, got + 16, 4);  // siginfo_t: the pid after signo, errno, code (and padding)
  return reported != child;      // no report pending: the parent took it
}

Status DetachTree(const TreeImages& tree, const std::vector<std::vector<pid_t>>& real_tids) {
  std::map<pid_t, size_t> index;
  for (size_t i = 0; i < tree.tasks.size(); i++) index[tree.tasks[i].pid()] = i;
  std::map<size_t, std::vector<pid_t>> hold;  // parent -> its children's real pids
  for (size_t i = 0; i < tree.tasks.size(); i++) {
    const TaskImages& t = tree.tasks[i];
    if (t.zombie() || !t.core.stop_collected()) continue;
    auto p = index.find(pid_t(t.pstree.ppid()));
    if (p != index.end() && !tree.tasks[p->second].zombie())
      hold[p->second].push_back(real_tids[i][0]);
  }
  Status st;
  for (size_t i = 0; i < tree.tasks.size(); i++)
    if (!tree.tasks[i].zombie() && !hold.count(i)) DetachThreads(real_tids[i], &st);
  for (auto& [p, children] : hold) {
    Status c = st.ok() ? CollectStops(real_tids[p][0], tree.tasks[p].core, children) : Ok();
    if (!c.ok() && st.ok()) st = std::move(c);
    DetachThreads(real_tids[p], &st);
  }
  return st;
}

uint64_t IgnoredSigtrapAction(const pb::TaskCoreEntry& core, uint64_t region_start) {
  constexpr uint64_t kSigIgn = 1;
  bool ignored = false;
  for (const pb::SigactionEntry& s : core.sigactions())
    if (s.sig() == SIGTRAP) ignored = s.handler() == kSigIgn;
  if (!ignored) return 0;
  // Laid out by EnterRestorer: the blob, page aligned, then RestoreArgs.
  uint64_t blob_len = (blobs::Restorer().size + abi::kPageSize - 1) & ~(abi::kPageSize - 1);
  return region_start + blob_len + offsetof(abi::RestoreArgs, sigacts) +
         sizeof(abi::KSigaction) * (SIGTRAP - 1);
}

}  // namespace ckpt
