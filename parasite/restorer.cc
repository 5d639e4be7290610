// The restorer: runs in ckpt's forked child, replaces ckpt's address space
// with the dumped one, sets the task state, and stops before rt_sigreturn
// so ckpt can let the task go. See abi.h (RestoreArgs) for the contract.
#include <asm/unistd.h>
#include <linux/mman.h>
#include <linux/prctl.h>

#include "parasite/abi.h"
#include "parasite/blob_lib.h"

using namespace ckpt::abi;
using namespace ckpt::blob;

namespace {

constexpr uint64_t kTaskSize = 0x7ffffffff000ull;  // x86_64 4-level user space top
constexpr long kArchSetGs = 0x1001;
constexpr long kArchSetFs = 0x1002;
constexpr int kPrSetMm = 35;
constexpr int kPrSetMmMap = 14;

RestoreArgs* g_args;

template <typename T>
T* At(RestoreArgs* a, uint64_t off) {
  return reinterpret_cast<T*>(reinterpret_cast<char*>(a) + off);
}

[[noreturn]] void Fail(const char* what, long err, uint64_t addr = 0) {
  Log l(g_args->log_fd);
  l << "Error: restorer: " << what << " failed (errno ";
  l.Dec(-err) << ") at ";
  l.Hex(addr);
  l.End();
  sys(__NR_exit_group, 1);
  __builtin_unreachable();
}

void Debug(const char* what, uint64_t a = 0, uint64_t b = 0) {
  if (g_args->log_level < 4) return;
  Log l(g_args->log_fd);
  l << "Debug: restorer: " << what << " ";
  l.Hex(a) << " ";
  l.Hex(b).End();
}

void Check(long r, const char* what, uint64_t addr = 0) {
  if (r < 0 && r > -4096) Fail(what, r, addr);
}

void MoveSpecial(const SpecialMapping& m, uint64_t to, const char* what) {
  if (!m.len) return;
  long r = sys(__NR_mremap, m.cur, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  Check(r, what, to);
}

bool NeedsFill(RestoreArgs* a, const RestoreVma& v) {
  RestorePages* p = At<RestorePages>(a, a->pages_off);
  for (uint32_t i = 0; i < a->nr_pages; i++) {
    uint64_t s = p[i].vaddr, e = s + p[i].nr_pages * kPageSize;
    if (s < v.end && e > v.start) return true;
  }
  return false;
}

void MapVmas(RestoreArgs* a) {
  RestoreVma* v = At<RestoreVma>(a, a->vmas_off);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (v[i].kind != kVmaAnon && v[i].kind != kVmaFile) continue;
    uint32_t prot = v[i].prot;
    if (NeedsFill(a, v[i])) prot |= PROT_READ | PROT_WRITE;
    long flags = v[i].flags | MAP_FIXED;
    if (v[i].kind == kVmaAnon) flags |= MAP_ANONYMOUS;
    long r = sys(__NR_mmap, v[i].start, v[i].end - v[i].start, prot, flags,
                 v[i].kind == kVmaFile ? v[i].fd : -1, v[i].pgoff);
    Check(r, "mmap vma", v[i].start);
    if ((uint64_t)r != v[i].start) Fail("mmap vma landed elsewhere", -1, r);
    Debug("mapped", v[i].start, v[i].end);
  }
}

void FillPages(RestoreArgs* a) {
  RestorePages* p = At<RestorePages>(a, a->pages_off);
  for (uint32_t i = 0; i < a->nr_pages; i++) {
    uint64_t addr = p[i].vaddr, left = p[i].nr_pages * kPageSize;
    while (left > 0) {
      long r = sys(__NR_read, a->pages_fd, addr, left);
      if (r == -4) continue;
      Check(r, "read pages", addr);
      if (r == 0) Fail("pages image is truncated", -5, addr);
      addr += r;
      left -= r;
    }
  }
}

void FinishVmas(RestoreArgs* a) {
  RestoreVma* v = At<RestoreVma>(a, a->vmas_off);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (v[i].kind != kVmaAnon && v[i].kind != kVmaFile) continue;
    if (NeedsFill(a, v[i]))
      Check(sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), "mprotect",
            v[i].start);
    uint64_t len = v[i].end - v[i].start;
    if (v[i].madv & 1) Check(sys(__NR_madvise, v[i].start, len, 10 /* DONTFORK */), "madvise");
    if (v[i].madv & 2) Check(sys(__NR_madvise, v[i].start, len, 16 /* DONTDUMP */), "madvise");
    if (v[i].madv & 4) sys(__NR_madvise, v[i].start, len, 14 /* HUGEPAGE */);
    if (v[i].madv & 8) sys(__NR_madvise, v[i].start, len, 15 /* NOHUGEPAGE */);
  }
  for (uint32_t i = 0; i < a->nr_vmas; i++)
    if (v[i].fd >= 0) sys(__NR_close, v[i].fd);
}

}  // namespace

