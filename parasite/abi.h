// The ABI shared by ckpt and its two freestanding blobs (parasite, restorer).
//
// POD only: no pointers into ckpt's heap, no constructors. Addresses are
// victim-space u64 values; arrays are reached by offsets from the start of
// their enclosing args structure. Every structure's size is pinned by a
// static_assert so both sides agree.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace ckpt::abi {

inline constexpr uint64_t kPageSize = 4096;

// ---------------------------------------------------------------------------
// Kernel structures the blobs and ckpt both build (x86_64 layouts).

struct KSigaction {  // struct kernel_sigaction for rt_sigaction(2)
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};
static_assert(sizeof(KSigaction) == 32);

struct KStack {  // stack_t
  uint64_t sp;
  int32_t flags;
  int32_t pad;
  uint64_t size;
};
static_assert(sizeof(KStack) == 24);

struct KTimespec {
  int64_t sec, nsec;
};
struct KItimerspec {  // timer_gettime(2)
  KTimespec interval, value;
};
struct KTimeval {
  int64_t sec, usec;
};
struct KItimerval {  // getitimer(2)
  KTimeval interval, value;
};

struct KSigcontext {  // struct sigcontext (uapi, x86_64)
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t di, si, bp, bx, dx, ax, cx, sp, ip;
  uint64_t flags;
  uint16_t cs, gs, fs, ss;
  uint64_t err, trapno, oldmask, cr2;
  uint64_t fpstate;  // victim address of the xsave area, 64-byte aligned; 0 = none
  uint64_t reserved1[8];
};
static_assert(sizeof(KSigcontext) == 256);

struct KUcontext {
  uint64_t flags;  // UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
  uint64_t link;
  KStack stack;  // rt_sigreturn also restores the sigaltstack from here
  KSigcontext mcontext;
  uint64_t sigmask;
};
static_assert(sizeof(KUcontext) == 304);

// rt_sigreturn(2) reads the frame at rsp - 8: rsp must point at `uc`.
struct KRtSigframe {
  uint64_t pretcode;
  KUcontext uc;
  uint8_t siginfo[128];
};
static_assert(offsetof(KRtSigframe, uc) == 8);

inline constexpr uint64_t kUcFpXstate = 0x1;
inline constexpr uint64_t kUcSigcontextSs = 0x2;
inline constexpr uint64_t kUcStrictRestoreSs = 0x4;
inline constexpr uint32_t kFpXstateMagic1 = 0x46505853;  // in fxsave sw_reserved
inline constexpr uint32_t kFpXstateMagic2 = 0x46505845;  // after the xsave area
inline constexpr size_t kFxSwBytesOffset = 464;          // sw_reserved in fxsave

// A sigframe ready for rt_sigreturn plus room for its xsave area.
inline constexpr size_t kMaxXstate = 16384;
struct SigframeArea {
  KRtSigframe frame;
  uint8_t pad[64 - (sizeof(KRtSigframe) % 64)];
  alignas(64) uint8_t xstate[kMaxXstate + 64];
};

// ---------------------------------------------------------------------------
// Parasite. ckpt maps one shared region into the victim:
//   [0, blob size)            the parasite blob (entry at offset 0)
//   [args_off, +args size)    ParasiteArgs, shared live with ckpt
//   [.., region end)          the parasite's stack
// Entry: rdi = victim address of ParasiteArgs. The blob connects to
// ckpt's abstract unix socket, serves commands until kFini, then executes
// int3. If ckpt goes away (EOF on the socket) the parasite restores the
// victim itself with rt_sigreturn on `abort_frame`.

enum ParasiteCmd : uint32_t {
  kCmdDumpPages = 1,  // vmsplice iovs[0..nr) into the pipe fd sent with the command
  kCmdDumpSigacts = 2,
  kCmdDumpMisc = 3,
  kCmdFini = 4,
  kCmdDumpTimers = 5,  // itimers, and timer_gettime of timer_ids[0..nr)
  // Forks the copy-on-write snapshot child (criu/mem_snapshot.h) on
  // snapshot_stack, handing it the socket sent with the command. Reply:
  // the child's pid as the victim sees it, or -errno. The child then
  // serves kCmdDumpPages on that socket: a message is the ParasiteMsg
  // followed by its nr PIovecs (the first one brings the pipe fd).
  kCmdSnapshot = 6,
};

struct ParasiteMsg {  // one SOCK_SEQPACKET message each way
  uint32_t cmd;
  uint32_t nr;
  int64_t ret;  // reply: 0 or -errno
};

