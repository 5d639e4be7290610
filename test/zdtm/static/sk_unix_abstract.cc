// sk_unix_abstract: sockets with abstract names.
//   lst    a stream listener on an abstract name, backlog 5
//   acc    accepted from it, client cli: unread data both ways
//   acc2   also accepted from lst; its client closed after sending "end"
//   wai    a client waiting in lst's accept queue
//   dg     a datagram socket on an abstract name with a message from cli2,
//          a datagram socket bound to another abstract name
//   auto   autobound (bind with only the family): a kernel-chosen name
//   old    accepted from a listener that was closed since: it keeps the
//          name, which is free again (and holds "old data")
// After restore: the names are the same and still held (binding them
// again fails with EADDRINUSE), the data, the waiting client, and new
// connections by name.
#include "sk_unix.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  const std::string up = sk::pattern(seed, 5000), down = sk::pattern(seed + 1, 300);
  const std::string lname = sk::abstract("abs-lst"), dname = sk::abstract("abs-dg"),
                    d2name = sk::abstract("abs-dg2");

  int lst = sk::new_socket(SOCK_STREAM);
  sk::bind_to(lst, lname);
  if (listen(lst, 5)) fail("listen: %s", strerror(errno));
  int cli = sk::new_socket(SOCK_STREAM);
  sk::connect_to(cli, lname);
  int acc = accept(lst, nullptr, nullptr);
  if (acc < 0) fail("accept: %s", strerror(errno));
  sk::send_all(cli, up, "cli");
  sk::send_all(acc, down, "acc");
  int tmp = sk::new_socket(SOCK_STREAM);
  sk::connect_to(tmp, lname);
  int acc2 = accept(lst, nullptr, nullptr);
  if (acc2 < 0) fail("accept: %s", strerror(errno));
  sk::send_all(tmp, "end", "tmp");
  close(tmp);
  int wai = sk::new_socket(SOCK_STREAM);
  sk::connect_to(wai, lname);

  int dg = sk::new_socket(SOCK_DGRAM);
  sk::bind_to(dg, dname);
  int cli2 = sk::new_socket(SOCK_DGRAM);
  sk::bind_to(cli2, d2name);
  socklen_t l;
  sockaddr_un a = sk::to_addr(dname, &l);
  if (sendto(cli2, "datagram", 8, 0, reinterpret_cast<sockaddr*>(&a), l) != 8)
    fail("sendto: %s", strerror(errno));

  int autob = sk::new_socket(SOCK_DGRAM);
  sa_family_t fam = AF_UNIX;
  if (bind(autob, reinterpret_cast<sockaddr*>(&fam), sizeof(fam)))
    fail("autobind: %s", strerror(errno));
  const std::string auto_name = sk::name_of(autob);
  if (auto_name.size() != 6 || auto_name[0] != '\0')
    fail("autobind gave %s", sk::show(auto_name).c_str());

  const std::string oname = sk::abstract("abs-old");
  int ol = sk::new_socket(SOCK_STREAM);
  sk::bind_to(ol, oname);
  if (listen(ol, 1)) fail("listen: %s", strerror(errno));
  int ocli = sk::new_socket(SOCK_STREAM);
  sk::connect_to(ocli, oname);
  int old = accept(ol, nullptr, nullptr);
  if (old < 0) fail("accept: %s", strerror(errno));
  close(ol);
  sk::send_all(ocli, "old data", "ocli");

  const int fds[] = {lst, cli, acc, acc2, wai, dg, cli2, autob, old, ocli};
  sk::Opts want[10];
  for (int j = 0; j < 10; j++) want[j] = sk::opts_of(fds[j]);

  test_ready();
  test_wait();

  for (int j = 0; j < 10; j++) {
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fds[j]);
    sk::expect_opts(fds[j], want[j], what);
  }
  sk::expect_name(lst, false, lname, "lst");
  sk::expect_name(acc, false, lname, "acc");
  sk::expect_name(acc2, false, lname, "acc2");
  sk::expect_name(cli, true, lname, "cli");
  sk::expect_name(wai, true, lname, "wai");
  sk::expect_name(dg, false, dname, "dg");
  sk::expect_name(cli2, false, d2name, "cli2");
  sk::expect_name(autob, false, auto_name, "auto");
  sk::expect_name(old, false, oname, "old");
  sk::expect_name(ocli, true, oname, "ocli");
  if (sk::recv_exact(old, 8, "old") != "old data") fail("old: wrong data");
  {
    int s = sk::new_socket(SOCK_STREAM);
    sk::bind_to(s, oname);  // free: its listener was closed
    close(s);
  }
  for (const std::string* n : {&lname, &dname, &d2name, &auto_name}) {
    int s = sk::new_socket(n == &lname ? SOCK_STREAM : SOCK_DGRAM);  // names are per type
    socklen_t ln;
    sockaddr_un an = sk::to_addr(*n, &ln);
    if (bind(s, reinterpret_cast<sockaddr*>(&an), ln) != -1 || errno != EADDRINUSE)
      fail("%s is not held any more", sk::show(*n).c_str());
    close(s);
  }
  if (sk::recv_exact(acc, up.size(), "acc") != up) fail("acc: wrong data");
  if (sk::recv_exact(cli, down.size(), "cli") != down) fail("cli: wrong data");
  if (sk::recv_exact(acc2, 3, "acc2") != "end") fail("acc2: wrong data");
  sk::expect_eof(acc2, "acc2");
  std::string from;
  if (sk::recv_msg(dg, "dg", &from) != "datagram" || from != d2name)
    fail("dg: wrong message or sender");
  fcntl(lst, F_SETFL, O_NONBLOCK);
  int w = accept(lst, nullptr, nullptr);
  if (w < 0) fail("the waiting client is gone: %s", strerror(errno));
  if (accept(lst, nullptr, nullptr) != -1 || errno != EAGAIN) fail("more than one client waited");
  sk::send_all(wai, "hi", "wai");
  if (sk::recv_exact(w, 2, "w") != "hi") fail("waiting connection does not work");
  int n = sk::new_socket(SOCK_STREAM);
  sk::connect_to(n, lname);
  if (accept(lst, nullptr, nullptr) < 0) fail("new connection: %s", strerror(errno));
  a = sk::to_addr(auto_name, &l);
  if (sendto(cli2, "to auto", 7, 0, reinterpret_cast<sockaddr*>(&a), l) != 7)
    fail("sendto auto: %s", strerror(errno));
  if (sk::recv_msg(autob, "auto") != "to auto") fail("autobound socket does not receive");
  pass();
}
