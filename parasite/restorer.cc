// The restorer: runs in ckpt's forked child, replaces ckpt's address space
// with the dumped one, sets the task state, and stops before rt_sigreturn
// so ckpt can let the task go. See abi.h (RestoreArgs) for the contract.
#include <asm/unistd.h>
#include <linux/mman.h>
#include <linux/prctl.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>

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
constexpr int kPrTimerCreateRestoreIds = 77;  // PR_TIMER_CREATE_RESTORE_IDS (Linux 6.15+)
constexpr uint64_t kCloneThreadFlags =
    0x00000100 | 0x00000200 | 0x00000400 | 0x00000800 | 0x00010000 | 0x00040000 | 0x00080000;
// CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS

RestoreArgs* g_args;

struct KCloneArgs {  // struct clone_args, CLONE_ARGS_SIZE_VER2
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

struct KSigevent {  // struct sigevent
  uint64_t value;
  int32_t signo;
  int32_t notify;
  int32_t tid;
  int32_t pad[11];
};
static_assert(sizeof(KSigevent) == 64);

struct KSockFprog {  // struct sock_fprog
  uint16_t len;
  uint16_t pad[3];
  uint64_t filter;
};

constexpr long kSeccompSetModeStrict = 0;
constexpr long kSeccompSetModeFilter = 1;
constexpr long kSeccompFilterFlagSpecAllow = 1 << 2;

struct KCapHeader {
  uint32_t version;
  int32_t pid;
};
struct KCapData {
  uint32_t effective, permitted, inheritable;
};

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

// An injected failure (RestoreArgs::fault): fails by the blob's own exit.
void FaultPoint(RestoreArgs* a, uint32_t bit, const char* what) {
  if (!(a->fault & bit)) return;
  if ((a->fault & kFaultKill) && a->fault_kill_pid > 0 &&
      sys(__NR_getppid) == a->fault_kill_pid)
    sys(__NR_kill, a->fault_kill_pid, 9 /* SIGKILL */);
  Fail(what, -5 /* EIO */);
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
    if (v[i].kind == kVmaSysv) {
      if (v[i].pgoff != 0) continue;  // the attach of its first part covers it
      long flags = (v[i].prot & PROT_WRITE ? 0 : 010000 /* SHM_RDONLY */) |
                   (v[i].prot & PROT_EXEC ? 0100000 /* SHM_EXEC */ : 0);
      long r = sys(__NR_shmat, v[i].sysv_id, v[i].start, flags);
      Check(r, "shmat", v[i].start);
      if ((uint64_t)r != v[i].start) Fail("shmat landed elsewhere", -1, r);
      continue;
    }
    if (v[i].kind != kVmaAnon && v[i].kind != kVmaFile) continue;
    if (v[i].madv & kVmaPremapped) continue;  // in place with its pages
    uint32_t prot = v[i].prot;
    if (NeedsFill(a, v[i])) prot |= PROT_READ | PROT_WRITE;
    long flags = v[i].flags | MAP_FIXED;
    if (v[i].kind == kVmaAnon) flags |= MAP_ANONYMOUS;
    // MAP_DROPPABLE (Linux 6.11) is a mapping type of its own, like MAP_PRIVATE.
    if (v[i].kind == kVmaAnon && (v[i].madv & kVmaDroppable))
      flags = (flags & ~long(MAP_PRIVATE | MAP_SHARED)) | 0x08 /* MAP_DROPPABLE */;
    long r = sys(__NR_mmap, v[i].start, v[i].end - v[i].start, prot, flags,
                 v[i].kind == kVmaFile ? v[i].fd : -1, v[i].pgoff);
    Check(r, "mmap vma", v[i].start);
    if ((uint64_t)r != v[i].start) Fail("mmap vma landed elsewhere", -1, r);
    // THP as dumped before FillPages faults the pages in (hg: 2 MiB at once).
    if (v[i].madv & 4) sys(__NR_madvise, v[i].start, v[i].end - v[i].start, 14 /* HUGEPAGE */);
    if (v[i].madv & 8) sys(__NR_madvise, v[i].start, v[i].end - v[i].start, 15 /* NOHUGEPAGE */);
    Debug("mapped", v[i].start, v[i].end);
  }
}