extern "C" void blob_main(RestoreArgs* a) {
  g_args = a;
  Debug("started, region", a->self_start, a->self_len);

  // 1. Park the live vdso/vvar inside our own region: their final places
  //    may overlap where they are now.
  uint64_t park = a->park;
  const SpecialMapping* sm[3] = {&a->vvar, &a->vclock, &a->vdso};
  uint64_t parked[3];
  for (int i = 0; i < 3; i++) {
    parked[i] = park;
    MoveSpecial(*sm[i], park, "park special mapping");
    park += sm[i]->len;
  }

  // 2. Drop everything of ckpt but this region.
  uint64_t s = a->self_start, e = a->self_start + a->self_len;
  Check(sys(__NR_munmap, 0, s), "unmap below restorer");
  Check(sys(__NR_munmap, e, kTaskSize - e), "unmap above restorer");

  // 3. The dumped address space.
  MapVmas(a);
  FillPages(a);
  sys(__NR_close, a->pages_fd);
  FinishVmas(a);
  for (int i = 0; i < 3; i++) {
    if (!sm[i]->len) continue;
    SpecialMapping m = *sm[i];
    m.cur = parked[i];
    MoveSpecial(m, m.dest, "move special mapping");
  }
  Debug("address space done");

  // 4. mm fields: brk, arg/env, auxv, exe.
  Check(sys(__NR_prctl, kPrSetMm, kPrSetMmMap, &a->mm, sizeof(a->mm), 0), "prctl PR_SET_MM_MAP");
  sys(__NR_close, a->mm.exe_fd);

  // 5. Task state.
  for (uint32_t sig = 1; sig <= kNumSignals; sig++) {
    if (sig == 9 || sig == 19) continue;
    Check(sys(__NR_rt_sigaction, sig, &a->sigacts[sig - 1], 0, 8), "rt_sigaction", sig);
  }
  for (uint32_t i = 0; i < a->nr_rlimits; i++) {
    RestoreRlimit& r = a->rlimits[i];
    uint64_t lim[2] = {r.cur, r.max};
    Check(sys(__NR_prlimit64, 0, r.resource, lim, 0), "setrlimit (raising a hard limit needs CAP_SYS_RESOURCE)", r.resource);
  }
  sys(__NR_umask, a->umask);
  sys(__NR_personality, a->personality);
  sys(__NR_prctl, PR_SET_NAME, a->comm);
  if (a->pdeath_sig) sys(__NR_prctl, PR_SET_PDEATHSIG, a->pdeath_sig);
  if (a->child_subreaper) sys(__NR_prctl, PR_SET_CHILD_SUBREAPER, 1);
  if (a->no_new_privs) Check(sys(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
  Check(sys(__NR_arch_prctl, kArchSetFs, a->fs_base), "arch_prctl SET_FS");
  Check(sys(__NR_arch_prctl, kArchSetGs, a->gs_base), "arch_prctl SET_GS");

  // 6. Credentials last: dropping root ends our right to do the rest.
  Check(sys(__NR_setgroups, a->nr_groups, a->groups), "setgroups");
  Check(sys(__NR_setresgid, a->gids[0], a->gids[1], a->gids[2]), "setresgid");
  Check(sys(__NR_setresuid, a->uids[0], a->uids[1], a->uids[2]), "setresuid");
  sys(__NR_setfsgid, a->gids[3]);
  sys(__NR_setfsuid, a->uids[3]);
  // Changing uids resets the dumpable flag: set it after.
  sys(__NR_prctl, PR_SET_DUMPABLE, a->dumpable);

  if (a->rseq_ptr)
    Check(sys(__NR_rseq, a->rseq_ptr, a->rseq_size, 0, a->rseq_sig), "rseq", a->rseq_ptr);

  for (uint32_t i = 0; i < a->nr_close_fds; i++) sys(__NR_close, a->close_fds[i]);
  Debug("done, handing over to rt_sigreturn");
  if (a->log_fd >= 0) sys(__NR_close, a->log_fd);

  // 7. Stop for ckpt (it traces us), then become the dumped task.
  trap();
  rt_sigreturn_on((uint64_t)&a->sigframe.frame.uc);
}
