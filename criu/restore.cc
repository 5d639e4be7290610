// Restore orchestration: load and check images, clone the task with its
// pid, trace it through the restorer, then let it go.
#include "criu/restore.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/io.h"
#include "base/log.h"
#include "compel/infect.h"
#include "compel/regs.h"
#include "compel/seize.h"
#include "criu/proc_parse.h"
#include "criu/restore_task.h"
#include "criu/task_images.h"

namespace ckpt {
namespace {

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// Kills and reaps the restored task unless released: a failed restore
// leaves nothing behind.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t p) : pid_(p) {}
  ~ChildGuard() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int st;
    while (waitpid(pid_, &st, __WALL) < 0 && errno == EINTR) {
    }
  }
  void Release() { pid_ = -1; }

 private:
  pid_t pid_;
};

Result<pid_t> CloneWithPid(pid_t pid) {
  struct clone_args a;
  memset(&a, 0, sizeof(a));
  a.exit_signal = SIGCHLD;
  a.set_tid = uintptr_t(&pid);
  a.set_tid_size = 1;
  long r = syscall(SYS_clone3, &a, sizeof(a));
  if (r < 0) {
    if (errno == EEXIST) {
      std::string comm = "?";
      auto c = io::ReadFile("/proc/" + std::to_string(pid) + "/comm");
      if (c.ok()) comm = c->substr(0, c->find('\n'));
      return Error(Who(pid) + " is already in use (by '" + comm + "'): cannot restore", EEXIST);
    }
    return Error::Errno("clone3 with pid " + std::to_string(pid));
  }
  return pid_t(r);
}

// Non-blocking: the child may still be alive (and hold the write end).
std::string ReadChildError(int fd) {
  fcntl(fd, F_SETFL, O_NONBLOCK);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) msg.append(buf, n);
  return msg;
}

// Waits for the next stop of the restoring child; a death is an error
// carrying the child's own message.
Result<int> NextStop(pid_t pid, int err_fd) {
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, __WALL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("waitpid " + std::to_string(pid));
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      std::string msg = ReadChildError(err_fd);
      if (msg.empty())
        msg = WIFEXITED(st) ? "exited with " + std::to_string(WEXITSTATUS(st)) +
                                  " (see the log for the restorer's message)"
                            : "killed by signal " + std::to_string(WTERMSIG(st));
      return Error(Who(pid) + ": restore failed: " + msg);
    }
    return st;
  }
}

// Lets the child run to the restorer's final trap, then through its
// rt_sigreturn; returns the trap address (inside the restorer region).
Result<uint64_t> RunToSigreturn(pid_t pid, int err_fd) {
  uint64_t trap_ip = 0;
  for (;;) {
    TRY_ASSIGN(int st, NextStop(pid, err_fd));
    int sig = WSTOPSIG(st);
    if ((st >> 16) == PTRACE_EVENT_STOP) {
      if (ptrace(PTRACE_CONT, pid, nullptr, nullptr) < 0) return Error::Errno("PTRACE_CONT");
      continue;
    }
    if (sig == SIGTRAP) {
      TRY_ASSIGN(compel::Regs r, compel::GetRegs(pid));
      trap_ip = r.gp.rip;
      break;
    }
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE) {
      siginfo_t si = {};
      ptrace(PTRACE_GETSIGINFO, pid, nullptr, &si);
      user_regs_struct r = {};
      ptrace(PTRACE_GETREGS, pid, nullptr, &r);
      char buf[160];
      snprintf(buf, sizeof(buf), "signal %d (code %d, address %p) at ip %llx", sig, si.si_code,
               si.si_addr, r.rip);
      return Error(Who(pid) + ": restore failed: " + buf + " while restoring " +
                   ReadChildError(err_fd));
    }
    // Anything else is the task's business: deliver it.
    if (ptrace(PTRACE_CONT, pid, nullptr, (void*)(long)sig) < 0)
      return Error::Errno("PTRACE_CONT");
  }
  // Syscall entry, then exit, of rt_sigreturn.
  for (int i = 0; i < 2; i++) {
    if (ptrace(PTRACE_SYSCALL, pid, nullptr, nullptr) < 0) return Error::Errno("PTRACE_SYSCALL");
    TRY_ASSIGN(int st, NextStop(pid, err_fd));
    if (WSTOPSIG(st) != (SIGTRAP | 0x80))
      return Error(Who(pid) + ": restore failed: unexpected stop " + std::to_string(st) +
                   " at rt_sigreturn");
  }
  return trap_ip;
}

