// pty: pseudo-terminal pairs inside the tree.
//   Pair A: the root holds the master (fd 40). Child C calls setsid() and
//     opens the slave without O_NOCTTY: it is C's controlling terminal (fd
//     41; fd 42 is a second, O_NONBLOCK, open of the slave). C forks G into
//     its session, in its own process group, which C makes the terminal's
//     foreground group. A's termios are set to unusual values (no echo, no
//     canonical mode, no output processing, custom control characters) and
//     its window size to 33x111 (640x480 pixels).
//   Pair B: master only (fd 43), left locked (posix_openpt's default), in
//     packet mode.
//   Pair C: both ends in the root (master fd 44, slave fd 45 opened with
//     O_NOCTTY), TIOCEXCL on the slave, window size 24x80.
// After restore (the pts numbers may differ): G, blocked reading the slave
// all along, reads "check" written by the root to the master and answers
// through the slave; C checks its controlling terminal (TIOCGSID, tty_nr in
// /proc/self/stat, /dev/tty opens), the foreground group, termios and
// window size on its own fds, and answers; the root checks F_GETFL of all
// fds, each pair's state, that each slave belongs to its own master, and
// data in both directions.
//   --strict-ctty: G (not the session leader) must have the controlling
//   terminal too (needs the leader to take it before forking, see
//   criu/files/tty.cc); otherwise G only reports whether it has it.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace {

bool g_strict;
pid_t g_c, g_g;

struct termios wanted_termios(int fd) {
  struct termios t;
  if (tcgetattr(fd, &t)) fail("tcgetattr: %s", strerror(errno));
  t.c_iflag = IGNBRK | IXANY | IUTF8;
  t.c_oflag = 0;
  t.c_lflag = ISIG | IEXTEN | ECHOKE;                         // no ICANON, no ECHO
  t.c_cflag = (t.c_cflag & ~(CSIZE | PARENB)) | CS8 | CREAD;  // a pty forces CS8
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  t.c_cc[VINTR] = 7;
  t.c_cc[VQUIT] = 8;
  t.c_cc[VSUSP] = 9;
  cfsetispeed(&t, B9600);
  cfsetospeed(&t, B9600);
  return t;
}

// Empty string if fd has termios t, else what differs.
std::string diff_termios(int fd, const struct termios& want) {
  struct termios t;
  if (tcgetattr(fd, &t)) return std::string("tcgetattr: ") + strerror(errno);
  char buf[256];
  if (t.c_iflag != want.c_iflag || t.c_oflag != want.c_oflag || t.c_cflag != want.c_cflag ||
      t.c_lflag != want.c_lflag) {
    snprintf(buf, sizeof(buf), "flags i%o o%o c%o l%o, want i%o o%o c%o l%o", t.c_iflag, t.c_oflag,
             t.c_cflag, t.c_lflag, want.c_iflag, want.c_oflag, want.c_cflag, want.c_lflag);
    return buf;
  }
  for (int i = 0; i < NCCS; i++)
    if (i < 17 && t.c_cc[i] != want.c_cc[i]) {
      snprintf(buf, sizeof(buf), "c_cc[%d] %d, want %d", i, t.c_cc[i], want.c_cc[i]);
      return buf;
    }
  if (cfgetospeed(&t) != cfgetospeed(&want)) return "speed differs";
  return "";
}

std::string diff_winsize(int fd, unsigned short rows, unsigned short cols, unsigned short x,
                         unsigned short y) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws)) return std::string("TIOCGWINSZ: ") + strerror(errno);
  if (ws.ws_row != rows || ws.ws_col != cols || ws.ws_xpixel != x || ws.ws_ypixel != y) {
    char buf[128];
    snprintf(buf, sizeof(buf), "window %ux%u (%ux%u px), want %ux%u (%ux%u px)", ws.ws_row,
             ws.ws_col, ws.ws_xpixel, ws.ws_ypixel, rows, cols, x, y);
    return buf;
  }
  return "";
}

void write_all(int fd, const std::string& s) {
  if (write(fd, s.data(), s.size()) != ssize_t(s.size()))
    fail("write fd %d: %s", fd, strerror(errno));
}

// Reads from fd until `until` is seen or timeout; returns what was read.
std::string read_until(int fd, const std::string& until, int timeout_ms) {
  std::string got;
  while (got.find(until) == std::string::npos) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;  // a restored poll may return EINTR once
    if (r <= 0) break;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    got.append(buf, size_t(n));
  }
  return got;
}

