// ns_unsupported: a helper for zdtm-errors, not a round-trip test. A tree
// whose namespaces ckpt refuses, which must keep running untouched:
//   --nested-uts   a child in a uts namespace of its own (the root's is
//                  ckpt's): "pid N is in another uts namespace than the
//                  tree's root"
//   --pending-pid  the root unshare(CLONE_NEWPID)s without a child in the
//                  new namespace yet
//   --outside-file the tree pivot_roots into a tmpfs of a mount namespace of
//                  its own, keeping its stdout, a file of a mount it no
//                  longer has
// On SIGTERM it checks the child still answers through its pipe and its
// hostname is still its own.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool nested_uts = argc > 1 && !strcmp(argv[1], "--nested-uts");
  bool outside_file = argc > 1 && !strcmp(argv[1], "--outside-file");
  if (outside_file) {
    if (unshare(CLONE_NEWNS) || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
        mkdir("zdtm-root", 0700) || mount("zdtm-root", "zdtm-root", "tmpfs", 0, nullptr) ||
        chdir("zdtm-root") || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) ||
        chdir("/"))
      fail("making a container: %s", strerror(errno));
  }
  int req[2], ans[2];
  if (pipe(req) || pipe(ans)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    close(req[1]);
    close(ans[0]);
    if (nested_uts && (unshare(CLONE_NEWUTS) || sethostname("nested", 6))) _exit(2);
    char ch;
    while (read(req[0], &ch, 1) == 1) {
      struct utsname u;
      uname(&u);
      char r = strcmp(u.nodename, "nested") == 0 ? 'n' : 'h';
      if (write(ans[1], &r, 1) != 1) _exit(3);
    }
    _exit(0);
  }
  if (!nested_uts && !outside_file && unshare(CLONE_NEWPID)) fail("unshare(CLONE_NEWPID): %s", strerror(errno));
  close(req[0]);
  close(ans[1]);

  test_ready();
  test_wait();

  char ch = '?';
  if (write(req[1], "?", 1) != 1 || read(ans[0], &ch, 1) != 1) fail("the child does not answer");
  if (ch != (nested_uts ? 'n' : 'h')) fail("the child's hostname changed (%c)", ch);
  close(req[1]);
  int st;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) fail("child: %#x", st);
  pass();
}
