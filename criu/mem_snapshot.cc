#include "criu/mem_snapshot.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "base/fault.h"
#include "base/io.h"
#include "base/log.h"
#include "compel/cure_guard.h"
#include "compel/remote_reap.h"

namespace ckpt {
namespace {

constexpr int kHelloTimeoutMs = 10000;   // the child's first words, right after the fork
constexpr int kExitTimeoutMs = 10000;    // a SIGKILLed child is gone long before
constexpr size_t kReadBuf = 4 << 20;     // bytes per process_vm_readv
constexpr int kReapTries = 500;          // x 2 ms: its zombie appears with its exit

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

std::string Hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof(b), "%" PRIx64, v);
  return b;
}

std::string NsLink(pid_t pid, const char* name) {
  auto l = io::ReadLink("/proc/" + std::to_string(pid) + "/ns/" + name);
  return l.ok() ? *l : "";
}

// Memory of the snapshot child: process_vm_readv in batches, /proc/PID/mem
// (which may read what the child cannot, PROT_NONE) for unreadable runs.
class SnapshotReader : public PageReader {
 public:
  SnapshotReader(pid_t child, pid_t victim) : child_(child), victim_(victim), buf_(kReadBuf) {}
  pid_t pagemap_pid() const override { return child_; }

  Status Copy(uint64_t addr, uint64_t len, bool readable, int out, PageTarget& target) override {
    if (!readable) {
      TRY(Flush(out, target));
      if (!mem_) {
        std::string path = "/proc/" + std::to_string(child_) + "/mem";
        mem_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!mem_) return Error::Errno(Who(victim_) + ": snapshot: open " + path);
      }
      while (len > 0) {
        size_t n = size_t(std::min<uint64_t>(len, buf_.size()));
        if (pread(mem_.get(), buf_.data(), n, off_t(addr)) != ssize_t(n))
          return Error::Errno(Who(victim_) + ": snapshot: read memory at " + Hex(addr));
        TRY(target.Announce(n));
        TRY(io::WriteFull(out, buf_.data(), n), "writing pages");
        addr += n, len -= n;
      }
      return Ok();
    }
    while (len > 0) {
      size_t n = size_t(std::min<uint64_t>(len, buf_.size() - used_));
      remote_.push_back({reinterpret_cast<void*>(addr), n});
      used_ += n, addr += n, len -= n;
      if (used_ == buf_.size() || remote_.size() == IOV_MAX) TRY(Flush(out, target));
    }
    return Ok();
  }

  Status Flush(int out, PageTarget& target) override {
    if (remote_.empty()) return Ok();
    struct iovec local = {buf_.data(), used_};
    ssize_t r = process_vm_readv(child_, &local, 1, remote_.data(), remote_.size(), 0);
    if (r < 0) return Error::Errno(Who(victim_) + ": snapshot: process_vm_readv");
    if (size_t(r) != used_)
      return Error(Who(victim_) + ": snapshot: short read of its memory at " +
                   Hex(uint64_t(remote_[0].iov_base)));
    TRY(target.Announce(used_));
    TRY(io::WriteFull(out, buf_.data(), used_), "writing pages");
    remote_.clear();
    used_ = 0;
    CKPT_FAULT("dump-pages-mid");
    return Ok();
  }

 private:
  pid_t child_, victim_;
  std::vector<char> buf_;
  size_t used_ = 0;
  std::vector<struct iovec> remote_;
  UniqueFd mem_;
};

// The child's pid in ckpt's pid namespace, from the credentials of its
// hello (the kernel translates them for the reader).
Result<pid_t> ReadHello(int fd, pid_t victim) {
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  do r = poll(&p, 1, kHelloTimeoutMs);
  while (r < 0 && errno == EINTR);
  if (r < 0) return Error::Errno("poll");
  if (r == 0) return Error(Who(victim) + ": its snapshot child did not answer");
  char c;
  struct iovec iov = {&c, 1};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(struct ucred))];
  struct msghdr h = {};
  h.msg_iov = &iov;
  h.msg_iovlen = 1;
  h.msg_control = cbuf;
  h.msg_controllen = sizeof(cbuf);
  ssize_t n = recvmsg(fd, &h, MSG_CMSG_CLOEXEC);
  if (n < 0) return Error::Errno(Who(victim) + ": snapshot child: recvmsg");
  if (n != 1 || c != 'S') return Error(Who(victim) + ": its snapshot child hung up");
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm))
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
      struct ucred u;
      memcpy(&u, CMSG_DATA(cm), sizeof(u));
      if (u.pid > 0) return pid_t(u.pid);
    }
  return Error(Who(victim) + ": snapshot child: no credentials");
}

}  // namespace

std::string SnapshotUnsuitable(pid_t pid, const std::vector<proc::MapEntry>& maps) {
  for (const proc::MapEntry& m : maps) {
    std::string at = " mapping at " + Hex(m.start);
    if (!m.shared && (m.HasFlag("dc") || m.HasFlag("wf") || m.HasFlag("dp")))
      return "MADV_DONTFORK/MADV_WIPEONFORK" + at + " (a fork does not copy it)";
    if (m.HasFlag("um") || m.HasFlag("uw") || m.HasFlag("ui"))
      return "userfaultfd-registered" + at;
  }
  auto status = io::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return status.error().message();
  size_t s = status->find("\nSeccomp:");
  if (s != std::string::npos && atoi(status->c_str() + s + 9) != 0) return "a seccomp filter";
  for (const char* ns : {"pid", "time"}) {
    std::string own = NsLink(pid, ns), kids = NsLink(pid, (std::string(ns) + "_for_children").c_str());
    if (!kids.empty() && own != kids)
      return std::string("its children go to another ") + ns + " namespace";
  }
  return "";
}

