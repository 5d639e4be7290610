// epoll: an epoll (fd 80) watching a ready eventfd (EPOLLIN, 64-bit data),
// a pipe's read end (EPOLLIN | EPOLLET) and write end (EPOLLOUT), and an
// EPOLLONESHOT eventfd; a second epoll at a lower fd (79) watching the
// first. Verifies the interest lists (fdinfo), which events are reported
// with which data, edge and one-shot behaviour, and that EPOLL_CTL_MOD/DEL
// still find the targets by their fd numbers.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <string>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("create: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
void add(int ep, int fd, uint32_t events, uint64_t data) {
  epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = data;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) fail("epoll add %d: %s", fd, strerror(errno));
}
// Ready items: data -> events.
std::map<uint64_t, uint32_t> ready(int ep) {
  epoll_event evs[16];
  int n = epoll_wait(ep, evs, 16, 0);
  if (n < 0) fail("epoll_wait: %s", strerror(errno));
  std::map<uint64_t, uint32_t> out;
  for (int i = 0; i < n; i++) out[evs[i].data.u64] = evs[i].events;
  return out;
}
// The "tfd: events: data:" part of each interest line, without pos/ino.
std::set<std::string> interest(int ep) {
  std::string info = zdtm_read_file(("/proc/self/fdinfo/" + std::to_string(ep)).c_str());
  std::set<std::string> out;
  size_t p = 0;
  while ((p = info.find("tfd:", p)) != std::string::npos) {
    size_t e = info.find("pos:", p);
    out.insert(info.substr(p, e - p));
    p = e;
  }
  return out;
}
void post(int efd) {
  uint64_t one = 1;
  if (write(efd, &one, 8) != 8) fail("eventfd write");
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  constexpr uint64_t kEfd = 0x1111222233334444ull, kPipeR = 0xdead, kPipeW = 7, kOneShot = 9, kInner = 42;
  place(epoll_create1(0), 80);
  place(eventfd(1, EFD_NONBLOCK), 81);
  int p[2];
  if (pipe2(p, O_NONBLOCK)) fail("pipe");
  place(p[0], 82);
  place(p[1], 83);
  place(eventfd(0, EFD_NONBLOCK), 85);
  add(80, 81, EPOLLIN, kEfd);
  add(80, 82, EPOLLIN | EPOLLET, kPipeR);
  add(80, 83, EPOLLOUT, kPipeW);
  add(80, 85, EPOLLIN | EPOLLONESHOT, kOneShot);
  place(epoll_create1(0), 79);
  fcntl(79, F_SETFD, FD_CLOEXEC);
  add(79, 80, EPOLLIN, kInner);
  const std::set<std::string> before80 = interest(80), before79 = interest(79);

  test_ready();
  test_wait();

  if (interest(80) != before80 || interest(79) != before79) {
    std::string a, b;
    for (const auto& s : interest(80)) a += "\n  " + s;
    for (const auto& s : before80) b += "\n  " + s;
    fail("interest list of fd 80 now:%s\nwant:%s", a.c_str(), b.c_str());
  }
  if (fcntl(79, F_GETFD) != FD_CLOEXEC) fail("fd 79 lost FD_CLOEXEC");
  auto r = ready(79);
  if (r.size() != 1 || !r.count(kInner)) fail("outer epoll does not report the inner one");
  r = ready(80);
  if (r.size() != 2 || r[kEfd] != EPOLLIN || r[kPipeW] != EPOLLOUT) fail("fd 80 reports %zu items, want eventfd and pipe writer", r.size());
  // Edge-triggered pipe: one report per write.
  if (write(83, "x", 1) != 1) fail("pipe write");
  r = ready(80);
  if (!r.count(kPipeR)) fail("no EPOLLIN for the pipe after a write");
  if (ready(80).count(kPipeR)) fail("EPOLLET pipe reported twice for one write");
  // One-shot: reported once, then disabled until re-armed with MOD.
  post(85);
  if (!ready(80).count(kOneShot)) fail("one-shot eventfd not reported");
  post(85);
  if (ready(80).count(kOneShot)) fail("one-shot eventfd reported twice");
  // MOD and DEL find the targets by fd number.
  epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = 10;
  if (epoll_ctl(80, EPOLL_CTL_MOD, 85, &ev)) fail("EPOLL_CTL_MOD fd 85: %s", strerror(errno));
  if (!ready(80).count(10)) fail("re-armed one-shot not reported");
  if (epoll_ctl(80, EPOLL_CTL_DEL, 83, nullptr)) fail("EPOLL_CTL_DEL fd 83: %s", strerror(errno));
  uint64_t v;
  if (read(81, &v, 8) != 8 || v != 1) fail("eventfd counter lost");
  r = ready(80);
  if (r.count(kEfd) || r.count(kPipeW)) fail("deleted or drained targets still reported");
  pass();
}
