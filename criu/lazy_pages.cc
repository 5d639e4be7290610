#include "criu/lazy_pages.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "criu/lazy_guard.h"
#include "criu/lazy_plan.h"
#include "criu/lazy_source.h"
#include "criu/task_images.h"
#include "criu/uffd_lazy.h"
#include "images/image_dir.h"
#include "parasite/abi.h"

namespace ckpt {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kFaultPages = 16;      // copied per fault: the page and what follows
constexpr uint64_t kPrefetchPages = 256;  // copied per background step (1 MiB)

// DIR/lazy-pages.sock through a short path (sun_path holds 108 bytes).
struct SocketPath {
  UniqueFd dirfd;
  sockaddr_un addr = {};
};
Result<SocketPath> MakeSocketPath(const std::string& dir) {
  SocketPath p;
  p.dirfd.reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!p.dirfd) return Error::Errno("open " + dir);
  p.addr.sun_family = AF_UNIX;
  snprintf(p.addr.sun_path, sizeof(p.addr.sun_path), "/proc/self/fd/%d/%s", p.dirfd.get(),
           kLazySocketName);
  return p;
}

struct Mm {
  UniqueFd uffd;
  pid_t id = 0;   // pid in the images (of the restored task, or of its forefather)
  pid_t pid = 0;  // as the task saw itself (0 for forked children)
  uffd::PendingPages owed;
  bool gone = false;
};

class Daemon {
 public:
  Daemon(const TreeImages& tree, PageSource& src, LazyGuard& guard)
      : tree_(tree), src_(src), guard_(guard), buf_(kPrefetchPages * kPage) {}

  Status Run(int conn_fd) {
    conn_.reset(conn_fd);
    auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      bool owed = false;
      for (auto& [k, m] : mms_) owed |= !m.gone && !m.owed.empty();
      owed &= prefetch_;  // before the tree runs: faults only
      if (!conn_ && !owed) break;
      std::vector<pollfd> pf;
      std::vector<uint32_t> keys;
      if (conn_) pf.push_back({conn_.get(), POLLIN, 0}), keys.push_back(0);
      for (auto& [k, m] : mms_)
        if (!m.gone) pf.push_back({m.uffd.get(), POLLIN, 0}), keys.push_back(k);
      int r = poll(pf.data(), pf.size(), retry_ ? 1 : owed ? 0 : -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error::Errno("poll");
      retry_ = false;
      if (r == 0) {
        if (owed || !retry_faults_.empty()) TRY(Prefetch());
        continue;
      }
      for (size_t i = 0; i < pf.size(); i++) {
        if (!pf[i].revents) continue;
        if (keys[i] == 0 && conn_) {
          TRY(Receive());
        } else if (keys[i] != 0) {
          TRY(ReadEvents(keys[i]));
        }
      }
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    LOG_INFO("lazy-pages: every page is in after " + std::to_string(int64_t(ms)) + " ms: " +
             std::to_string(on_fault_) + " pages on faults, " + std::to_string(prefetched_) +
             " prefetched, " + std::to_string(zero_) + " zero pages, " +
             std::to_string(mms_.size()) + " address spaces; events: " + std::to_string(forks_) +
             " fork, " + std::to_string(remaps_) + " mremap, " + std::to_string(removes_) +
             " munmap/madvise, dropping " + std::to_string(dropped_) + " owed pages");
    return Ok();
  }

 private:
  // A restorer's hello and its userfaultfd.
  Status Receive() {
    abi::LazyHello h = {};
    iovec iov = {&h, sizeof(h)};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
    msghdr m = {};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof(ctl);
    ssize_t n = recvmsg(conn_.get(), &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return Ok();
    int fd = -1;
    cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&m) : nullptr;
    if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof(int));
    UniqueFd uffd(fd);
    if (n <= 0) return Error("the restore failed or went away before the tree ran");
    if (n == ssize_t(sizeof(h)) && h.magic == abi::kLazyDoneMagic && !uffd) {
      if (uint32_t(h.id) != hellos_)
        return Error("the restore sent " + std::to_string(h.id) + " userfaultfds, " +
                     std::to_string(hellos_) + " arrived");
      char a = 'A';
      if (send(conn_.get(), &a, 1, MSG_NOSIGNAL) != 1) return Error::Errno("answering the restore");
      LOG_INFO("lazy-pages: holding the userfaultfds of " + std::to_string(hellos_) +
               " address spaces");
      return Ok();
    }
    if (n == ssize_t(sizeof(h)) && h.magic == abi::kLazyRunMagic && !uffd) {
      LOG_INFO("lazy-pages: the tree runs; copying the rest in the background");
      conn_.reset();
      prefetch_ = true;
      return Ok();
    }
    if (n != ssize_t(sizeof(h)) || h.magic != abi::kLazyHelloMagic || !uffd)
      return Error("a bad message from the restore");
    hellos_++;
    const TaskImages* task = nullptr;
    for (const TaskImages& t : tree_.tasks)
      if (!t.zombie() && t.pid() == h.id) task = &t;
    if (!task) return Error("pid " + std::to_string(h.id) + " is not in the images");
    uint32_t key = next_key_++;
    Mm& mm = mms_[key];
    mm.uffd = std::move(uffd);
    mm.id = h.id;
    mm.pid = h.pid;
    for (const PageRun& r : PlanLazy(*task).lazy) mm.owed.Add(r);
    TRY(guard_.Add(key, h.id, mm.uffd.get()));
    LOG_INFO("lazy-pages: pid " + std::to_string(h.id) + ": " + std::to_string(mm.owed.pages()) +
             " pages owed in " + std::to_string(h.nr_lazy) + " ranges");
    return Ok();
  }