struct PIovec {
  uint64_t base;
  uint64_t len;
};

struct ParasiteMisc {
  uint32_t umask;
  uint32_t personality;
  int32_t dumpable;
  int32_t pdeath_sig;
  int32_t child_subreaper;
  int32_t no_new_privs;
  KStack sigaltstack;
  char comm[16];
  uint64_t brk;  // current program break: brk(0)
  uint32_t securebits;
  uint32_t pad;
  uint64_t clear_tid;  // prctl(PR_GET_TID_ADDRESS)
  // getrlimit from inside: prlimit(2) on another task needs CAP_SYS_RESOURCE
  // when the uids differ, and root may lack it.
  uint64_t rlimits[16][2];
  int32_t thp_disable;
  int32_t pad2;
  uint64_t timerslack_ns;
};

inline constexpr uint32_t kMaxParasiteIovs = 4096;
inline constexpr uint32_t kMaxPosixTimers = 512;
inline constexpr uint32_t kNumSignals = 64;

struct ParasiteArgs {
  // Set by ckpt before start.
  char sock_name[64];  // abstract name, without the leading NUL
  uint32_t sock_name_len;
  int32_t log_level;
  uint64_t abort_frame;  // victim address of SigframeArea::frame.uc (rsp for rt_sigreturn)
  // SIGPIPE was already pending in the victim before infection: a SIGPIPE
  // the parasite's own vmsplice raises (ckpt closed the pipe) must not be
  // swallowed then. Otherwise the parasite removes the one it caused.
  int32_t sigpipe_pending;
  // Set by the parasite: the fd of its socket (-1 before), which ckpt
  // closes at cure after interrupting it in recvmsg.
  int32_t sock_fd;
  // Set by the parasite: the fd that came with the command it is serving
  // (-1 when none), which ckpt closes at cure if it interrupted the command.
  int32_t cmd_fd;
  int32_t pad_cmd;
  // Command data.
  PIovec iovs[kMaxParasiteIovs];
  KSigaction sigacts[kNumSignals];  // [sig - 1]
  ParasiteMisc misc;
  KItimerval itimers[3];  // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
  int32_t timer_ids[kMaxPosixTimers];
  int32_t timer_overrun[kMaxPosixTimers];
  KItimerspec timer_vals[kMaxPosixTimers];
  KStack thread_altstack;    // scratch: sigaltstack of another thread
  uint64_t thread_tid_addr;  // scratch: PR_GET_TID_ADDRESS of another thread
  SigframeArea abort;        // the victim's own state, for the abort path
  // kCmdSnapshot: the child's socket to ckpt (the child reads it first),
  // and its stack: the child shares this region (MAP_SHARED) with the
  // parasite, so it cannot use the parasite's. Once the victim is cured
  // the child alone maps the region: it receives its commands into iovs.
  int32_t snapshot_fd;
  int32_t pad_snapshot;
  alignas(16) uint8_t snapshot_stack[8192];
};

inline constexpr uint64_t kParasiteStackSize = 64 * 1024;

// ---------------------------------------------------------------------------
// Restorer. ckpt's child maps one region in a hole no dumped VMA uses:
//   [0, blob size)  the restorer blob   [args_off ..) RestoreArgs and its arrays
//   [park ..)       room to park the live vdso/vvar  [.. end) the stack
// Entry: rdi = victim address of RestoreArgs. On success the blob ends in
// int3 (ckpt, tracing, then lets the rt_sigreturn run); on failure it logs
// to log_fd and exit_group(1)s.

enum RestoreVmaKind : uint32_t {
  kVmaAnon = 1,
  kVmaFile = 2,
  kVmaVdso = 3,
  kVmaVvar = 4,
  kVmaVvarVclock = 5,
  kVmaSysv = 6,  // shmat(sysv_id) at start when pgoff == 0; later parts are covered
};

inline constexpr uint32_t kVmaKeepFd = 16;
inline constexpr uint32_t kVmaWipeOnFork = 32;  // MADV_WIPEONFORK
inline constexpr uint32_t kVmaDroppable = 64;   // mapped MAP_DROPPABLE (anonymous only)
// Mapped and filled already, before the task forked its children
// (criu/cow_premap.h): kept through the unmapping, not mapped or filled.
inline constexpr uint32_t kVmaPremapped = 128;

