// Issue 4's "done means" in one process: a pipe with unread data, a
// socketpair with data both ways, datagrams of different sizes, an eventfd
// watched by epoll, a timerfd an hour from firing, a signalfd, a deleted
// file, a FIFO with data, a sealed memfd, a listening unix socket with an
// accepted connection, an inotify watch and an flock. After restore each
// behaves as before.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

sockaddr_un Abstract(const std::string& name, socklen_t* len) {
  sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path + 1, name.data(), name.size());
  *len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  return a;
}

void Expect(int fd, const std::string& want, const char* what) {
  char buf[256] = {};
  ssize_t n = read(fd, buf, sizeof(buf));
  if (n != ssize_t(want.size()) || memcmp(buf, want.data(), want.size()) != 0)
    fail("%s: read %zd bytes, want '%s'", what, n, want.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  int p[2], sp[2], dg[2];
  if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sp) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg))
    fail("pipe/socketpair: %s", strerror(errno));
  if (write(p[1], "pipe-data", 9) != 9) fail("write pipe");
  if (write(sp[0], "to-1", 4) != 4 || write(sp[1], "to-0!", 5) != 5) fail("write socketpair");
  const size_t sizes[] = {1, 700, 65, 4000};
  std::string dgrams[4];
  for (int i = 0; i < 4; i++) {
    dgrams[i] = std::string(sizes[i], char('a' + i));
    if (send(dg[0], dgrams[i].data(), sizes[i], 0) != ssize_t(sizes[i])) fail("send dgram");
  }
  int ev = eventfd(7, EFD_NONBLOCK);
  int ep = epoll_create1(0);
  epoll_event e = {};
  e.events = EPOLLIN;
  e.data.u64 = 0xfeed;
  if (ev < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e)) fail("eventfd/epoll");
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  itimerspec hour = {{0, 0}, {3600, 0}};
  if (tfd < 0 || timerfd_settime(tfd, 0, &hour, nullptr)) fail("timerfd");
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  sigprocmask(SIG_BLOCK, &usr2, nullptr);
  int sfd = signalfd(-1, &usr2, SFD_NONBLOCK);
  int ghost = open("ghost.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (sfd < 0 || ghost < 0 || write(ghost, "ghost", 5) != 5 || unlink("ghost.dat"))
    fail("signalfd/deleted file");
  unlink("done.fifo");
  if (mkfifo("done.fifo", 0600)) fail("mkfifo");
  int fr = open("done.fifo", O_RDONLY | O_NONBLOCK), fw = open("done.fifo", O_WRONLY);
  if (fr < 0 || fw < 0 || write(fw, "fifo", 4) != 4) fail("fifo");
  int mfd = memfd_create("done", MFD_ALLOW_SEALING);
  if (mfd < 0 || write(mfd, "memfd", 5) != 5 ||
      fcntl(mfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL))
    fail("memfd");
  std::string name = "zdtm-fd-done-" + std::to_string(getpid());
  socklen_t alen;
  sockaddr_un addr = Abstract(name, &alen);
  int lsn = socket(AF_UNIX, SOCK_STREAM, 0), cli = socket(AF_UNIX, SOCK_STREAM, 0);
  if (lsn < 0 || bind(lsn, reinterpret_cast<sockaddr*>(&addr), alen) || listen(lsn, 4) ||
      connect(cli, reinterpret_cast<sockaddr*>(&addr), alen))
    fail("listening socket: %s", strerror(errno));
  int acc = accept(lsn, nullptr, nullptr);
  if (acc < 0 || write(cli, "hello", 5) != 5) fail("accept");
  mkdir("watched", 0755);
  int in = inotify_init1(IN_NONBLOCK);
  int wd = inotify_add_watch(in, "watched", IN_CREATE);
  int lk = open("locked.dat", O_RDWR | O_CREAT, 0600);
  if (wd < 0 || lk < 0 || flock(lk, LOCK_EX)) fail("inotify/flock");

  test_ready();
  test_wait();

  Expect(p[0], "pipe-data", "pipe");
  Expect(sp[1], "to-1", "socketpair 0->1");
  Expect(sp[0], "to-0!", "socketpair 1->0");
  for (int i = 0; i < 4; i++) {
    char buf[5000];
    ssize_t n = recv(dg[1], buf, sizeof(buf), MSG_DONTWAIT);
    if (n != ssize_t(sizes[i]) || memcmp(buf, dgrams[i].data(), sizes[i]) != 0)
      fail("datagram %d: %zd bytes, want %zu", i, n, sizes[i]);
  }
  epoll_event got = {};
  if (epoll_wait(ep, &got, 1, 1000) != 1 || got.data.u64 != 0xfeed) fail("epoll lost the eventfd");
  uint64_t v = 0;
  if (read(ev, &v, 8) != 8 || v != 7) fail("eventfd counter %lu", (unsigned long)v);
  itimerspec left;
  if (timerfd_gettime(tfd, &left) || left.it_value.tv_sec < 3000 || left.it_value.tv_sec > 3600)
    fail("timerfd has %ld s left, want about an hour", (long)left.it_value.tv_sec);
  kill(getpid(), SIGUSR2);
  signalfd_siginfo si;
  if (read(sfd, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR2) fail("signalfd");
  char buf[16] = {};
  struct stat st;
  if (pread(ghost, buf, 5, 0) != 5 || memcmp(buf, "ghost", 5) || fstat(ghost, &st) || st.st_nlink)
    fail("deleted file");
  Expect(fr, "fifo", "FIFO");
  if (pread(mfd, buf, 5, 0) != 5 || memcmp(buf, "memfd", 5) ||
      fcntl(mfd, F_GET_SEALS) != (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL))
    fail("memfd contents or seals");
  Expect(acc, "hello", "accepted connection");
  int cli2 = socket(AF_UNIX, SOCK_STREAM, 0);
  if (connect(cli2, reinterpret_cast<sockaddr*>(&addr), alen) || accept(lsn, nullptr, nullptr) < 0)
    fail("the listener no longer accepts: %s", strerror(errno));
  close(open("watched/new", O_CREAT | O_WRONLY, 0644));
  alignas(inotify_event) char ib[256];
  auto* ie = reinterpret_cast<inotify_event*>(ib);
  if (read(in, ib, sizeof(ib)) <= 0 || ie->wd != wd || !(ie->mask & IN_CREATE)) fail("inotify");
  unlink("watched/new");
  pid_t c = fork();
  if (c == 0) {
    int fd = open("locked.dat", O_RDWR);
    _exit(flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK ? 0 : 1);
  }
  int cs;
  if (waitpid(c, &cs, 0) != c || !WIFEXITED(cs) || WEXITSTATUS(cs) != 0)
    fail("the flock no longer excludes another process");
  pass();
}