// tty_nr of /proc/self/stat.
unsigned long my_tty_nr() {
  std::string s = zdtm_read_file("/proc/self/stat");
  size_t p = s.rfind(')');
  char st;
  int ppid, pgrp, sid;
  unsigned long tty = 0;
  sscanf(s.c_str() + p + 1, " %c %d %d %d %lu", &st, &ppid, &pgrp, &sid, &tty);
  return tty;
}
unsigned long encode(dev_t d) {
  return (minor(d) & 0xff) | (major(d) << 8) | ((minor(d) & ~0xffu) << 12);
}
dev_t rdev_of(int fd) {
  struct stat st;
  return fstat(fd, &st) ? 0 : st.st_rdev;
}

// In C or G: the answer line, through the slave.
void answer(const char* who, const std::string& problem) {
  std::string line = std::string(who) + (problem.empty() ? ":ok" : ":FAIL " + problem) + "\n";
  if (write(41, line.data(), line.size()) < 0) _exit(2);
}

[[noreturn]] void g_main() {
  // Blocked here across the dump.
  std::string got = read_until(41, "check\n", -1);
  std::string problem;
  if (got != "check\n") problem = "read '" + got + "' instead of check";
  bool has_ctty = my_tty_nr() == encode(rdev_of(41));
  if (!has_ctty && problem.empty()) {
    if (g_strict)
      problem = "G has no controlling terminal";
    else
      test_msg("G (not the session leader) has %s controlling terminal", "no");
  }
  answer("G", problem);
  kill(getppid(), SIGUSR1);
  // Until C's SIGTERM. Not pause(): C may send it before G gets there, and
  // test_wait checks the flag with SIGTERM blocked.
  test_wait();
  _exit(0);
}

volatile sig_atomic_t g_usr1;
void on_usr1(int) { g_usr1 = 1; }

