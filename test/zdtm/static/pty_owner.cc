// pty_owner: terminal state beyond termios (issue 14 item 11).
//   fds 150/151  a pty pair whose slave node was given owner 1234:5678 and
//                mode 0604 (chown/chmod of /dev/pts/N, as grantpt and
//                login programs do)
//   fd 152       a pty slave whose master was closed: hung up, its
//                /dev/pts node gone (the link reads "(deleted)")
// After restore: the slave node (through the slave fd and through the
// master's TIOCGPTPEER) has that owner and mode; the pair carries data
// both ways; fd 152 is still a hung-up slave (link "/dev/pts/K (deleted)",
// read gives end of file, write fails with EIO).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d", num);
  close(fd);
}
std::string fd_link(int fd) {
  char buf[256];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
void expect_owner(const struct stat& st, const char* what) {
  if (st.st_uid != 1234 || st.st_gid != 5678 || (st.st_mode & 07777) != 0604)
    fail("%s: owner %u:%u mode %o, want 1234:5678 604", what, st.st_uid, st.st_gid, st.st_mode & 07777);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  place(posix_openpt(O_RDWR | O_NOCTTY), 150);
  if (grantpt(150) || unlockpt(150)) fail("grantpt/unlockpt: %s", strerror(errno));
  std::string slave = ptsname(150);
  place(open(slave.c_str(), O_RDWR | O_NOCTTY), 151);
  if (chown(slave.c_str(), 1234, 5678) || chmod(slave.c_str(), 0604)) fail("chown/chmod %s: %s", slave.c_str(), strerror(errno));
  struct termios t;
  if (tcgetattr(151, &t)) fail("tcgetattr");
  cfmakeraw(&t);
  if (tcsetattr(151, TCSANOW, &t)) fail("tcsetattr");

  int m2 = posix_openpt(O_RDWR | O_NOCTTY);
  if (m2 < 0 || unlockpt(m2)) fail("second pty: %s", strerror(errno));
  place(open(ptsname(m2), O_RDWR | O_NOCTTY), 152);
  close(m2);  // hangs up fd 152
  std::string l152 = fd_link(152);
  if (l152.compare(0, 9, "/dev/pts/") || l152.size() < 10 || l152.compare(l152.size() - 10, 10, " (deleted)"))
    fail("fd 152 reads %s before the dump", l152.c_str());

  test_ready();
  test_wait();

  struct stat st;
  if (fstat(151, &st)) fail("fstat 151");
  expect_owner(st, "slave fd");
  int peer = ioctl(150, TIOCGPTPEER, O_PATH | O_NOCTTY);
  if (peer < 0 || fstat(peer, &st)) fail("TIOCGPTPEER: %s", strerror(errno));
  expect_owner(st, "the master's slave");
  close(peer);
  char buf[8];
  if (write(150, "in", 2) != 2 || read(151, buf, 2) != 2 || memcmp(buf, "in", 2)) fail("master to slave");
  if (write(151, "out", 3) != 3 || read(150, buf, 3) != 3 || memcmp(buf, "out", 3)) fail("slave to master");

  std::string now = fd_link(152);
  if (now.compare(0, 9, "/dev/pts/") || now.size() < 10 || now.compare(now.size() - 10, 10, " (deleted)"))
    fail("fd 152 reads %s, want a removed /dev/pts node", now.c_str());
  if (read(152, buf, 1) != 0) fail("fd 152: read gives data or an error (%s), want end of file", strerror(errno));
  errno = 0;
  if (write(152, "x", 1) != -1 || errno != EIO) fail("fd 152: write gives %s, want EIO", strerror(errno));
  pass();
}