void FillPages(RestoreArgs* a) {
  RestorePages* p = At<RestorePages>(a, a->pages_off);
  for (uint32_t i = 0; i < a->nr_pages; i++) {
    uint64_t addr = p[i].vaddr, left = p[i].nr_pages * kPageSize, off = p[i].off;
    while (left > 0) {
      long r = sys(__NR_pread64, p[i].fd, addr, left, off);
      if (r == -4) continue;
      Check(r, "read pages", addr);
      if (r == 0) Fail("pages image is truncated", -5, addr);
      addr += r;
      off += r;
      left -= r;
    }
  }
}

void FinishVmas(RestoreArgs* a) {
  RestoreVma* v = At<RestoreVma>(a, a->vmas_off);
  for (uint32_t i = 0; i < a->nr_vmas; i++) {
    if (v[i].kind == kVmaSysv) {  // parts may have been mprotect'ed apart
      Check(sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), "mprotect",
            v[i].start);
      continue;
    }
    if (v[i].kind != kVmaAnon && v[i].kind != kVmaFile) continue;
    if (NeedsFill(a, v[i]) || (v[i].madv & kVmaPremapped))
      Check(sys(__NR_mprotect, v[i].start, v[i].end - v[i].start, v[i].prot), "mprotect",
            v[i].start);
    uint64_t len = v[i].end - v[i].start;
    if (v[i].madv & 1) Check(sys(__NR_madvise, v[i].start, len, 10 /* DONTFORK */), "madvise");
    if (v[i].madv & 2) Check(sys(__NR_madvise, v[i].start, len, 16 /* DONTDUMP */), "madvise");
    if (v[i].madv & 4) sys(__NR_madvise, v[i].start, len, 14 /* HUGEPAGE */);
    if (v[i].madv & 8) sys(__NR_madvise, v[i].start, len, 15 /* NOHUGEPAGE */);
    if (v[i].madv & kVmaWipeOnFork)
      Check(sys(__NR_madvise, v[i].start, len, 18 /* WIPEONFORK */), "madvise WIPEONFORK", v[i].start);
  }
  for (uint32_t i = 0; i < a->nr_vmas; i++)
    if (v[i].fd >= 0 && !(v[i].madv & kVmaKeepFd)) sys(__NR_close, v[i].fd);
}

// Lazy restore: a userfaultfd of this mm with the lazy ranges registered,
// sent to the lazy-pages daemon over a->lazy_sock, then closed here: the
// task's fd table ends without it. Before anything touches lazy memory.
struct KIovec {
  void* base;
  uint64_t len;
};
struct KMsghdr {  // struct msghdr (x86_64)
  void* name;
  int32_t namelen, pad;
  KIovec* iov;
  uint64_t iovlen;
  void* control;
  uint64_t controllen;
  int32_t flags, pad2;
};
struct KCmsgFd {  // struct cmsghdr + one int, CMSG_SPACE(sizeof(int)) == 24
  uint64_t len;
  int32_t level, type;
  int32_t fd, pad;
};

