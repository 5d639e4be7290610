#include "compel/infect.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "base/fault.h"
#include "base/log.h"
#include "compel/cure_guard.h"

namespace ckpt::compel {
namespace {

constexpr int kAcceptTimeoutMs = 30000;
constexpr unsigned kMfdExec = 0x10;  // MFD_EXEC: memfd_noexec sysctl may demand it

bool IsSyscallError(long r) { return r < 0 && r > -4096; }

size_t PageAlign(size_t n) { return (n + 4095) & ~size_t(4095); }

std::string T(pid_t t) { return "pid " + std::to_string(t); }

}  // namespace

Result<uint64_t> FindExecAddr(pid_t pid, uint64_t avoid_start, uint64_t avoid_end) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  if (!in) return Error("pid " + std::to_string(pid) + ": cannot read maps");
  std::string line;
  uint64_t first = 0;
  while (std::getline(in, line)) {
    unsigned long start, end;
    char perms[8];
    if (sscanf(line.c_str(), "%lx-%lx %7s", &start, &end, perms) != 3) continue;
    if (perms[2] != 'x') continue;
    if (line.find("[vsyscall]") != std::string::npos) continue;
    if (end - start < 64) continue;
    if (start < avoid_end && end > avoid_start) continue;
    // The vdso's ELF header: code written there is never run by the
    // process itself, so a ckpt that dies mid-call leaves no broken code.
    if (line.find("[vdso]") != std::string::npos) return uint64_t(start);
    if (!first) first = start;
  }
  if (first) return first;
  return Error(T(pid) + ": no executable mapping to run system calls from");
}

namespace {

// What PTRACE_GETEVENTMSG says at a syscall stop (linux/ptrace.h, whose
// header clashes with sys/ptrace.h): the stop is the call's entry or exit.
// Without PTRACE_O_TRACESYSGOOD both are plain SIGTRAP stops.
constexpr unsigned long kEventMsgSyscallEntry = 1;

// The way home if ckpt dies while the thread runs a remote system call:
// a signal frame of `back` (its state before the call, a syscall it sat in
// made to restart) written below its stack pointer and red zone, and below
// the frame the arguments of the trampoline's rt_sigtimedwait (a sigset of
// SIGTRAP at rsp - 40, a zero timeout at rsp - 32, rsp being the frame's
// uc). The frame leaves the sigaltstack alone (an invalid mode, which
// rt_sigreturn's restore_altstack ignores). Returns the rsp the call must
// run with, or 0 when the stack has no room (then a lost ckpt still kills
// the victim with SIGTRAP, as before).
uint64_t WriteWayHome(pid_t tid, int mem_fd, Regs back, uint64_t sigmask) {
  PrepareSyscallRestart(back.gp);
  size_t used = offsetof(abi::SigframeArea, xstate) + back.xstate.size() + 4;
  if (used > sizeof(abi::SigframeArea)) return 0;
  uint64_t addr = (back.gp.rsp - 128 - used) & ~uint64_t(63);
  auto area = std::make_unique<abi::SigframeArea>();
  abi::KStack leave_alone = {0, 3 /* no valid mode: ignored */, 0, 0};
  BuildSigframe(area.get(), addr, back, sigmask, leave_alone);
  uint64_t rsp = addr + offsetof(abi::SigframeArea, frame.uc);
  uint64_t args[3] = {uint64_t(1) << (SIGTRAP - 1), 0, 0};  // sigset; timespec {0, 0}
  if (pwrite(mem_fd, area.get(), used, off_t(addr)) != ssize_t(used) ||
      pwrite(mem_fd, args, sizeof(args), off_t(rsp - 40)) != ssize_t(sizeof(args))) {
    LOG_DBG(T(tid) + ": no room below the stack pointer for a way home");
    return 0;
  }
  return rsp;
}

}  // namespace

