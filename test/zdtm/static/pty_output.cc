// pty_output: output a program wrote to a pty slave that the master's
// holder had not read yet (Open MPI's ranks write their stdout to ptys
// mpirun reads). The process holds both ends (master fd 50, slave fd 51);
// the slave has OPOST|ONLCR (the master sees "\r\n") and writes 30 lines
// of patterned text, about 1.5 KiB, that nobody reads before the dump.
// After restore the master reads exactly those bytes, conversions
// included, nothing lost or repeated, then a line written after the
// restore, in that order; the slave's termios are as they were (the dump
// turns OPOST off for a moment). In leave-running mode the original reads
// the same after the dump: the dump left the queue as it was.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr int kMaster = 50, kSlave = 51, kLines = 30;

std::string read_all(int fd, size_t want) {
  std::string out;
  char buf[4096];
  while (out.size() < want) {
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1) break;
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0) break;
    out.append(buf, size_t(r));
  }
  return out;
}

std::string printable(const std::string& s) {
  std::string o;
  for (char c : s)
    o += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
  return o.size() > 120 ? o.substr(0, 120) + "..." : o;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) fail("posix_openpt: %s", strerror(errno));
  if (dup2(m, kMaster) != kMaster) fail("dup2");
  close(m);
  int s = open(ptsname(kMaster), O_RDWR | O_NOCTTY);
  if (s < 0 || dup2(s, kSlave) != kSlave) fail("open slave: %s", strerror(errno));
  close(s);
  struct termios t;
  if (tcgetattr(kSlave, &t)) fail("tcgetattr");
  t.c_oflag |= OPOST | ONLCR;
  t.c_lflag &= ~ECHO;
  if (tcsetattr(kSlave, TCSANOW, &t)) fail("tcsetattr");
  std::string want;
  for (int i = 0; i < kLines; i++) {
    char line[80];
    snprintf(line, sizeof(line), "line %02d %016llx %016llx\n", i,
             (unsigned long long)zdtm_mix(seed, 2 * i),
             (unsigned long long)zdtm_mix(seed, 2 * i + 1));
    if (write(kSlave, line, strlen(line)) != ssize_t(strlen(line))) fail("write slave");
    std::string l(line);
    want += l.substr(0, l.size() - 1) + "\r\n";
  }
  int queued = 0;
  for (int i = 0; i < 100 && queued < int(want.size()); i++) {
    ioctl(kMaster, FIONREAD, &queued);
    usleep(10000);
  }
  if (queued != int(want.size())) fail("setup: %d bytes queued, want %zu", queued, want.size());

  test_ready();
  test_wait();

  struct termios now;
  if (tcgetattr(kSlave, &now)) fail("tcgetattr after restore");
  if (now.c_oflag != t.c_oflag || now.c_lflag != t.c_lflag)
    fail("termios: oflag %#x lflag %#x, want %#x %#x", now.c_oflag, now.c_lflag, t.c_oflag,
         t.c_lflag);
  const char* after = "after\n";
  if (write(kSlave, after, strlen(after)) != ssize_t(strlen(after))) fail("write after restore");
  want += "after\r\n";
  std::string got = read_all(kMaster, want.size());
  if (got != want)
    fail("the master read %zu bytes \"%s\", want %zu \"%s\"", got.size(), printable(got).c_str(),
         want.size(), printable(want).c_str());
  pollfd p = {kMaster, POLLIN, 0};
  if (poll(&p, 1, 100) != 0) fail("more than was written is queued");
  pass();
}