void HandOverUffd(RestoreArgs* a) {
  long uffd = sys(__NR_userfaultfd, 02000000 /* O_CLOEXEC */ | 04000 /* O_NONBLOCK */);
  Check(uffd, "userfaultfd (lazy pages)");
  uffdio_api api;
  memset(&api, 0, sizeof(api));
  api.api = UFFD_API;
  api.features = a->lazy_features;
  Check(sys(__NR_ioctl, uffd, UFFDIO_API, &api), "UFFDIO_API", a->lazy_features);
  LazyRange* r = At<LazyRange>(a, a->lazy_off);
  for (uint32_t i = 0; i < a->nr_lazy; i++) {
    uffdio_register reg;
    memset(&reg, 0, sizeof(reg));
    reg.range.start = r[i].start;
    reg.range.len = r[i].end - r[i].start;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    Check(sys(__NR_ioctl, uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER", r[i].start);
  }
  LazyHello hello = {kLazyHelloMagic, a->lazy_id, (int32_t)sys(__NR_getpid), a->nr_lazy};
  KIovec iov = {&hello, sizeof(hello)};
  KCmsgFd c = {20 /* CMSG_LEN(sizeof(int)) */, 1 /* SOL_SOCKET */, 1 /* SCM_RIGHTS */, (int32_t)uffd,
               0};
  KMsghdr m;
  memset(&m, 0, sizeof(m));
  m.iov = &iov;
  m.iovlen = 1;
  m.control = &c;
  m.controllen = sizeof(c);
  long n;
  while ((n = sys(__NR_sendmsg, a->lazy_sock, &m, 0x4000 /* MSG_NOSIGNAL */)) == -4) {
  }
  Check(n, "sending the userfaultfd to the lazy-pages daemon (is it still running?)");
  sys(__NR_close, uffd);
  sys(__NR_close, a->lazy_sock);
}

}  // namespace

extern "C" long blob_clone_thread(KCloneArgs* args, uint64_t size, void (*fn)(void*), void* arg);

namespace {

void Wake(uint32_t* addr) { sys(__NR_futex, addr, 1 /* FUTEX_WAKE */, 0x7fffffff); }

void RestoreCreds(RestoreArgs* a) {
  constexpr int kSecbitNoSetuidFixup = 1 << 2;
  if (a->has_caps) {
    // Keep every capability across the uid changes (so setfsuid and the
    // securebits still work), then set the dumped sets exactly.
    // Needs CAP_SETPCAP; without it (ckpt run by a plain user,
    // criu/security.h) the uids do not change and no fixup happens.
    sys(__NR_prctl, PR_SET_SECUREBITS, kSecbitNoSetuidFixup);
    for (int cap = 0; cap < 64; cap++)
      if (!(a->cap_bnd >> cap & 1)) sys(__NR_prctl, PR_CAPBSET_DROP, cap);
  }
  if (a->nr_groups != kKeepGroups) Check(sys(__NR_setgroups, a->nr_groups, a->groups), "setgroups");
  Check(sys(__NR_setresgid, a->gids[0], a->gids[1], a->gids[2]), "setresgid");
  Check(sys(__NR_setresuid, a->uids[0], a->uids[1], a->uids[2]), "setresuid");
  sys(__NR_setfsgid, a->gids[3]);
  sys(__NR_setfsuid, a->uids[3]);
  if (!a->has_caps) return;
  if (sys(__NR_prctl, PR_GET_SECUREBITS) != (long)a->securebits)
    Check(sys(__NR_prctl, PR_SET_SECUREBITS, a->securebits), "securebits", a->securebits);
  KCapHeader h = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
  KCapData d[2] = {
      {uint32_t(a->cap_eff), uint32_t(a->cap_prm), uint32_t(a->cap_inh)},
      {uint32_t(a->cap_eff >> 32), uint32_t(a->cap_prm >> 32), uint32_t(a->cap_inh >> 32)}};
  Check(sys(__NR_capset, &h, d), "capset");
  sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  for (int cap = 0; cap < 64; cap++)
    if (a->cap_amb >> cap & 1) sys(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
}

void WriteLsmLabel(RestoreArgs* a, RestoreThread* t, int fd) {
  long r = sys(__NR_write, fd, At<char>(a, t->lsm_label_off), t->lsm_label_len);
  if (r != (long)t->lsm_label_len)
    Fail("setting the LSM label (is that profile loaded on this host?)", r < 0 ? r : -5, t->tid);
  sys(__NR_close, fd);
}

// The last steps every thread does for itself, then the hand-over.
// Seccomp filters are in place already (SpawnAndFilter); ckpt traces every
// restored task with PTRACE_O_SUSPEND_SECCOMP, so they block none of the
// system calls below, nor the traced rt_sigreturn, nor ckpt's remote munmap
// of this region: they take effect when ckpt detaches.
[[noreturn]] void FinishThread(RestoreArgs* a, RestoreThread* t, bool leader) {
  sys(__NR_set_tid_address, t->clear_tid);
  if (t->robust_list) sys(__NR_set_robust_list, t->robust_list, t->robust_len);
  if (t->comm[0]) sys(__NR_prctl, PR_SET_NAME, t->comm);
  Check(sys(__NR_arch_prctl, kArchSetFs, t->fs_base), "arch_prctl SET_FS");
  Check(sys(__NR_arch_prctl, kArchSetGs, t->gs_base), "arch_prctl SET_GS");
  if (t->rseq_ptr)
    Check(sys(__NR_rseq, t->rseq_ptr, t->rseq_size, 0, t->rseq_sig), "rseq", t->rseq_ptr);
  int32_t tgid = (int32_t)sys(__NR_getpid);
  uint8_t* si = At<uint8_t>(a, t->pending_off);
  for (uint32_t i = 0; i < t->nr_pending; i++, si += 128) {
    int32_t signo = *reinterpret_cast<int32_t*>(si);
    Check(sys(__NR_rt_tgsigqueueinfo, tgid, t->tid, signo, si), "queue signal", signo);
  }
  // The LSM attr file is opened while the thread is still ckpt's (root,
  // dumpable): the dumped credentials may not be allowed to open it.
  int lsm_fd = -1;
  if (t->lsm_label_off) {
    lsm_fd = (int)sys(__NR_openat, -100 /* AT_FDCWD */, a->lsm_attr,
                      01 | 02000000 /* O_WRONLY|O_CLOEXEC */);
    Check(lsm_fd, "open the LSM attr file", t->tid);
  }
  // Smack needs CAP_MAC_ADMIN to relabel: before the capabilities go.
  if (lsm_fd >= 0 && a->lsm_before_creds) WriteLsmLabel(a, t, lsm_fd);
  RestoreCreds(a);
  // An AppArmor profile or SELinux domain would mediate setresuid and
  // capset above: the label comes after them.
  if (lsm_fd >= 0 && !a->lsm_before_creds) WriteLsmLabel(a, t, lsm_fd);
  // Per thread, after this thread cloned the threads it hands its filters
  // to (they must not inherit a no_new_privs they did not have) and after
  // the label (AppArmor restricts profile changes under no_new_privs).
  if (t->no_new_privs) Check(sys(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
  if (t->seccomp_mode == 1)
    Check(sys(__NR_seccomp, kSeccompSetModeStrict, 0, 0), "seccomp strict mode", t->tid);
  if (leader) {
    // Changing credentials resets the dumpable flag and the parent death
    // signal: set them after.
    sys(__NR_prctl, PR_SET_DUMPABLE, a->dumpable);
    if (a->pdeath_sig) sys(__NR_prctl, PR_SET_PDEATHSIG, a->pdeath_sig);
    // Wait for every other thread before closing what they might still use.
    for (;;) {
      uint32_t done = __atomic_load_n(&a->threads_done, __ATOMIC_ACQUIRE);
      if (done + 1 >= a->nr_threads) break;
      sys(__NR_futex, &a->threads_done, 0 /* FUTEX_WAIT */, done, 0);
    }
    for (uint32_t i = 0; i < a->nr_close_fds; i++) sys(__NR_close, a->close_fds[i]);
    Debug("done, handing over to rt_sigreturn");
    if (a->log_fd >= 0) sys(__NR_close, a->log_fd);
  } else {
    __atomic_add_fetch(&a->threads_done, 1, __ATOMIC_RELEASE);
    Wake(&a->threads_done);
  }
  // Stop for ckpt (it traces us), then become the dumped thread. SIGTRAP
  // is unblocked first: the kernel resets the handler of a forced signal
  // that is blocked (the int3's SIGTRAP) to SIG_DFL, which would lose the
  // program's own SIGTRAP handler; unblocked, it only stops for ckpt.
  uint64_t trap_bit = 1ull << (5 /* SIGTRAP */ - 1);
  sys(__NR_rt_sigprocmask, 1 /* SIG_UNBLOCK */, &trap_bit, 0, 8);
  trap();
  SigframeArea* f = At<SigframeArea>(a, t->frame_off);
  rt_sigreturn_on((uint64_t)&f->frame.uc);
}

void ThreadMain(void* arg);

void CloneThread(RestoreArgs* a, RestoreThread* t) {
  KCloneArgs ca;
  memset(&ca, 0, sizeof(ca));
  ca.flags = kCloneThreadFlags;
  ca.set_tid = (uint64_t)t->set_tid;
  ca.set_tid_size = t->set_tid_size;
  ca.stack = t->stack_top - kThreadStackSize;
  ca.stack_size = kThreadStackSize;
  ca.tls = t->fs_base;
  long r = blob_clone_thread(&ca, sizeof(ca), ThreadMain, t);
  if (r == -17 /* EEXIST */ && ca.set_tid_size > 1) {  // the outermost tid is taken
    ca.set_tid_size--;
    r = blob_clone_thread(&ca, sizeof(ca), ThreadMain, t);
  }
  Check(r, "clone3 thread", (uint64_t)t->tid);
  __atomic_add_fetch(&a->threads_born, 1, __ATOMIC_RELEASE);
  Wake(&a->threads_born);
}

// Thread `self` installs its seccomp chain from where it stands (clone_at:
// what it inherited) to its end, oldest first, and clones each thread that
// shares the first k filters with it right after the k-th: a clone
// inherits the very filter objects, as the dumped threads shared them
// (a later SECCOMP_FILTER_FLAG_TSYNC in the program depends on that).
// Installing needs no_new_privs or CAP_SYS_ADMIN: the thread still has
// ckpt's credentials here, so a task without no_new_privs gets its filters
// without gaining it, and one without capabilities gets them too.
void SpawnAndFilter(RestoreArgs* a, uint32_t self) {
  RestoreThread* th = At<RestoreThread>(a, a->threads_off);
  RestoreThread* t = &th[self];
  RestoreFilter* filters = At<RestoreFilter>(a, a->filters_off);
  uint32_t* chain = At<uint32_t>(a, t->chain_off);
  for (uint32_t k = t->clone_at;; k++) {
    for (uint32_t j = 1; j < a->nr_threads; j++)
      if (th[j].clone_by == (int32_t)self && th[j].clone_at == k) CloneThread(a, &th[j]);
    if (k >= t->nr_chain) break;
    const RestoreFilter& f = filters[chain[k]];
    KSockFprog prog = {(uint16_t)f.len, {0, 0, 0}, (uint64_t)At<uint8_t>(a, f.insns_off)};
    long flags = f.flags | (t->spec_allow ? kSeccompFilterFlagSpecAllow : 0);
    Check(sys(__NR_seccomp, kSeccompSetModeFilter, flags, &prog), "seccomp filter", t->tid);
  }
}

void ThreadMain(void* arg) {
  RestoreThread* t = static_cast<RestoreThread*>(arg);
  SpawnAndFilter(g_args, (uint32_t)(t - At<RestoreThread>(g_args, g_args->threads_off)));
  FinishThread(g_args, t, false);
}

void RestoreTimers(RestoreArgs* a) {
  for (int w = 0; w < 3; w++) Check(sys(__NR_setitimer, w, &a->itimers[w], 0), "setitimer", w);
  if (!a->nr_posix_timers) return;
  // Ask for the dumped timer ids; without that knob ids are handed out in
  // order, which matches only if they were dense.
  bool chosen = sys(__NR_prctl, kPrTimerCreateRestoreIds, 1, 0, 0, 0) == 0;
  RestorePosixTimer* pt = At<RestorePosixTimer>(a, a->posix_timers_off);
  for (uint32_t i = 0; i < a->nr_posix_timers; i++) {
    KSigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.value = pt[i].value;
    ev.signo = pt[i].signo;
    ev.notify = pt[i].notify;
    ev.tid = pt[i].notify_tid;
    int32_t id = pt[i].id;
    Check(sys(__NR_timer_create, pt[i].clock, &ev, &id), "timer_create", pt[i].id);
    if (id != pt[i].id) Fail("timer_create gave another id", -22, id);
    Check(sys(__NR_timer_settime, id, 0, &pt[i].spec, 0), "timer_settime", id);
  }
  if (chosen) sys(__NR_prctl, kPrTimerCreateRestoreIds, 0, 0, 0, 0);
}

}  // namespace

extern "C" void blob_main(RestoreArgs* a) {
  g_args = a;
  uint64_t all = ~0ull;
  sys(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, 0, 8);
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

  // 2. Drop everything of ckpt but this region and the VMAs premapped
  //    before the fork (criu/cow_premap.h; sorted, as all VMAs are).
  FaultPoint(a, kFaultBeforeUnmap, "fault injected at restorer-before-unmap (CKPT_FAULT)");
  {
    uint64_t cur = 0;
    bool region_done = false;
    RestoreVma* v = At<RestoreVma>(a, a->vmas_off);
    auto keep = [&](uint64_t ks, uint64_t ke) {
      if (ks > cur) Check(sys(__NR_munmap, cur, ks - cur), "unmap around kept ranges", cur);
      if (ke > cur) cur = ke;
    };
    for (uint32_t i = 0; i <= a->nr_vmas; i++) {
      bool last = i == a->nr_vmas;
      if (!last && !(v[i].madv & kVmaPremapped)) continue;
      if (!region_done && (last || a->self_start < v[i].start)) {
        keep(a->self_start, a->self_start + a->self_len);
        region_done = true;
      }
      if (!last) keep(v[i].start, v[i].end);
    }
    if (kTaskSize > cur) Check(sys(__NR_munmap, cur, kTaskSize - cur), "unmap above kept ranges", cur);
  }
  FaultPoint(a, kFaultAfterUnmap, "fault injected at restorer-after-unmap (CKPT_FAULT)");

  // 3. The dumped address space.
  MapVmas(a);
  FillPages(a);
  for (uint32_t i = 0; i < a->nr_pages_fds; i++) sys(__NR_close, a->pages_fds[i]);
  FinishVmas(a);
  if (a->lazy_sock >= 0) HandOverUffd(a);
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

  // 5. Process-wide state.
  for (uint32_t sig = 1; sig <= kNumSignals; sig++) {
    if (sig == 9 || sig == 19) continue;
    Check(sys(__NR_rt_sigaction, sig, &a->sigacts[sig - 1], 0, 8), "rt_sigaction", sig);
  }
  for (uint32_t i = 0; i < a->nr_rlimits; i++) {
    RestoreRlimit& r = a->rlimits[i];
    uint64_t lim[2] = {r.cur, r.max};
    Check(sys(__NR_prlimit64, 0, r.resource, lim, 0),
          "setrlimit (raising a hard limit needs CAP_SYS_RESOURCE)", r.resource);
  }
  sys(__NR_umask, a->umask);
  sys(__NR_personality, a->personality);
  sys(__NR_prctl, PR_SET_NAME, a->comm);
  if (a->child_subreaper) sys(__NR_prctl, PR_SET_CHILD_SUBREAPER, 1);
  if (a->thp_disable) Check(sys(__NR_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0), "thp_disable");
  if (a->timerslack_ns) sys(__NR_prctl, PR_SET_TIMERSLACK, a->timerslack_ns, 0, 0, 0);
  // no_new_privs is per thread: FinishThread sets it.

  // 6. The other threads, with their own tids, and the seccomp filters:
  //    some threads are cloned by others (SpawnAndFilter); each finishes
  //    itself.
  RestoreThread* th = At<RestoreThread>(a, a->threads_off);
  SpawnAndFilter(a, 0);
  for (;;) {
    uint32_t born = __atomic_load_n(&a->threads_born, __ATOMIC_ACQUIRE);
    if (born + 1 >= a->nr_threads) break;
    sys(__NR_futex, &a->threads_born, 0 /* FUTEX_WAIT */, born, 0);
  }
  // Signals that reached us while restoring (SIGCHLD of a zombie child
  // made for the tree) were not pending at dump time: drop them.
  for (;;) {
    uint64_t all = ~0ull;
    KTimespec zero = {0, 0};
    if (sys(__NR_rt_sigtimedwait, &all, 0, &zero, 8) <= 0) break;
  }
  // Timers may name a thread (SIGEV_THREAD_ID): after the threads exist.
  RestoreTimers(a);
  int32_t tgid = (int32_t)sys(__NR_getpid);
  uint8_t* si = At<uint8_t>(a, a->shared_pending_off);
  for (uint32_t i = 0; i < a->nr_shared_pending; i++, si += 128) {
    int32_t signo = *reinterpret_cast<int32_t*>(si);
    Check(sys(__NR_rt_sigqueueinfo, tgid, signo, si), "queue signal", signo);
  }
  FinishThread(a, &th[0], true);
}