Result<long> RemoteSyscall(pid_t tid, int mem_fd, uint64_t exec_addr, const user_regs_struct& base,
                           long nr, long a1, long a2, long a3, long a4, long a5, long a6,
                           const std::string& data, const WayHome* home) {
  uint8_t code[kRemoteDataOffset + kRemoteDataMax];
  size_t len = kRemoteDataOffset + data.size();
  if (data.size() > kRemoteDataMax) return Error("remote syscall data too long");
  uint8_t saved[sizeof(code)];
  if (pread(mem_fd, saved, len, exec_addr) != ssize_t(len))
    return Error::Errno(T(tid) + ": reading code at exec address");

  // Where the thread goes back to, with ckpt (right after the call) or
  // without it (WriteWayHome): `base` and the signal mask it has, or `home`.
  TRY_ASSIGN(uint64_t mask_now, GetSigmask(tid));
  uint64_t home_mask = home ? home->sigmask : mask_now;
  uint64_t home_sp = 0;
  if (home) {
    home_sp = WriteWayHome(tid, mem_fd, *home->regs, home->sigmask);
  } else {
    auto now = GetRegs(tid);
    if (now.ok()) {
      now->gp = base;
      home_sp = WriteWayHome(tid, mem_fd, std::move(*now), mask_now);
    }
  }
  // syscall; then, only run if ckpt is gone:
  //   rt_sigtimedwait({SIGTRAP}, NULL, {0, 0}, 8); rt_sigreturn()
  memset(code, 0xcc, kRemoteDataOffset);
  code[0] = 0x0f, code[1] = 0x05;
  if (home_sp) {
    const uint8_t back[] = {
        0xb8, 0x80, 0x00, 0x00, 0x00,        // mov $128, %eax (rt_sigtimedwait)
        0x48, 0x8d, 0x7c, 0x24, 0xd8,        // lea -40(%rsp), %rdi: the set
        0x31, 0xf6,                          // xor %esi, %esi: no siginfo
        0x48, 0x8d, 0x54, 0x24, 0xe0,        // lea -32(%rsp), %rdx: the timeout
        0x41, 0xba, 0x08, 0x00, 0x00, 0x00,  // mov $8, %r10d: sigset size
        0x0f, 0x05,                          // syscall
        0xb8, 0x0f, 0x00, 0x00, 0x00,        // mov $15, %eax (rt_sigreturn)
        0x0f, 0x05,                          // syscall
    };
    static_assert(2 + sizeof(back) <= kRemoteDataOffset);
    memcpy(code + 2, back, sizeof(back));
  }
  memcpy(code + kRemoteDataOffset, data.data(), data.size());
  if (pwrite(mem_fd, code, len, exec_addr) != ssize_t(len))
    return Error::Errno(T(tid) + ": writing syscall instruction");

  auto restore_code = [&]() -> Status {
    if (pwrite(mem_fd, saved, len, exec_addr) != ssize_t(len))
      return Error::Errno(T(tid) + ": restoring code at exec address");
    return Ok();
  };

  user_regs_struct r = base;
  r.rip = exec_addr;
  r.rax = nr;
  r.orig_rax = (unsigned long long)-1;  // not inside a syscall: no restart games
  r.rdi = a1, r.rsi = a2, r.rdx = a3, r.r10 = a4, r.r8 = a5, r.r9 = a6;
  if (home_sp) r.rsp = home_sp;
  // Stepped from syscall stop to syscall stop: ckpt takes the thread back
  // at the call's exit, before anything after the instruction runs. No
  // signal may interrupt it meanwhile (the way home restores the mask).
  Status st = SetSigmask(tid, ~0ull);
  if (st.ok()) st = SetGpRegs(tid, r);
  if (st.ok() && ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) < 0)
    st = Error::Errno(T(tid) + ": PTRACE_SYSCALL");
  while (st.ok()) {
    auto w = WaitStop(tid);
    if (!w.ok()) {
      st = std::move(w.error());
      break;
    }
    int s = *w;
    // SIGTRAP, or SIGTRAP | 0x80 where the tracer set PTRACE_O_TRACESYSGOOD.
    if (WIFSTOPPED(s) && (WSTOPSIG(s) & 0x7f) == SIGTRAP && (s >> 16) == 0) {
      unsigned long msg = 0;
      if (ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg) == 0 && msg == kEventMsgSyscallEntry) {
        // The entry: go on to the exit.
        if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) < 0)
          st = Error::Errno(T(tid) + ": PTRACE_SYSCALL");
        continue;
      }
      break;  // the exit (or the int3 after it)
    }
    if ((s >> 16) == PTRACE_EVENT_STOP) {  // group stop: keep going
      if (ptrace(PTRACE_SYSCALL, tid, nullptr, nullptr) < 0) st = Error::Errno("PTRACE_SYSCALL");
      continue;
    }
    siginfo_t si = {};
    ptrace(PTRACE_GETSIGINFO, tid, nullptr, &si);
    user_regs_struct now = {};
    ptrace(PTRACE_GETREGS, tid, nullptr, &now);
    char buf[128];
    snprintf(buf, sizeof(buf), " (code %d, address %p, ip %llx)", si.si_code, si.si_addr, now.rip);
    st = Error(T(tid) + ": got signal " + std::to_string(WSTOPSIG(s)) + " in remote syscall " +
               std::to_string(nr) + buf);
  }
  user_regs_struct out;
  if (st.ok() && ptrace(PTRACE_GETREGS, tid, nullptr, &out) < 0)
    st = Error::Errno(T(tid) + ": PTRACE_GETREGS");
  // Home before the code goes: a ckpt that dies between two calls leaves
  // the thread where it was, not inside the exec address. The thread now
  // sits in a syscall-exit stop, from which the kernel does not restart a
  // system call it was interrupted in: a plain return must (rip back onto
  // the syscall instruction), or the program would see -ERESTARTSYS.
  user_regs_struct home_gp = base;
  PrepareSyscallRestart(home_gp);
  Status back = SetGpRegs(tid, home_gp);
  if (back.ok()) back = SetSigmask(tid, home_mask);
  Status rs = back.ok() ? restore_code() : Status(Ok());
  if (!st.ok()) return std::move(st.error());
  if (!back.ok()) return std::move(back.error());
  if (!rs.ok()) return std::move(rs.error());
  return long(out.rax);
}

