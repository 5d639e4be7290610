// scm_unsupported: a helper for zdtm-errors, not a round-trip test. Holds
// a seqpacket socketpair whose queue holds a message carrying a timerfd in
// flight (a kind ckpt does not dump in flight), and closed its own copy.
// With --peer-in-flight the file in flight is instead one end of another
// socketpair, whose other end the helper keeps. A refused dump must leave
// it untouched: on SIGTERM it checks that the message is still queued with
// its file (the timerfd still armed as it was; the socket still the kept
// one's peer).
// With --outside-ns (started in mount and pid namespaces of its own) the
// file in flight is a regular file "work/out.txt" on a tmpfs mounted
// nowhere (fsmount, never attached): on no mount of the tree's namespace,
// yet readlink shows "/work/out.txt", the path of the helper's own output
// file there. Refused; the file in flight still reads "outside".
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool peer = argc > 1 && strcmp(argv[1], "--peer-in-flight") == 0;
  bool outside = argc > 1 && strcmp(argv[1], "--outside-ns") == 0;
  int sv[2], z[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, z)) fail("socketpair: %s", strerror(errno));
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) fail("socketpair: %s", strerror(errno));
  int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  if (t < 0) fail("timerfd_create: %s", strerror(errno));
  itimerspec its = {};
  its.it_value.tv_sec = 100000;
  if (timerfd_settime(t, 0, &its, nullptr)) fail("timerfd_settime: %s", strerror(errno));
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))] = {};
  char data[] = "timer";
  iovec iov = {data, 5};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof(ctl);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int f = -1;
  if (outside) {
    int fs = int(syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC));
    if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) < 0)
      fail("fsopen tmpfs: %s", strerror(errno));
    int mnt = int(syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0));
    if (mnt < 0) fail("fsmount: %s", strerror(errno));
    if (mkdirat(mnt, "work", 0700)) fail("mkdir: %s", strerror(errno));
    f = openat(mnt, "work/out.txt", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0 || write(f, "outside", 7) != 7) fail("file on the detached tmpfs");
    close(mnt);
    close(fs);
  }
  memcpy(CMSG_DATA(c), peer ? &z[0] : outside ? &f : &t, sizeof(int));
  if (sendmsg(sv[0], &m, 0) != 5) fail("sendmsg: %s", strerror(errno));
  close(t);
  close(z[0]);
  if (f >= 0) close(f);

  test_ready();
  test_wait();

  char buf[16] = {};
  alignas(cmsghdr) char rctl[CMSG_SPACE(sizeof(int) * 4)];
  iovec riov = {buf, sizeof(buf)};
  msghdr r = {};
  r.msg_iov = &riov;
  r.msg_iovlen = 1;
  r.msg_control = rctl;
  r.msg_controllen = sizeof(rctl);
  ssize_t n = recvmsg(sv[1], &r, MSG_DONTWAIT);
  if (n != 5 || memcmp(buf, "timer", 5)) fail("the queued message is gone or changed");
  cmsghdr* rc = CMSG_FIRSTHDR(&r);
  if (!rc || rc->cmsg_type != SCM_RIGHTS || rc->cmsg_len != CMSG_LEN(sizeof(int)))
    fail("the message no longer carries exactly one file");
  int got;
  memcpy(&got, CMSG_DATA(rc), sizeof(int));
  if (outside) {
    char text[8] = {};
    if (pread(got, text, 7, 0) != 7 || strcmp(text, "outside") != 0)
      fail("the file in flight no longer reads \"outside\"");
  } else if (peer) {
    if (send(got, "z", 1, 0) != 1 || recv(z[1], buf, 1, MSG_DONTWAIT) != 1 || buf[0] != 'z')
      fail("the socket in flight is no longer the kept socket's peer");
  } else {
    itimerspec cur;
    if (timerfd_gettime(got, &cur)) fail("the file in flight is no timerfd: %s", strerror(errno));
    if (cur.it_value.tv_sec < 90000) fail("the timerfd in flight was disarmed or changed");
  }
  char more;
  if (recv(sv[1], &more, 1, MSG_DONTWAIT) != -1) fail("more was queued than the test sent");
  pass();
}
