#include "criu/regs_pb.h"

namespace ckpt {

#define CKPT_GP_REGS(X)                                                                       \
  X(r15, r15)                                                                                 \
  X(r14, r14) X(r13, r13) X(r12, r12) X(rbp, bp) X(rbx, bx) X(r11, r11) X(r10, r10) X(r9, r9) \
      X(r8, r8) X(rax, ax) X(rcx, cx) X(rdx, dx) X(rsi, si) X(rdi, di) X(orig_rax, orig_ax)   \
          X(rip, ip) X(cs, cs) X(eflags, flags) X(rsp, sp) X(ss, ss) X(fs_base, fs_base)      \
              X(gs_base, gs_base) X(ds, ds) X(es, es) X(fs, fs) X(gs, gs)

void RegsToProto(const compel::Regs& r, pb::ThreadCoreX86* out) {
  pb::UserRegsX86* g = out->mutable_gpregs();
#define X(k, p) g->set_##p(r.gp.k);
  CKPT_GP_REGS(X)
#undef X
  out->set_xstate(std::string(r.xstate.begin(), r.xstate.end()));
}

Result<compel::Regs> RegsFromProto(const pb::ThreadCoreX86& in) {
  compel::Regs r;
#define X(k, p) r.gp.k = in.gpregs().p();
  CKPT_GP_REGS(X)
#undef X
  if (in.xstate().size() > abi::kMaxXstate) return Error("xstate in image is too large");
  r.xstate.assign(in.xstate().begin(), in.xstate().end());
  // User code can only have user segments: reject anything else early.
  if ((r.gp.cs & 3) != 3 || (r.gp.ss & 3) != 3)
    return Error("registers in image are not user mode");
  return r;
}

}  // namespace ckpt
