#include "criu/mem_snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <set>
#include <sstream>

#include "base/fault.h"
#include "base/io.h"
#include "base/log.h"
#include "compel/cure_guard.h"
#include "compel/remote_reap.h"

namespace ckpt {
namespace {

constexpr int kHelloTimeoutMs = 10000;  // the child's first words, right after the fork
constexpr int kExitTimeoutMs = 10000;   // a SIGKILLed child is gone long before
constexpr size_t kReadBuf = 4 << 20;    // bytes per read of unreadable pages
constexpr int kReapTries = 500;         // x 2 ms: its zombie appears with its exit
constexpr int kStallTimeoutMs = 60000;  // a snapshot child that moves no page for that long

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

// Memory of the snapshot child. Readable runs: the child vmsplices them
// into a pipe (kCmdDumpPages on its socket) that ckpt splices into the
// pages file. Not process_vm_readv: it pins pages (FOLL_PIN), and pinning
// an anonymous page shared copy-on-write makes the kernel copy it first
// (unshare): the child would copy every page. vmsplice takes plain
// references. Unreadable runs (PROT_NONE): /proc/PID/mem.
class SnapshotReader : public PageReader {
 public:
  SnapshotReader(pid_t child, pid_t victim, int channel, PagePipe pipe)
      : child_(child), victim_(victim), ch_(channel), pipe_(std::move(pipe)) {}
  pid_t pagemap_pid() const override { return child_; }

  Status Copy(uint64_t addr, uint64_t len, bool readable, int out, PageTarget& target) override {
    if (readable) {
      batch_.push_back({addr, len});
      bytes_ += len;
      if (batch_.size() == abi::kMaxParasiteIovs) TRY(Flush(out, target));
      return Ok();
    }
    TRY(Flush(out, target));
    if (!mem_) {
      std::string path = "/proc/" + std::to_string(child_) + "/mem";
      mem_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!mem_) return Error::Errno(Who(victim_) + ": snapshot: open " + path);
    }
    std::vector<char> buf(size_t(std::min<uint64_t>(len, kReadBuf)));
    while (len > 0) {
      size_t n = size_t(std::min<uint64_t>(len, buf.size()));
      ssize_t r = pread(mem_.get(), buf.data(), n, off_t(addr));
      if (r != ssize_t(n))
        return Error::Errno(Who(victim_) + ": snapshot: read memory at " + Hex(addr),
                            r < 0 ? errno : EIO);
      TRY(target.Announce(n));
      TRY(io::WriteFull(out, buf.data(), n), "writing pages");
      addr += n, len -= n;
    }
    return Ok();
  }

