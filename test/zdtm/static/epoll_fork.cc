// An epoll whose target is open only in another process: the parent makes
// the epoll and a pipe, forks, and the child closes the pipe but keeps the
// epoll; the parent closes the epoll. After restore the child's epoll still
// reports the parent's pipe (with its data) when the parent writes to it.
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  int p[2];
  if (pipe(p)) fail("pipe");
  int ep = epoll_create1(0);
  epoll_event e = {};
  e.events = EPOLLIN;
  e.data.u64 = 0xabcdef;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e)) fail("epoll: %s", strerror(errno));
  pid_t c = fork();
  if (c == 0) {
    close(p[0]);
    close(p[1]);
    test_wait();
    epoll_event got = {};
    int n = epoll_wait(ep, &got, 1, 10000);
    _exit(n == 1 && got.data.u64 == 0xabcdef && (got.events & EPOLLIN) ? 0 : 1);
  }
  close(ep);
  test_ready();
  test_wait();
  if (write(p[1], "x", 1) != 1) fail("write pipe");
  kill(c, SIGTERM);
  int st;
  if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the child's epoll no longer sees the parent's pipe (status %#x)", st);
  pass();
}
