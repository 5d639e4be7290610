// files_shared: processes sharing one fd table (clone with CLONE_FILES and
// without CLONE_VM; issue 14 item 8). The root R clones C with
// CLONE_FILES, C clones G with CLONE_FILES: one table for the three. K, a
// plain fork of R, has its own. Each child serves requests on its own pipe
// pair (open a file, close an fd, F_GETFD of a number, take a POSIX lock).
// Before the dump: R holds r.dat at fd 50 (close-on-exec, offset 2), C
// opened c.dat, C holds a POSIX write lock on lock.dat.
// After restore, from inside:
//   - kcmp(KCMP_FILES): R, C and G share one table, K does not;
//   - the table holds exactly the fds it held (nothing of ckpt's left),
//     fd 50 with its flag and offset, C's c.dat;
//   - an fd C opens now is open in R; one R opens is open in G, not in K;
//     C's close of an fd closes it for R and G, R's close for G;
//   - C's POSIX lock is held: a new process's F_GETLK names C.
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "zdtm.h"

namespace {

struct Req {
  char op;  // 'o' open file arg (c%d.dat), 'c' close, 'v' F_GETFD, 'l' POSIX lock, 'p' getpid
  int arg;
};

struct Pipes {
  int cmd[2];
  int ans[2];
};
Pipes g_c, g_g, g_k;

// Answers requests until the request pipe ends.
void serve(const Pipes& p) {
  Req r;
  while (read(p.cmd[0], &r, sizeof(r)) == ssize_t(sizeof(r))) {
    int ans = 0;
    if (r.op == 'o') {
      std::string name = "c" + std::to_string(r.arg) + ".dat";
      ans = open(name.c_str(), O_RDWR | O_CREAT, 0600);
    } else if (r.op == 'c') {
      ans = close(r.arg);
    } else if (r.op == 'v') {
      ans = fcntl(r.arg, F_GETFD);
    } else if (r.op == 'l') {
      struct flock l = {};
      l.l_type = F_WRLCK;
      l.l_whence = SEEK_SET;
      ans = fcntl(r.arg, F_SETLK, &l);
    } else if (r.op == 'p') {
      ans = getpid();
    }
    if (ans < 0) ans = -errno;
    if (write(p.ans[1], &ans, sizeof(ans)) != ssize_t(sizeof(ans))) break;
  }
}

int ask(const Pipes& p, char op, int arg, const char* who) {
  Req r = {op, arg};
  int ans;
  if (write(p.cmd[1], &r, sizeof(r)) != ssize_t(sizeof(r)) ||
      read(p.ans[0], &ans, sizeof(ans)) != ssize_t(sizeof(ans)))
    fail("%s does not answer request '%c'", who, op);
  return ans;
}

char g_stack_c[64 * 1024] __attribute__((aligned(16)));
char g_stack_g[64 * 1024] __attribute__((aligned(16)));

int g_main(void*) {
  serve(g_g);
  _exit(0);
}

int c_main(void*) {
  pid_t g = clone(g_main, g_stack_g + sizeof(g_stack_g), CLONE_FILES | SIGCHLD, nullptr);
  if (g < 0) _exit(3);
  serve(g_c);
  int st = 0;
  if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(4);
  _exit(0);
}

std::set<int> open_fds() {
  std::set<int> out;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) out.insert(fd);
  return out;
}

std::string describe(const std::set<int>& s) {
  std::string r;
  for (int fd : s) r += " " + std::to_string(fd);
  return r;
}

bool same_table(pid_t a, pid_t b) { return syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0) == 0; }

// The pid a new process (its own table) sees holding a lock on lock.dat; 0: none.
pid_t lock_holder() {
  int p[2];
  if (pipe(p)) fail("pipe");
  pid_t f = fork();
  if (f < 0) fail("fork");
  if (f == 0) {
    int fd = open("lock.dat", O_RDWR);
    struct flock l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    pid_t holder = -1;
    if (fd >= 0 && fcntl(fd, F_GETLK, &l) == 0) holder = l.l_type == F_UNLCK ? 0 : l.l_pid;
    (void)!write(p[1], &holder, sizeof(holder));
    _exit(0);
  }
  close(p[1]);
  pid_t holder = -1;
  if (read(p[0], &holder, sizeof(holder)) != ssize_t(sizeof(holder))) fail("lock checker");
  close(p[0]);
  int st;
  waitpid(f, &st, 0);
  return holder;
}

