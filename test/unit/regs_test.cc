// Unit tests for compel/regs: the pure register transforms (syscall restart
// rewriting and the rt_sigframe built for rt_sigreturn). No ptrace needed.
#include "compel/regs.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

namespace ckpt::compel {
namespace {

constexpr long kErestartSys = 512, kErestartNoIntr = 513, kErestartNoHand = 514,
               kErestartRestartBlock = 516;
constexpr unsigned long long kNrRestartSyscall = 219;  // __NR_restart_syscall, x86_64
constexpr unsigned long long kNoSyscall = ~0ull;       // orig_ax -1

// Distinct values in every register, so a stray write shows.
user_regs_struct DistinctRegs() {
  user_regs_struct g;
  auto* w = reinterpret_cast<unsigned long long*>(&g);
  for (size_t i = 0; i < sizeof(g) / sizeof(*w); i++) w[i] = 0x1000000000ull * (i + 1) + i;
  return g;
}

// Compares all registers except the ones the test names.
void ExpectOthersUnchanged(const user_regs_struct& a, const user_regs_struct& b) {
  user_regs_struct x = a, y = b;
  x.rax = y.rax = 0;
  x.orig_rax = y.orig_rax = 0;
  x.rip = y.rip = 0;
  EXPECT_EQ(memcmp(&x, &y, sizeof(x)), 0) << "a register other than ax/orig_ax/ip changed";
}

// ---------------------------------------------------------------------------
// PrepareSyscallRestart

TEST(PrepareSyscallRestart, RestartCodesRewindAndReissue) {
  for (long code : {kErestartSys, kErestartNoIntr, kErestartNoHand}) {
    for (unsigned long long nr :
         {0ull, 7ull, 35ull, 232ull}) {  // read, poll, nanosleep, epoll_wait
      user_regs_struct g = DistinctRegs();
      g.orig_rax = nr;
      g.rax = (unsigned long long)-code;
      g.rip = 0x401236;
      user_regs_struct before = g;
      PrepareSyscallRestart(g);
      EXPECT_EQ(g.rip, 0x401234u) << "code " << code << " nr " << nr;  // back onto `syscall`
      EXPECT_EQ(g.rax, nr) << "code " << code;
      EXPECT_EQ(g.orig_rax, kNoSyscall);
      ExpectOthersUnchanged(before, g);
    }
  }
}

TEST(PrepareSyscallRestart, RestartBlockUsesRestartSyscall) {
  user_regs_struct g = DistinctRegs();
  g.orig_rax = 35;  // nanosleep
  g.rax = (unsigned long long)-kErestartRestartBlock;
  g.rip = 0x7f0000001002;
  user_regs_struct before = g;
  PrepareSyscallRestart(g);
  EXPECT_EQ(g.rip, 0x7f0000001000u);
  EXPECT_EQ(g.rax, kNrRestartSyscall);
  EXPECT_EQ(g.orig_rax, kNoSyscall);
  ExpectOthersUnchanged(before, g);
}

TEST(PrepareSyscallRestart, NotInASyscallIsUnchanged) {
  user_regs_struct g = DistinctRegs();
  g.orig_rax = kNoSyscall;
  g.rax = (unsigned long long)-kErestartSys;  // looks like a restart code, but no syscall
  g.rip = 0x401236;
  user_regs_struct before = g;
  PrepareSyscallRestart(g);
  EXPECT_EQ(memcmp(&g, &before, sizeof(g)), 0);
}

TEST(PrepareSyscallRestart, FinishedSyscallKeepsResultButLeavesSyscall) {
  // A syscall that completed (or failed with a real errno) must not rerun.
  for (long ax : {0L, 5L, -4L /*EINTR*/, -11L /*EAGAIN*/, -515L, -511L, -517L}) {
    user_regs_struct g = DistinctRegs();
    g.orig_rax = 0;
    g.rax = (unsigned long long)ax;
    g.rip = 0x401236;
    user_regs_struct before = g;
    PrepareSyscallRestart(g);
    EXPECT_EQ(g.rip, 0x401236u) << "ax " << ax;
    EXPECT_EQ(g.rax, (unsigned long long)ax);
    EXPECT_EQ(g.orig_rax, kNoSyscall);
    ExpectOthersUnchanged(before, g);
  }
}

TEST(PrepareSyscallRestart, Idempotent) {
  user_regs_struct g = DistinctRegs();
  g.orig_rax = 0;
  g.rax = (unsigned long long)-kErestartSys;
  g.rip = 0x401236;
  PrepareSyscallRestart(g);
  user_regs_struct once = g;
  PrepareSyscallRestart(g);  // orig_ax is -1 now: nothing more happens
  EXPECT_EQ(memcmp(&g, &once, sizeof(g)), 0);
}

// ---------------------------------------------------------------------------
// BuildSigframe

// An xstate regset as PTRACE_GETREGSET returns it: fxsave area with the
// software bytes (magic1, extended size, xfeatures, xstate_size) at 464.
std::vector<uint8_t> MakeXstate(uint32_t xstate_size, size_t buffer_size, bool with_magic1 = true) {
  std::vector<uint8_t> x(buffer_size);
  for (size_t i = 0; i < x.size(); i++) x[i] = uint8_t(i * 13 + 1);
  if (buffer_size >= abi::kFxSwBytesOffset + 20) {
    uint32_t sw[5] = {with_magic1 ? abi::kFpXstateMagic1 : 0u, xstate_size + 4, 0x7, 0,
                      xstate_size};
    memcpy(x.data() + abi::kFxSwBytesOffset, sw, sizeof(sw));
  }
  return x;
}

struct Built {
  std::unique_ptr<abi::SigframeArea> area;
  Regs regs;
  uint64_t area_addr;
};

Built Build(std::vector<uint8_t> xstate, uint64_t area_addr = 0x7f1234560000ull,
            uint64_t sigmask = 0x8000000000010001ull) {
  Built b;
  b.area = std::make_unique<abi::SigframeArea>();
  memset(b.area.get(), 0xAA, sizeof(abi::SigframeArea));  // garbage to be overwritten
  b.area_addr = area_addr;
  b.regs.gp = DistinctRegs();
  b.regs.gp.cs = 0x33;
  b.regs.gp.ss = 0x2b;
  b.regs.xstate = std::move(xstate);
  abi::KStack alt{};
  alt.sp = 0x7f0000100000;
  alt.size = 65536;
  alt.flags = 0;
  BuildSigframe(b.area.get(), area_addr, b.regs, sigmask, alt);
  return b;
}

TEST(BuildSigframe, GeneralRegistersAndContext) {
  Built b = Build(MakeXstate(1088, 1088));
  const abi::KUcontext& uc = b.area->frame.uc;
  const abi::KSigcontext& sc = uc.mcontext;
  const user_regs_struct& g = b.regs.gp;
  EXPECT_EQ(sc.r8, g.r8);
  EXPECT_EQ(sc.r9, g.r9);
  EXPECT_EQ(sc.r10, g.r10);
  EXPECT_EQ(sc.r11, g.r11);
  EXPECT_EQ(sc.r12, g.r12);
  EXPECT_EQ(sc.r13, g.r13);
  EXPECT_EQ(sc.r14, g.r14);
  EXPECT_EQ(sc.r15, g.r15);
  EXPECT_EQ(sc.di, g.rdi);
  EXPECT_EQ(sc.si, g.rsi);
  EXPECT_EQ(sc.bp, g.rbp);
  EXPECT_EQ(sc.bx, g.rbx);
  EXPECT_EQ(sc.dx, g.rdx);
  EXPECT_EQ(sc.ax, g.rax);
  EXPECT_EQ(sc.cx, g.rcx);
  EXPECT_EQ(sc.sp, g.rsp);
  EXPECT_EQ(sc.ip, g.rip);
  EXPECT_EQ(sc.flags, g.eflags);
  EXPECT_EQ(sc.cs, 0x33);
  EXPECT_EQ(sc.ss, 0x2b);
  // Fields with no source are zero, not left-over garbage.
  EXPECT_EQ(sc.err, 0u);
  EXPECT_EQ(sc.trapno, 0u);
  EXPECT_EQ(sc.oldmask, 0u);
  EXPECT_EQ(sc.cr2, 0u);
  for (uint64_t r : sc.reserved1) EXPECT_EQ(r, 0u);
  EXPECT_EQ(uc.link, 0u);
  EXPECT_EQ(b.area->frame.pretcode, 0u);

  EXPECT_EQ(uc.sigmask, 0x8000000000010001ull);
  EXPECT_EQ(uc.stack.sp, 0x7f0000100000u);
  EXPECT_EQ(uc.stack.size, 65536u);
  EXPECT_EQ(uc.stack.flags, 0);
}

TEST(BuildSigframe, XstateFrameLayout) {
  for (uint32_t size : {576u, 832u, 1088u, 2696u, 16384u - 64u}) {
    Built b = Build(MakeXstate(size, size));
    const abi::KUcontext& uc = b.area->frame.uc;
    uint64_t fp = uc.mcontext.fpstate;
    SCOPED_TRACE("xstate_size " + std::to_string(size));
    EXPECT_EQ(uc.flags, abi::kUcFpXstate | abi::kUcSigcontextSs | abi::kUcStrictRestoreSs);
    ASSERT_NE(fp, 0u);
    EXPECT_EQ(fp % 64, 0u) << "xsave area must be 64-byte aligned";
    EXPECT_GE(fp, b.area_addr + sizeof(abi::KRtSigframe)) << "overlaps the frame";
    EXPECT_LE(fp + size + 4, b.area_addr + sizeof(abi::SigframeArea)) << "runs off the area";
    // fpstate is a victim address; map it back into our copy.
    const uint8_t* host = reinterpret_cast<const uint8_t*>(b.area.get()) + (fp - b.area_addr);
    EXPECT_EQ(memcmp(host, b.regs.xstate.data(), size), 0);
    uint32_t magic2;
    memcpy(&magic2, host + size, 4);
    EXPECT_EQ(magic2, abi::kFpXstateMagic2);
  }
}

TEST(BuildSigframe, FpstateFollowsAreaAddress) {
  Built a = Build(MakeXstate(1088, 1088), 0x10000);
  Built b = Build(MakeXstate(1088, 1088), 0x7ffff0000040);  // 64-aligned, not page-aligned
  EXPECT_EQ(a.area->frame.uc.mcontext.fpstate - 0x10000,
            b.area->frame.uc.mcontext.fpstate - 0x7ffff0000040);
  EXPECT_EQ(b.area->frame.uc.mcontext.fpstate % 64, 0u);
}

TEST(BuildSigframe, LargerRegsetBufferUsesXstateSize) {
  // The regset may be longer than xstate_size says; only xstate_size is used.
  Built b = Build(MakeXstate(832, 4096));
  const uint8_t* host = b.area->xstate;
  ASSERT_EQ(b.area->frame.uc.mcontext.fpstate, b.area_addr + offsetof(abi::SigframeArea, xstate));
  uint32_t magic2;
  memcpy(&magic2, host + 832, 4);
  EXPECT_EQ(magic2, abi::kFpXstateMagic2);
}

TEST(BuildSigframe, LegacyFxsaveWithoutMagic) {
  Built b = Build(MakeXstate(1088, 512, /*with_magic1=*/false));
  const abi::KUcontext& uc = b.area->frame.uc;
  EXPECT_EQ(uc.flags & abi::kUcFpXstate, 0u);
  EXPECT_EQ(uc.flags, abi::kUcSigcontextSs | abi::kUcStrictRestoreSs);
  ASSERT_EQ(uc.mcontext.fpstate, b.area_addr + offsetof(abi::SigframeArea, xstate));
  EXPECT_EQ(memcmp(b.area->xstate, b.regs.xstate.data(), abi::kFxSwBytesOffset), 0);
  for (size_t i = abi::kFxSwBytesOffset; i < 512; i++)
    EXPECT_EQ(b.area->xstate[i], 0) << "sw_reserved byte " << i << " not cleared";
}

TEST(BuildSigframe, ImplausibleXstateSizeFallsBackToFxsave) {
  // magic1 present, but xstate_size larger than what the regset holds.
  Built b = Build(MakeXstate(8192, 1088));
  EXPECT_EQ(b.area->frame.uc.flags & abi::kUcFpXstate, 0u);
  EXPECT_NE(b.area->frame.uc.mcontext.fpstate, 0u);
  // ... or larger than the area can hold.
  Built c = Build(MakeXstate(abi::kMaxXstate + 64, abi::kMaxXstate + 64));
  EXPECT_EQ(c.area->frame.uc.flags & abi::kUcFpXstate, 0u);
}

TEST(BuildSigframe, NoXstateMeansNoFpstate) {
  Built b = Build({});
  EXPECT_EQ(b.area->frame.uc.mcontext.fpstate, 0u);
  EXPECT_EQ(b.area->frame.uc.flags & abi::kUcFpXstate, 0u);
  EXPECT_EQ(b.area->frame.uc.sigmask, 0x8000000000010001ull);
  EXPECT_EQ(b.area->frame.uc.mcontext.ip, b.regs.gp.rip);
}

TEST(SigframeArea, LayoutContract) {
  EXPECT_EQ(offsetof(abi::SigframeArea, xstate) % 64, 0u);
  EXPECT_GE(offsetof(abi::SigframeArea, xstate), sizeof(abi::KRtSigframe));
  EXPECT_EQ(alignof(abi::SigframeArea) % 64, 0u);
  EXPECT_GE(sizeof(abi::SigframeArea::xstate), abi::kMaxXstate + 4);
}

}  // namespace
}  // namespace ckpt::compel
