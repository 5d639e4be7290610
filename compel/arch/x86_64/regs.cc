// x86_64 register access via ptrace and signal frame layout.
#include "compel/regs.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

#include <cstdlib>
#include <cstring>

namespace ckpt::compel {
namespace {
constexpr int kXstateRegset = 0x202;  // NT_X86_XSTATE
// Kernel-internal restart codes seen in ax after an interrupted syscall.
constexpr long kErestartSys = 512, kErestartNoIntr = 513, kErestartNoHand = 514,
               kErestartRestartBlock = 516;
constexpr long kNrRestartSyscall = 219;
}  // namespace

Result<Regs> GetRegs(pid_t tid) {
  Regs r;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &r.gp) < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_GETREGS");
  r.xstate.resize(abi::kMaxXstate);
  struct iovec iov = {r.xstate.data(), r.xstate.size()};
  if (ptrace(PTRACE_GETREGSET, tid, (void*)(long)kXstateRegset, &iov) < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_GETREGSET xstate");
  r.xstate.resize(iov.iov_len);
  return r;
}

Status SetGpRegs(pid_t tid, const user_regs_struct& gp) {
  if (ptrace(PTRACE_SETREGS, tid, nullptr, &gp) < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_SETREGS");
  return Ok();
}

Status SetRegs(pid_t tid, const Regs& r, bool with_xstate) {
  TRY(SetGpRegs(tid, r.gp));
  if (with_xstate && !r.xstate.empty()) {
    std::vector<uint8_t> copy = r.xstate;
    struct iovec iov = {copy.data(), copy.size()};
    if (ptrace(PTRACE_SETREGSET, tid, (void*)(long)kXstateRegset, &iov) < 0)
      return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_SETREGSET xstate");
  }
  return Ok();
}

Result<uint64_t> GetSigmask(pid_t tid) {
  uint64_t m = 0;
  if (ptrace(PTRACE_GETSIGMASK, tid, (void*)sizeof(m), &m) < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_GETSIGMASK");
  return m;
}

Status SetSigmask(pid_t tid, uint64_t mask) {
  if (ptrace(PTRACE_SETSIGMASK, tid, (void*)sizeof(mask), &mask) < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": PTRACE_SETSIGMASK");
  return Ok();
}

void BuildSigframe(abi::SigframeArea* area, uint64_t area_addr, const Regs& r, uint64_t sigmask,
                   const abi::KStack& altstack) {
  memset(&area->frame, 0, sizeof(area->frame));
  abi::KUcontext& uc = area->frame.uc;
  abi::KSigcontext& sc = uc.mcontext;
  const user_regs_struct& g = r.gp;
  sc.r8 = g.r8, sc.r9 = g.r9, sc.r10 = g.r10, sc.r11 = g.r11;
  sc.r12 = g.r12, sc.r13 = g.r13, sc.r14 = g.r14, sc.r15 = g.r15;
  sc.di = g.rdi, sc.si = g.rsi, sc.bp = g.rbp, sc.bx = g.rbx;
  sc.dx = g.rdx, sc.ax = g.rax, sc.cx = g.rcx, sc.sp = g.rsp, sc.ip = g.rip;
  sc.flags = g.eflags;
  sc.cs = uint16_t(g.cs), sc.gs = 0, sc.fs = 0, sc.ss = uint16_t(g.ss);
  uc.flags = abi::kUcSigcontextSs | abi::kUcStrictRestoreSs;
  uc.sigmask = sigmask;
  uc.stack = altstack;

  // The ptrace xstate regset carries the signal-frame software bytes
  // (magic1, sizes) in fxsave's sw_reserved; the frame also needs magic2
  // right after xstate_size bytes.
  sc.fpstate = 0;
  if (r.xstate.size() >= abi::kFxSwBytesOffset + 5 * sizeof(uint32_t)) {
    // struct _fpx_sw_bytes: magic1, extended_size, u64 xfeatures, xstate_size.
    uint32_t sw[5];
    memcpy(sw, r.xstate.data() + abi::kFxSwBytesOffset, sizeof(sw));
    uint32_t xstate_size = sw[4];
    if (sw[0] == abi::kFpXstateMagic1 && xstate_size <= r.xstate.size() &&
        xstate_size + 4 <= sizeof(area->xstate)) {
      memcpy(area->xstate, r.xstate.data(), xstate_size);
      uint32_t m2 = abi::kFpXstateMagic2;
      memcpy(area->xstate + xstate_size, &m2, 4);
      sc.fpstate = area_addr + offsetof(abi::SigframeArea, xstate);
      uc.flags |= abi::kUcFpXstate;
    } else if (r.xstate.size() >= 512) {
      memcpy(area->xstate, r.xstate.data(), 512);  // legacy fxsave only
      memset(area->xstate + abi::kFxSwBytesOffset, 0, 48);
      sc.fpstate = area_addr + offsetof(abi::SigframeArea, xstate);
    }
  }
}

void PrepareSyscallRestart(user_regs_struct& g) {
  if ((long)g.orig_rax < 0) return;
  long ax = (long)g.rax;
  switch (-ax) {
    case kErestartSys:
    case kErestartNoIntr:
    case kErestartNoHand:
      g.rax = g.orig_rax;
      g.rip -= 2;
      break;
    case kErestartRestartBlock:
      // The restart block (e.g. nanosleep's remaining time) lives in the
      // kernel and does not survive; restart_syscall then reports EINTR.
      g.rax = kNrRestartSyscall;
      g.rip -= 2;
      break;
    default:
      break;
  }
  g.orig_rax = (unsigned long long)-1;
}

}  // namespace ckpt::compel
