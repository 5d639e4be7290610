// seccomp_strict: a child in seccomp strict mode (read, write, exit and
// sigreturn only) that serves requests over two pipes: for each u64 v it
// answers 3v+1; v == 1 makes it call getpid, which strict mode punishes
// with SIGKILL. The parent checks an answer and the child's /proc status
// (Seccomp 1) before READY and after SIGTERM, then sends 1 and needs the
// child killed by SIGKILL: strict mode survived the round trip (the dump's
// parasite ran in it, and the restorer entered it again).
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

[[noreturn]] void strict_child(int req, int resp) {
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT)) _exit(3);
  for (;;) {
    uint64_t v;
    long n = syscall(SYS_read, req, &v, sizeof(v));
    if (n == -1 && errno == EINTR) continue;
    if (n != long(sizeof(v))) syscall(SYS_exit, 4);
    if (v == 1) syscall(SYS_getpid);  // forbidden: SIGKILL
    uint64_t a = 3 * v + 1;
    if (syscall(SYS_write, resp, &a, sizeof(a)) != long(sizeof(a))) syscall(SYS_exit, 5);
  }
}

void ask(int req, int resp, uint64_t v) {
  if (write(req, &v, sizeof(v)) != long(sizeof(v))) fail("write request: %s", strerror(errno));
  uint64_t a = 0;
  ssize_t n;
  while ((n = read(resp, &a, sizeof(a))) < 0 && errno == EINTR) {
  }
  if (n != long(sizeof(a))) fail("no answer from the strict child to %lu", (unsigned long)v);
  if (a != 3 * v + 1) fail("strict child answered %lu to %lu", (unsigned long)a, (unsigned long)v);
}

void expect_strict(pid_t c) {
  std::string path = "/proc/" + std::to_string(c) + "/status";
  std::string text = zdtm_read_file(path.c_str());
  if (text.find("\nSeccomp:\t1\n") == std::string::npos)
    fail("child is not in strict mode:\n%s", text.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  int req[2], resp[2];
  if (pipe(req) || pipe(resp)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    close(req[1]);
    close(resp[0]);
    strict_child(req[0], resp[1]);
  }
  close(req[0]);
  close(resp[1]);
  uint64_t seed = zdtm_seed() % 1000000 + 2;
  ask(req[1], resp[0], seed);
  expect_strict(c);
  test_ready();
  test_wait();
  ask(req[1], resp[0], seed + 1);
  expect_strict(c);
  uint64_t one = 1;
  if (write(req[1], &one, sizeof(one)) != long(sizeof(one))) fail("write: %s", strerror(errno));
  int st;
  if (waitpid(c, &st, 0) != c) fail("waitpid: %s", strerror(errno));
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
    fail("strict child called getpid and ended with status %#x, want SIGKILL", st);
  pass();
}
