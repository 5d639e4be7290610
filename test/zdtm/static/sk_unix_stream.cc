// sk_unix_stream: stream socketpairs with unread data.
//   a0/a1  200000 bytes a0->a1 (a0's SO_SNDBUF raised to fit), 1000 bytes
//          a1->a0; a1 O_NONBLOCK with SO_RCVBUF set, a0 SO_PASSCRED and
//          SO_REUSEADDR; a2 is a dup of a0 (one open file)
//   b0/b1  b0 sent "last words" then shut down writing: b1 reads them, then
//          EOF; b1 can still write to b0
//   c0     its peer sent "bye" and closed: c0 reads it, then EOF; writing
//          gives EPIPE
//   d0/d1  "0123456789" queued for d1, whose SO_PEEK_OFF is 3
//   e0     an unconnected stream socket
// After restore: options, flags, names, every byte in order, the shutdown
// and EOF states, and that the connections still carry data both ways.
#include <signal.h>
#include <sys/socket.h>

#include "sk_unix.h"

namespace {
constexpr size_t kBig = 200000, kSmall = 1000;
}

int main(int argc, char** argv) {
  test_init(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  uint64_t seed = zdtm_seed();
  std::string big = sk::pattern(seed, kBig), small = sk::pattern(seed + 1, kSmall);

  int a[2], b[2], c[2], d[2];
  sk::pair(SOCK_STREAM, a);
  sk::setopt_int(a[0], SO_SNDBUF, 600000);
  sk::setopt_int(a[0], SO_PASSCRED, 1);
  sk::setopt_int(a[0], SO_REUSEADDR, 1);
  sk::setopt_int(a[1], SO_RCVBUF, 100000);
  sk::send_all(a[0], big, "a0");
  sk::send_all(a[1], small, "a1");
  fcntl(a[1], F_SETFL, O_NONBLOCK);
  int a2 = dup(a[0]);

  sk::pair(SOCK_STREAM, b);
  sk::send_all(b[0], "last words", "b0");
  if (shutdown(b[0], SHUT_WR)) fail("shutdown: %s", strerror(errno));

  sk::pair(SOCK_STREAM, c);
  sk::send_all(c[1], "bye", "c1");
  close(c[1]);

  sk::pair(SOCK_STREAM, d);
  sk::send_all(d[0], "0123456789", "d0");
  sk::setopt_int(d[1], SO_PEEK_OFF, 3);

  int e0 = sk::new_socket(SOCK_STREAM);

  const int fds[] = {a[0], a[1], a2, b[0], b[1], c[0], d[0], d[1], e0};
  sk::Opts want[16];
  for (int i = 0; i < 9; i++) want[i] = sk::opts_of(fds[i]);

  test_ready();
  test_wait();

  for (int i = 0; i < 9; i++) {
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fds[i]);
    sk::expect_opts(fds[i], want[i], what);
    sk::expect_name(fds[i], false, "", what);
  }
  if (sk::queued(a[1]) != int(kBig)) fail("a1 holds %d bytes, want %zu", sk::queued(a[1]), kBig);
  if (sk::queued(a[0]) != int(kSmall))
    fail("a0 holds %d bytes, want %zu", sk::queued(a[0]), kSmall);
  if (sk::recv_exact(a[1], kBig, "a1") != big) fail("a1: wrong data");
  if (sk::recv_exact(a2, kSmall, "a2") != small) fail("a0/a2: wrong data");
  sk::expect_eagain(a[1], "a1");
  sk::expect_eagain(a[0], "a0");
  fcntl(a2, F_SETFL, O_NONBLOCK);
  if (!(fcntl(a[0], F_GETFL) & O_NONBLOCK)) fail("a2 is no longer a dup of a0");

  if (sk::recv_exact(b[1], 10, "b1") != "last words") fail("b1: wrong data");
  sk::expect_eof(b[1], "b1");
  if (send(b[0], "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE) fail("b0 can still write");
  sk::send_all(b[1], "reply", "b1");
  if (sk::recv_exact(b[0], 5, "b0") != "reply") fail("b0: wrong reply");

  if (sk::recv_exact(c[0], 3, "c0") != "bye") fail("c0: wrong data");
  sk::expect_eof(c[0], "c0");
  if (send(c[0], "x", 1, MSG_NOSIGNAL) != -1 || errno != EPIPE)
    fail("c0: write did not fail with EPIPE");

  char buf[16] = {};
  if (recv(d[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT) != 7 || memcmp(buf, "3456789", 7))
    fail("d1: peek at offset 3 gave '%s'", buf);
  if (sk::recv_exact(d[1], 10, "d1") != "0123456789") fail("d1: wrong data");

  sockaddr_un peer;
  socklen_t pl = sizeof(peer);
  if (getpeername(e0, reinterpret_cast<sockaddr*>(&peer), &pl) == 0 || errno != ENOTCONN)
    fail("e0 is connected");

  // Still connected both ways.
  sk::send_all(a[0], "more", "a0");
  sk::send_all(a[1], "back", "a1");
  if (sk::recv_exact(a[1], 4, "a1") != "more" || sk::recv_exact(a[0], 4, "a0") != "back")
    fail("a0/a1 no longer carry data");
  sk::send_all(d[1], "dd", "d1");
  if (sk::recv_exact(d[0], 2, "d0") != "dd") fail("d0/d1 no longer carry data");
  pass();
}
