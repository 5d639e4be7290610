// Register state of one thread and the x86_64 signal frame built from it.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "parasite/abi.h"

namespace ckpt::compel {

struct Regs {
  user_regs_struct gp{};
  std::vector<uint8_t> xstate;  // NT_X86_XSTATE regset, xsave layout
};

// Reads general registers and xstate of a ptrace-stopped thread.
Result<Regs> GetRegs(pid_t tid);
// Writes general registers; and the xstate too when with_xstate.
Status SetRegs(pid_t tid, const Regs& r, bool with_xstate);
Status SetGpRegs(pid_t tid, const user_regs_struct& gp);

Result<uint64_t> GetSigmask(pid_t tid);
Status SetSigmask(pid_t tid, uint64_t mask);

// Fills `area` so that rt_sigreturn with rsp = area_addr + offsetof(frame.uc)
// resumes the thread in `r` with `sigmask` and `altstack`. area_addr is the
// victim address of `area` (the fpstate pointer must be a victim address).
void BuildSigframe(abi::SigframeArea* area, uint64_t area_addr, const Regs& r, uint64_t sigmask,
                   const abi::KStack& altstack);

// If the thread was stopped inside a syscall that the kernel would restart
// on resume, rewrite the registers so that a plain return (rt_sigreturn or
// a fresh process) restarts it instead: the kernel's own restart logic does
// not run for a restored task.
void PrepareSyscallRestart(user_regs_struct& gp);

}  // namespace ckpt::compel
