// sk_unix_seqpacket: seqpacket sockets, packet boundaries kept.
//   s0/s1  a socketpair: packets of 10, 1, 3000 and 20000 bytes s0->s1,
//          two s1->s0
//   lst    a seqpacket listener on an abstract name; acc, accepted from it,
//          holds two packets from its client cli; cli holds one from acc;
//          wai, a client still waiting in the accept queue
//   h0/h1  h1 sent a packet then shut down writing: h0 reads it, then EOF
// After restore: every packet with its size, EOF/EAGAIN, names, the
// waiting client accepted, and that everything still carries packets.
#include "sk_unix.h"

namespace {
const size_t kSizes[] = {10, 1, 3000, 20000};
}

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  auto msg = [&](int i, size_t n) { return sk::pattern(seed + uint64_t(i), n); };

  int s[2];
  sk::pair(SOCK_SEQPACKET, s);
  int i = 0;
  for (size_t n : kSizes) sk::send_msg(s[0], msg(i++, n), "s0");
  sk::send_msg(s[1], msg(50, 7), "s1");
  sk::send_msg(s[1], msg(51, 700), "s1");

  const std::string name = sk::abstract("seq-lst");
  int lst = sk::new_socket(SOCK_SEQPACKET);
  sk::bind_to(lst, name);
  if (listen(lst, 4)) fail("listen: %s", strerror(errno));
  int cli = sk::new_socket(SOCK_SEQPACKET);
  sk::connect_to(cli, name);
  int acc = accept(lst, nullptr, nullptr);
  if (acc < 0) fail("accept: %s", strerror(errno));
  sk::send_msg(cli, msg(60, 123), "cli");
  sk::send_msg(cli, msg(61, 4567), "cli");
  sk::send_msg(acc, msg(62, 89), "acc");
  int wai = sk::new_socket(SOCK_SEQPACKET);
  sk::connect_to(wai, name);

  int h[2];
  sk::pair(SOCK_SEQPACKET, h);
  sk::send_msg(h[1], "last", "h1");
  if (shutdown(h[1], SHUT_WR)) fail("shutdown: %s", strerror(errno));

  const int fds[] = {s[0], s[1], lst, cli, acc, wai, h[0], h[1]};
  sk::Opts want[8];
  for (int j = 0; j < 8; j++) want[j] = sk::opts_of(fds[j]);

  test_ready();
  test_wait();

  for (int j = 0; j < 8; j++) {
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fds[j]);
    sk::expect_opts(fds[j], want[j], what);
  }
  i = 0;
  for (size_t n : kSizes) {
    std::string m = sk::recv_msg(s[1], "s1");
    if (m.size() != n || m != msg(i, n))
      fail("s1: packet %d: %zu bytes, want %zu, or wrong data", i, m.size(), n);
    i++;
  }
  sk::expect_eagain(s[1], "s1");
  if (sk::recv_msg(s[0], "s0") != msg(50, 7) || sk::recv_msg(s[0], "s0") != msg(51, 700))
    fail("s0: wrong packets");
  sk::expect_eagain(s[0], "s0");
  sk::send_msg(s[1], "again", "s1");
  if (sk::recv_msg(s[0], "s0") != "again") fail("s0/s1 no longer carry packets");

  sk::expect_name(lst, false, name, "lst");
  sk::expect_name(acc, false, name, "acc");
  sk::expect_name(cli, true, name, "cli");
  sk::expect_name(cli, false, "", "cli");
  sk::expect_name(acc, true, "", "acc");
  if (sk::recv_msg(acc, "acc") != msg(60, 123) || sk::recv_msg(acc, "acc") != msg(61, 4567))
    fail("acc: wrong packets");
  if (sk::recv_msg(cli, "cli") != msg(62, 89)) fail("cli: wrong packet");
  sk::expect_eagain(acc, "acc");
  sk::expect_eagain(cli, "cli");
  fcntl(lst, F_SETFL, O_NONBLOCK);
  int w2 = accept4(lst, nullptr, nullptr, SOCK_NONBLOCK);
  if (w2 < 0) fail("the waiting client is not in the accept queue: %s", strerror(errno));
  if (accept4(lst, nullptr, nullptr, SOCK_NONBLOCK) != -1 || errno != EAGAIN)
    fail("more than one connection was waiting");
  sk::send_msg(wai, "hello", "wai");
  if (sk::recv_msg(w2, "w2") != "hello") fail("the waiting client's connection does not work");
  sk::send_msg(w2, "hi", "w2");
  if (sk::recv_msg(wai, "wai") != "hi") fail("the waiting client's connection does not work back");

  if (sk::recv_msg(h[0], "h0") != "last") fail("h0: wrong packet");
  sk::expect_eof(h[0], "h0");
  sk::send_msg(h[0], "still", "h0");
  if (sk::recv_msg(h[1], "h1") != "still") fail("h0 can no longer send");
  pass();
}