  Status Flush(int out, PageTarget& target) override {
    if (batch_.empty()) return Ok();
    TRY(target.Announce(bytes_));
    // One message: the command, then its iovecs; the pipe comes with the first.
    abi::ParasiteMsg m = {abi::kCmdDumpPages, uint32_t(batch_.size()), 0};
    struct iovec iov[2] = {{&m, sizeof(m)}, {batch_.data(), batch_.size() * sizeof(abi::PIovec)}};
    struct msghdr h = {};
    h.msg_iov = iov;
    h.msg_iovlen = 2;
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
    if (!pipe_sent_) {
      h.msg_control = cbuf;
      h.msg_controllen = sizeof(cbuf);
      struct cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      int fd = pipe_.w.get();
      memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    if (sendmsg(ch_, &h, MSG_NOSIGNAL) < 0)
      return Error::Errno(Who(victim_) + ": snapshot: send to its child");
    pipe_sent_ = true;
    uint64_t left = bytes_;
    while (left > 0) {
      ssize_t r = splice(pipe_.r.get(), nullptr, out, nullptr, std::min<uint64_t>(left, 1 << 20),
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (r > 0) {
        left -= uint64_t(r);
        CKPT_FAULT("dump-pages-mid");
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN) return Error::Errno("splice pages to image");
      // Empty pipe: the child is working, or answered early (failed, died).
      // A child that cannot run (SIGSTOPped, its cgroup frozen) does not
      // hold the dump for ever.
      struct pollfd p[2] = {{pipe_.r.get(), POLLIN, 0}, {ch_, POLLIN, 0}};
      int n = poll(p, 2, kStallTimeoutMs);
      if (n < 0 && errno != EINTR) return Error::Errno("poll");
      if (n == 0)
        return Error(Who(victim_) + ": snapshot: its child " + Who(child_) +
                     " made no progress in " + std::to_string(kStallTimeoutMs / 1000) + " s");
      if (!(p[0].revents & POLLIN) && p[1].revents) break;
    }
    TRY_ASSIGN(int64_t ret, Reply());
    if (ret < 0) return Error::Errno(Who(victim_) + ": snapshot: vmsplice", int(-ret));
    if (left) return Error(Who(victim_) + ": snapshot: its child stopped short");
    batch_.clear();
    bytes_ = 0;
    return Ok();
  }

 private:
  Result<int64_t> Reply() {
    abi::ParasiteMsg m;
    ssize_t r;
    do r = recv(ch_, &m, sizeof(m), 0);
    while (r < 0 && errno == EINTR);
    if (r != ssize_t(sizeof(m))) return Error(Who(victim_) + ": its snapshot child hung up");
    return m.ret;
  }

  pid_t child_, victim_;
  int ch_;
  PagePipe pipe_;
  bool pipe_sent_ = false;
  std::vector<abi::PIovec> batch_;
  uint64_t bytes_ = 0;
  UniqueFd mem_;
};

// The children of every thread of `pid`, as ckpt's /proc shows them.
std::set<pid_t> ChildrenOf(pid_t pid) {
  std::set<pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto text = io::ReadFile(dir + "/" + e->d_name + "/children");
    if (!text.ok()) continue;
    std::istringstream in(*text);
    for (pid_t c; in >> c;) out.insert(c);
  }
  closedir(d);
  return out;
}

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
    if (m.HasFlag("um") || m.HasFlag("uw") || m.HasFlag("ui")) return "userfaultfd-registered" + at;
  }
  auto status = io::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return status.error().message();
  size_t s = status->find("\nSeccomp:");
  if (s != std::string::npos && atoi(status->c_str() + s + 9) != 0) return "a seccomp filter";
  for (const char* ns : {"pid", "time"}) {
    std::string own = NsLink(pid, ns),
                kids = NsLink(pid, (std::string(ns) + "_for_children").c_str());
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
  // The victim is frozen: the one new child after the call is the snapshot.
  std::set<pid_t> before = ChildrenOf(pid);
  compel::guard::MayHoldSnapshots(pid);  // before the fork: a ckpt dying in it is covered
  TRY_ASSIGN(int64_t nspid, inf.Call(abi::kCmdSnapshot, 0, theirs.get()));
  theirs.reset();
  if (nspid <= 0) {
    compel::guard::SnapshotsReleased(pid);
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
  for (pid_t c : ChildrenOf(pid))
    if (!before.count(c)) s.child = c;
  if (s.child) {
    s.pidfd.reset(int(syscall(SYS_pidfd_open, s.child, 0)));
    if (!s.pidfd) return Error::Errno(Who(pid) + ": pidfd_open of its snapshot " + Who(s.child));
  }
  // Its hello: it runs and keeps nothing of the victim's (a child that
  // cannot run, e.g. in a frozen cgroup, leaves the pages to the old path).
  auto hello = ReadHello(s.channel.get(), pid);
  if (!hello.ok() || (s.child && *hello != s.child)) {
    LOG_WARN(Who(pid) + ": no copy-on-write snapshot (" +
             (hello.ok() ? "its child is not " + Who(*hello) : hello.error().message()) +
             "): its pages are dumped frozen");
    s.usable = false;
    return false;
  }
  if (!s.child) {
    s.child = *hello;
    s.pidfd.reset(int(syscall(SYS_pidfd_open, s.child, 0)));
    if (!s.pidfd) return Error::Errno(Who(pid) + ": pidfd_open of its snapshot " + Who(s.child));
  }
  LOG_DBG(Who(pid) + ": copy-on-write snapshot is " + Who(s.child) + " (" +
          std::to_string(s.nspid) + " in its namespace)");
  CKPT_FAULT("dump-snapshot-taken");
  return true;
}

Status SnapshotSet::DumpAll(PageTarget& target, const KernelFeatures& kf, DumpStats& total) {
  for (const auto& sp : snaps_) {
    Snap& s = *sp;
    if (!s.usable) continue;
    LOG_INFO("Dumping pages of " + Who(s.victim) + " from its snapshot");
    int64_t start = NowUs();
    TRY_ASSIGN(PagePipe pipe, PagePipe::Create());
    SnapshotReader reader(s.child, s.victim, s.channel.get(), std::move(pipe));
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
    compel::guard::SnapshotsReleased(s.victim);
  }
  snaps_.clear();
}

}  // namespace ckpt