  Status ReadEvents(uint32_t key) {
    uffd_msg msgs[32];
    for (;;) {
      auto it = mms_.find(key);
      if (it == mms_.end() || it->second.gone) return Ok();
      ssize_t n = read(it->second.uffd.get(), msgs, sizeof(msgs));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return Ok();
      if (n <= 0) {
        it->second.gone = true;
        return Ok();
      }
      for (ssize_t i = 0; i < n / ssize_t(sizeof(uffd_msg)); i++) TRY(Event(key, msgs[i]));
    }
  }

  Status Event(uint32_t key, const uffd_msg& msg) {
    Mm& mm = mms_.at(key);
    switch (msg.event) {
      case UFFD_EVENT_PAGEFAULT:
        return Fault(key, msg.arg.pagefault.address & ~(kPage - 1));
      case UFFD_EVENT_FORK: {
        uint32_t child = next_key_++;
        Mm& c = mms_[child];
        Mm& p = mms_.at(key);  // mms_ may have moved nothing (std::map), but be plain
        c.uffd.reset(int(msg.arg.fork.ufd));
        c.id = p.id;
        for (const auto& [a, r] : p.owed.runs()) c.owed.Add(r);
        for (const TaskImages& t : tree_.tasks)
          if (!t.zombie() && t.pid() == p.id)
            for (const LazyPlan::Range& v : NotInheritedByFork(t)) c.owed.Cut(v.start, v.end);
        TRY(guard_.Fork(key, child, c.uffd.get()));
        forks_++;
        LOG_DBG("lazy-pages: a fork of pid " + std::to_string(p.id) + " is owed " +
                std::to_string(c.owed.pages()) + " pages");
        return Ok();
      }
      case UFFD_EVENT_REMAP:
        remaps_++;
        mm.owed.Move(msg.arg.remap.from, msg.arg.remap.to, msg.arg.remap.len);
        return guard_.Move(key, msg.arg.remap.from, msg.arg.remap.to, msg.arg.remap.len);
      case UFFD_EVENT_REMOVE:
      case UFFD_EVENT_UNMAP: {
        removes_++;
        for (const PageRun& r : mm.owed.Cut(msg.arg.remove.start, msg.arg.remove.end))
          dropped_ += r.nr_pages;
        return guard_.Drop(key, msg.arg.remove.start, msg.arg.remove.end);
      }
      default:
        return Ok();
    }
  }

  Status Fault(uint32_t key, uint64_t addr) {
    Mm& mm = mms_.at(key);
    std::vector<PageRun> runs = mm.owed.TakeAround(addr, kFaultPages);
    if (!runs.empty()) {
      uint64_t before = copied_;
      TRY(Fill(key, runs));
      on_fault_ += copied_ - before;
      return Ok();
    }
    // A page the dump did not hold (never touched): zeros, as it would be.
    uint64_t done = 0;
    int e = uffd::ZeroPage(mm.uffd.get(), addr, kPage, &done);
    if (e == 0) {
      zero_++;
    } else if (e == EEXIST) {
      uffd::Wake(mm.uffd.get(), addr, kPage);  // filled meanwhile (a prefetch)
    } else if (e == EAGAIN) {
      retry_faults_.push_back({key, addr});
      retry_ = true;
    } else if (e == ESRCH) {
      mm.gone = true;
    }  // ENOENT: the VMA went; the fault is gone with it
    return Ok();
  }

