// file_lease: leases (fcntl F_SETLEASE; issue 14 item 10). fd 160 holds a
// read lease on lease_r.dat (open O_RDONLY), fd 161 a write lease on
// lease_w.dat (its only open). After restore F_GETLEASE gives them back,
// and the write lease works: an O_NONBLOCK open of lease_w.dat by a child
// fails with EWOULDBLOCK (and starts a lease break), while lease_r.dat can
// still be opened for reading.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d", num);
  close(fd);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  signal(SIGIO, SIG_IGN);  // a lease break signals the owner
  int w = open("lease_r.dat", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (w < 0 || write(w, "r", 1) != 1) fail("lease_r.dat");
  close(w);
  place(open("lease_r.dat", O_RDONLY), 160);
  place(open("lease_w.dat", O_RDWR | O_CREAT | O_TRUNC, 0644), 161);
  if (fcntl(160, F_SETLEASE, F_RDLCK)) fail("read lease: %s", strerror(errno));
  if (fcntl(161, F_SETLEASE, F_WRLCK)) fail("write lease: %s", strerror(errno));

  test_ready();
  test_wait();

  if (fcntl(160, F_GETLEASE) != F_RDLCK) fail("fd 160: F_GETLEASE %d, want F_RDLCK", fcntl(160, F_GETLEASE));
  if (fcntl(161, F_GETLEASE) != F_WRLCK) fail("fd 161: F_GETLEASE %d, want F_WRLCK", fcntl(161, F_GETLEASE));
  pid_t c = fork();
  if (c == 0) {
    int r = open("lease_r.dat", O_RDONLY | O_NONBLOCK);
    if (r < 0) _exit(2);  // a read lease does not stop readers
    int fd = open("lease_w.dat", O_RDONLY | O_NONBLOCK);
    _exit(fd < 0 && errno == EWOULDBLOCK ? 0 : 1);
  }
  int st = 0;
  if (c < 0 || waitpid(c, &st, 0) != c) fail("fork/wait");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("child: %s", WEXITSTATUS(st) == 2 ? "lease_r.dat could not be read" : "lease_w.dat opened: no write lease");
  pass();
}
