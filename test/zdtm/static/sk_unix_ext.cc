// sk_unix_ext: unix sockets connected to a server outside the dumped tree
// (run by sk_unix_ext_run, which starts that server and checks that ckpt
// refuses them without --ext-unix-sk).
//   sk_unix_ext --peer PATH [--stream SPATH]
//   cl     an unnamed datagram socket connected to PATH (the outside echo
//          server), with SO_SNDBUF set
//   cl2    a datagram socket on an abstract name, connected to PATH
//   st     with --stream: a stream socket connected to SPATH (ckpt must
//          refuse it even with --ext-unix-sk)
// After restore: both are connected to PATH again (getpeername), keep
// their names and options, and the server echoes what cl2 sends.
#include <poll.h>

#include "sk_unix.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  std::string peer, stream;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--peer")) peer = argv[i + 1];
    if (!strcmp(argv[i], "--stream")) stream = argv[i + 1];
  }
  if (peer.empty()) fail("usage: sk_unix_ext --peer PATH [--stream SPATH]");
  int cl = sk::new_socket(SOCK_DGRAM);
  sk::setopt_int(cl, SO_SNDBUF, 100000);
  sk::connect_to(cl, peer);
  sk::send_msg(cl, "hello", "cl");
  int cl2 = sk::new_socket(SOCK_DGRAM);
  const std::string name2 = sk::abstract("ext-cl2");
  sk::bind_to(cl2, name2);
  sk::connect_to(cl2, peer);
  if (!stream.empty()) {
    int st = sk::new_socket(SOCK_STREAM);
    sk::connect_to(st, stream);
  }
  sk::Opts w1 = sk::opts_of(cl), w2 = sk::opts_of(cl2);

  test_ready();
  test_wait();

  sk::expect_opts(cl, w1, "cl");
  sk::expect_opts(cl2, w2, "cl2");
  sk::expect_name(cl, true, peer, "cl");
  sk::expect_name(cl2, true, peer, "cl2");
  sk::expect_name(cl2, false, name2, "cl2");
  sk::send_msg(cl, "still here", "cl");
  sk::send_msg(cl2, "ping", "cl2");
  pollfd p = {cl2, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) fail("no echo from the outside server within 10 s");
  std::string from;
  if (sk::recv_msg(cl2, "cl2", &from) != "ping" || from != peer)
    fail("cl2: wrong echo (from %s)", sk::show(from).c_str());
  pass();
}