// The task now runs the dumped registers: drop the restorer region and let go.
Status Release(pid_t pid, uint64_t trap_ip, const compel::Regs& image_regs) {
  TRY_ASSIGN(compel::Regs now, compel::GetRegs(pid));
  if (now.gp.rip != image_regs.gp.rip || now.gp.rsp != image_regs.gp.rsp)
    return Error(Who(pid) + ": rt_sigreturn did not land on the dumped registers");
  TRY_ASSIGN(std::string maps_text, io::ReadFile("/proc/" + std::to_string(pid) + "/maps"));
  TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ParseMaps(maps_text));
  uint64_t start = 0, end = 0;
  for (const auto& m : maps)
    if (trap_ip >= m.start && trap_ip < m.end) start = m.start, end = m.end;
  if (!start) return Error(Who(pid) + ": restorer region not found");
  std::string mem = "/proc/" + std::to_string(pid) + "/mem";
  UniqueFd mem_fd(open(mem.c_str(), O_RDWR | O_CLOEXEC));
  if (!mem_fd) return Error::Errno("open " + mem);
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(pid, start, end));
  TRY_ASSIGN(long r, compel::RemoteSyscall(pid, mem_fd.get(), exec, now.gp, SYS_munmap,
                                           long(start), long(end - start)));
  if (r != 0) return Error::Errno(Who(pid) + ": unmapping the restorer", int(-r));
  // Registers exactly as dumped (the xstate too, as ptrace read it).
  compel::Regs fin = image_regs;
  fin.gp = now.gp;
  TRY(compel::SetRegs(pid, fin, true));
  if (ptrace(PTRACE_DETACH, pid, nullptr, nullptr) < 0) return Error::Errno("PTRACE_DETACH");
  return Ok();
}

Status WritePidfile(const Options& o, pid_t pid) {
  if (o.pidfile.empty()) return Ok();
  std::string path = o.pidfile;
  if (path[0] != '/') path = o.images_dir + "/" + path;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::Errno("open pidfile " + path);
  std::string s = std::to_string(pid);
  return io::WriteFull(fd.get(), s.data(), s.size());
}

}  // namespace

Result<int> Restore(const Options& o, const KernelFeatures& kf) {
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(o.images_dir));
  TRY_ASSIGN(TaskImages t, LoadTaskImages(*dir), "reading images from " + o.images_dir);
  pid_t pid = t.pid();
  if (!kf.clone3_set_tid) return Error("this kernel cannot create a process with a chosen pid");
  if (t.inventory.shell_job() && !o.shell_job)
    LOG_WARN("the dump was taken with --shell-job; terminal fds need --shell-job to restore");

  int errp[2], gop[2];
  if (pipe2(errp, O_CLOEXEC) < 0 || pipe2(gop, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd err_r(errp[0]), err_w(errp[1]), go_r(gop[0]), go_w(gop[1]);

  LOG_INFO("Creating " + Who(pid));
  TRY_ASSIGN(pid_t child, CloneWithPid(pid));
  if (child == 0) {
    // The new task. Wait until the parent traces us, then become the image.
    err_r.reset();
    go_w.reset();
    char c;
    if (read(go_r.get(), &c, 1) != 1) _exit(1);
    go_r.reset();
    int efd = err_w.release();
    Status s = EnterRestorer(t, *dir, o, efd);
    std::string msg = s.error().message();
    (void)!write(efd, msg.data(), msg.size());
    _exit(1);
  }
  ChildGuard guard(child);
  err_w.reset();
  go_r.reset();
  if (ptrace(PTRACE_SEIZE, child, nullptr, (void*)(long)PTRACE_O_TRACESYSGOOD) < 0)
    return Error::Errno("PTRACE_SEIZE " + Who(child));
  if (write(go_w.get(), "g", 1) != 1) return Error::Errno("start restore");
  go_w.reset();

  TRY_ASSIGN(uint64_t trap_ip, RunToSigreturn(child, err_r.get()));
  TRY(Release(child, trap_ip, t.regs));
  guard.Release();
  LOG_INFO("Restored " + Who(pid));
  TRY(WritePidfile(o, pid));
  if (o.restore_detached) return 0;

  int st;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return Error::Errno("waitpid " + std::to_string(pid));
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

}  // namespace ckpt
