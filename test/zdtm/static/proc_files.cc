// proc_files: files of /proc of other tasks of the tree, and a memfd that
// is executed (issue 14 item 10).
//   root  fd 170 /proc/CHILD/stat, fd 171 /proc/CHILD/status read past its
//         first line (offset kept), fd 172 /proc/self/cmdline (the link
//         names /proc/ROOT/cmdline), fd 175 a memfd holding a copy of this
//         program, open O_RDONLY only (its writable fd closed)
//   child fd 173 /proc/ROOT/status
// After restore: each names the same task (contents read through the fd)
// at the same offset; the child checks its own and exits 0 when told; the
// root runs `<memfd> --memfd-child` with execveat(AT_EMPTY_PATH), which
// must work (no open file of the memfd is writable) and exit 42.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("open for fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d", num);
  close(fd);
}
std::string pread_all(int fd) {
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, n) : std::string();
}
std::string fd_link(int fd) {
  char buf[256];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
volatile sig_atomic_t g_term = 0;
void on_term(int) { g_term = 1; }
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "--memfd-child")) return 42;
  test_init(argc, argv);
  pid_t root = getpid();
  int ready[2];
  if (pipe(ready)) fail("pipe");
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    place(open(("/proc/" + std::to_string(root) + "/status").c_str(), O_RDONLY), 173);
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    signal(SIGTERM, on_term);
    if (write(ready[1], "c", 1) != 1) _exit(5);
    close(ready[1]);
    sigdelset(&old, SIGTERM);
    for (int i = 0; i < 1000000 && !g_term; i++) sigsuspend(&old);
    std::string s = pread_all(173);
    std::string want = "\nPid:\t" + std::to_string(root) + "\n";
    _exit(s.rfind("Name:", 0) == 0 && s.find(want) != std::string::npos ? 0 : 1);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) fail("child did not start");
  close(ready[0]);
  std::string cdir = "/proc/" + std::to_string(child) + "/";
  place(open((cdir + "stat").c_str(), O_RDONLY), 170);
  place(open((cdir + "status").c_str(), O_RDONLY), 171);
  char line[64];
  if (read(171, line, 20) != 20) fail("read status");
  off_t pos171 = lseek(171, 0, SEEK_CUR);
  place(open("/proc/self/cmdline", O_RDONLY), 172);
  std::string l172 = fd_link(172);

  // A memfd with a copy of this program, then only a read-only file of it.
  int mfd = int(syscall(SYS_memfd_create, "prog", 0));
  int self = open("/proc/self/exe", O_RDONLY);
  if (mfd < 0 || self < 0) fail("memfd/exe: %s", strerror(errno));
  char buf[65536];
  for (ssize_t n; (n = read(self, buf, sizeof(buf))) > 0;)
    if (write(mfd, buf, n) != n) fail("copy");
  close(self);
  place(open(("/proc/self/fd/" + std::to_string(mfd)).c_str(), O_RDONLY), 175);
  close(mfd);

  test_ready();
  test_wait();

  std::string st = pread_all(170);
  if (st.rfind(std::to_string(child) + " (", 0) != 0) fail("fd 170 reads '%.40s', want the child %d's stat", st.c_str(), child);
  if (pread_all(171).find("\nPid:\t" + std::to_string(child) + "\n") == std::string::npos) fail("fd 171 is not the child's status");
  if (lseek(171, 0, SEEK_CUR) != pos171) fail("fd 171 offset %ld, want %ld", (long)lseek(171, 0, SEEK_CUR), (long)pos171);
  if (fd_link(172) != l172) fail("fd 172 names %s, want %s", fd_link(172).c_str(), l172.c_str());
  if (pread_all(172).find("proc_files") == std::string::npos) fail("fd 172 is not our cmdline");

  pid_t e = fork();
  if (e == 0) {
    char* args[] = {const_cast<char*>("proc_files"), const_cast<char*>("--memfd-child"), nullptr};
    char* env[] = {nullptr};
    syscall(SYS_execveat, 175, "", args, env, AT_EMPTY_PATH);
    _exit(errno == ETXTBSY ? 3 : 4);
  }
  int s = 0;
  if (e < 0 || waitpid(e, &s, 0) != e) fail("fork/wait exec child");
  if (!WIFEXITED(s) || WEXITSTATUS(s) != 42)
    fail("execveat of the memfd: %s", WEXITSTATUS(s) == 3 ? "ETXTBSY (held open for writing)" : "failed");

  kill(child, SIGTERM);
  if (waitpid(child, &s, 0) != child || !WIFEXITED(s) || WEXITSTATUS(s) != 0)
    fail("child: fd 173 is not the root's status (status %#x)", s);
  pass();
}
