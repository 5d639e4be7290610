// vfork_wait (a helper of zdtm-options, not a round trip): the process
// vforks; its child prints READY and pauses until it is killed, so the
// parent (the process under test) sits in vfork's uninterruptible wait
// (state D), where a ptrace interrupt cannot stop it. Once the child is
// gone the parent waits for SIGTERM and passes.
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "zdtm.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  pid_t c = vfork();
  if (c == 0) {
    test_ready();  // the parent is held in vfork from here on
    for (;;) syscall(SYS_pause);
  }
  if (c < 0) fail("vfork");
  int st;
  for (int i = 0; i < 100 && waitpid(c, &st, 0) < 0 && errno == EINTR; i++) {
  }
  test_wait();
  pass();
}