Result<long> RemoteSyscallRestoring(pid_t tid, int mem_fd, uint64_t exec_addr, long nr, long a1,
                                    long a2, long a3, long a4, long a5, long a6,
                                    const std::string& data) {
  user_regs_struct saved;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &saved) < 0)
    return Error::Errno(T(tid) + ": PTRACE_GETREGS");
  auto r = RemoteSyscall(tid, mem_fd, exec_addr, saved, nr, a1, a2, a3, a4, a5, a6, data);
  Status back = SetGpRegs(tid, saved);
  if (!r.ok()) return r;
  if (!back.ok()) return std::move(back.error());
  return r;
}

Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared) {
  std::vector<std::string> out;
  constexpr unsigned kPeekShared = 1;  // PTRACE_PEEKSIGINFO_SHARED
  for (;;) {
    struct {
      uint64_t off;
      uint32_t flags;
      int32_t nr;
    } arg = {out.size(), shared ? kPeekShared : 0, 32};
    siginfo_t si[32];
    long n = ptrace(PTRACE_PEEKSIGINFO, tid, &arg, si);
    if (n < 0) return Error::Errno(T(tid) + ": PTRACE_PEEKSIGINFO");
    for (long i = 0; i < n; i++)
      out.emplace_back(reinterpret_cast<const char*>(&si[i]), sizeof(siginfo_t));
    if (n < 32) break;
  }
  return out;
}

Result<long> Infection::Syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6,
                                const std::string& data) {
  WayHome home = {&regs_, sigmask_};
  return RemoteSyscall(tid_, proc_.mem_fd(), exec_addr_, regs_.gp, nr, a1, a2, a3, a4, a5, a6,
                       data, &home);
}

