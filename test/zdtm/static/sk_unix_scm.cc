// sk_unix_scm: files in flight (SCM_RIGHTS) in a unix socket queue.
//   s0/s1  a seqpacket socketpair; s1's queue holds, in order:
//          "first"  no files
//          "pipe"   the read end of pipe p, whose write end the test keeps
//          "file"   regular file f (offset 37), which the test keeps too
//          "only"   regular file g (offset 11) and an eventfd (count 42),
//                   both closed by the test: only the message holds them
//          "sock"   the test's own socket q0 of socketpair q0/q1
//          "last"   no files
//   t0/t1  a stream socketpair: "abc" with a memfd (holding "memfd data",
//          closed by the test), then "def" without files
// After restore: each message with its data and exactly its files; the
// pipe carries what is written to the kept write end; f's offset is shared
// with the test's own fd (one open file); g and the eventfd kept their
// offset, contents and count; q0 in flight is the test's q0; the stream
// gives "abc" with the memfd, then "def" alone.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <vector>

#include "sk_unix.h"

namespace {

// The next packet of fd and the files that came with it.
std::string recv_with_fds(int fd, std::vector<int>* fds, const char* what) {
  static char buf[1 << 16];
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)];
  iovec iov = {buf, sizeof(buf)};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof(ctl);
  ssize_t r = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (r < 0) fail("%s: recvmsg: %s", what, strerror(errno));
  if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) fail("%s: message or files cut off", what);
  fds->clear();
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      fail("%s: unexpected control message %d/%d", what, c->cmsg_level, c->cmsg_type);
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int f;
      memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->push_back(f);
    }
  }
  return std::string(buf, size_t(r));
}

void send_with_fds(int fd, const std::string& data, const std::vector<int>& fds, const char* what) {
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 8)] = {};
  iovec iov = {const_cast<char*>(data.data()), data.size()};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (!fds.empty()) {
    m.msg_control = ctl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (sendmsg(fd, &m, MSG_NOSIGNAL) != ssize_t(data.size()))
    fail("%s: sendmsg: %s", what, strerror(errno));
}

int make_file(const char* name, const std::string& data, off_t pos) {
  int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail("open %s: %s", name, strerror(errno));
  if (write(fd, data.data(), data.size()) != ssize_t(data.size()))
    fail("write %s: %s", name, strerror(errno));
  if (lseek(fd, pos, SEEK_SET) != pos) fail("lseek %s: %s", name, strerror(errno));
  return fd;
}

off_t pos_of(int fd) { return lseek(fd, 0, SEEK_CUR); }

std::string read_at(int fd, size_t n, off_t at, const char* what) {
  std::string s(n, '\0');
  if (pread(fd, s.data(), n, at) != ssize_t(n)) fail("%s: pread: %s", what, strerror(errno));
  return s;
}

void expect(int fd, std::vector<int>* fds, const std::string& data, size_t nfds) {
  std::string got = recv_with_fds(fd, fds, data.c_str());
  if (got != data) fail("message \"%s\": got \"%s\"", data.c_str(), got.c_str());
  if (fds->size() != nfds)
    fail("message \"%s\": %zu files in flight, want %zu", data.c_str(), fds->size(), nfds);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  const std::string fdata = sk::pattern(seed, 100), gdata = sk::pattern(seed + 1, 64);

  int s[2], q[2], p[2];
  sk::pair(SOCK_SEQPACKET, s);
  sk::pair(SOCK_SEQPACKET, q);
  if (pipe2(p, O_CLOEXEC)) fail("pipe: %s", strerror(errno));
  int f = make_file("sk_unix_scm.f", fdata, 37);
  int g = make_file("sk_unix_scm.g", gdata, 11);
  int ev = eventfd(42, EFD_CLOEXEC);
  if (ev < 0) fail("eventfd: %s", strerror(errno));

  send_with_fds(s[0], "first", {}, "first");
  send_with_fds(s[0], "pipe", {p[0]}, "pipe");
  send_with_fds(s[0], "file", {f}, "file");
  send_with_fds(s[0], "only", {g, ev}, "only");
  send_with_fds(s[0], "sock", {q[0]}, "sock");
  send_with_fds(s[0], "last", {}, "last");
  close(p[0]);
  close(g);
  close(ev);
  int t[2];
  sk::pair(SOCK_STREAM, t);
  int mfd = memfd_create("sk_unix_scm", MFD_CLOEXEC);
  if (mfd < 0) fail("memfd_create: %s", strerror(errno));
  if (write(mfd, "memfd data", 10) != 10) fail("memfd write: %s", strerror(errno));
  send_with_fds(t[0], "abc", {mfd}, "abc");
  close(mfd);
  sk::send_all(t[0], "def", "def");

  test_ready();
  test_wait();

  std::vector<int> fds;
  expect(s[1], &fds, "first", 0);

  expect(s[1], &fds, "pipe", 1);
  int r = fds[0];
  if (write(p[1], "through", 7) != 7) fail("pipe write: %s", strerror(errno));
  char buf[16] = {};
  if (read(r, buf, sizeof(buf)) != 7 || memcmp(buf, "through", 7))
    fail("the pipe end in flight does not read what the kept write end wrote");

  expect(s[1], &fds, "file", 1);
  int f2 = fds[0];
  if (pos_of(f2) != 37 || pos_of(f) != 37)
    fail("file: offsets %ld and %ld, want 37", long(pos_of(f2)), long(pos_of(f)));
  if (lseek(f, 50, SEEK_SET) != 50 || pos_of(f2) != 50)
    fail("file in flight does not share its offset with the kept fd (one open file)");
  if (read_at(f2, fdata.size(), 0, "file") != fdata) fail("file: wrong contents");

  expect(s[1], &fds, "only", 2);
  if (pos_of(fds[0]) != 11) fail("only: offset %ld, want 11", long(pos_of(fds[0])));
  if (read_at(fds[0], gdata.size(), 0, "only") != gdata) fail("only: wrong contents");
  uint64_t count = 0;
  if (read(fds[1], &count, 8) != 8 || count != 42)
    fail("only: eventfd count %llu, want 42", (unsigned long long)count);

  expect(s[1], &fds, "sock", 1);
  struct stat st;
  if (fstat(fds[0], &st) || !S_ISSOCK(st.st_mode)) fail("sock: not a socket");
  struct stat q0st;
  if (fstat(q[0], &q0st) || q0st.st_ino != st.st_ino) fail("sock: the socket in flight is not q0");
  sk::send_msg(fds[0], "via", "sock");
  if (sk::recv_msg(q[1], "q1") != "via") fail("sock: the socket in flight is not q0's peer's");
  sk::send_msg(q[1], "back", "q1");
  if (sk::recv_msg(q[0], "q0") != "back") fail("q0 no longer carries packets");

  expect(s[1], &fds, "last", 0);

  // A stream read stops after the bytes that carry files.
  expect(t[1], &fds, "abc", 1);
  if (read_at(fds[0], 10, 0, "memfd") != "memfd data") fail("memfd: wrong contents");
  if (pos_of(fds[0]) != 10) fail("memfd: offset %ld, want 10", long(pos_of(fds[0])));
  expect(t[1], &fds, "def", 0);
  sk::expect_eagain(t[1], "t1");
  sk::expect_eagain(s[1], "s1");
  sk::send_msg(s[0], "again", "s0");
  if (sk::recv_msg(s[1], "s1") != "again") fail("s0/s1 no longer carry packets");
  pass();  // the files stay in the workdir: leave-running restores after this check
}
