// Running code inside a seized process: remote system calls and the
// parasite blob with its command channel.
//
//   TRY_ASSIGN(auto inf, Infection::Start(*proc, blobs::Parasite()));
//   TRY_ASSIGN(int64_t r, inf->Call(abi::kCmdDumpMisc));
//   ... read inf->args()->misc ...
//   TRY(inf->Cure());   // unmap, restore registers and signal mask exactly
//
// If Cure() is never reached (an error), the destructor interrupts the
// parasite wherever it is and restores the thread as it was: the victim
// continues as if nothing happened.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "compel/regs.h"
#include "compel/seize.h"
#include "parasite/abi.h"
#include "parasite/blobs.h"

namespace ckpt::compel {

// Executes one system call in the stopped thread `tid`, using a syscall
// instruction written temporarily at `exec_addr` (FindExecAddr: a place the
// process never executes; the bytes are restored before returning). `base`
// supplies the other registers. `data` (at most kRemoteDataMax bytes) is
// written after the code; its victim address is exec_addr + kRemoteDataOffset.
//
// If ckpt dies meanwhile (SIGKILL), the thread is not left to crash: the
// call completes, the SIGTRAP the kernel sends a tracee whose tracer went
// away in a syscall stop is taken off (rt_sigtimedwait, signals blocked
// throughout), and the thread returns to `home` by itself (rt_sigreturn on
// a frame written below its stack pointer): registers, FPU state and
// signal mask as they were. Without `home` that is its state now with
// `base`'s registers. What the call itself did stays (e.g. an fd it made).
// Afterwards (ckpt alive) the thread is back in `base` with its mask.
inline constexpr uint64_t kRemoteDataOffset = 40;
inline constexpr size_t kRemoteDataMax = 24;  // code and data fit the vdso's 64-byte ELF header
struct WayHome {
  const Regs* regs;  // the thread's own state (with xstate)
  uint64_t sigmask;
};
Result<long> RemoteSyscall(pid_t tid, int mem_fd, uint64_t exec_addr, const user_regs_struct& base,
                           long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                           long a6 = 0, const std::string& data = "",
                           const WayHome* home = nullptr);

// RemoteSyscall on a thread that is not running the parasite, with its
// registers put back afterwards.
Result<long> RemoteSyscallRestoring(pid_t tid, int mem_fd, uint64_t exec_addr, long nr, long a1 = 0,
                                    long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                                    long a6 = 0, const std::string& data = "");

// Queued signals of a stopped thread, without dequeuing them: the
// thread's own queue, or the process-wide one (shared).
Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared);

// Where remote syscalls run: the ELF header at the start of the [vdso]
// (mapped executable, never executed; the first write makes the process a
// private copy of that page), else the first executable mapping outside
// [avoid_start, avoid_end) (e.g. a region the syscall is about to unmap).
Result<uint64_t> FindExecAddr(pid_t pid, uint64_t avoid_start = 0, uint64_t avoid_end = 0);

class Infection {
 public:
  // `sigpipe_pending`: SIGPIPE was already queued for the leader (see abi.h).
  static Result<std::unique_ptr<Infection>> Start(SeizedProcess& proc, const blobs::Blob& blob,
                                                  bool sigpipe_pending = false);
  ~Infection();

  // The shared argument area (ckpt's view of it), and its victim address.
  abi::ParasiteArgs* args() { return args_; }
  uint64_t remote_args() const { return remote_ + args_off_; }
  uint64_t exec_addr() const { return exec_addr_; }
  pid_t leader() const { return tid_; }
  // Sends a command (with an fd, if >= 0) and waits for the reply value.
  Result<int64_t> Call(abi::ParasiteCmd cmd, uint32_t nr = 0, int fd = -1);
  // Sends a command without waiting: for commands whose data ckpt drains
  // while the parasite works (page dumping). Finish with WaitReply.
  Status Send(abi::ParasiteCmd cmd, uint32_t nr, int fd);
  Result<int64_t> WaitReply();
  // Fails if the parasite's thread has stopped on a signal (crashed).
  Status CheckAlive();

  // Registers as they were when the thread was seized.
  const Regs& orig_regs() const { return regs_; }
  uint64_t orig_sigmask() const { return sigmask_; }

  // Stops the parasite, unmaps it, restores registers and signal mask.
  Status Cure();

 private:
  Infection(SeizedProcess& p) : proc_(p) {}
  Status Setup(const blobs::Blob& blob);
  Status Accept();
  Status Teardown(bool parasite_finished);
  Result<long> Syscall(long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0, long a5 = 0,
                       long a6 = 0, const std::string& data = "");

  SeizedProcess& proc_;
  pid_t tid_ = 0;
  Regs regs_;
  uint64_t sigmask_ = 0;
  bool mask_changed_ = false;
  uint64_t exec_addr_ = 0;
  uint64_t remote_ = 0;  // victim address of the region
  size_t size_ = 0;
  size_t args_off_ = 0;
  void* local_ = nullptr;
  abi::ParasiteArgs* args_ = nullptr;
  UniqueFd listen_;
  UniqueFd sock_;
  bool running_ = false;  // the thread is executing the parasite
  bool sigpipe_pending_ = false;
  bool cured_ = false;
};

}  // namespace ckpt::compel