Result<std::unique_ptr<Infection>> Infection::Start(SeizedProcess& proc, const blobs::Blob& blob,
                                                    bool sigpipe_pending) {
  std::unique_ptr<Infection> inf(new Infection(proc));
  inf->sigpipe_pending_ = sigpipe_pending;
  TRY(inf->Setup(blob), T(proc.pid()) + ": infecting");
  return inf;
}

Status Infection::Setup(const blobs::Blob& blob) {
  tid_ = proc_.pid();
  TRY_ASSIGN(regs_, GetRegs(tid_));
  TRY_ASSIGN(sigmask_, GetSigmask(tid_));
  TRY_ASSIGN(exec_addr_, FindExecAddr(tid_));

  args_off_ = PageAlign(blob.size);
  size_ = args_off_ + PageAlign(sizeof(abi::ParasiteArgs)) + abi::kParasiteStackSize;

  std::string name("ckpt-parasite\0", 14);
  TRY_ASSIGN(long rfd, Syscall(SYS_memfd_create, long(exec_addr_ + kRemoteDataOffset),
                               MFD_CLOEXEC | kMfdExec, 0, 0, 0, 0, name));
  if (rfd == -EINVAL) {
    TRY_ASSIGN(rfd, Syscall(SYS_memfd_create, long(exec_addr_ + kRemoteDataOffset), MFD_CLOEXEC, 0,
                            0, 0, 0, name));
  }
  if (IsSyscallError(rfd)) return Error::Errno("remote memfd_create", int(-rfd));
  guard::Holds(tid_, int(rfd), 0, 0);  // from here until cured (compel/cure_guard.h)
  std::string path = "/proc/" + std::to_string(tid_) + "/fd/" + std::to_string(rfd);
  UniqueFd lfd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  Status opened = lfd ? Ok() : Status(Error::Errno("open " + path));
  if (opened.ok() && ftruncate(lfd.get(), off_t(size_)) < 0)
    opened = Error::Errno("ftruncate memfd");
  if (opened.ok() && fault::At("infect-memfd")) opened = fault::Injected("infect-memfd");
  long raddr = -1;
  if (opened.ok()) {
    TRY_ASSIGN(raddr, Syscall(SYS_mmap, 0, long(size_), PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_SHARED, rfd, 0));
    // Mapped: Teardown unmaps it from here on, whatever fails next.
    if (!IsSyscallError(raddr)) remote_ = uint64_t(raddr);
    guard::Holds(tid_, int(rfd), remote_, remote_ ? size_ : 0);
  }
  if (opened.ok() && fault::At("infect-mmap")) opened = fault::Injected("infect-mmap");
  TRY_ASSIGN(long cr, Syscall(SYS_close, rfd));
  (void)cr;
  guard::Holds(tid_, -1, remote_, remote_ ? size_ : 0);
  if (!opened.ok()) return std::move(opened.error());
  if (IsSyscallError(raddr)) return Error::Errno("remote mmap", int(-raddr));
  CKPT_FAULT("infect-close");

  local_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, lfd.get(), 0);
  if (local_ == MAP_FAILED) {
    local_ = nullptr;
    return Error::Errno("mmap parasite region");
  }
  memcpy(local_, blob.data, blob.size);
  args_ = reinterpret_cast<abi::ParasiteArgs*>(static_cast<char*>(local_) + args_off_);

  // The command socket: abstract, named after both pids and a nonce.
  listen_.reset(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!listen_) return Error::Errno("socket");
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char sname[64];
  int n = snprintf(sname, sizeof(sname), "ckpt-parasite-%d-%d-%lx", getpid(), tid_,
                   (unsigned long)ts.tv_nsec);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, sname, n);
  if (bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr),
           socklen_t(offsetof(sockaddr_un, sun_path) + 1 + n)) < 0)
    return Error::Errno("bind parasite socket");
  if (listen(listen_.get(), 1) < 0) return Error::Errno("listen");
  memcpy(args_->sock_name, sname, n);
  args_->sock_name_len = n;
  args_->log_level = log::GetLevel();
  args_->sigpipe_pending = sigpipe_pending_;
  args_->sock_fd = -1;
  args_->cmd_fd = -1;

  uint64_t abort_area = remote_ + args_off_ + offsetof(abi::ParasiteArgs, abort);
  abi::KStack no_stack = {0, 2 /* SS_DISABLE */, 0, 0};
  // The victim may sit in an interrupted system call: rt_sigreturn does not
  // restart it the way the kernel would on resuming, so the frame restarts
  // it itself (its restart block, e.g. nanosleep's, is still this task's).
  Regs abort_regs = regs_;
  PrepareSyscallRestart(abort_regs.gp);
  BuildSigframe(&args_->abort, abort_area, abort_regs, sigmask_, no_stack);
  args_->abort_frame = abort_area + offsetof(abi::SigframeArea, frame.uc);

  // Nothing but our own traps may interrupt the parasite. SIGTRAP stays
  // unblocked: the int3 the parasite ends with would otherwise reset the
  // victim's SIGTRAP handler to SIG_DFL (a forced signal that is blocked
  // gets its default action); unblocked it only stops for us.
  TRY(SetSigmask(tid_, ~0ull & ~(1ull << (SIGTRAP - 1))));
  mask_changed_ = true;
  user_regs_struct r = regs_.gp;
  r.rip = remote_;
  r.rsp = remote_ + size_ - 64;
  r.rdi = remote_ + args_off_;
  r.rax = 0;
  r.orig_rax = (unsigned long long)-1;
  TRY(SetGpRegs(tid_, r));
  if (ptrace(PTRACE_CONT, tid_, nullptr, nullptr) < 0) return Error::Errno("PTRACE_CONT");
  running_ = true;
  TRY(Accept());
  CKPT_FAULT("infect-started");
  return Ok();
}