[[noreturn]] void c_main(const char* slave) {
  if (setsid() < 0) fail("setsid: %s", strerror(errno));
  int s = open(slave, O_RDWR);  // no O_NOCTTY: our controlling terminal
  if (s < 0 || dup2(s, 41) != 41) fail("open %s: %s", slave, strerror(errno));
  close(s);
  s = open(slave, O_RDWR | O_NONBLOCK | O_NOCTTY);
  if (s < 0 || dup2(s, 42) != 42) fail("open %s again: %s", slave, strerror(errno));
  close(s);
  if (tcgetsid(41) != getpid()) fail("%s did not become C's controlling terminal", slave);
  struct termios want = wanted_termios(41);
  if (tcsetattr(41, TCSANOW, &want)) fail("tcsetattr: %s", strerror(errno));
  struct winsize ws = {33, 111, 640, 480};
  if (ioctl(41, TIOCSWINSZ, &ws)) fail("TIOCSWINSZ: %s", strerror(errno));

  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  sigdelset(&old, SIGUSR1);  // the root had it blocked when it forked us
  signal(SIGUSR1, on_usr1);
  g_g = fork();
  if (g_g < 0) fail("fork G: %s", strerror(errno));
  if (g_g == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    g_main();
  }
  setpgid(g_g, g_g);
  signal(SIGTTOU, SIG_IGN);
  if (tcsetpgrp(41, g_g)) fail("tcsetpgrp: %s", strerror(errno));
  signal(SIGTTOU, SIG_DFL);
  // Tell the root we are ready.
  kill(getppid(), SIGUSR1);
  // Wait for G's answer (after restore).
  while (!g_usr1) sigsuspend(&old);

  std::string problem;
  if (tcgetsid(41) != getpid())
    problem = std::string("fd 41 is not C's controlling terminal: ") + strerror(errno);
  else if (my_tty_nr() != encode(rdev_of(41)))
    problem = "tty_nr in /proc/self/stat is not the slave";
  else if (tcgetpgrp(41) != g_g)
    problem = "foreground group " + std::to_string(tcgetpgrp(41)) + ", want " + std::to_string(g_g);
  if (problem.empty()) {
    int t = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (t < 0)
      problem = std::string("open /dev/tty: ") + strerror(errno);
    else if (tcgetsid(t) != getpid())
      problem = "/dev/tty is not our session's terminal";
    if (t >= 0) close(t);
  }
  if (problem.empty()) problem = diff_termios(42, want);
  if (problem.empty()) problem = diff_winsize(42, 33, 111, 640, 480);
  if (problem.empty() && rdev_of(41) != rdev_of(42)) problem = "fds 41 and 42 differ";
  if (problem.empty() && !(fcntl(42, F_GETFL) & O_NONBLOCK)) problem = "fd 42 lost O_NONBLOCK";
  if (problem.empty() && (fcntl(41, F_GETFL) & O_NONBLOCK)) problem = "fd 41 is O_NONBLOCK";
  answer("C", problem);
  kill(g_g, SIGTERM);
  int st;
  waitpid(g_g, &st, 0);
  _exit(problem.empty() && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
}

void check_peer(int master, int slave, const char* what) {
  int p = ioctl(master, TIOCGPTPEER, O_PATH | O_CLOEXEC);
  if (p < 0) fail("%s: TIOCGPTPEER: %s", what, strerror(errno));
  struct stat a, b;
  fstat(p, &a);
  close(p);
  if (slave >= 0) {
    fstat(slave, &b);
    if (a.st_rdev != b.st_rdev || a.st_dev != b.st_dev)
      fail("%s: the slave fd %d is not its master's slave", what, slave);
  }
  unsigned n = 0;
  if (ioctl(master, TIOCGPTN, &n)) fail("%s: TIOCGPTN: %s", what, strerror(errno));
  if (minor(a.st_rdev) + (major(a.st_rdev) - 136) * 256 != n)
    fail("%s: TIOCGPTN %u does not match its slave", what, n);
}

int getfl[64];
const int kFds[] = {40, 43, 44, 45};

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--strict-ctty")) g_strict = true;

  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || grantpt(m) || unlockpt(m)) fail("pair A: %s", strerror(errno));
  if (dup2(m, 40) != 40) fail("dup2 40");
  close(m);
  std::string slave_a = ptsname(40);

  m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (m < 0 || dup2(m, 43) != 43) fail("pair B: %s", strerror(errno));
  close(m);
  int one = 1;
  if (ioctl(43, TIOCPKT, &one)) fail("TIOCPKT: %s", strerror(errno));

  m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0 || unlockpt(m) || dup2(m, 44) != 44) fail("pair C: %s", strerror(errno));
  close(m);
  int s = open(ptsname(44), O_RDWR | O_NOCTTY);
  if (s < 0 || dup2(s, 45) != 45) fail("pair C slave: %s", strerror(errno));
  close(s);
  struct termios tc;
  tcgetattr(45, &tc);
  cfmakeraw(&tc);
  tcsetattr(45, TCSANOW, &tc);
  struct winsize ws = {24, 80, 0, 0};
  ioctl(44, TIOCSWINSZ, &ws);
  if (ioctl(45, TIOCEXCL)) fail("TIOCEXCL: %s", strerror(errno));

  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  signal(SIGUSR1, on_usr1);
  g_c = fork();
  if (g_c < 0) fail("fork: %s", strerror(errno));
  if (g_c == 0) c_main(slave_a.c_str());
  while (!g_usr1) sigsuspend(&old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  struct termios want_a = wanted_termios(40);
  for (int fd : kFds) getfl[fd] = fcntl(fd, F_GETFL);
  usleep(100 * 1000);  // let G block in read

  test_ready();
  test_wait();

  for (int fd : kFds)
    if (fcntl(fd, F_GETFL) != getfl[fd])
      fail("fd %d: F_GETFL %#o, want %#o", fd, fcntl(fd, F_GETFL), getfl[fd]);
  // Pair A: state seen from the master.
  std::string d = diff_termios(40, want_a);
  if (!d.empty()) fail("pair A termios: %s", d.c_str());
  d = diff_winsize(40, 33, 111, 640, 480);
  if (!d.empty()) fail("pair A: %s", d.c_str());
  int locked = -1;
  if (ioctl(40, TIOCGPTLCK, &locked) || locked != 0) fail("pair A is locked (%d)", locked);
  check_peer(40, -1, "pair A");
  // Pair B: still locked, packet mode, no slave can be opened.
  if (ioctl(43, TIOCGPTLCK, &locked) || locked != 1) fail("pair B is not locked (%d)", locked);
  int pkt = -1;
  if (ioctl(43, TIOCGPKT, &pkt) || pkt != 1) fail("pair B lost packet mode (%d)", pkt);
  int sb = ioctl(43, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (sb >= 0 || errno != EIO) fail("pair B: its slave could be opened while locked");
  check_peer(43, -1, "pair B");
  // Pair C: the slave fd is the master's own, exclusive, raw; data flows.
  check_peer(44, 45, "pair C");
  int excl = -1;
  if (ioctl(45, TIOCGEXCL, &excl) || excl != 1) fail("pair C slave lost TIOCEXCL (%d)", excl);
  d = diff_winsize(45, 24, 80, 0, 0);
  if (!d.empty()) fail("pair C: %s", d.c_str());
  write_all(44, "to slave");
  if (read_until(45, "to slave", 5000) != "to slave") fail("pair C: master -> slave");
  write_all(45, "to master");
  if (read_until(44, "to master", 5000) != "to master") fail("pair C: slave -> master");
  // Pair A: the session on the other side.
  write_all(40, "check\n");
  std::string got = read_until(40, "C:", 10000);
  got += read_until(40, "\n", 5000);
  if (got.find("G:ok\n") == std::string::npos) fail("G answered '%s'", got.c_str());
  if (got.find("C:ok\n") == std::string::npos) fail("C answered '%s'", got.c_str());
  int st;
  if (waitpid(g_c, &st, 0) != g_c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("C ended with status %#x", st);
  pass();
}
