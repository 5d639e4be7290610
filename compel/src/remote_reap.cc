#include "compel/remote_reap.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "compel/infect.h"
#include "compel/regs.h"
#include "compel/seize.h"

namespace ckpt::compel {
namespace {

std::vector<pid_t> Threads(pid_t pid) {
  std::vector<pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.push_back(pid_t(atoi(e->d_name)));
  closedir(d);
  // The leader first: it is the usual parent.
  for (size_t i = 0; i < out.size(); i++)
    if (out[i] == pid) std::swap(out[0], out[i]);
  return out;
}

// Detaches the thread whatever happens after the seize.
struct Held {
  pid_t tid;
  ~Held() { ptrace(PTRACE_DETACH, tid, nullptr, nullptr); }
};

// The interrupt stop of a freshly seized thread; signals that arrive first
// are delivered as they would have been.
Status WaitInterrupt(pid_t tid) {
  for (int i = 0; i < 64; i++) {
    TRY_ASSIGN(int st, WaitStop(tid));
    if ((st >> 16) == PTRACE_EVENT_STOP) return Ok();
    if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)WSTOPSIG(st)) < 0)
      return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_CONT");
  }
  return Error("tid " + std::to_string(tid) + ": does not stop (signals keep coming)");
}

}  // namespace

Result<long> RemoteReap(pid_t pid, pid_t child) {
  std::string who = "pid " + std::to_string(pid);
  int last = ESRCH;
  for (pid_t tid : Threads(pid)) {
    // A zombie leader (its threads live on) cannot be seized: EPERM.
    if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) < 0) {
      last = errno;
      continue;
    }
    Held held{tid};
    if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
      return Error::Errno(who + ": tid " + std::to_string(tid) + ": PTRACE_INTERRUPT");
    TRY(WaitInterrupt(tid), who);
    TRY_ASSIGN(Regs regs, GetRegs(tid), who);
    std::string mem_path = "/proc/" + std::to_string(pid) + "/mem";
    UniqueFd mem(open(mem_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!mem) return Error::Errno("open " + mem_path);
    TRY_ASSIGN(uint64_t exec, FindExecAddr(pid));
    // RemoteSyscall leaves the thread in `regs`, its interrupted system
    // call (if any) set to restart.
    TRY_ASSIGN(
        long r,
        RemoteSyscall(tid, mem.get(), exec, regs.gp, SYS_wait4, child, 0, WNOHANG | __WALL, 0),
        who + ": reaping its child " + std::to_string(child));
    return r;
  }
  return Error::Errno(
      who + ": no thread could be seized to reap its child " + std::to_string(child), last);
}

}  // namespace ckpt::compel