  Status Prefetch() {
    if (!retry_faults_.empty()) {
      auto faults = std::move(retry_faults_);
      retry_faults_.clear();
      for (auto [key, addr] : faults) TRY(Fault(key, addr));
      return Ok();
    }
    for (auto& [key, mm] : mms_) {
      if (mm.gone || mm.owed.empty()) continue;
      std::vector<PageRun> runs = mm.owed.TakeFirst(kPrefetchPages);
      uint64_t before = copied_;
      TRY(Fill(key, runs));
      prefetched_ += copied_ - before;
      return Ok();
    }
    return Ok();
  }

  // Copies `runs` into mm `key`. On EAGAIN the rest is owed again and the
  // events are read first.
  Status Fill(uint32_t key, const std::vector<PageRun>& runs) {
    Mm& mm = mms_.at(key);
    for (size_t i = 0; i < runs.size(); i++) {
      const PageRun& r = runs[i];
      uint64_t len = r.nr_pages * kPage;
      if (len > buf_.size()) buf_.resize(len);
      Status s = src_.Read(r.src, r.off, buf_.data(), len);
      if (!s.ok())
        return std::move(
            s.error().Context("pid " + std::to_string(mm.id) + ": pages at 0x" + Hex(r.vaddr)));
      uint64_t at = 0;
      while (at < len) {
        uint64_t done = 0;
        int e = uffd::Copy(mm.uffd.get(), r.vaddr + at, buf_.data() + at, len - at, &done);
        copied_ += done / kPage;
        at += done;
        if (e == 0) break;
        if (e == EEXIST) {
          at += kPage;  // present already (the program wrote it after a zero page? no: a race)
          continue;
        }
        if (e == EAGAIN) {  // an event waits: owe the rest, read the events, retry
          mm.owed.Add({r.vaddr + at, (len - at) / kPage, r.src, r.off + at});
          for (size_t j = i + 1; j < runs.size(); j++) mm.owed.Add(runs[j]);
          retry_ = true;
          if (!mm.owed.empty()) retry_faults_.push_back({key, r.vaddr + at});
          return Ok();
        }
        if (e == ESRCH) {  // the process is gone
          mm.gone = true;
          mm.owed = uffd::PendingPages();
          return Ok();
        }
        // ENOENT/EINVAL: no registered VMA there any more (nothing owed).
        LOG_DBG("lazy-pages: pid " + std::to_string(mm.id) + ": UFFDIO_COPY at 0x" +
                Hex(r.vaddr + at) + ": " + strerror(e));
        break;
      }
    }
    return Ok();
  }

  static std::string Hex(uint64_t v) {
    char b[32];
    snprintf(b, sizeof(b), "%llx", (unsigned long long)v);
    return b;
  }

  const TreeImages& tree_;
  PageSource& src_;
  LazyGuard& guard_;
  UniqueFd conn_;
  std::map<uint32_t, Mm> mms_;
  uint32_t next_key_ = 1;
  std::vector<char> buf_;
  std::vector<std::pair<uint32_t, uint64_t>> retry_faults_;
  bool retry_ = false;
  uint32_t hellos_ = 0;
  bool prefetch_ = false;
  uint64_t copied_ = 0, on_fault_ = 0, prefetched_ = 0, zero_ = 0;
  uint64_t forks_ = 0, remaps_ = 0, removes_ = 0, dropped_ = 0;
};

}  // namespace

Status RunLazyPages(const Options& o, const std::function<void()>& on_listening) {
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(o.images_dir));
  TRY_ASSIGN(TreeImages tree, LoadTreeImages(*dir), "reading images from " + o.images_dir);
  std::unique_ptr<PageSource> src;
  if (o.page_server) {
    TRY_ASSIGN(src, PageSource::Remote(o.images_dir, o.address, o.port));
  } else {
    TRY(RefuseHeldPages(o.images_dir), "without --page-server");
    TRY_ASSIGN(src, PageSource::Local(o.images_dir));
  }
  bool api_ok = false;
  uint64_t features = uffd::ProbeLazyFeatures(&api_ok);
  if (!api_ok) return Error::Errno("userfaultfd is not available here");
  if (!(features & uffd::kFeaturePoison))
    LOG_WARN(
        "lazy-pages: no UFFD_FEATURE_POISON (Linux 6.6+): if this daemon dies, pages "
        "not yet in read as zeros");
  // The guard first: it must hold nothing of ours but its socket.
  TRY_ASSIGN(LazyGuard guard, LazyGuard::Start(tree));
  TRY_ASSIGN(SocketPath path, MakeSocketPath(o.images_dir));
  std::string shown = o.images_dir + "/" + kLazySocketName;
  unlinkat(path.dirfd.get(), kLazySocketName, 0);
  UniqueFd ls(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!ls) return Error::Errno("socket");
  if (bind(ls.get(), reinterpret_cast<sockaddr*>(&path.addr), sizeof(path.addr)) < 0)
    return Error::Errno("bind " + shown);
  struct Unlink {
    int dirfd;
    ~Unlink() { unlinkat(dirfd, kLazySocketName, 0); }
  } unlink_socket{path.dirfd.get()};
  if (listen(ls.get(), 1) < 0) return Error::Errno("listen");
  LOG_INFO("lazy-pages: waiting for the restore on " + shown + "; pages from " + src->Describe());
  if (on_listening) on_listening();
  UniqueFd conn;
  while (!conn) {
    conn.reset(accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn && errno != EINTR) return Error::Errno("accept");
  }
  ls.reset();
  // Tell the restore which features to ask for.
  if (send(conn.get(), &features, sizeof(features), MSG_NOSIGNAL) != ssize_t(sizeof(features)))
    return Error::Errno("greeting the restore");
  Daemon d(tree, *src, guard);
  TRY(d.Run(conn.release()));
  TRY(src->Done());
  return guard.Finish();
}

