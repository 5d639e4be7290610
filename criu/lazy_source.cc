#include "criu/lazy_source.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "base/io.h"
#include "base/log.h"
#include "criu/lazy_plan.h"
#include "criu/page_chain.h"
#include "criu/page_xfer.h"
#include "criu/task_images.h"
#include "images/image_dir.h"
#include "images/image_types.h"

namespace ckpt {
namespace {

using page_wire::Frame;

Status SendAll(int sk, const void* buf, size_t n, const std::string& what) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = send(sk, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error::Errno(what);
    p += r, n -= size_t(r);
  }
  return Ok();
}

Status RecvAll(int sk, void* buf, size_t n, const std::string& what) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = recv(sk, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error::Errno(what);
    if (r == 0) return Error(what + ": connection closed");
    p += r, n -= size_t(r);
  }
  return Ok();
}

Status SendFrame(int sk, uint32_t cmd, uint64_t len, const std::string& what) {
  Frame f = {page_wire::kMagic, cmd, len};
  return SendAll(sk, &f, sizeof(f), what);
}

// Pages files of the chain, opened on first use, checked against their
// checksums and read by offset (compressed ones frame by frame:
// images/zpages.h).
class LocalFiles {
 public:
  explicit LocalFiles(std::string dir) : dir_(std::move(dir)) {}
  Status Read(uint32_t src, uint64_t off, void* buf, uint64_t len) {
    auto it = files_.find(src);
    if (it == files_.end()) {
      if (!images_) {
        TRY_ASSIGN(images_, images::ImageDir::Open(dir_));
      }
      TRY_ASSIGN(std::unique_ptr<images::PagesFile> f, images_->OpenPages(PagesSourceName(src)));
      it = files_.emplace(src, std::move(f)).first;
    }
    return it->second->ReadAt(off, buf, size_t(len));
  }

 private:
  std::string dir_;
  std::unique_ptr<images::ImageDir> images_;
  std::map<uint32_t, std::unique_ptr<images::PagesFile>> files_;
};

class LocalSource : public PageSource {
 public:
  explicit LocalSource(std::string dir) : dir_(dir), files_(std::move(dir)) {}
  Status Read(uint32_t src, uint64_t off, void* buf, uint64_t len) override {
    return files_.Read(src, off, buf, len);
  }
  std::string Describe() const override { return "the images in " + dir_; }

 private:
  std::string dir_;
  LocalFiles files_;
};

class RemoteSource : public PageSource {
 public:
  RemoteSource(std::string dir, UniqueFd sk, std::string peer)
      : files_(std::move(dir)), sk_(std::move(sk)), peer_(std::move(peer)) {}
  Status Read(uint32_t src, uint64_t off, void* buf, uint64_t len) override {
    if (src >> kChainDepthShift) return files_.Read(src, off, buf, len);  // a parent image
    std::string name = images::PagesFileName(src);
    std::string w = "lazy dump at " + peer_;
    TRY(SendFrame(sk_.get(), page_wire::kRead, 16 + name.size(), w));
    uint64_t hdr[2] = {off, len};
    TRY(SendAll(sk_.get(), hdr, sizeof(hdr), w));
    TRY(SendAll(sk_.get(), name.data(), name.size(), w));
    Frame f;
    TRY(RecvAll(sk_.get(), &f, sizeof(f), w));
    if (f.magic != page_wire::kMagic) return Error(w + ": bad frame");
    if (f.cmd == page_wire::kError && f.len < 4096) {
      std::string msg(size_t(f.len), '\0');
      TRY(RecvAll(sk_.get(), msg.data(), msg.size(), w));
      return Error(w + ": " + msg);
    }
    if (f.cmd != page_wire::kData || f.len != len) return Error(w + ": unexpected answer");
    return RecvAll(sk_.get(), buf, len, w);
  }
  Status Done() override {
    return SendFrame(sk_.get(), page_wire::kDone, 0, "lazy dump at " + peer_);
  }
  std::string Describe() const override { return "the lazy dump at " + peer_; }

 private:
  LocalFiles files_;
  UniqueFd sk_;
  std::string peer_;
};

}  // namespace

Status ServeLazyRequests(int sk, const std::map<std::string, LazyHeldFile>& held) {
  for (;;) {
    Frame f;
    ssize_t n = recv(sk, &f, sizeof(f), MSG_WAITALL);
    if (n == 0) return Error("the lazy-pages daemon went away before it had every page");
    if (n != ssize_t(sizeof(f))) return Error::Errno("receiving from the lazy-pages daemon");
    if (f.magic != page_wire::kMagic) return Error("not a lazy-pages daemon talking (bad magic)");
    if (f.cmd == page_wire::kDone) return Ok();
    if (f.cmd != page_wire::kRead || f.len < 17 || f.len > 16 + page_wire::kMaxName)
      return Error("protocol: unexpected command " + std::to_string(f.cmd));
    uint64_t hdr[2];
    TRY(RecvAll(sk, hdr, sizeof(hdr), "receiving a request"));
    std::string name(size_t(f.len - 16), '\0');
    TRY(RecvAll(sk, name.data(), name.size(), "receiving a request"));
    auto it = held.find(name);
    uint64_t off = hdr[0], len = hdr[1];
    if (it == held.end() || off > it->second.size || len > it->second.size - off) {
      std::string msg =
          "no pages " + name + " at " + std::to_string(off) + "+" + std::to_string(len);
      TRY(SendFrame(sk, page_wire::kError, msg.size(), "answering"));
      TRY(SendAll(sk, msg.data(), msg.size(), "answering"));
      continue;
    }
    TRY(SendFrame(sk, page_wire::kData, len, "answering"));
    off_t o = off_t(off);
    while (len > 0) {  // memfd to socket, not through our memory
      ssize_t s = sendfile(sk, it->second.fd.get(), &o, len);
      if (s < 0 && errno == EINTR) continue;
      if (s <= 0) return Error::Errno("sending pages of " + name);
      len -= uint64_t(s);
    }
  }
}

