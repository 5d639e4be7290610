// fd_all: every supported fd kind at once. A pipe with unread data, a FIFO
// with unread data, an eventfd, a signalfd, a periodic timerfd, an inotify
// watching a directory, a memfd and a deleted file, and an epoll watching
// the pipe, eventfd, signalfd, timerfd and inotify with distinct data.
// Verifies each object and that the epoll reports each event with its data.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

#include "zdtm.h"

namespace {
enum Fd { kPipeR = 20, kPipeW, kFifoR, kFifoW, kEvent, kSignal, kTimer, kInotify, kMemfd, kGhost, kEpoll };

void place(int fd, int num) {
  if (fd < 0) fail("create fd %d: %s", num, strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
void add(int fd, uint32_t events) {
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = 1000 + fd;
  if (epoll_ctl(kEpoll, EPOLL_CTL_ADD, fd, &ev)) fail("epoll add %d: %s", fd, strerror(errno));
}
// Data (1000 + fd) of every ready epoll item, waiting up to ms.
std::set<int> ready(int ms) {
  epoll_event evs[16];
  int n = epoll_wait(kEpoll, evs, 16, ms);
  std::set<int> out;
  for (int i = 0; i < n; i++) out.insert(static_cast<int>(evs[i].data.u64 - 1000));
  return out;
}
std::string str(const std::set<int>& s) {
  std::string out;
  for (int fd : s) out += " " + std::to_string(fd);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  std::string data(3000, '\0');
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<char>(zdtm_mix(seed, i));
  int p[2];
  if (pipe2(p, O_NONBLOCK)) fail("pipe");
  place(p[0], kPipeR);
  place(p[1], kPipeW);
  if (write(kPipeW, data.data(), data.size()) != 3000) fail("pipe write");
  if (mkfifo("fifo", 0600)) fail("mkfifo");
  place(open("fifo", O_RDONLY | O_NONBLOCK), kFifoR);
  place(open("fifo", O_WRONLY), kFifoW);
  if (write(kFifoW, "fifo data", 9) != 9) fail("fifo write");
  place(eventfd(5, EFD_NONBLOCK), kEvent);
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  place(signalfd(-1, &usr1, SFD_NONBLOCK), kSignal);
  place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), kTimer);
  itimerspec its = {{0, 100000000}, {0, 100000000}};
  timerfd_settime(kTimer, 0, &its, nullptr);
  mkdir("dir", 0755);
  place(inotify_init1(IN_NONBLOCK), kInotify);
  if (inotify_add_watch(kInotify, "dir", IN_CREATE) != 1) fail("inotify_add_watch");
  place(memfd_create("all", 0), kMemfd);
  if (pwrite(kMemfd, data.data(), 3000, 4096) != 3000) fail("memfd write");
  place(open("ghost", O_RDWR | O_CREAT, 0600), kGhost);
  if (write(kGhost, "ghost data", 10) != 10 || unlink("ghost")) fail("ghost");
  place(epoll_create1(0), kEpoll);
  add(kPipeR, EPOLLIN);
  add(kEvent, EPOLLIN);
  add(kSignal, EPOLLIN);
  add(kTimer, EPOLLIN);
  add(kInotify, EPOLLIN);

  test_ready();
  test_wait();

  // Ready now: the pipe and the eventfd; the timer within 200 ms.
  std::set<int> r = ready(0);
  if (!r.count(kPipeR) || !r.count(kEvent) || r.count(kSignal) || r.count(kInotify))
    fail("epoll reports {%s}, want the pipe and the eventfd (and maybe the timer)", str(r).c_str());
  pollfd pt = {kTimer, POLLIN, 0};
  if (!r.count(kTimer) && (poll(&pt, 1, 300) != 1 || !ready(0).count(kTimer))) fail("the timer never fires");
  std::string got(4000, '\0');
  if (read(kPipeR, &got[0], got.size()) != 3000 || got.compare(0, 3000, data) != 0) fail("pipe data");
  char buf[64];
  if (read(kFifoR, buf, sizeof(buf)) != 9 || memcmp(buf, "fifo data", 9) != 0) fail("FIFO data");
  uint64_t v;
  if (read(kEvent, &v, 8) != 8 || v != 5) fail("eventfd counter");
  uint64_t ticks = 0;
  if (read(kTimer, &ticks, 8) != 8 || ticks < 1) fail("timer ticks");
  raise(SIGUSR1);
  std::string name = "new-" + std::to_string(zdtm_seed() % 1000000007);  // not made by a previous run
  close(open(("dir/" + name).c_str(), O_CREAT | O_WRONLY, 0644));
  r = ready(0);
  if (!r.count(kSignal) || !r.count(kInotify) || r.count(kPipeR) || r.count(kEvent))
    fail("epoll reports {%s}, want the signalfd and the inotify", str(r).c_str());
  signalfd_siginfo si;
  if (read(kSignal, &si, sizeof(si)) != sizeof(si) || si.ssi_signo != SIGUSR1) fail("signalfd");
  alignas(inotify_event) char ib[256];
  auto* ie = reinterpret_cast<inotify_event*>(ib);
  if (read(kInotify, ib, sizeof(ib)) <= 0 || ie->wd != 1 || ie->mask != IN_CREATE || ie->name != name)
    fail("inotify event");
  if (pread(kMemfd, &got[0], 3000, 4096) != 3000 || got.compare(0, 3000, data) != 0) fail("memfd data");
  if (pread(kGhost, buf, 10, 0) != 10 || memcmp(buf, "ghost data", 10) != 0) fail("deleted file data");
  struct stat st;
  if (fstat(kGhost, &st) || st.st_nlink != 0 || access("ghost", F_OK) == 0) fail("deleted file came back");
  pass();
}