Status CheckLazyTree(const TreeImages& tree) {
  if (!tree.namespaces.user()) return Ok();
  auto v = io::ReadFile("/proc/sys/vm/unprivileged_userfaultfd");
  if (v.ok() && !v->empty() && (*v)[0] == '1') return Ok();
  return Error(
      "--lazy-pages: the tree has its own user namespace, where the restorers may not make a "
      "userfaultfd (vm.unprivileged_userfaultfd is 0; userfaultfd needs CAP_SYS_PTRACE in the "
      "initial user namespace): restore it without --lazy-pages");
}

Result<UniqueFd> ConnectLazyDaemon(const std::string& images_dir, uint64_t* features) {
  TRY_ASSIGN(SocketPath path, MakeSocketPath(images_dir));
  UniqueFd sk(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!sk) return Error::Errno("socket");
  std::string shown = images_dir + "/" + kLazySocketName;
  if (connect(sk.get(), reinterpret_cast<sockaddr*>(&path.addr), sizeof(path.addr)) < 0)
    return Error::Errno("--lazy-pages: no lazy-pages daemon at " + shown +
                        " (start `ckpt lazy-pages -D " + images_dir + "` first)");
  struct pollfd p = {sk.get(), POLLIN, 0};
  int r;
  while ((r = poll(&p, 1, 30 * 1000)) < 0 && errno == EINTR) {
  }
  if (r <= 0 || recv(sk.get(), features, sizeof(*features), 0) != ssize_t(sizeof(*features)))
    return Error("--lazy-pages: the lazy-pages daemon at " + shown + " did not answer");
  return sk;
}

Status LazyRestoreDone(int conn, size_t nr_tasks) {
  abi::LazyHello h = {abi::kLazyDoneMagic, int32_t(nr_tasks), 0, 0};
  if (send(conn, &h, sizeof(h), MSG_NOSIGNAL) != ssize_t(sizeof(h)))
    return Error::Errno("--lazy-pages: the lazy-pages daemon went away");
  struct pollfd p = {conn, POLLIN, 0};
  int r;
  while ((r = poll(&p, 1, 60 * 1000)) < 0 && errno == EINTR) {
  }
  char a = 0;
  if (r <= 0 || recv(conn, &a, 1, 0) != 1 || a != 'A')
    return Error("--lazy-pages: the lazy-pages daemon did not take the userfaultfds (see its log)");
  return Ok();
}

void LazyTreeRuns(int conn) {
  abi::LazyHello h = {abi::kLazyRunMagic, 0, 0, 0};
  if (send(conn, &h, sizeof(h), MSG_NOSIGNAL) != ssize_t(sizeof(h)))
    LOG_WARN("--lazy-pages: telling the lazy-pages daemon the tree runs: " +
             std::string(strerror(errno)));
}

std::string DescribeLazySupport() {
  bool api_ok = false;
  uint64_t f = uffd::ProbeLazyFeatures(&api_ok);
  if (!api_ok) return "no (userfaultfd refused)";
  uint64_t events = uffd::kFeatureEventFork | uffd::kFeatureEventRemap | uffd::kFeatureEventRemove |
                    uffd::kFeatureEventUnmap;
  std::string s = (f & events) == events ? "yes (userfaultfd with fork/remap/remove/unmap events"
                                         : "partly (userfaultfd without every event";
  s += (f & uffd::kFeaturePoison) ? "; a dying daemon gives SIGBUS, UFFDIO_POISON)"
                                  : "; no UFFDIO_POISON: a dying daemon leaves zeros)";
  return s;
}

}  // namespace ckpt