void make_pipes(Pipes& p) {
  if (pipe2(p.cmd, O_CLOEXEC) || pipe2(p.ans, O_CLOEXEC)) fail("pipe: %s", strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  make_pipes(g_k);
  pid_t k = fork();
  if (k < 0) fail("fork");
  if (k == 0) {
    close(g_k.cmd[1]);
    close(g_k.ans[0]);
    serve(g_k);
    _exit(0);
  }
  close(g_k.cmd[0]);
  close(g_k.ans[1]);
  make_pipes(g_c);
  make_pipes(g_g);
  pid_t c = clone(c_main, g_stack_c + sizeof(g_stack_c), CLONE_FILES | SIGCHLD, nullptr);
  if (c < 0) fail("clone CLONE_FILES: %s", strerror(errno));
  if (ask(g_c, 'p', 0, "C") != c) fail("C's pid");
  pid_t g = ask(g_g, 'p', 0, "G");
  if (!same_table(getpid(), c) || !same_table(c, g) || same_table(getpid(), k))
    fail("the tables are not as designed before the dump");

  int r = open("r.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (r < 0 || write(r, "hello", 5) != 5 || dup2(r, 50) != 50 || close(r)) fail("r.dat");
  if (fcntl(50, F_SETFD, FD_CLOEXEC) || lseek(50, 2, SEEK_SET) != 2) fail("fd 50");
  int c1 = ask(g_c, 'o', 1, "C");
  if (c1 < 0 || fcntl(c1, F_GETFD) < 0) fail("the fd C opened is not ours before the dump");
  int lk = open("lock.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (lk < 0 || write(lk, "lock", 4) != 4) fail("lock.dat");
  if (ask(g_c, 'l', lk, "C") != 0) fail("C's lock");
  if (lock_holder() != c) fail("C's lock is not seen before the dump");
  std::set<int> before = open_fds();
  test_msg("R=%d C=%d G=%d K=%d fds:%s", getpid(), c, g, k, describe(before).c_str());

  test_ready();
  test_wait();

  if (!same_table(getpid(), c)) fail("C no longer shares R's fd table");
  if (!same_table(c, g)) fail("G no longer shares C's fd table");
  if (same_table(getpid(), k)) fail("K shares R's fd table");
  std::set<int> after = open_fds();
  if (after != before)
    fail("the table holds fds%s, not%s", describe(after).c_str(), describe(before).c_str());
  int fl = fcntl(50, F_GETFD);
  char buf[8] = {};
  if (fl < 0 || !(fl & FD_CLOEXEC)) fail("fd 50 lost FD_CLOEXEC");
  if (lseek(50, 0, SEEK_CUR) != 2 || read(50, buf, 3) != 3 || strcmp(buf, "llo") != 0)
    fail("fd 50: offset or contents");
  if (ask(g_g, 'v', c1, "G") < 0) fail("the fd C opened before the dump is not in G's table");
  pid_t holder = lock_holder();
  if (holder != c) fail("lock.dat: held by %d, not by C (%d)", holder, c);

  int c2 = ask(g_c, 'o', 2, "C");
  if (c2 < 0) fail("C cannot open: %s", strerror(-c2));
  struct stat a, b;
  if (fcntl(c2, F_GETFD) < 0 || fstat(c2, &a) || stat("c2.dat", &b) || a.st_ino != b.st_ino)
    fail("fd %d C opened after restore is not c2.dat in R's table", c2);
  int m = open("m.dat", O_RDWR | O_CREAT, 0600);
  if (m < 0 || dup2(m, 70) != 70 || close(m)) fail("m.dat");
  if (ask(g_g, 'v', 70, "G") < 0) fail("fd 70 R opened is not in G's table");
  if (ask(g_k, 'v', 70, "K") != -EBADF) fail("fd 70 R opened is in K's table");
  if (ask(g_c, 'c', c2, "C") != 0) fail("C cannot close fd %d", c2);
  if (fcntl(c2, F_GETFD) >= 0 || errno != EBADF)
    fail("C's close of fd %d did not close it for R", c2);
  if (ask(g_g, 'v', c2, "G") != -EBADF) fail("C's close of fd %d did not close it for G", c2);
  close(70);
  if (ask(g_g, 'v', 70, "G") != -EBADF) fail("R's close of fd 70 did not close it for G");
  if (ask(g_c, 'v', 70, "C") != -EBADF) fail("R's close of fd 70 did not close it for C");

  close(g_c.cmd[1]);  // the one table: C and G see the end of their requests
  close(g_g.cmd[1]);
  close(g_k.cmd[1]);
  int st = 0;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("C ended with status %#x", st);
  if (waitpid(k, &st, 0) != k || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("K ended with status %#x", st);
  pass();
}
