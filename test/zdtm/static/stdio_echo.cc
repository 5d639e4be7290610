// stdio_echo: the victim of stdio_ext_run (container stdio: pipes or a
// pty whose other ends its driver holds, outside the dumped tree).
//
//   stdio_echo pipe|pty
//
// (pty also for a terminal passed in by --external tty and --inherit-fd.)
// Talks only through fds 0 and 1 (stderr goes to a file): prints "READY"
// on fd 1; on each SIGUSR1 reads one line from fd 0 and writes
// "echo:LINE\n" to fd 1; on SIGTERM checks that fds 0 and 1 are still
// what they were (pipes with their access modes; or the same terminal, its
// controlling terminal, with the termios set at start: no ECHO, no ONLCR)
// and prints "PASS" or "FAIL: reason" on fd 1, exiting 0 or 1 (after
// "stderr:bye" on fd 2 when that is not a terminal). Reads and
// writes happen in the main loop, not in handlers (only flags there).
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t g_usr1 = 0, g_term = 0;

void OnUsr1(int) { g_usr1 = g_usr1 + 1; }
void OnTerm(int) { g_term = 1; }

void Say(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(1, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);
    off += size_t(n);
  }
}

// One line from fd 0, byte by byte (no buffer that could hold the next).
std::string ReadLine() {
  std::string line;
  for (;;) {
    char c;
    ssize_t n = read(0, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return line + "<eof>";
    if (c == '\n') return line;
    line += c;
  }
}

[[noreturn]] void Finish(const std::string& why) {
  Say(why.empty() ? "PASS\n" : "FAIL: " + why + "\n");
  _exit(why.empty() ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
  bool pty = argc > 1 && !strcmp(argv[1], "pty");
  struct sigaction sa = {};
  sa.sa_handler = OnUsr1;
  sigaction(SIGUSR1, &sa, nullptr);
  sa.sa_handler = OnTerm;
  sigaction(SIGTERM, &sa, nullptr);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &old);

  struct stat st0, st1;
  if (fstat(0, &st0) < 0 || fstat(1, &st1) < 0) Finish("fstat stdio");
  if (pty) {
    struct termios t;
    if (tcgetattr(0, &t) < 0) Finish("tcgetattr at start");
    t.c_lflag &= ~tcflag_t(ECHO);
    t.c_oflag &= ~tcflag_t(ONLCR);
    if (tcsetattr(0, TCSANOW, &t) < 0) Finish("tcsetattr at start");
  }
  Say("READY\n");
  unsigned done = 0;
  for (;;) {
    while (!g_term && g_usr1 == sig_atomic_t(done)) sigsuspend(&old);
    if (g_term) break;
    done++;
    Say("echo:" + ReadLine() + "\n");
  }

  // What the restored process must still have.
  struct stat now0, now1;
  if (fstat(0, &now0) < 0 || fstat(1, &now1) < 0) Finish("fstat stdio after");
  if (!pty) {
    if (!S_ISFIFO(now0.st_mode) || !S_ISFIFO(now1.st_mode)) Finish("stdin/stdout are not pipes");
    if ((fcntl(0, F_GETFL) & O_ACCMODE) != O_RDONLY) Finish("stdin is not a read end");
    if ((fcntl(1, F_GETFL) & O_ACCMODE) != O_WRONLY) Finish("stdout is not a write end");
    const char bye[] = "stderr:bye\n";  // whatever file fd 2 is now
    if (write(2, bye, sizeof(bye) - 1) != ssize_t(sizeof(bye) - 1)) Finish("write to stderr");
    Finish("");
  }
  if (!isatty(0) || !isatty(1)) Finish("stdin/stdout are not terminals");
  if (!isatty(2)) {  // a file given for stderr (tty-ext)
    const char bye[] = "stderr:bye\n";
    if (write(2, bye, sizeof(bye) - 1) != ssize_t(sizeof(bye) - 1)) Finish("write to stderr");
  }
  if (now0.st_rdev != now1.st_rdev) Finish("stdin and stdout are different terminals");
  if (tcgetsid(0) != getpid()) Finish("the terminal is not the controlling terminal of my session");
  struct termios t;
  if (tcgetattr(0, &t) < 0) Finish("tcgetattr after");
  if (t.c_lflag & ECHO) Finish("ECHO is back on");
  if (t.c_oflag & ONLCR) Finish("ONLCR is back on");
  Finish("");
}
