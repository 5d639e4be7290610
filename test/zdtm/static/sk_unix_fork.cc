// sk_unix_fork: unix sockets whose ends are in different processes.
//   The root makes, then forks a child:
//   s0/s1  stream pair: the root keeps s0, the child s1; each sent the
//          other data that is still unread
//   d0/d1  datagram pair: root d0, child d1, two messages each way unread
//   sh     a stream socket both processes keep (one open file), connected
//          to sh_peer in the root, with data for sh unread
//   lst    a listener in the root on "fork.sock"; the child's client wc
//          waits in its accept queue; the child's client ac was accepted
//          by the root (acc) and sent "from child"
// After SIGTERM the root tells the child (SIGTERM) to check its ends, then
// checks its own, and passes only if the child exited 0.
#include <signal.h>
#include <sys/wait.h>

#include "sk_unix.h"

namespace {
uint64_t g_seed;
std::string data(int i, size_t n) { return sk::pattern(g_seed + uint64_t(i), n); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  unlink("fork.sock");
  int s[2], d[2], sh[2];
  sk::pair(SOCK_STREAM, s);
  sk::pair(SOCK_DGRAM, d);
  sk::pair(SOCK_STREAM, sh);
  int lst = sk::new_socket(SOCK_STREAM);
  sk::bind_to(lst, "fork.sock");
  if (listen(lst, 4)) fail("listen: %s", strerror(errno));
  int ready[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, ready)) fail("socketpair: %s", strerror(errno));

  pid_t child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));
  if (child == 0) {
    close(s[0]);
    close(d[0]);
    close(lst);
    close(ready[0]);
    sk::send_all(s[1], data(1, 30000), "s1");
    sk::send_msg(d[1], data(2, 10), "d1");
    sk::send_msg(d[1], data(3, 2000), "d1");
    int ac = sk::new_socket(SOCK_STREAM);
    sk::connect_to(ac, "fork.sock");
    sk::send_all(ac, "from child", "ac");
    sk::send_all(ready[1], "a", "ready");  // the root accepts ac now
    char c;
    if (read(ready[1], &c, 1) != 1) fail("child: root went away");
    int wc = sk::new_socket(SOCK_STREAM);
    sk::connect_to(wc, "fork.sock");
    sk::send_all(ready[1], "b", "ready");
    test_wait();
    // The child's checks.
    if (sk::recv_exact(s[1], 20000, "child s1") != data(4, 20000)) fail("child s1: wrong data");
    sk::expect_eagain(s[1], "child s1");
    if (sk::recv_msg(d[1], "child d1") != data(5, 1) ||
        sk::recv_msg(d[1], "child d1") != data(6, 5))
      fail("child d1: wrong messages");
    if (sk::recv_exact(ac, 8, "child ac") != "from acc") fail("child ac: wrong data");
    sk::expect_name(wc, true, "fork.sock", "child wc");
    sk::send_all(s[1], "child still here", "s1");
    sk::send_all(wc, "waiting", "wc");
    sk::send_all(sh[0], "child sh", "sh");
    _exit(0);
  }
  close(s[1]);
  close(d[1]);
  close(ready[1]);
  sk::send_all(s[0], data(4, 20000), "s0");
  sk::send_msg(d[0], data(5, 1), "d0");
  sk::send_msg(d[0], data(6, 5), "d0");
  sk::send_all(sh[1], "shared", "sh_peer");
  char c;
  if (read(ready[0], &c, 1) != 1) fail("child went away");
  int acc = accept(lst, nullptr, nullptr);
  if (acc < 0) fail("accept: %s", strerror(errno));
  sk::send_all(acc, "from acc", "acc");
  sk::send_all(ready[0], "go", "ready");
  if (read(ready[0], &c, 1) != 1) fail("child went away");

  test_ready();
  test_wait();

  kill(child, SIGTERM);
  int st;
  if (waitpid(child, &st, 0) != child) fail("waitpid: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("the child failed (status %#x)", st);
  if (sk::recv_exact(s[0], 30000, "s0") != data(1, 30000)) fail("s0: wrong data");
  if (sk::recv_exact(s[0], 16, "s0") != "child still here") fail("s0: no new data from the child");
  if (sk::recv_msg(d[0], "d0") != data(2, 10) || sk::recv_msg(d[0], "d0") != data(3, 2000))
    fail("d0: wrong messages");
  if (sk::recv_exact(acc, 10, "acc") != "from child") fail("acc: wrong data");
  sk::expect_name(acc, false, "fork.sock", "acc");
  // The shared socket: the child's write went out on the same open file.
  if (sk::recv_exact(sh[0], 6, "sh") != "shared") fail("sh: wrong data");
  if (sk::recv_exact(sh[1], 8, "sh_peer") != "child sh")
    fail("sh is no longer shared with the child");
  fcntl(lst, F_SETFL, O_NONBLOCK);
  int w = accept(lst, nullptr, nullptr);
  if (w < 0) fail("the child's waiting client is gone: %s", strerror(errno));
  if (sk::recv_exact(w, 7, "w") != "waiting") fail("w: wrong data");
  pass();
}