Result<bool> SnapshotSet::Take(compel::Infection& inf, pid_t pid,
                               const std::vector<proc::MapEntry>& maps, const pb::MmEntry& mm,
                               uint32_t pages_id, const PageIndex* parent, PageIndex* index) {
  if (!enabled_) return false;
  if (std::string why = SnapshotUnsuitable(pid, maps); !why.empty()) {
    LOG_INFO(Who(pid) + ": no copy-on-write snapshot (" + why + "): its pages are dumped frozen");
    return false;
  }
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
    return Error::Errno("socketpair");
  UniqueFd ours(sp[0]), theirs(sp[1]);
  int one = 1;
  if (setsockopt(ours.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
    return Error::Errno("SO_PASSCRED");
  TRY_ASSIGN(int64_t nspid, inf.Call(abi::kCmdSnapshot, 0, theirs.get()));
  theirs.reset();
  if (nspid <= 0) {
    LOG_INFO(Who(pid) + ": no copy-on-write snapshot (clone3: " + strerror(int(-nspid)) +
             "): its pages are dumped frozen");
    return false;
  }
  auto snap = std::make_unique<Snap>();
  snap->victim = pid;
  snap->nspid = pid_t(nspid);
  snap->channel = std::move(ours);
  snap->mm = mm;
  snap->pages_id = pages_id;
  snap->parent = parent;
  snap->index = index;
  Snap& s = *snap;
  snaps_.push_back(std::move(snap));  // from here Release reaps it, whatever fails
  TRY_ASSIGN(s.child, ReadHello(s.channel.get(), pid));
  s.pidfd.reset(int(syscall(SYS_pidfd_open, s.child, 0)));
  if (!s.pidfd) return Error::Errno(Who(pid) + ": pidfd_open of its snapshot " + Who(s.child));
  compel::guard::HoldsSnapshot(pid, s.child, s.nspid);
  LOG_DBG(Who(pid) + ": copy-on-write snapshot is " + Who(s.child) + " (" +
          std::to_string(s.nspid) + " in its namespace)");
  CKPT_FAULT("dump-snapshot-taken");
  return true;
}

Status SnapshotSet::DumpAll(PageTarget& target, const KernelFeatures& kf, DumpStats& total) {
  for (const auto& sp : snaps_) {
    Snap& s = *sp;
    LOG_INFO("Dumping pages of " + Who(s.victim) + " from its snapshot");
    int64_t start = NowUs();
    SnapshotReader reader(s.child, s.victim);
    TRY_ASSIGN(PageDumpStats st,
               DumpPagesFrom(s.victim, reader, s.mm, target, kf, s.pages_id, s.parent, s.index),
               Who(s.victim));
    total.memdump_us += NowUs() - start;
    total.pages_scanned += st.pages_scanned;
    total.pages_written += st.pages_written;
    total.pages_zero += st.zero_pages_skipped;
    total.pages_in_parent += st.pages_in_parent;
    total.pages_in_prev += st.pages_in_prev;
    LOG_INFO(Who(s.victim) + ": " + std::to_string(st.pages_written) + " pages written, " +
             std::to_string(st.zero_pages_skipped) + " zero pages skipped, " +
             std::to_string(st.pages_in_parent) + " shared with the parent, " +
             std::to_string(st.pages_scanned) + " scanned (from its snapshot)");
  }
  return Ok();
}

void SnapshotSet::Release() {
  // Every child first told to go (they end in parallel), then collected.
  for (const auto& sp : snaps_) {
    if (sp->pidfd) syscall(SYS_pidfd_send_signal, sp->pidfd.get(), SIGKILL, nullptr, 0);
    sp->channel.reset();  // EOF ends it too
  }
  for (const auto& sp : snaps_) {
    Snap& s = *sp;
    if (s.pidfd) {
      struct pollfd p = {s.pidfd.get(), POLLIN, 0};
      int r;
      do r = poll(&p, 1, kExitTimeoutMs);
      while (r < 0 && errno == EINTR);
      if (r == 0) LOG_WARN(Who(s.victim) + ": its snapshot " + Who(s.child) + " does not exit");
    }
    bool done = false;
    for (int i = 0; i < kReapTries && !done; i++) {
      auto r = compel::RemoteReap(s.victim, s.nspid);
      if (!r.ok()) {
        if (kill(s.victim, 0) < 0 && errno == ESRCH) break;  // gone: init reaps the child
        LOG_WARN("snapshot of " + Who(s.victim) + ": " + r.error().message());
        break;
      }
      done = *r != 0;  // reaped (or not its child any more)
      if (!done) usleep(2000);
    }
    if (s.child) compel::guard::ReleasedSnapshot(s.child);
  }
  snaps_.clear();
}

}  // namespace ckpt