Status Infection::CheckAlive() {
  if (!running_) return Error(T(tid_) + ": parasite is not running");
  int st;
  pid_t r = waitpid(tid_, &st, WNOHANG | __WALL);
  if (r == 0) return Ok();
  if (r < 0) return Error::Errno("waitpid " + std::to_string(tid_));
  running_ = false;
  if (WIFSTOPPED(st))
    return Error(T(tid_) + ": parasite stopped by signal " + std::to_string(WSTOPSIG(st)));
  return Error(T(tid_) + ": process died while infected", ESRCH);
}

static Status PollIn(int fd, Infection* inf, int timeout_ms, const char* what) {
  for (int waited = 0;; waited += 100) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r > 0) return Ok();
    if (r < 0 && errno != EINTR) return Error::Errno("poll");
    TRY(inf->CheckAlive());
    if (timeout_ms >= 0 && waited >= timeout_ms) return Error(std::string("timed out ") + what);
  }
}

Status Infection::Accept() {
  TRY(PollIn(listen_.get(), this, kAcceptTimeoutMs, "waiting for the parasite to connect"));
  sock_.reset(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!sock_) return Error::Errno("accept parasite connection");
  listen_.reset();
  return Ok();
}

Status Infection::Send(abi::ParasiteCmd cmd, uint32_t nr, int fd) {
  abi::ParasiteMsg m = {cmd, nr, 0};
  struct iovec iov = {&m, sizeof(m)};
  struct msghdr h = {};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    h.msg_control = cbuf;
    h.msg_controllen = sizeof(cbuf);
    struct cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  if (sendmsg(sock_.get(), &h, MSG_NOSIGNAL) < 0) return Error::Errno("send to parasite");
  return Ok();
}

Result<int64_t> Infection::WaitReply() {
  TRY(PollIn(sock_.get(), this, -1, "waiting for the parasite"));
  abi::ParasiteMsg m;
  ssize_t r = recv(sock_.get(), &m, sizeof(m), 0);
  if (r != sizeof(m)) return Error(T(tid_) + ": parasite hung up");
  return m.ret;
}

