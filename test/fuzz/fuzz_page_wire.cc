// libFuzzer target: ckpt's page wire (criu/page_xfer.h, criu/lazy_source.h)
// as seen by each side when the other side is hostile. The first input
// byte picks the side under test (modulo 3); the rest is every byte the
// hostile peer sends, fed through a connected AF_UNIX stream socket (a
// helper thread writes it, then shuts its side down, and drains whatever
// the side under test answers):
//   0  the page server (ServePageStream) receiving a dump into a scratch
//      directory; after an error the directory must be empty.
//   1  a lazy dump (ServeLazyRequests) answering a lazy-pages daemon from
//      two held pages files.
//   2  the lazy-pages daemon's page source (PageSource::RemoteOver) reading
//      pages of the lazy dump: a fixed series of reads, then Done.
// Run as root, the page server's directory is a tmpfs in a mount namespace
// of the fuzzer's own, detached at once (reached only through its fd: the
// server fsyncs every file, and nothing can stay behind); otherwise a
// directory under $TMPDIR, removed at exit.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "base/unique_fd.h"
#include "criu/lazy_source.h"
#include "criu/page_xfer.h"
#include "test/fuzz/fuzz_util.h"

namespace {

std::map<std::string, ckpt::LazyHeldFile>* g_held;
std::string g_dir;  // the page server's directory (mode 0)
int g_dirfd = -1;

// Writes data to sk (non-blocking), shuts the write side down, and reads
// until the other side closes; ends when both are done or the other side
// is gone. Every step makes progress or ends the loop.
void Peer(int sk, const uint8_t* data, size_t size) {
  size_t off = 0;
  bool writing = true;
  if (size == 0) {
    shutdown(sk, SHUT_WR);
    writing = false;
  }
  char sink[65536];
  for (;;) {
    struct pollfd p = {sk, short(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      abort();
    }
    if (writing && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = send(sk, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) off += size_t(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || off == size) {
        shutdown(sk, SHUT_WR);
        writing = false;
      }
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      ssize_t n = recv(sk, sink, sizeof(sink), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
    }
  }
}

size_t Entries(int dirfd) {
  int fd = dup(dirfd);
  if (fd < 0) abort();
  DIR* d = fdopendir(fd);
  if (!d) abort();
  rewinddir(d);
  size_t n = 0;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

void ClearDir(int dirfd) {
  int fd = dup(dirfd);
  if (fd < 0) abort();
  DIR* d = fdopendir(fd);
  if (!d) abort();
  rewinddir(d);
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && unlinkat(dirfd, e->d_name, 0) < 0)
      abort();
  closedir(d);
}

void RemoveDir() {
  ClearDir(g_dirfd);
  rmdir(g_dir.c_str());
}

ckpt::LazyHeldFile HeldFile(const char* name, size_t pages) {
  ckpt::LazyHeldFile h;
  h.fd.reset(memfd_create(name, MFD_CLOEXEC));
  if (!h.fd) abort();
  std::string bytes(pages * 4096, '\0');
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = char(i * 7 + i / 4096);
  if (write(h.fd.get(), bytes.data(), bytes.size()) != ssize_t(bytes.size())) abort();
  h.size = bytes.size();
  return h;
}

void Run(int mode, int sk) {
  switch (mode) {
    case 0: {
      auto st = ckpt::ServePageStream(g_dirfd, sk);
      // A dump that did not commit leaves nothing that could pass for an image.
      if (!st.ok() && Entries(g_dirfd) != 0) abort();
      ClearDir(g_dirfd);
      break;
    }
    case 1:
      (void)ckpt::ServeLazyRequests(sk, *g_held);
      break;
    case 2: {
      int own = dup(sk);
      if (own < 0) abort();
      // Source 1 is the dump's own pages-1.img: always asked of the peer,
      // never read from the (here unused) image directory.
      auto src = ckpt::PageSource::RemoteOver("/nonexistent", ckpt::UniqueFd(own), "fuzz peer");
      static char buf[3 * 4096];
      const uint64_t lens[] = {4096, 1, 3 * 4096, 4096, 0, 100};
      bool ok = true;
      for (size_t i = 0; ok && i < sizeof(lens) / sizeof(lens[0]); i++)
        ok = src->Read(1, i * 4096, buf, lens[i]).ok();
      if (ok) (void)src->Done();
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::fuzz::Quiet();
  const char* tmp = getenv("TMPDIR");
  g_dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/ckpt-fuzz-wire-XXXXXX";
  if (!mkdtemp(g_dir.data())) abort();
  bool tmpfs = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
               mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
               mount("fuzz", g_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0700") == 0;
  g_dirfd = open(g_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (g_dirfd < 0) abort();
  if (tmpfs) {
    // The fd keeps the tmpfs; no path leads to it, nothing stays behind.
    if (umount2(g_dir.c_str(), MNT_DETACH) < 0 || rmdir(g_dir.c_str()) < 0) abort();
  } else {
    atexit(RemoveDir);
  }
  g_held = new std::map<std::string, ckpt::LazyHeldFile>;
  g_held->emplace("pages-1.img", HeldFile("pages-1.img", 3));
  g_held->emplace("pages-2.img", HeldFile("pages-2.img", 0));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > (1 << 20)) return 0;
  int sk[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) abort();
  std::thread peer(Peer, sk[0], data + 1, size - 1);
  Run(data[0] % 3, sk[1]);
  close(sk[1]);
  peer.join();
  close(sk[0]);
  return 0;
}
