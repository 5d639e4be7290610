// sk_tcp_timewait: a listener (no SO_REUSEADDR, like Open MPI's) with
// three accepted connections, run with --tcp-established. After SIGTERM
// each connection carries a patterned exchange both ways, then the server
// ends close first, so that once this process has exited its listener's
// port is held by three connections in TIME_WAIT. A leave-running restore
// then has to end all three (SOCK_DESTROY) to listen on the port again:
// they all have inode 0 in inet_diag, and keyed by inode they used to
// collapse into one, so the restore failed with EADDRINUSE, as restarting
// an MPI job from a checkpoint did. After the restore the same checks run
// again and the listener accepts a new connection.
#include "sk_inet.h"

namespace {
constexpr int kConns = 3;
constexpr size_t kBytes = 64 * 1024;
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  int l = inet::new_socket(AF_INET, SOCK_STREAM);
  inet::bind_to(l, inet::loopback(AF_INET));
  if (listen(l, 8)) fail("listen: %s", strerror(errno));
  inet::Addr la = inet::name_of(l);
  int c[kConns], s[kConns];
  inet::Stream cs[kConns], sc[kConns];
  for (int i = 0; i < kConns; i++) {
    c[i] = inet::new_socket(AF_INET, SOCK_STREAM);
    inet::connect_to(c[i], la);
    s[i] = inet::accept_one(l, "setup");
    cs[i].seed = zdtm_mix(seed, 2 * i);
    sc[i].seed = zdtm_mix(seed, 2 * i + 1);
    inet::exchange(c[i], &cs[i], s[i], &sc[i], 1000, "setup");
  }

  test_ready();
  test_wait();

  for (int i = 0; i < kConns; i++) {
    inet::expect_tcp_state(s[i], TCP_ESTABLISHED, "server end");
    inet::exchange(c[i], &cs[i], s[i], &sc[i], kBytes, "after restore");
  }
  int n = inet::new_socket(AF_INET, SOCK_STREAM);
  inet::connect_to(n, la);
  close(inet::accept_one(l, "a new connection"));
  close(n);
  // Server ends first: they go through FIN_WAIT2 to TIME_WAIT on la.
  for (int i = 0; i < kConns; i++) close(s[i]);
  for (int i = 0; i < kConns; i++) {
    char b;
    pollfd p = {c[i], POLLIN, 0};
    if (poll(&p, 1, 10000) != 1 || recv(c[i], &b, 1, 0) != 0) fail("client %d: no EOF", i);
    close(c[i]);
  }
  close(l);
  inet::pass_if_clean();
}
