#include "criu/page_xfer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "images/image_check.h"

namespace ckpt {

namespace page_wire {
bool NameOk(const std::string& n) {
  if (n.empty() || n.size() > kMaxName || n[0] == '.' || n.find('/') != std::string::npos ||
      n.find('\0') != std::string::npos)
    return false;
  auto starts = [&](const char* p) { return n.rfind(p, 0) == 0; };
  return (starts("pages-") || starts("pagemap-")) && n.size() > 4 &&
         n.compare(n.size() - 4, 4, ".img") == 0;
}

Result<socklen_t> MakeAddr(const std::string& address, int port, sockaddr_storage* ss,
                           bool listen_any) {
  if (port < (listen_any ? 0 : 1) || port > 65535) return Error("bad port " + std::to_string(port));
  memset(ss, 0, sizeof(*ss));
  auto* in4 = reinterpret_cast<sockaddr_in*>(ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (address.empty()) {
    if (!listen_any) return Error("the page server's --address is missing");
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    in6->sin6_port = htons(uint16_t(port));
    return socklen_t(sizeof(*in6));
  }
  if (inet_pton(AF_INET, address.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(uint16_t(port));
    return socklen_t(sizeof(*in4));
  }
  if (inet_pton(AF_INET6, address.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(uint16_t(port));
    return socklen_t(sizeof(*in6));
  }
  return Error("bad address '" + address + "' (an IPv4 or IPv6 literal)");
}

}  // namespace page_wire

namespace {

using page_wire::Frame;

// ---- local: files of the image directory ----

class LocalTarget : public PageTarget {
 public:
  explicit LocalTarget(images::ImageDir& dir) : dir_(dir) {}
  Status WriteFile(const std::string& name, const std::string& bytes) override {
    TRY_ASSIGN(UniqueFd fd, dir_.CreateRaw(name));
    TRY(io::WriteFull(fd.get(), bytes.data(), bytes.size()), "writing " + name);
    if (close(fd.release()) < 0) return Error::Errno("close " + name);
    dir_.SetRawSum(name, bytes.size(), images::Crc32c(0, bytes.data(), bytes.size()));
    return Ok();
  }
  Result<int> Begin(const std::string& name) override {
    TRY_ASSIGN(open_, dir_.CreateRaw(name));
    name_ = name;
    return open_.get();
  }
  Status Announce(uint64_t) override { return Ok(); }
  void Summed(uint64_t size, uint32_t crc) override { dir_.SetRawSum(name_, size, crc); }
  bool Durable() const override { return dir_.sync(); }
  bool WantsSum() const override { return true; }
  Status End() override {
    if (close(open_.release()) < 0) return Error::Errno("close " + name_);
    return Ok();
  }
  Status MarkZPages() override {
    dir_.MarkZPages(name_);
    return Ok();
  }
  Status Commit() override { return Ok(); }  // the image directory's own Commit syncs
  std::string Describe() const override { return "pages to " + dir_.path(); }

 private:
  images::ImageDir& dir_;
  UniqueFd open_;
  std::string name_;
};

// ---- remote: a page server ----

Status SendFrame(int sk, uint32_t cmd, uint64_t len, const std::string& where) {
  Frame f = {page_wire::kMagic, cmd, len};
  const char* p = reinterpret_cast<const char*>(&f);
  size_t left = sizeof(f);
  while (left > 0) {
    ssize_t n = send(sk, p, left, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::Errno(where + ": sending to the page server");
    p += n, left -= size_t(n);
  }
  return Ok();
}

class RemoteTarget : public PageTarget {
 public:
  RemoteTarget(UniqueFd sk, std::string peer) : sk_(std::move(sk)), peer_(std::move(peer)) {
    // splice(2) into a socket whose peer went away raises SIGPIPE: the dump
    // must fail with EPIPE instead (and the victim resume).
    struct sigaction ign = {};
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe_);
  }
  ~RemoteTarget() override { sigaction(SIGPIPE, &old_pipe_, nullptr); }

  Status WriteFile(const std::string& name, const std::string& bytes) override {
    TRY(Begin(name));
    TRY(Announce(bytes.size()));
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(sk_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::Errno(Where() + ": sending " + name);
      off += size_t(n);
    }
    return End();
  }
  Result<int> Begin(const std::string& name) override {
    if (!page_wire::NameOk(name)) return Error("page server: bad file name " + name);
    TRY(SendFrame(sk_.get(), page_wire::kOpen, name.size(), Where()));
    if (send(sk_.get(), name.data(), name.size(), MSG_NOSIGNAL) != ssize_t(name.size()))
      return Error::Errno(Where() + ": sending a file name");
    return sk_.get();
  }
  Status Announce(uint64_t bytes) override {
    return SendFrame(sk_.get(), page_wire::kData, bytes, Where());
  }
  Status End() override { return SendFrame(sk_.get(), page_wire::kClose, 0, Where()); }
  Status MarkZPages() override { return SendFrame(sk_.get(), page_wire::kZPages, 0, Where()); }
  Status Commit() override {
    TRY(SendFrame(sk_.get(), page_wire::kCommit, 0, Where()));
    // The server syncs its files first: give it time, but not forever.
    struct pollfd p = {sk_.get(), POLLIN, 0};
    int r;
    while ((r = poll(&p, 1, 600 * 1000)) < 0 && errno == EINTR) {
    }
    if (r == 0) return Error(Where() + ": no answer to the commit within 600 s");
    char c = 0;
    if (recv(sk_.get(), &c, 1, 0) != 1 || c != 'C')
      return Error(Where() + ": the page server did not confirm the pages");
    return Ok();
  }
  std::string Describe() const override { return "pages to the page server at " + peer_; }

 private:
  std::string Where() const { return "page server " + peer_; }
  UniqueFd sk_;
  std::string peer_;
  struct sigaction old_pipe_ = {};
};

// ---- the server ----

Status ReadExact(int sk, void* buf, size_t n, const char* what) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = recv(sk, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Error::Errno(std::string("receiving ") + what);
    if (r == 0) return Error(std::string("the dump went away while sending ") + what);
    p += r, n -= size_t(r);
  }
  return Ok();
}

class Receiver {
 public:
  explicit Receiver(int dirfd) : dirfd_(dirfd) {}
  ~Receiver() {  // not committed: nothing may look like an image
    for (const std::string& n : parts_) unlinkat(dirfd_, Part(n).c_str(), 0);
  }

  Status Serve(int sk) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
    pipe_r_.reset(p[0]), pipe_w_.reset(p[1]);
    fcntl(pipe_w_.get(), F_SETPIPE_SZ, 1 << 20);
    for (;;) {
      Frame f;
      TRY(ReadExact(sk, &f, sizeof(f), "a frame header"));
      if (f.magic != page_wire::kMagic) return Error("not a ckpt dump talking (bad magic)");
      switch (f.cmd) {
        case page_wire::kOpen: {
          if (file_) return Error("protocol: open while " + name_ + " is open");
          if (f.len == 0 || f.len > page_wire::kMaxName) return Error("protocol: bad name length");
          std::string name(size_t(f.len), '\0');
          TRY(ReadExact(sk, name.data(), name.size(), "a file name"));
          if (!page_wire::NameOk(name)) return Error("refusing file name '" + name + "'");
          for (const std::string& n : parts_)
            if (n == name) return Error("protocol: " + name + " sent twice");
          file_.reset(openat(dirfd_, Part(name).c_str(),
                             O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
          if (!file_) return Error::Errno("create " + Part(name));
          parts_.push_back(name);
          name_ = name;
          break;
        }
        case page_wire::kData:
          if (!file_) return Error("protocol: data without an open file");
          TRY(Receive(sk, f.len), name_);
          break;
        case page_wire::kZPages:
          if (!file_ || f.len != 0) return Error("protocol: bad compressed mark");
          zpages_.insert(name_);
          break;
        case page_wire::kClose:
          if (!file_) return Error("protocol: close without an open file");
          if (fsync(file_.get()) < 0) return Error::Errno("fsync " + name_);
          if (close(file_.release()) < 0) return Error::Errno("close " + name_);
          break;
        case page_wire::kCommit: {
          if (file_) return Error("protocol: commit while " + name_ + " is open");
          TRY(WriteChecksums());  // checksums1.img (images/image_check.h)
          for (const std::string& n : parts_)
            if (renameat(dirfd_, Part(n).c_str(), dirfd_, n.c_str()) < 0)
              return Error::Errno("rename " + Part(n));
          size_t count = parts_.size();
          parts_.clear();
          if (fsync(dirfd_) < 0) return Error::Errno("fsync the directory");
          char c = 'C';
          if (send(sk, &c, 1, MSG_NOSIGNAL) != 1) return Error::Errno("confirming the commit");
          LOG_INFO("page server: " + std::to_string(count) + " files committed");
          return Ok();
        }
        default:
          return Error("protocol: unknown command " + std::to_string(f.cmd));
      }
    }
  }

 private:
  // Lists every file received, with its size and CRC32C, in checksums1.img.
  Status WriteChecksums() {
    std::vector<images::FileSum> sums;
    for (const std::string& n : parts_) {
      UniqueFd fd(openat(dirfd_, Part(n).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd) return Error::Errno("reading back " + Part(n));
      TRY_ASSIGN(images::FileSum s, images::SumFile(fd.get(), n));
      s.zpages = zpages_.count(n) != 0;
      sums.push_back(s);
    }
    std::string name = images::FileName(images::ImageType::kChecksums, 1);
    std::string bytes = images::ChecksumsImage(sums);
    UniqueFd out(openat(dirfd_, Part(name).c_str(),
                        O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) return Error::Errno("create " + Part(name));
    parts_.push_back(name);
    TRY(io::WriteFull(out.get(), bytes.data(), bytes.size()), name);
    if (fsync(out.get()) < 0) return Error::Errno("fsync " + name);
    return Ok();
  }
  static std::string Part(const std::string& n) { return "." + n + ".part"; }

  // len bytes from the socket into the open file, through the pipe.
  Status Receive(int sk, uint64_t len) {
    while (len > 0) {
      ssize_t in = splice(sk, nullptr, pipe_w_.get(), nullptr, std::min<uint64_t>(len, 1 << 20),
                          SPLICE_F_MOVE);
      if (in < 0 && errno == EINTR) continue;
      if (in < 0) return Error::Errno("receiving pages");
      if (in == 0) return Error("the dump went away in the middle of the pages");
      len -= uint64_t(in);
      for (ssize_t left = in; left > 0;) {
        ssize_t out =
            splice(pipe_r_.get(), nullptr, file_.get(), nullptr, size_t(left), SPLICE_F_MOVE);
        if (out < 0 && errno == EINTR) continue;
        if (out <= 0) return Error::Errno("writing pages");
        left -= out;
      }
    }
    return Ok();
  }

  int dirfd_;
  UniqueFd file_, pipe_r_, pipe_w_;
  std::string name_;
  std::vector<std::string> parts_;
  std::set<std::string> zpages_;  // files marked compressed
};

}  // namespace

Result<std::unique_ptr<PageTarget>> PageTarget::Local(images::ImageDir& dir) {
  return std::unique_ptr<PageTarget>(new LocalTarget(dir));
}

Result<UniqueFd> page_wire::Connect(const std::string& address, int port,
                                    const std::string& what, std::string* peer) {
  sockaddr_storage ss;
  TRY_ASSIGN(socklen_t len, MakeAddr(address, port, &ss, false), "--page-server");
  *peer = (ss.ss_family == AF_INET6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
  UniqueFd sk(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sk) return Error::Errno("socket");
  if (connect(sk.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
    return Error::Errno("cannot reach " + what + " at " + *peer);
  int one = 1;
  setsockopt(sk.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return sk;
}

Result<std::unique_ptr<PageTarget>> PageTarget::Remote(const std::string& address, int port) {
  std::string peer;
  TRY_ASSIGN(UniqueFd sk, page_wire::Connect(address, port, "the page server", &peer));
  LOG_INFO("connected to the page server at " + peer);
  return std::unique_ptr<PageTarget>(new RemoteTarget(std::move(sk), peer));
}

Status RunPageServer(const std::string& dir, const std::string& address, int port,
                     const std::function<void(int port)>& on_listening) {
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return Error::Errno("mkdir " + dir);
  UniqueFd dirfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd) return Error::Errno("open " + dir);
  sockaddr_storage ss;
  TRY_ASSIGN(socklen_t len, page_wire::MakeAddr(address, port, &ss, true));
  UniqueFd ls(socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!ls) return Error::Errno("socket");
  int one = 1;
  setsockopt(ls.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  std::string where = (address.empty() ? "*" : address) + ":" + std::to_string(port);
  if (bind(ls.get(), reinterpret_cast<sockaddr*>(&ss), len) < 0)
    return Error::Errno("page server: bind " + where);
  if (listen(ls.get(), 1) < 0) return Error::Errno("page server: listen");
  sockaddr_storage got;
  socklen_t got_len = sizeof(got);
  if (getsockname(ls.get(), reinterpret_cast<sockaddr*>(&got), &got_len) < 0)
    return Error::Errno("page server: getsockname");
  int bound = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  LOG_INFO("page server listening on " + (address.empty() ? std::string("*") : address) + ":" +
           std::to_string(bound) + ", images into " + dir);
  if (on_listening) on_listening(bound);
  UniqueFd sk;
  while (!sk) {
    sk.reset(accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!sk && errno != EINTR) return Error::Errno("page server: accept");
  }
  ls.reset();
  return ServePageStream(dirfd.get(), sk.get());
}

Status ServePageStream(int dirfd, int sk) {
  Receiver r(dirfd);
  return r.Serve(sk);
}

}  // namespace ckpt
