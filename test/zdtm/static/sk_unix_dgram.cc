// sk_unix_dgram: datagram sockets with unread messages, boundaries kept.
//   p0/p1  a socketpair: messages of 0, 1, 100, 5000 and 60000 bytes
//          p0->p1, three p1->p0
//   srv    bound to the relative path "dg.sock" (mode 0620), unconnected,
//          holding two messages from k1 (bound to an abstract name) and one
//          from k2 (unnamed, connected to srv one way); k1 holds a message
//          from srv
//   q0     its peer sent "orphan" and closed: q0 reads it, then sending
//          fails with ECONNREFUSED, then ENOTCONN
//   self   bound to an abstract name and connected to itself, holding "me"
// After restore: sizes, contents and senders of every message in order,
// then EAGAIN; names and peers; the socket file's mode; SO_RCVBUF/SNDBUF;
// and that every socket still sends and receives.
#include <signal.h>
#include <sys/stat.h>

#include "sk_unix.h"

namespace {
// A zero-length message first: ckpt sees one at the head of the queue even
// after an earlier dump (dump-twice); further in, only on a first look.
const size_t kSizes[] = {0, 1, 100, 5000, 60000};
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  auto msg = [&](int i, size_t n) { return sk::pattern(seed + uint64_t(i), n); };

  int p[2];
  sk::pair(SOCK_DGRAM, p);
  sk::setopt_int(p[1], SO_RCVBUF, 300000);
  int i = 0;
  for (size_t n : kSizes) sk::send_msg(p[0], msg(i++, n), "p0");
  for (int j = 0; j < 3; j++) sk::send_msg(p[1], msg(100 + j, 10 + j), "p1");

  unlink("dg.sock");
  int srv = sk::new_socket(SOCK_DGRAM);
  sk::bind_to(srv, "dg.sock");
  if (chmod("dg.sock", 0620)) fail("chmod: %s", strerror(errno));
  int k1 = sk::new_socket(SOCK_DGRAM);
  const std::string k1_name = sk::abstract("dg-k1");
  sk::bind_to(k1, k1_name);
  int k2 = sk::new_socket(SOCK_DGRAM);
  sk::connect_to(k2, "dg.sock");
  socklen_t sl;
  sockaddr_un sa = sk::to_addr("dg.sock", &sl);
  for (int j = 0; j < 2; j++)
    if (sendto(k1, msg(200 + j, 50).data(), 50, 0, reinterpret_cast<sockaddr*>(&sa), sl) != 50)
      fail("k1 sendto: %s", strerror(errno));
  sk::send_msg(k2, msg(300, 70), "k2");
  sockaddr_un ka = sk::to_addr(k1_name, &sl);
  if (sendto(srv, "to k1", 5, 0, reinterpret_cast<sockaddr*>(&ka), sl) != 5)
    fail("srv sendto: %s", strerror(errno));

  int q[2];
  sk::pair(SOCK_DGRAM, q);
  sk::send_msg(q[1], "orphan", "q1");
  close(q[1]);

  int self = sk::new_socket(SOCK_DGRAM);
  const std::string self_name = sk::abstract("dg-self");
  sk::bind_to(self, self_name);
  sk::connect_to(self, self_name);
  sk::send_msg(self, "me", "self");

  const int fds[] = {p[0], p[1], srv, k1, k2, q[0], self};
  sk::Opts want[8];
  for (int j = 0; j < 7; j++) want[j] = sk::opts_of(fds[j]);

  test_ready();
  test_wait();

  for (int j = 0; j < 7; j++) {
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fds[j]);
    sk::expect_opts(fds[j], want[j], what);
  }
  i = 0;
  for (size_t n : kSizes) {
    std::string from;
    std::string m = sk::recv_msg(p[1], "p1", &from);
    if (m.size() != n) fail("p1: message %d has %zu bytes, want %zu", i, m.size(), n);
    if (m != msg(i, n)) fail("p1: message %d has wrong contents", i);
    if (!from.empty()) fail("p1: message %d from %s", i, sk::show(from).c_str());
    i++;
  }
  sk::expect_eagain(p[1], "p1");
  for (int j = 0; j < 3; j++)
    if (sk::recv_msg(p[0], "p0") != msg(100 + j, 10 + j)) fail("p0: message %d wrong", j);
  sk::expect_eagain(p[0], "p0");
  sk::send_msg(p[0], "again", "p0");
  if (sk::recv_msg(p[1], "p1") != "again") fail("p0/p1 no longer carry messages");

  struct stat st;
  if (stat("dg.sock", &st) || !S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != 0620)
    fail("dg.sock: missing, not a socket or mode %o", st.st_mode & 07777);
  sk::expect_name(srv, false, "dg.sock", "srv");
  sk::expect_name(k1, false, k1_name, "k1");
  sk::expect_name(k2, false, "", "k2");
  sk::expect_name(k2, true, "dg.sock", "k2");
  for (int j = 0; j < 2; j++) {
    std::string from;
    if (sk::recv_msg(srv, "srv", &from) != msg(200 + j, 50))
      fail("srv: message %d from k1 wrong", j);
    if (from != k1_name) fail("srv: message %d from %s, want k1", j, sk::show(from).c_str());
  }
  std::string from;
  if (sk::recv_msg(srv, "srv", &from) != msg(300, 70)) fail("srv: message from k2 wrong");
  if (!from.empty()) fail("srv: message from k2 came from %s", sk::show(from).c_str());
  sk::expect_eagain(srv, "srv");
  if (sk::recv_msg(k1, "k1", &from) != "to k1" || from != "dg.sock")
    fail("k1: message from srv wrong (from %s)", sk::show(from).c_str());
  sk::send_msg(k2, "k2 again", "k2");
  if (sk::recv_msg(srv, "srv") != "k2 again") fail("k2 no longer reaches srv");
  sa = sk::to_addr("dg.sock", &sl);
  if (sendto(k1, "k1 again", 8, 0, reinterpret_cast<sockaddr*>(&sa), sl) != 8)
    fail("k1 sendto: %s", strerror(errno));
  if (sk::recv_msg(srv, "srv", &from) != "k1 again" || from != k1_name)
    fail("k1 no longer reaches srv");

  if (sk::recv_msg(q[0], "q0") != "orphan") fail("q0: wrong message");
  sk::expect_eagain(q[0], "q0");
  if (send(q[0], "x", 1, 0) != -1 || errno != ECONNREFUSED)
    fail("q0: first send to the closed peer: %s, want ECONNREFUSED", strerror(errno));
  if (send(q[0], "x", 1, 0) != -1 || errno != ENOTCONN)
    fail("q0: second send: %s, want ENOTCONN", strerror(errno));

  sk::expect_name(self, true, self_name, "self");
  if (sk::recv_msg(self, "self", &from) != "me" || from != self_name) fail("self: wrong message");
  sk::send_msg(self, "me2", "self");
  if (sk::recv_msg(self, "self") != "me2") fail("self no longer talks to itself");
  pass();
}
