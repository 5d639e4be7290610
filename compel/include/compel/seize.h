// Seizing a process: every thread PTRACE_SEIZEd and PTRACE_INTERRUPTed.
//
//   TRY_ASSIGN(auto proc, SeizedProcess::Seize(pid));
//   ... read state, infect ...
//   proc->Kill();      // or let the destructor resume every thread
//
// The destructor detaches every thread, which resumes it exactly where it
// was: any early return leaves the victim running.
#pragma once

#include <sys/types.h>

#include <memory>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::compel {

class SeizedProcess {
 public:
  // Seizes all threads of `pid`, re-reading /proc/PID/task until no new
  // thread appears. Fails if pid does not exist or cannot be traced. A
  // thread this process traces already must be in a ptrace stop whose
  // report was collected (a cgroup v1 freezer seized it: criu/
  // cgroup_freeze.h): it is taken as it is.
  static Result<std::unique_ptr<SeizedProcess>> Seize(pid_t pid);
  ~SeizedProcess();
  SeizedProcess(const SeizedProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<pid_t>& threads() const { return threads_; }
  // /proc/PID/mem, open read-write (the tracer may write text pages).
  int mem_fd() const { return mem_.get(); }
  // The signal of the job-control stop (SIGSTOP, SIGTSTP, ...) the process
  // was in when seized; 0 if it was running. Detach() puts it back in it.
  int stop_signal() const { return stop_signal_; }

  // From now on the kernel kills every thread if ckpt dies
  // (PTRACE_O_EXITKILL; other ptrace options are dropped): for the end of
  // a dump that kills the tree, once its images are complete, so that a
  // ckpt killed before Kill() cannot leave the tree running in a state
  // only ckpt could undo (TCP sockets in repair mode).
  Status DieWithTracer();
  // Kills the whole process (SIGKILL) and waits until every thread is gone.
  Status Kill();
  // Resumes every thread now (also what the destructor does).
  void Detach();

 private:
  explicit SeizedProcess(pid_t pid) : pid_(pid) {}
  Status SeizeAll();
  pid_t pid_;
  std::vector<pid_t> threads_;
  UniqueFd mem_;
  bool done_ = false;
  int stop_signal_ = 0;
};

// Waits for a ptrace stop of `tid`. Returns the raw waitpid status. While
// a SeizeDeadline lives and has passed, fails with ETIMEDOUT naming the
// thread and its state (a task in uninterruptible sleep does not stop).
Result<int> WaitStop(pid_t tid);

// `ckpt dump --timeout SEC`: bounds every WaitStop made while it lives to
// `ms` milliseconds after it was made (0: no bound). One at a time; the
// caller destroys it once the tree is seized.
class SeizeDeadline {
 public:
  explicit SeizeDeadline(int ms);
  ~SeizeDeadline();
  SeizeDeadline(const SeizeDeadline&) = delete;
};

}  // namespace ckpt::compel
