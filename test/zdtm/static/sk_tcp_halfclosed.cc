// sk_tcp_halfclosed: half-closed TCP connections on 127.0.0.1 and ::1,
// run with --tcp-established. For each family:
//   c1 -> s1   the client shut down its sending side after 10 KiB that s1
//              has not read: c1 in FIN_WAIT2, s1 in CLOSE_WAIT; s1 sent
//              5 KiB c1 has not read
//   c2 -> s2   the same with the roles swapped: the accepted end s2 shut
//              down (FIN_WAIT2), c2 is in CLOSE_WAIT
//   r          a client whose peer reset the connection (state CLOSE)
// After SIGTERM: states, addresses and shutdown sides are what they were;
// the closing side's data arrives exactly and then read() returns 0 (EOF);
// sending on a shut-down side fails with EPIPE; the open direction still
// carries the unread data and then 256 KiB more; r reads EOF and cannot
// send.
#include "sk_inet.h"

namespace {

constexpr size_t kClosedData = 10 * 1024, kOpenData = 5 * 1024, kMore = 256 * 1024;

struct Half {
  int closer = -1, other = -1;  // closer did shutdown(SHUT_WR)
  inet::Stream to_other, to_closer;
  inet::Addr closer_name, other_name;
  std::string what;
};

// A connection from a new client to l; the accepted end is *server.
int connected(int l, const inet::Addr& lname, int* server) {
  int c = inet::new_socket(lname.family(), SOCK_STREAM);
  inet::connect_to(c, lname);
  *server = inet::accept_one(l, "listener");
  return c;
}

void wait_state(int fd, int want, const char* what) {
  for (int i = 0; i < 1000 && inet::tcp_state(fd) != want; i++) usleep(10000);
  inet::expect_tcp_state(fd, want, what);
}

// The closer sends kClosedData, shuts down its sending side; the other
// end sends kOpenData; nobody reads.
void half_close(Half* h, uint64_t seed) {
  h->to_other.seed = zdtm_mix(seed, 1);
  h->to_closer.seed = zdtm_mix(seed, 2);
  inet::send_stream(h->closer, &h->to_other, kClosedData, h->what.c_str());
  inet::send_stream(h->other, &h->to_closer, kOpenData, h->what.c_str());
  if (shutdown(h->closer, SHUT_WR)) fail("%s: shutdown: %s", h->what.c_str(), strerror(errno));
  wait_state(h->closer, TCP_FIN_WAIT2, (h->what + " closer (setup)").c_str());
  wait_state(h->other, TCP_CLOSE_WAIT, (h->what + " other end (setup)").c_str());
  h->closer_name = inet::name_of(h->closer);
  h->other_name = inet::name_of(h->other);
}

void expect_eof(int fd, const std::string& what) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) fail("%s: no EOF within 10 s", what.c_str());
  char x;
  ssize_t r = recv(fd, &x, 1, MSG_DONTWAIT);
  if (r != 0)
    fail("%s: read returned %zd (%s), want 0 (EOF)", what.c_str(), r,
         r < 0 ? strerror(errno) : "data");
}

void expect_epipe(int fd, const std::string& what) {
  ssize_t w = send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w >= 0 || errno != EPIPE)
    fail("%s: send on a shut-down side: %s, want EPIPE", what.c_str(),
         w >= 0 ? "succeeded" : strerror(errno));
}

