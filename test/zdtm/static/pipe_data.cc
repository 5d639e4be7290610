// pipe_data: anonymous pipes with both ends in the process. A pipe grown to
// 256 KiB holding 100000 unread bytes (read end O_NONBLOCK, plus a dup of
// it), an empty pipe, a packet-mode (O_DIRECT) pipe holding four packets, a
// pipe whose write end is closed (data, then EOF) and one whose read end is
// closed (EPIPE). Verifies sizes, flags, queued byte counts, the data in
// order, packet boundaries, EOF/EPIPE, and that the pipes still carry data.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr int kBigSize = 256 * 1024, kBigData = 100000;
const int kPackets[] = {10, 100, 1000, 3000};
uint64_t g_seed;

char byte(size_t i) { return static_cast<char>(zdtm_mix(g_seed, i)); }

void place(int fd, int num) {
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
void make_pipe(int r, int w, int flags) {
  int p[2];
  if (pipe2(p, flags)) fail("pipe2: %s", strerror(errno));
  place(p[0], r);
  place(p[1], w);
}
int queued(int fd) {
  int n = -1;
  if (ioctl(fd, FIONREAD, &n)) fail("FIONREAD fd %d: %s", fd, strerror(errno));
  return n;
}
ino_t ino(int fd) {
  struct stat st;
  if (fstat(fd, &st)) fail("fstat %d: %s", fd, strerror(errno));
  return st.st_ino;
}
void write_all(int fd, const std::string& s) {
  if (write(fd, s.data(), s.size()) != static_cast<ssize_t>(s.size())) fail("write fd %d: %s", fd, strerror(errno));
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  signal(SIGPIPE, SIG_IGN);
  std::string big(kBigData, '\0');
  for (size_t i = 0; i < big.size(); i++) big[i] = byte(i);

  make_pipe(30, 31, 0);
  if (fcntl(31, F_SETPIPE_SZ, kBigSize) != kBigSize) fail("F_SETPIPE_SZ: %s", strerror(errno));
  write_all(31, big);
  fcntl(30, F_SETFL, O_NONBLOCK);
  if (dup2(30, 38) != 38) fail("dup2 38");
  make_pipe(32, 33, 0);
  fcntl(33, F_SETFD, FD_CLOEXEC);
  make_pipe(34, 35, O_DIRECT);
  for (int n : kPackets) write_all(35, std::string(n, static_cast<char>('a' + n % 26)));
  make_pipe(36, 39, 0);
  write_all(39, "tail data");
  close(39);  // write end gone: data, then EOF
  make_pipe(40, 37, 0);
  close(40);  // read end gone: EPIPE

  const int fds[] = {30, 31, 32, 33, 34, 35, 36, 37, 38};
  int getfl[64], getfd[64];
  for (int fd : fds) getfl[fd] = fcntl(fd, F_GETFL), getfd[fd] = fcntl(fd, F_GETFD);

  test_ready();
  test_wait();

  for (int fd : fds) {
    if (fcntl(fd, F_GETFL) != getfl[fd]) fail("fd %d: F_GETFL %#o, want %#o", fd, fcntl(fd, F_GETFL), getfl[fd]);
    if (fcntl(fd, F_GETFD) != getfd[fd]) fail("fd %d: F_GETFD %d, want %d", fd, fcntl(fd, F_GETFD), getfd[fd]);
  }
  if (ino(31) != ino(30) || ino(38) != ino(30) || ino(32) == ino(30)) fail("pipe ends no longer pair up");
  if (fcntl(30, F_GETPIPE_SZ) != kBigSize) fail("pipe size %d, want %d", fcntl(30, F_GETPIPE_SZ), kBigSize);
  if (fcntl(32, F_GETPIPE_SZ) != 65536) fail("default pipe size %d", fcntl(32, F_GETPIPE_SZ));
  if (queued(30) != kBigData) fail("fd 30 holds %d bytes, want %d", queued(30), kBigData);
  if (queued(32) != 0) fail("empty pipe holds %d bytes", queued(32));

  // The big pipe: all bytes in order, then EAGAIN (O_NONBLOCK, writer open).
  std::string got(kBigData + 10, '\0');
  size_t n = 0;
  while (n < got.size()) {
    ssize_t r = read(n % 2 ? 38 : 30, &got[n], 7000);  // both fds share the description
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  if (n != static_cast<size_t>(kBigData) || memcmp(got.data(), big.data(), kBigData) != 0)
    fail("big pipe returned %zu bytes%s", n, n == static_cast<size_t>(kBigData) ? " with wrong contents" : "");
  if (read(30, &got[0], 1) != -1 || errno != EAGAIN) fail("drained pipe did not say EAGAIN");
  fcntl(38, F_SETFL, 0);
  if (fcntl(30, F_GETFL) & O_NONBLOCK) fail("fd 38 is no longer a dup of fd 30");
  // Packets: one per read.
  for (int want : kPackets) {
    char buf[8192];
    ssize_t r = read(34, buf, sizeof(buf));
    if (r != want || buf[0] != static_cast<char>('a' + want % 26)) fail("packet of %zd bytes, want %d", r, want);
  }
  // Write end closed everywhere: the data, then EOF.
  char buf[64];
  if (read(36, buf, sizeof(buf)) != 9 || memcmp(buf, "tail data", 9) != 0) fail("fd 36 lost its data");
  if (read(36, buf, sizeof(buf)) != 0) fail("fd 36 did not reach EOF");
  // Read end closed everywhere: EPIPE.
  if (write(37, "x", 1) != -1 || errno != EPIPE) fail("fd 37 write did not fail with EPIPE");
  // The pipes still work.
  write_all(31, "again");
  write_all(33, "empty no more");
  if (read(30, buf, 5) != 5 || memcmp(buf, "again", 5) != 0) fail("big pipe no longer carries data");
  if (read(32, buf, 13) != 13 || memcmp(buf, "empty no more", 13) != 0) fail("empty pipe no longer carries data");
  pass();
}
