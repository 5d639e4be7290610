// pipe_flags: the status flags of each open file of a pipe or FIFO end
// (F_GETFL: O_NONBLOCK, O_APPEND, O_DIRECT) are its own, whatever the
// other end or another open file of the same end has.
//
// Root R and child C (forked after every pipe was made):
//   pipe A  read end O_NONBLOCK (R, fd 30), write end blocking (C, fd 31)
//   pipe B  read end blocking (C, fd 32), write end O_NONBLOCK|O_APPEND (R, 33)
//   pipe D  both ends in R: read blocking (34), write O_NONBLOCK (35); a
//           second open file of the read end through /proc/self/fd, made
//           O_NONBLOCK (36), and a dup of fd 34 (37, shares 34's flags)
//   pipe E  both ends in R: read O_NONBLOCK (38), write blocking (39)
//   FIFO    three open files: O_RDONLY|O_NONBLOCK (40), O_RDONLY (41, R
//           and C: inherited, one open file), O_WRONLY|O_NONBLOCK (42)
// After restore each process compares F_GETFL of every fd with what it had;
// the root checks that its empty O_NONBLOCK read ends say EAGAIN, that
// changing one open file's flags changes its dup's and no other open
// file's, and that data still flows both ways between root and child.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "zdtm.h"

namespace {

const char* g_who = "R";

void place(int fd, int num) {
  if (fd < 0) fail("[%s] open: %s", g_who, strerror(errno));
  if (fd == num) return;
  if (dup2(fd, num) != num) fail("[%s] dup2 %d: %s", g_who, num, strerror(errno));
  close(fd);
}
void make_pipe(int r, int w) {
  int p[2];
  if (pipe(p)) fail("pipe: %s", strerror(errno));
  place(p[0], r);
  place(p[1], w);
}
void set_fl(int fd, int fl) {
  if (fcntl(fd, F_SETFL, fl)) fail("[%s] F_SETFL fd %d: %s", g_who, fd, strerror(errno));
}

struct Want {
  int fd;
  int fl;  // F_GETFL at setup
};

// Whether F_GETFL of each fd is what it was (each difference printed).
bool check(const Want* w, int n) {
  bool ok = true;
  for (int i = 0; i < n; i++) {
    int fl = fcntl(w[i].fd, F_GETFL);
    if (fl != w[i].fl) {
      printf("FAIL: [%s pid %d] fd %d: F_GETFL %#o, want %#o\n", g_who, getpid(), w[i].fd, fl, w[i].fl);
      ok = false;
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  setvbuf(stdout, nullptr, _IONBF, 0);
  if (mkfifo("fifo", 0600)) fail("mkfifo: %s", strerror(errno));
  make_pipe(30, 31);
  make_pipe(32, 33);
  make_pipe(34, 35);
  make_pipe(38, 39);
  set_fl(30, O_NONBLOCK);
  set_fl(33, O_NONBLOCK | O_APPEND);
  set_fl(35, O_NONBLOCK);
  place(open("/proc/self/fd/34", O_RDONLY | O_NONBLOCK), 36);
  if (dup2(34, 37) != 37) fail("dup2 37");
  set_fl(38, O_NONBLOCK);
  place(open("fifo", O_RDONLY | O_NONBLOCK), 40);
  place(open("fifo", O_RDONLY | O_NONBLOCK), 41);
  set_fl(41, 0);  // blocking from now on
  place(open("fifo", O_WRONLY | O_NONBLOCK), 42);

  int sync_p[2];  // C -> R: "set up"; R waits for C's exit after SIGTERM
  if (pipe2(sync_p, O_CLOEXEC)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    g_who = "C";
    close(30), close(33), close(34), close(35), close(36), close(37), close(38), close(39);
    close(40), close(42), close(sync_p[0]);
    const Want want[] = {{31, fcntl(31, F_GETFL)}, {32, fcntl(32, F_GETFL)}, {41, fcntl(41, F_GETFL)}};
    if (want[0].fl & O_NONBLOCK || want[1].fl & O_NONBLOCK || want[2].fl & O_NONBLOCK)
      fail("[C] flags before the dump are not what was set");
    if (write(sync_p[1], "x", 1) != 1) fail("[C] write sync");
    close(sync_p[1]);
    test_wait();
    bool ok = check(want, 3);
    // The write end of A is blocking, and A's reader (R) still holds it:
    // poll says writable; B's read end is blocking but has data from R
    // (written after restore) and a write by us to A reaches R.
    if (write(31, "a", 1) != 1) ok = false, printf("FAIL: [C] write to pipe A: %s\n", strerror(errno));
    char ch;
    if (read(32, &ch, 1) != 1 || ch != 'b') ok = false, printf("FAIL: [C] read from pipe B\n");
    _exit(ok ? 0 : 1);
  }
  close(31), close(32), close(41), close(sync_p[1]);
  char ch;
  if (read(sync_p[0], &ch, 1) != 1) fail("child did not set up");
  close(sync_p[0]);
  const Want want[] = {{30, fcntl(30, F_GETFL)}, {33, fcntl(33, F_GETFL)}, {34, fcntl(34, F_GETFL)},
                       {35, fcntl(35, F_GETFL)}, {36, fcntl(36, F_GETFL)}, {37, fcntl(37, F_GETFL)},
                       {38, fcntl(38, F_GETFL)}, {39, fcntl(39, F_GETFL)}, {40, fcntl(40, F_GETFL)},
                       {42, fcntl(42, F_GETFL)}};
  const int n = sizeof(want) / sizeof(want[0]);
  // As set up (plain mode proves the test's own premise).
  const int expect_nb[] = {1, 1, 0, 1, 1, 0, 1, 0, 1, 1};
  for (int i = 0; i < n; i++)
    if (!!(want[i].fl & O_NONBLOCK) != expect_nb[i]) fail("fd %d: setup gave F_GETFL %#o", want[i].fd, want[i].fl);
  if (!(want[1].fl & O_APPEND)) fail("fd 33: O_APPEND did not stick (F_GETFL %#o)", want[1].fl);
  test_msg("child %d; flags set", c);

  test_ready();
  test_wait();
  if (kill(c, SIGTERM)) fail("kill child %d: %s", c, strerror(errno));

  bool ok = check(want, n);
  // The flags act: empty non-blocking read ends say EAGAIN.
  for (int fd : {34, 36, 38, 40}) {
    int fl = fcntl(fd, F_GETFL);
    if (!(fl & O_NONBLOCK)) continue;  // reported above
    if (read(fd, &ch, 1) != -1 || errno != EAGAIN) ok = false, printf("FAIL: fd %d: read did not say EAGAIN\n", fd);
  }
  // fd 36 and fd 34 are two open files of one end: 34's flags are its own
  // (37 is a dup of 34 and follows it; 36 does not).
  set_fl(37, O_NONBLOCK);
  if (!(fcntl(34, F_GETFL) & O_NONBLOCK)) ok = false, printf("FAIL: fd 37 is no longer a dup of fd 34\n");
  set_fl(36, 0);
  if (!(fcntl(34, F_GETFL) & O_NONBLOCK)) ok = false, printf("FAIL: fd 36 shares its open file with fd 34\n");
  // Data still flows between R and C.
  if (write(33, "b", 1) != 1) ok = false, printf("FAIL: write to pipe B: %s\n", strerror(errno));
  int st = 0;
  if (waitpid(c, &st, 0) != c) fail("waitpid: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false, printf("FAIL: child ended with status %#x\n", st);
  pollfd p = {30, POLLIN, 0};
  if (poll(&p, 1, 0) != 1 || read(30, &ch, 1) != 1 || ch != 'a') ok = false, printf("FAIL: pipe A lost C's byte\n");
  if (!ok) fail("pipe flags differ (see above)");
  pass();
}