struct RestoreVma {
  uint64_t start, end, pgoff;
  uint32_t prot, flags;  // PROT_*, MAP_* (without MAP_FIXED)
  int32_t fd;            // for kVmaFile, -1 otherwise
  uint32_t kind;
  uint32_t madv;  // bits: 1 DONTFORK, 2 DONTDUMP, 4 HUGEPAGE, 8 NOHUGEPAGE,
                  // kVmaKeepFd: fd is one of the task's own: map it, don't close it,
                  // kVmaWipeOnFork, kVmaDroppable (as in VmaEntry.madv)
  int32_t sysv_id;
};
static_assert(sizeof(RestoreVma) == 48);

struct RestorePages {  // read with pread(fd, vaddr, nr_pages * 4096, off)
  uint64_t vaddr;
  uint64_t nr_pages;
  uint64_t off;
  int32_t fd;
  uint32_t pad;
};

struct RestoreRlimit {
  uint32_t resource;
  uint32_t pad;
  uint64_t cur, max;
};

struct KPrctlMmMap {  // struct prctl_mm_map
  uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;  // victim address
  uint32_t auxv_size;
  uint32_t exe_fd;
};
static_assert(sizeof(KPrctlMmMap) == 104);

struct SpecialMapping {  // a live one to park and move, or absent (len 0)
  uint64_t cur;          // where it is now in the child
  uint64_t len;
  uint64_t dest;  // where the image had it
};

inline constexpr uint64_t kThreadStackSize = 16 * 1024;

inline constexpr uint32_t kMaxPidLevels = 8;

struct RestoreThread {
  int32_t tid;  // as the task sees it (its own pid namespace)
  // clone3 set_tid: tid first, then its tid in each enclosing pid namespace
  // of the tree, outwards (the outermost may be dropped if it is taken).
  uint32_t set_tid_size;
  int32_t set_tid[kMaxPidLevels];
  uint32_t nr_pending;   // thread-directed signals to queue again
  uint64_t pending_off;  // siginfo (128 bytes each), from the start of RestoreArgs
  uint64_t frame_off;    // its SigframeArea, from the start of RestoreArgs
  uint64_t stack_top;    // victim address (threads other than the leader)
  uint64_t fs_base, gs_base;
  uint64_t rseq_ptr;  // 0: not registered
  uint32_t rseq_size, rseq_sig;
  uint64_t clear_tid;                // set_tid_address(2): pthread_join relies on it
  uint64_t robust_list, robust_len;  // set_robust_list(2): 0 = none
  char comm[16];
  // Seccomp (criu/seccomp.h). The thread is cloned by threads[clone_by]
  // once that one has installed clone_at filters of its own chain, so it
  // shares those filters (as the dumped threads did); then it installs
  // the rest of its chain itself. The leader has clone_by -1, clone_at 0.
  int32_t clone_by;
  uint32_t clone_at;
  uint32_t seccomp_mode;  // 0 none, 2 filters, 1 strict: entered last, before the trap
  uint32_t nr_chain;      // filters of its chain, oldest first
  uint64_t chain_off;     // uint32_t[nr_chain] indexes into RestoreArgs filters
  int32_t no_new_privs;   // per thread: PR_SET_NO_NEW_PRIVS after its clones
  uint32_t spec_allow;    // install its filters with SECCOMP_FILTER_FLAG_SPEC_ALLOW
  uint64_t lsm_label_off;  // text written to lsm_attr (e.g. "changeprofile X"), or 0
  uint32_t lsm_label_len;
  uint32_t pad;
};

struct RestoreFilter {  // one classic BPF program: struct sock_filter[len]
  uint64_t insns_off;   // from the start of RestoreArgs
  uint32_t len;         // instructions (8 bytes each)
  uint32_t flags;       // SECCOMP_FILTER_FLAG_LOG
};
static_assert(sizeof(RestoreFilter) == 16);

struct RestorePosixTimer {
  int32_t id, clock, notify, signo;
  int32_t notify_tid, pad;
  uint64_t value;  // sigev_value
  KItimerspec spec;
};

inline constexpr uint32_t kMaxGroups = 64;
// RestoreArgs::nr_groups: keep the supplementary groups the task inherited
// (in a user namespace setgroups may be denied; criu/ns/user_ns.h).
inline constexpr uint32_t kKeepGroups = 0xffffffffu;
inline constexpr uint32_t kMaxAuxv = 128;
inline constexpr uint32_t kMaxCloseFds = 16;

struct RestoreArgs {
  uint64_t self_start, self_len;  // the whole restorer region: kept
  uint64_t park;                  // victim address to park special mappings at
  SpecialMapping vvar, vclock, vdso;