Result<int64_t> Infection::Call(abi::ParasiteCmd cmd, uint32_t nr, int fd) {
  TRY(Send(cmd, nr, fd));
  return WaitReply();
}

Status Infection::Cure() {
  if (cured_) return Ok();
  if (running_) {
    auto r = Call(abi::kCmdFini);
    if (r.ok()) {
      auto w = WaitStop(tid_);
      if (w.ok() && WIFSTOPPED(*w) && WSTOPSIG(*w) == SIGTRAP) running_ = false;
    }
  }
  return Teardown(false);
}

Status Infection::Teardown(bool) {
  cured_ = true;
  sock_.reset();
  listen_.reset();
  if (running_) {
    // Stop the parasite wherever it is (likely blocked in recvmsg).
    if (ptrace(PTRACE_INTERRUPT, tid_, nullptr, nullptr) < 0)
      return Error::Errno(T(tid_) + ": PTRACE_INTERRUPT");
    TRY_ASSIGN(int st, WaitStop(tid_));
    (void)st;
    running_ = false;
  }
  Status result;
  // The parasite's final int3 resets an ignored SIGTRAP to SIG_DFL (the
  // kernel does that for a forced signal the task ignores): put SIG_IGN
  // back, from the sigactions the parasite read (zero if it read none).
  constexpr uint64_t kSigIgn = 1;
  if (args_ && remote_ && args_->sigacts[SIGTRAP - 1].handler == kSigIgn) {
    auto r = Syscall(SYS_rt_sigaction, SIGTRAP,
                     long(remote_ + args_off_ + offsetof(abi::ParasiteArgs, sigacts) +
                          sizeof(abi::KSigaction) * (SIGTRAP - 1)),
                     0, 8);
    if (!r.ok()) {
      if (result.ok()) result = std::move(r.error());
    } else if (IsSyscallError(*r) && result.ok()) {
      result = Error::Errno("remote rt_sigaction SIGTRAP", int(-*r));
    }
  }
  if (args_ && args_->sock_fd >= 0) {  // the parasite's socket goes with it
    auto r = Syscall(SYS_close, args_->sock_fd);
    if (!r.ok()) result = std::move(r.error());
    args_->sock_fd = -1;
  }
  if (args_ && args_->cmd_fd >= 0) {  // a command interrupted with its fd (the page pipe)
    auto r = Syscall(SYS_close, args_->cmd_fd);
    if (!r.ok() && result.ok()) result = std::move(r.error());
    args_->cmd_fd = -1;
  }
  if (remote_) {
    auto r = Syscall(SYS_munmap, long(remote_), long(size_));
    if (!r.ok()) {
      if (result.ok()) result = std::move(r.error());
    } else if (IsSyscallError(*r) && result.ok()) {
      result = Error::Errno("remote munmap", int(-*r));
    }
    remote_ = 0;
  }
  // After remote syscalls the thread sits in a syscall-exit stop: its own
  // interrupted system call must restart by itself (see RemoteSyscall).
  Regs back = regs_;
  PrepareSyscallRestart(back.gp);
  Status s = SetRegs(tid_, back, true);
  if (result.ok() && !s.ok()) result = std::move(s);
  if (mask_changed_) {
    Status m = SetSigmask(tid_, sigmask_);
    if (result.ok() && !m.ok()) result = std::move(m);
    mask_changed_ = false;
  }
  if (local_) munmap(local_, size_);
  local_ = nullptr;
  args_ = nullptr;
  if (result.ok()) guard::Clear(tid_);
  return result;
}

Infection::~Infection() {
  if (cured_) return;
  Status s = Teardown(false);
  if (!s.ok()) LOG_ERR("curing " + T(tid_) + ": " + s.error().message());
}

}  // namespace ckpt::compel
