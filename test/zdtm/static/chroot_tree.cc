// chroot_tree: a tree whose root is a chroot inside the dumped filesystem
// (issue 14 item 9). The process makes jail/ (with sub/ and data), opens
// jail/data (fd 176), chroots into jail, enters /sub, opens /data again
// (fd 177) and forks a child that stays in the jail. After restore both
// are still chrooted there: "/" is the jail (its /data is the same file),
// the working directories are /sub and "/", the fds read the data.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d", num);
  close(fd);
}
std::string cwd() {
  char buf[4096];
  return getcwd(buf, sizeof(buf)) ? std::string(buf) : std::string("?");
}
bool jail_ok(std::string* why) {
  struct stat a, b;
  char buf[8] = {};
  if (stat("/data", &a) || fstat(177, &b) || a.st_ino != b.st_ino) return *why = "/data is not fd 177's file", false;
  if (pread(176, buf, 6, 0) != 6 || memcmp(buf, "jailed", 6)) return *why = "fd 176 contents", false;
  if (access("/sub", F_OK)) return *why = "no /sub in the root", false;
  return true;
}
volatile sig_atomic_t g_term = 0;
void on_term(int) { g_term = 1; }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  if (mkdir("jail", 0755) || mkdir("jail/sub", 0755)) fail("mkdir: %s", strerror(errno));
  int d = open("jail/data", O_WRONLY | O_CREAT, 0644);
  if (d < 0 || write(d, "jailed", 6) != 6) fail("jail/data");
  close(d);
  place(open("jail/data", O_RDONLY), 176);
  if (chroot("jail") || chdir("/sub")) fail("chroot: %s", strerror(errno));
  place(open("/data", O_RDONLY), 177);
  int ready[2];
  if (pipe(ready)) fail("pipe");
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    if (chdir("/")) _exit(7);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    signal(SIGTERM, on_term);
    if (write(ready[1], "c", 1) != 1) _exit(5);
    close(ready[1]);
    sigdelset(&old, SIGTERM);
    for (int i = 0; i < 1000000 && !g_term; i++) sigsuspend(&old);
    std::string why;
    _exit(jail_ok(&why) && cwd() == "/" ? 0 : 1);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) fail("child did not start");
  close(ready[0]);

  test_ready();
  test_wait();

  std::string why;
  if (!jail_ok(&why)) fail("root: %s", why.c_str());
  if (cwd() != "/sub") fail("cwd %s, want /sub", cwd().c_str());
  kill(child, SIGTERM);
  int s = 0;
  if (waitpid(child, &s, 0) != child || !WIFEXITED(s) || WEXITSTATUS(s) != 0)
    fail("child in the jail failed (status %#x)", s);
  pass();
}