  uint32_t nr_vmas;
  uint32_t nr_pages;
  uint64_t vmas_off;   // RestoreVma[nr_vmas], from the start of RestoreArgs
  uint64_t pages_off;  // RestorePages[nr_pages]
  int32_t pages_fd;
  int32_t log_fd;
  int32_t log_level;
  uint32_t nr_close_fds;
  int32_t close_fds[kMaxCloseFds];  // ckpt's service fds, closed at the end
  uint32_t nr_pages_fds;
  int32_t pages_fds[kMaxCloseFds];  // every pages file read from, closed after filling

  KPrctlMmMap mm;
  uint64_t auxv[kMaxAuxv];

  KSigaction sigacts[kNumSignals];
  uint32_t nr_rlimits;
  uint32_t umask;
  RestoreRlimit rlimits[16];
  uint32_t personality;
  int32_t dumpable, pdeath_sig, child_subreaper, no_new_privs;
  char comm[16];

  uint32_t uids[4], gids[4];  // real, effective, saved, fs
  uint32_t nr_groups;
  uint32_t groups[kMaxGroups];

  uint64_t cap_eff, cap_prm, cap_inh, cap_bnd, cap_amb;
  uint32_t securebits;
  uint32_t has_caps;
  int32_t thp_disable;
  int32_t pad3;
  uint64_t timerslack_ns;

  KItimerval itimers[3];
  uint32_t nr_posix_timers;
  uint32_t nr_shared_pending;
  uint64_t posix_timers_off;    // RestorePosixTimer[nr_posix_timers]
  uint64_t shared_pending_off;  // siginfo[nr_shared_pending], queued by the leader

  uint32_t nr_threads;    // threads[0] is the leader
  uint32_t threads_done;  // futex: threads that finished their setup
  uint64_t threads_off;   // RestoreThread[nr_threads]

  uint32_t nr_filters;    // seccomp filters of the process's threads
  uint32_t threads_born;  // futex: threads cloned so far (by any thread)
  uint64_t filters_off;   // RestoreFilter[nr_filters]
  // LSM label: each thread with a label opens this (its own attr file,
  // e.g. /proc/thread-self/attr/apparmor/current) before its credentials
  // change and writes the label after them (before, if lsm_before_creds).
  char lsm_attr[64];
  int32_t lsm_before_creds;
  // Lazy restore (criu/lazy_pages.h): lazy_sock >= 0 makes the restorer,
  // once the VMAs exist, open a userfaultfd with lazy_features, register
  // the ranges lazy_off[nr_lazy] (MISSING mode), send it with a LazyHello
  // over lazy_sock (SCM_RIGHTS) and close both: the pages of those ranges
  // are not in RestorePages, the lazy-pages daemon fills them.
  int32_t lazy_sock;
  uint32_t nr_lazy;
  int32_t lazy_id;  // the task's pid in the images
  uint64_t lazy_off;  // LazyRange[nr_lazy], from the start of RestoreArgs
  uint64_t lazy_features;  // UFFDIO_API features
  // Fault injection (base/fault.h, criu/fault_blob.h): kFault* bits; with
  // kFaultKill the blob SIGKILLs fault_kill_pid (ckpt, when it is this
  // task's parent in the same pid namespace; else 0) before failing.
  uint32_t fault;
  int32_t fault_kill_pid;
  int32_t pad4;
};
inline constexpr uint32_t kFaultBeforeUnmap = 1, kFaultAfterUnmap = 2, kFaultKill = 4;

struct LazyRange {
  uint64_t start, end;
};

// What a restorer sends with its userfaultfd (one SOCK_SEQPACKET message).
inline constexpr uint32_t kLazyHelloMagic = 0x4c5a5931;  // "LZY1"
// Then ckpt itself, once every restorer trapped: LazyHello{kLazyDoneMagic,
// number of hellos, 0, 0}; the daemon answers one byte 'A' once it (and
// its guard) hold every fd.
inline constexpr uint32_t kLazyDoneMagic = 0x4c5a5944;  // "LZYD"
// Last, LazyHello{kLazyRunMagic, 0, 0, 0} once the tree runs: the daemon
// starts copying in the background (faults are served from the start).
inline constexpr uint32_t kLazyRunMagic = 0x4c5a5952;  // "LZYR"
struct LazyHello {
  uint32_t magic;
  int32_t id;        // the task's pid in the images
  int32_t pid;       // getpid() in its own pid namespace
  uint32_t nr_lazy;  // ranges registered
};
static_assert(sizeof(LazyHello) == 16);

}  // namespace ckpt::abi