Result<std::unique_ptr<PageSource>> PageSource::Local(const std::string& dir) {
  return std::unique_ptr<PageSource>(new LocalSource(dir));
}

Result<std::unique_ptr<PageSource>> PageSource::Remote(const std::string& dir,
                                                       const std::string& address, int port) {
  std::string peer;
  TRY_ASSIGN(UniqueFd sk, page_wire::Connect(address, port, "the lazy dump", &peer));
  return RemoteOver(dir, std::move(sk), peer);
}

std::unique_ptr<PageSource> PageSource::RemoteOver(const std::string& dir, UniqueFd sk,
                                                   const std::string& peer) {
  return std::unique_ptr<PageSource>(new RemoteSource(dir, std::move(sk), peer));
}

Status RefuseHeldPages(const std::string& dir) {
  std::string p = dir + "/" + kLazyHeldMarker;
  if (access(p.c_str(), F_OK) == 0)
    return Error(dir + ": its private memory is held by a lazy dump (" + kLazyHeldMarker +
                 "): restore it with --lazy-pages and `ckpt lazy-pages --page-server`");
  return Ok();
}

Result<UniqueFd> LazySourceListen(const std::string& address, int port) {
  sockaddr_storage ss;
  TRY_ASSIGN(socklen_t len, page_wire::MakeAddr(address, port, &ss, true), "dump --lazy-pages");
  UniqueFd ls(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!ls) return Error::Errno("socket");
  int one = 1;
  setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string where = (address.empty() ? "*" : address) + ":" + std::to_string(port);
  if (bind(ls.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
    return Error::Errno("dump --lazy-pages: bind " + where);
  if (listen(ls.get(), 1) < 0) return Error::Errno("dump --lazy-pages: listen");
  return ls;
}

Status ServeLazySource(const std::string& dir_path, int listen_fd,
                       const std::function<void()>& on_ready) {
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(dir_path));
  // Only this dump's own pages are held and served: its parent images'
  // (pre-dumps) are read at the destination, and may not be here at all
  // (sent to a page server).
  TRY_ASSIGN(TreeImages tree, LoadTreeImages(*dir, "", /*own_pages_only=*/true),
             "reading the dump in " + dir_path);
  // Keep each pages file whole in a memfd, then punch the lazy pages out
  // of DIR's copy: the destination reads them from us.
  std::map<std::string, LazyHeldFile> held;
  std::map<std::string, std::vector<PageRun>> punch;
  for (const TaskImages& t : tree.tasks) {
    if (t.zombie()) continue;
    for (const PageRun& r : PlanLazy(t).lazy)
      if (!(r.src >> kChainDepthShift)) punch[images::PagesFileName(r.src)].push_back(r);
  }
  for (auto& [name, runs] : punch) {
    std::string path = dir_path + "/" + name;
    UniqueFd f(open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!f) return Error::Errno("open " + path);
    struct stat st;
    if (fstat(f.get(), &st) < 0) return Error::Errno("stat " + path);
    LazyHeldFile h;
    h.fd.reset(memfd_create(("ckpt-lazy-" + name).c_str(), MFD_CLOEXEC));
    if (!h.fd) return Error::Errno("memfd_create");
    h.size = uint64_t(st.st_size);
    off_t in = 0;
    while (uint64_t(in) < h.size) {  // file to memfd in the kernel
      ssize_t n = sendfile(h.fd.get(), f.get(), &in, h.size - uint64_t(in));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error::Errno("copying " + path + " to memory");
    }
    for (const PageRun& r : runs)
      if (fallocate(f.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(r.off),
                    off_t(r.nr_pages * 4096)) < 0)
        return Error::Errno("punching the lazy pages out of " + path);
    held.emplace(name, std::move(h));
  }
  // DIR's pages files now differ from the dump: their checksums follow.
  {
    std::vector<std::string> changed;
    for (const auto& [name, runs] : punch) changed.push_back(name);
    if (!changed.empty()) TRY(dir->Reseal(changed));
  }
  std::string marker = dir_path + "/" + kLazyHeldMarker;
  UniqueFd m(open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!m) return Error::Errno("create " + marker);
  LOG_INFO("lazy dump: " + std::to_string(held.size()) +
           " pages files held in memory; waiting for the lazy-pages daemon");
  if (on_ready) on_ready();
  UniqueFd sk;
  while (!sk) {
    sk.reset(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!sk && errno != EINTR) return Error::Errno("dump --lazy-pages: accept");
  }
  int one = 1;  // answers are a small frame then the pages: no Nagle delay
  setsockopt(sk.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  TRY(ServeLazyRequests(sk.get(), held));
  LOG_INFO("lazy dump: the lazy-pages daemon has every page");
  return Ok();
}

}  // namespace ckpt