void verify(Half* h) {
  const std::string w = h->what;
  // A restored FIN may be sent and acknowledged again: FIN_WAIT1 for a
  // moment is fine, not staying there (wait_state gives it 10 s).
  wait_state(h->closer, TCP_FIN_WAIT2, (w + " closer").c_str());
  wait_state(h->other, TCP_CLOSE_WAIT, (w + " other end").c_str());
  inet::expect_name(h->closer, false, h->closer_name, (w + " closer").c_str());
  inet::expect_name(h->closer, true, h->other_name, (w + " closer").c_str());
  inet::expect_name(h->other, false, h->other_name, (w + " other end").c_str());
  inet::expect_name(h->other, true, h->closer_name, (w + " other end").c_str());
  // The closed direction: its data, then EOF.
  inet::recv_stream(h->other, &h->to_other, kClosedData, (w + " closed direction").c_str());
  expect_eof(h->other, w + " closed direction");
  expect_epipe(h->closer, w + " closer");
  // The open direction: the unread data, then more.
  inet::recv_stream(h->closer, &h->to_closer, kOpenData, (w + " open direction (unread)").c_str());
  for (size_t done = 0; done < kMore; done += 16 * 1024) {
    inet::send_stream(h->other, &h->to_closer, 16 * 1024, (w + " open direction").c_str());
    inet::recv_stream(h->closer, &h->to_closer, 16 * 1024, (w + " open direction").c_str());
  }
  // Still EOF on the closed direction, and the state held.
  expect_eof(h->other, w + " closed direction, again");
  wait_state(h->closer, TCP_FIN_WAIT2, (w + " closer, at the end").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const uint64_t seed = zdtm_seed();
  struct PerFamily {
    int l = -1;
    Half h1, h2;
    int r = -1;
  } fams[2];
  const int families[2] = {AF_INET, AF_INET6};
  for (int i = 0; i < 2; i++) {
    PerFamily& f = fams[i];
    const int fam = families[i];
    const std::string fn = inet::family_name(fam);
    f.l = inet::new_socket(fam, SOCK_STREAM);
    inet::bind_to(f.l, inet::loopback(fam));
    if (listen(f.l, 5)) fail("listen: %s", strerror(errno));
    const inet::Addr lname = inet::name_of(f.l);

    f.h1.what = fn + " client-closed";
    f.h1.closer = connected(f.l, lname, &f.h1.other);
    half_close(&f.h1, zdtm_mix(seed, 10 + i));

    f.h2.what = fn + " server-closed";
    f.h2.other = connected(f.l, lname, &f.h2.closer);
    half_close(&f.h2, zdtm_mix(seed, 20 + i));

    // r: its peer closes with a reset; r is left in CLOSE. Its pending
    // error is read now so that only the state itself is dumped.
    int rs;
    f.r = connected(f.l, lname, &rs);
    inet::close_rst(rs);
    wait_state(f.r, TCP_CLOSE, (fn + " reset client (setup)").c_str());
    int err = inet::getopt_int(f.r, SOL_SOCKET, SO_ERROR, "SO_ERROR");
    if (err != ECONNRESET) fail("%s reset client: SO_ERROR %d, want ECONNRESET", fn.c_str(), err);
  }

  test_ready();
  test_wait();

  for (int i = 0; i < 2; i++) {
    PerFamily& f = fams[i];
    const std::string fn = inet::family_name(families[i]);
    verify(&f.h1);
    verify(&f.h2);
    const std::string rw = fn + " reset client";
    inet::expect_tcp_state(f.r, TCP_CLOSE, rw.c_str());
    // A reset socket reads EOF; one made anew in CLOSE reads ENOTCONN.
    // Either tells the program the connection is gone; data may not.
    char x;
    ssize_t got = recv(f.r, &x, 1, MSG_DONTWAIT);
    if (got != 0 && !(got < 0 && errno == ENOTCONN))
      fail("%s: read returned %zd (%s), want 0 or ENOTCONN", rw.c_str(), got,
           got < 0 ? strerror(errno) : "data");
    ssize_t w = send(f.r, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0) fail("%s: send succeeded on a reset connection", rw.c_str());
  }
  // Resets, not FINs: no TIME_WAIT keeps the pairs the restore of a
  // leave-running image needs (see sk_tcp.cc).
  for (auto& f : fams) {
    for (int fd : {f.h1.closer, f.h1.other, f.h2.closer, f.h2.other}) inet::close_rst(fd);
    close(f.r);
    close(f.l);
  }
  pass();
}
