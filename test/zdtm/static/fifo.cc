// fifo: named pipes opened by path. fifo1 has a reader (O_NONBLOCK) and a
// writer with 5000 unread bytes; fifo2 is open O_RDWR, grown to 128 KiB,
// with unread bytes. Verifies paths, inodes, flags, sizes, the data, and
// that data still flows.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
uint64_t g_seed;
void place(int fd, int num) {
  if (fd < 0) fail("open: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
std::string link_of(int fd) {
  char p[64], buf[4096];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  if (mkfifo("fifo1", 0600) || mkfifo("fifo2", 0640)) fail("mkfifo: %s", strerror(errno));
  place(open("fifo1", O_RDONLY | O_NONBLOCK), 40);
  place(open("fifo1", O_WRONLY), 41);
  place(open("fifo2", O_RDWR), 42);
  std::string data(5000, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(zdtm_mix(g_seed, i));
  if (write(41, data.data(), data.size()) != 5000) fail("write fifo1");
  if (fcntl(42, F_SETPIPE_SZ, 131072) != 131072) fail("F_SETPIPE_SZ: %s", strerror(errno));
  if (write(42, "rdwr data", 9) != 9) fail("write fifo2");
  std::string links[3];
  struct stat st[3];
  int fl[3];
  for (int i = 0; i < 3; i++) links[i] = link_of(40 + i), fstat(40 + i, &st[i]), fl[i] = fcntl(40 + i, F_GETFL);

  test_ready();
  test_wait();

  for (int i = 0; i < 3; i++) {
    struct stat now;
    fstat(40 + i, &now);
    if (link_of(40 + i) != links[i]) fail("fd %d: path %s, want %s", 40 + i, link_of(40 + i).c_str(), links[i].c_str());
    if (!S_ISFIFO(now.st_mode) || now.st_ino != st[i].st_ino) fail("fd %d is not the same FIFO", 40 + i);
    if (fcntl(40 + i, F_GETFL) != fl[i]) fail("fd %d: F_GETFL %#o, want %#o", 40 + i, fcntl(40 + i, F_GETFL), fl[i]);
  }
  if (fcntl(42, F_GETPIPE_SZ) != 131072) fail("fifo2 size %d", fcntl(42, F_GETPIPE_SZ));
  int q = -1;
  ioctl(40, FIONREAD, &q);
  if (q != 5000) fail("fifo1 holds %d bytes, want 5000", q);
  std::string got(6000, '\0');
  if (read(40, &got[0], got.size()) != 5000 || memcmp(got.data(), data.data(), 5000) != 0) fail("fifo1 data differs");
  if (read(40, &got[0], 1) != -1 || errno != EAGAIN) fail("fifo1 reader: no EAGAIN when empty");
  char buf[16];
  if (read(42, buf, sizeof(buf)) != 9 || memcmp(buf, "rdwr data", 9) != 0) fail("fifo2 data differs");
  if (write(41, "more", 4) != 4 || read(40, buf, 4) != 4 || memcmp(buf, "more", 4) != 0) fail("fifo1 no longer carries data");
  pass();
}
