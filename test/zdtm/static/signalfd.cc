// signalfd: SIGUSR1 and SIGRTMIN+3 (O_NONBLOCK) on one, SIGUSR2 on
// another, all blocked; SIGUSR1 is pending at dump time. Verifies the masks
// (fdinfo), that the pending signal is read, and that new signals arrive
// with their data on the right fd.
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("signalfd: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
std::string mask_line(int fd) {
  std::string info = zdtm_read_file(("/proc/self/fdinfo/" + std::to_string(fd)).c_str());
  size_t p = info.find("sigmask:");
  return p == std::string::npos ? "" : info.substr(p, info.find('\n', p) - p);
}
signalfd_siginfo next(int fd) {
  signalfd_siginfo si = {};
  if (read(fd, &si, sizeof(si)) != sizeof(si)) fail("read signalfd %d: %s", fd, strerror(errno));
  return si;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const int rt = SIGRTMIN + 3;
  sigset_t block, a, b;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1), sigaddset(&block, SIGUSR2), sigaddset(&block, rt);
  sigprocmask(SIG_BLOCK, &block, nullptr);
  sigemptyset(&a);
  sigaddset(&a, SIGUSR1), sigaddset(&a, rt);
  sigemptyset(&b);
  sigaddset(&b, SIGUSR2);
  place(signalfd(-1, &a, SFD_NONBLOCK), 60);
  place(signalfd(-1, &b, 0), 61);
  raise(SIGUSR1);
  std::string m60 = mask_line(60), m61 = mask_line(61);
  int fl60 = fcntl(60, F_GETFL), fl61 = fcntl(61, F_GETFL);

  test_ready();
  test_wait();

  if (mask_line(60) != m60 || mask_line(61) != m61)
    fail("masks changed: '%s' '%s', want '%s' '%s'", mask_line(60).c_str(), mask_line(61).c_str(), m60.c_str(), m61.c_str());
  if (fcntl(60, F_GETFL) != fl60 || fcntl(61, F_GETFL) != fl61) fail("flags changed");
  if (next(60).ssi_signo != SIGUSR1) fail("pending SIGUSR1 not read through fd 60");
  signalfd_siginfo si;
  if (read(60, &si, sizeof(si)) != -1 || errno != EAGAIN) fail("fd 60: more than the pending signal");
  union sigval v;
  v.sival_int = 77;
  sigqueue(getpid(), rt, v);
  si = next(60);
  if (static_cast<int>(si.ssi_signo) != rt || si.ssi_int != 77) fail("SIGRTMIN+3 read as %u/%d", si.ssi_signo, si.ssi_int);
  raise(SIGUSR2);
  if (next(61).ssi_signo != SIGUSR2) fail("SIGUSR2 not read through fd 61");
  if (read(60, &si, sizeof(si)) != -1 || errno != EAGAIN) fail("fd 60 saw a signal outside its mask");
  pass();
}
