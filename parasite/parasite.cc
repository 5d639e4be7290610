// The parasite: runs inside a seized victim, serves ckpt's commands over a
// unix socket, reads what only the inside can see. See abi.h for the layout.
#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/un.h>
#include <stddef.h>

#include "parasite/abi.h"
#include "parasite/blob_lib.h"

using namespace ckpt::abi;
using namespace ckpt::blob;

extern "C" long blob_clone_thread(void* args, uint64_t size, void (*fn)(void*), void* arg);

namespace {

constexpr int kAfUnix = 1;
constexpr int kSockSeqpacket = 5;
constexpr int kSolSocket = 1;
constexpr int kScmRights = 1;
constexpr int kVmspliceBatch = 512;  // iovecs per vmsplice call (<= IOV_MAX)

struct Cmsg {  // struct cmsghdr carrying one fd
  uint64_t len;
  int32_t level;
  int32_t type;
  int32_t fd;
  int32_t pad;
};

struct MsgHdr {  // struct msghdr
  void* name;
  uint32_t namelen;
  uint32_t pad0;
  PIovec* iov;
  uint64_t iovlen;
  void* control;
  uint64_t controllen;
  int32_t flags;
  int32_t pad1;
};

// Receives one command, and the fd that came with it (or -1).
long RecvCmd(int sk, ParasiteMsg* m, int* fd) {
  PIovec iov = {(uint64_t)m, sizeof(*m)};
  Cmsg c;
  memset(&c, 0, sizeof(c));
  MsgHdr h;
  memset(&h, 0, sizeof(h));
  h.iov = &iov;
  h.iovlen = 1;
  h.control = &c;
  h.controllen = sizeof(c);
  long r = sys(__NR_recvmsg, sk, &h, 0x40000000 /* MSG_CMSG_CLOEXEC */);
  *fd = -1;
  if (r > 0 && h.controllen >= 20 && c.level == kSolSocket && c.type == kScmRights) *fd = c.fd;
  return r;
}

long Reply(int sk, uint32_t cmd, long ret) {
  ParasiteMsg m = {cmd, 0, ret};
  return sys(__NR_sendto, sk, &m, sizeof(m), 0x4000 /* MSG_NOSIGNAL */, 0, 0);
}

long DumpPages(ParasiteArgs* a, uint32_t nr, int pipe_fd) {
  if (pipe_fd < 0 || nr > kMaxParasiteIovs) return -22;
  PIovec* iov = a->iovs;
  uint32_t left = nr;
  while (left > 0) {
    uint32_t n = left < kVmspliceBatch ? left : kVmspliceBatch;
    long r = sys(__NR_vmsplice, pipe_fd, iov, n, 0);
    if (r < 0) {
      if (r == -4) continue;  // EINTR
      if (r == -32 && !a->sigpipe_pending) {
        // ckpt closed the pipe. The SIGPIPE this raised is pending (all
        // signals are blocked): take it back, it would kill the victim.
        uint64_t pipe_set = 1ull << (13 - 1);
        KTimespec zero = {0, 0};
        sys(__NR_rt_sigtimedwait, &pipe_set, 0, &zero, 8);
      }
      return r;
    }
    // Skip what was taken; a partial iovec is adjusted in place.
    uint64_t done = (uint64_t)r;
    while (done > 0 && left > 0) {
      if (done >= iov->len) {
        done -= iov->len;
        iov++;
        left--;
      } else {
        iov->base += done;
        iov->len -= done;
        done = 0;
      }
    }
  }
  return 0;
}

long DumpSigacts(ParasiteArgs* a) {
  for (uint32_t sig = 1; sig <= kNumSignals; sig++) {
    KSigaction* k = &a->sigacts[sig - 1];
    memset(k, 0, sizeof(*k));
    if (sig == 9 || sig == 19) continue;  // SIGKILL, SIGSTOP
    long r = sys(__NR_rt_sigaction, sig, 0, k, 8);
    if (r < 0) return r;
  }
  return 0;
}

long DumpMisc(ParasiteArgs* a) {
  ParasiteMisc* m = &a->misc;
  long old = sys(__NR_umask, 0);
  sys(__NR_umask, old);
  m->umask = (uint32_t)old;
  m->personality = (uint32_t)sys(__NR_personality, 0xffffffff);
  m->dumpable = (int32_t)sys(__NR_prctl, PR_GET_DUMPABLE);
  int v = 0;
  sys(__NR_prctl, PR_GET_PDEATHSIG, &v);
  m->pdeath_sig = v;
  v = 0;
  sys(__NR_prctl, PR_GET_CHILD_SUBREAPER, &v);
  m->child_subreaper = v;
  m->no_new_privs = (int32_t)sys(__NR_prctl, PR_GET_NO_NEW_PRIVS);
  m->brk = (uint64_t)sys(__NR_brk, 0);
  m->securebits = (uint32_t)sys(__NR_prctl, PR_GET_SECUREBITS);
  for (int r = 0; r < 16; r++) sys(__NR_prlimit64, 0, r, 0, m->rlimits[r]);
  m->thp_disable = (int32_t)sys(__NR_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0);
  m->timerslack_ns = (uint64_t)sys(__NR_prctl, PR_GET_TIMERSLACK, 0, 0, 0, 0);
  m->clear_tid = 0;
  sys(__NR_prctl, PR_GET_TID_ADDRESS, &m->clear_tid);
  long r = sys(__NR_sigaltstack, 0, &m->sigaltstack);
  if (r < 0) return r;
  return sys(__NR_prctl, PR_GET_NAME, m->comm);
}

long DumpTimers(ParasiteArgs* a, uint32_t nr) {
  for (int w = 0; w < 3; w++) {
    long r = sys(__NR_getitimer, w, &a->itimers[w]);
    if (r < 0) return r;
  }
  if (nr > kMaxPosixTimers) return -22;
  for (uint32_t i = 0; i < nr; i++) {
    long r = sys(__NR_timer_gettime, a->timer_ids[i], &a->timer_vals[i]);
    if (r < 0) return r;
    a->timer_overrun[i] = (int32_t)sys(__NR_timer_getoverrun, a->timer_ids[i]);
  }
  return 0;
}

struct KCloneArgs {  // struct clone_args, CLONE_ARGS_SIZE_VER2
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

// The snapshot child (criu/mem_snapshot.h): a copy of the victim that runs
// none of its code. It blocks every signal (a fault of its own then kills
// it: the kernel resets a blocked forced signal to its default), keeps no
// fd but its socket to ckpt, says hello (ckpt learns its pid from the
// credentials), then vmsplices its own pages into ckpt's pipe on command
// (plain page references: no copy) until ckpt closes the socket or dies.
[[noreturn]] void SnapshotMain(void* arg) {
  ParasiteArgs* a = (ParasiteArgs*)arg;
  int ch = a->snapshot_fd;
  uint64_t all = ~0ull;
  sys(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, 0, 8);
  sys(__NR_prctl, PR_SET_NAME, "ckpt-snapshot");
  // khugepaged must not move its pages: their PFNs are compared with others'.
  sys(__NR_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0);
  if (ch > 0) sys(__NR_close_range, 0, ch - 1, 0);
  sys(__NR_close_range, ch + 1, ~0u, 0);
  char hello = 'S';
  sys(__NR_sendto, ch, &hello, 1, 0x4000 /* MSG_NOSIGNAL */, 0, 0);
  int pipe_fd = -1;
  for (;;) {
    ParasiteMsg m;
    PIovec iov[2] = {{(uint64_t)&m, sizeof(m)}, {(uint64_t)a->iovs, sizeof(a->iovs)}};
    Cmsg c;
    memset(&c, 0, sizeof(c));
    MsgHdr h;
    memset(&h, 0, sizeof(h));
    h.iov = iov;
    h.iovlen = 2;
    h.control = &c;
    h.controllen = sizeof(c);
    long r = sys(__NR_recvmsg, ch, &h, 0x40000000 /* MSG_CMSG_CLOEXEC */);
    if (r == -4) continue;
    if (r < (long)sizeof(m) || m.cmd != kCmdDumpPages) break;  // EOF: ckpt is done or gone
    if (h.controllen >= 20 && c.level == kSolSocket && c.type == kScmRights) {
      if (pipe_fd >= 0) sys(__NR_close, pipe_fd);
      pipe_fd = c.fd;
    }
    uint32_t nr = (uint32_t)((r - (long)sizeof(m)) / (long)sizeof(PIovec));
    long ret = nr == m.nr ? DumpPages(a, nr, pipe_fd) : -22;
    if (Reply(ch, m.cmd, ret) < 0) break;
  }
  for (;;) sys(__NR_exit_group, 0);
}

// fork(2) without the victim's atfork handlers or anything else of libc:
// exit signal 0 (no SIGCHLD; plain wait(2) never sees it), untraced.
long Snapshot(ParasiteArgs* a, int ch) {
  if (ch < 0) return -22;
  KCloneArgs ca;
  memset(&ca, 0, sizeof(ca));
  ca.flags = 0x00800000;  // CLONE_UNTRACED
  ca.exit_signal = 0;
  ca.stack = (uint64_t)a->snapshot_stack;
  ca.stack_size = sizeof(a->snapshot_stack);
  a->snapshot_fd = ch;
  return blob_clone_thread((void*)&ca, sizeof(ca), SnapshotMain, (void*)a);
}

// ckpt went away mid-dump: put the victim back as it was and go on.
[[noreturn]] void Abort(ParasiteArgs* a) {
  KStack cur;
  if (sys(__NR_sigaltstack, 0, &cur) == 0) a->abort.frame.uc.stack = cur;
  rt_sigreturn_on(a->abort_frame);
}

}  // namespace

extern "C" void blob_main(ParasiteArgs* a) {
  int sk = (int)sys(__NR_socket, kAfUnix, kSockSeqpacket | 0x80000 /* SOCK_CLOEXEC */, 0);
  if (sk < 0) Abort(a);
  a->sock_fd = sk;
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = kAfUnix;
  uint32_t n = a->sock_name_len < sizeof(addr.sun_path) - 1 ? a->sock_name_len : 0;
  memcpy(addr.sun_path + 1, a->sock_name, n);
  if (sys(__NR_connect, sk, &addr, offsetof(struct sockaddr_un, sun_path) + 1 + n) < 0) Abort(a);

  for (;;) {
    ParasiteMsg m;
    int fd;
    long r = RecvCmd(sk, &m, &fd);
    if (r <= 0) {
      if (r == -4) continue;
      sys(__NR_close, sk);
      a->sock_fd = -1;
      Abort(a);
    }
    a->cmd_fd = fd;
    long ret;
    switch (m.cmd) {
      case kCmdDumpPages:
        ret = DumpPages(a, m.nr, fd);
        break;
      case kCmdDumpSigacts:
        ret = DumpSigacts(a);
        break;
      case kCmdDumpMisc:
        ret = DumpMisc(a);
        break;
      case kCmdDumpTimers:
        ret = DumpTimers(a, m.nr);
        break;
      case kCmdSnapshot:
        ret = Snapshot(a, fd);
        break;
      case kCmdFini:
        Reply(sk, m.cmd, 0);
        sys(__NR_close, sk);
        a->sock_fd = -1;
        return;  // entry code traps: ckpt takes over
      default:
        ret = -22;
    }
    if (fd >= 0) sys(__NR_close, fd);
    a->cmd_fd = -1;
    if (Reply(sk, m.cmd, ret) < 0) {
      sys(__NR_close, sk);
      Abort(a);
    }
  }
}
