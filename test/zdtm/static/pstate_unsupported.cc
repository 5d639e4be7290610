// pstate_unsupported: a helper for zdtm-errors, not a round-trip test. A
// tree whose process state ckpt refuses (issue 14 items 5 and 8), which
// must keep running untouched:
//   --traced         child C is traced by the root (PTRACE_SEIZE): "pid C:
//                    traced by pid R (pstate_unsuppo)"
//   --clone-files    child C (forked) clones sibling D with CLONE_FILES |
//                    CLONE_PARENT (no CLONE_VM): C and D share an fd table
//                    their parent does not: "share one fd table ... but not
//                    through their parents" (a child sharing its parent's
//                    restores: zdtm/files_shared)
//   --clone-fs       child C (forked) clones sibling D with CLONE_FS |
//                    CLONE_PARENT: C and D share an fs struct their parent
//                    does not: "share one fs struct ... not through their
//                    parents" (a child sharing its parent's restores)
//   --thread-files   a thread unshare(CLONE_FILES)d: "has its own fd table"
// On SIGTERM it checks C (or the thread) still answers through a pipe.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "zdtm.h"

namespace {

int g_req[2], g_ans[2];
bool g_own_table = true;  // the child or thread has its own fd table: it closes its write end


// Answers one byte per request until the request pipe closes.
void serve() {
  if (g_own_table) close(g_req[1]);  // so that the root's close ends the loop
  char ch;
  while (read(g_req[0], &ch, 1) == 1)
    if (write(g_ans[1], "y", 1) != 1) break;
}

int child_fn(void*) {
  serve();
  _exit(0);
}

char g_stack2[64 * 1024] __attribute__((aligned(16)));

// C of --clone-fs (--clone-files): makes its sibling D sharing its fs
// struct (fd table), then serves.
int c_clone_fs(void* flag) {
  if (clone(child_fn, g_stack2 + sizeof(g_stack2), int(long(flag)) | CLONE_PARENT | SIGCHLD,
            nullptr) < 0)
    _exit(5);
  serve();
  _exit(0);
}

void* thread_fn(void*) {
  if (unshare(CLONE_FILES)) fail("unshare CLONE_FILES: %s", strerror(errno));
  serve();
  close(g_req[0]);
  return nullptr;
}

bool ask() {
  char ch = 'q';
  return write(g_req[1], &ch, 1) == 1 && read(g_ans[0], &ch, 1) == 1 && ch == 'y';
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const char* mode = argc > 1 ? argv[1] : "";
  if (pipe(g_req) || pipe(g_ans)) fail("pipe: %s", strerror(errno));
  pid_t c = -1;
  pthread_t t;
  bool thread = !strcmp(mode, "--thread-files");
  if (thread) {
    if (pthread_create(&t, nullptr, thread_fn, nullptr)) fail("pthread_create");
  } else {
    static char stack[64 * 1024] __attribute__((aligned(16)));
    long sibling = !strcmp(mode, "--clone-fs") ? CLONE_FS : !strcmp(mode, "--clone-files") ? CLONE_FILES : 0;
    c = clone(sibling ? c_clone_fs : child_fn, stack + sizeof(stack), SIGCHLD,
              reinterpret_cast<void*>(sibling));
    if (c < 0) fail("clone: %s", strerror(errno));
    if (!strcmp(mode, "--traced") && ptrace(PTRACE_SEIZE, c, nullptr, nullptr))
      fail("PTRACE_SEIZE: %s", strerror(errno));
  }
  if (!ask()) fail("no answer before READY");
  test_ready();
  test_wait();
  bool ok = ask();
  close(g_req[1]);
  if (thread) {
    pthread_join(t, nullptr);
  } else {
    if (!strcmp(mode, "--traced")) ptrace(PTRACE_DETACH, c, nullptr, nullptr);
    int st = 0;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st)) ok = false;
    while (waitpid(-1, &st, 0) > 0) {  // D of --clone-fs and --clone-files
      if (!WIFEXITED(st)) ok = false;
    }
  }
  if (!ok) fail("the child or thread no longer answers after the refused dump");
  pass();
}
