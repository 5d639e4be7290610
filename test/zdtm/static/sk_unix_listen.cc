// sk_unix_listen: stream listeners on paths, with connections.
//   lst    listening on the relative path "srv.sock" (mode 0640, backlog 8)
//   acc    accepted from lst; its client c1 sent "request" (unread in acc),
//          acc sent "response" (unread in c1)
//   c2,c3  waiting in lst's accept queue, in that order: c2 bound to
//          "c2.sock", c3 unnamed
//   abs    listening on an absolute path (cwd + "/abs.sock"), SO_REUSEADDR
//   gone   listening on "gone.sock", whose file was then removed
//   old    accepted from a listener on "old.sock" that was closed since
//          (its file stays, stale), holding "old"
// After restore: names, peers, modes, options; the data; accept() returns
// c2's then c3's connection and then nothing; new clients can connect by
// path (not to "gone.sock", which must not exist); the connections work.
#include <sys/stat.h>

#include <climits>

#include "sk_unix.h"

namespace {
void expect_mode(const char* path, mode_t mode) {
  struct stat st;
  if (stat(path, &st)) fail("%s: %s", path, strerror(errno));
  if (!S_ISSOCK(st.st_mode)) fail("%s is not a socket", path);
  if ((st.st_mode & 07777) != mode) fail("%s: mode %o, want %o", path, st.st_mode & 07777, mode);
}
int accept_nb(int l, const char* what) {
  int fd = accept4(l, nullptr, nullptr, 0);
  if (fd < 0) fail("%s: accept: %s", what, strerror(errno));
  return fd;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  const std::string request = sk::pattern(seed, 7000), response = sk::pattern(seed + 1, 3000);
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd: %s", strerror(errno));
  const std::string abs_path = std::string(cwd) + "/abs.sock";
  if (abs_path.size() >= sizeof(sockaddr_un::sun_path))
    fail("workdir path too long for a socket name");
  for (const char* p : {"srv.sock", "c2.sock", "abs.sock", "gone.sock", "old.sock"}) unlink(p);

  int lst = sk::new_socket(SOCK_STREAM);
  sk::bind_to(lst, "srv.sock");
  if (chmod("srv.sock", 0640)) fail("chmod: %s", strerror(errno));
  if (listen(lst, 8)) fail("listen: %s", strerror(errno));
  int c1 = sk::new_socket(SOCK_STREAM);
  sk::connect_to(c1, "srv.sock");
  int acc = accept_nb(lst, "acc");
  sk::send_all(c1, request, "c1");
  sk::send_all(acc, response, "acc");
  int c2 = sk::new_socket(SOCK_STREAM);
  sk::bind_to(c2, "c2.sock");
  sk::connect_to(c2, "srv.sock");
  int c3 = sk::new_socket(SOCK_STREAM);
  sk::connect_to(c3, "srv.sock");

  int abs = sk::new_socket(SOCK_STREAM);
  sk::setopt_int(abs, SO_REUSEADDR, 1);
  sk::bind_to(abs, abs_path);
  if (listen(abs, 3)) fail("listen: %s", strerror(errno));
  int gone = sk::new_socket(SOCK_STREAM);
  sk::bind_to(gone, "gone.sock");
  if (listen(gone, 1)) fail("listen: %s", strerror(errno));
  unlink("gone.sock");

  int ol = sk::new_socket(SOCK_STREAM);
  sk::bind_to(ol, "old.sock");
  if (listen(ol, 1)) fail("listen: %s", strerror(errno));
  int ocli = sk::new_socket(SOCK_STREAM);
  sk::connect_to(ocli, "old.sock");
  int old = accept_nb(ol, "old");
  close(ol);
  sk::send_all(ocli, "old", "ocli");

  const int fds[] = {lst, acc, c1, c2, c3, abs, gone, old, ocli};
  sk::Opts want[9];
  for (int j = 0; j < 9; j++) want[j] = sk::opts_of(fds[j]);
  mode_t abs_mode;
  {
    struct stat st;
    if (stat("abs.sock", &st)) fail("stat abs.sock: %s", strerror(errno));
    abs_mode = st.st_mode & 07777;
  }

  test_ready();
  test_wait();

  for (int j = 0; j < 9; j++) {
    char what[32];
    snprintf(what, sizeof(what), "fd %d", fds[j]);
    sk::expect_opts(fds[j], want[j], what);
  }
  expect_mode("srv.sock", 0640);
  expect_mode("abs.sock", abs_mode);
  expect_mode("c2.sock", [] {
    struct stat st;
    return stat("c2.sock", &st) ? mode_t(0) : mode_t(st.st_mode & 07777);
  }());
  struct stat st;
  if (lstat("gone.sock", &st) == 0) fail("gone.sock exists again");
  sk::expect_name(lst, false, "srv.sock", "lst");
  sk::expect_name(acc, false, "srv.sock", "acc");
  sk::expect_name(acc, true, "", "acc");
  sk::expect_name(c1, true, "srv.sock", "c1");
  sk::expect_name(c1, false, "", "c1");
  sk::expect_name(c2, false, "c2.sock", "c2");
  sk::expect_name(c2, true, "srv.sock", "c2");
  sk::expect_name(c3, true, "srv.sock", "c3");
  sk::expect_name(abs, false, abs_path, "abs");
  sk::expect_name(gone, false, "gone.sock", "gone");
  sk::expect_name(old, false, "old.sock", "old");
  sk::expect_name(ocli, true, "old.sock", "ocli");
  if (sk::recv_exact(old, 3, "old") != "old") fail("old: wrong data");
  if (lstat("old.sock", &st) || !S_ISSOCK(st.st_mode)) fail("old.sock: the stale file is gone");
  {
    int s = sk::new_socket(SOCK_STREAM);
    socklen_t l;
    sockaddr_un a = sk::to_addr("old.sock", &l);
    if (connect(s, reinterpret_cast<sockaddr*>(&a), l) != -1 || errno != ECONNREFUSED)
      fail("connect to the stale old.sock: %s, want ECONNREFUSED", strerror(errno));
    close(s);
  }

  if (sk::recv_exact(acc, request.size(), "acc") != request) fail("acc: wrong request");
  if (sk::recv_exact(c1, response.size(), "c1") != response) fail("c1: wrong response");
  sk::expect_eagain(acc, "acc");
  sk::expect_eagain(c1, "c1");

  fcntl(lst, F_SETFL, O_NONBLOCK);
  int a2 = accept_nb(lst, "c2's connection");
  int a3 = accept_nb(lst, "c3's connection");
  sk::expect_name(a2, true, "c2.sock", "the first waiting connection (c2)");
  sk::expect_name(a3, true, "", "the second waiting connection (c3)");
  if (accept4(lst, nullptr, nullptr, 0) != -1 || errno != EAGAIN)
    fail("a third connection was waiting");
  sk::send_all(c2, "two", "c2");
  sk::send_all(c3, "three", "c3");
  if (sk::recv_exact(a2, 3, "a2") != "two" || sk::recv_exact(a3, 5, "a3") != "three")
    fail("waiting connections do not carry data");
  sk::send_all(acc, "more", "acc");
  if (sk::recv_exact(c1, 4, "c1") != "more") fail("acc/c1 no longer carry data");

  int n1 = sk::new_socket(SOCK_STREAM);
  sk::connect_to(n1, "srv.sock");
  int a4 = accept_nb(lst, "new client");
  sk::send_all(a4, "new", "a4");
  if (sk::recv_exact(n1, 3, "n1") != "new") fail("new connection to srv.sock does not work");
  int n2 = sk::new_socket(SOCK_STREAM);
  sk::connect_to(n2, abs_path);
  fcntl(abs, F_SETFL, O_NONBLOCK);
  accept_nb(abs, "abs");
  pass();
}
