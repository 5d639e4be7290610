#include "criu/files/orphan_pty.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "criu/action_hooks.h"
#include "criu/options.h"

namespace ckpt::files {

Result<OrphanPtys> OrphanPtys::Create(int base) {
  int sk[2];
  // Datagrams: each master is one message, queued until ckpt reads it.
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sk) < 0)
    return Error::Errno("socketpair for orphan pty masters");
  OrphanPtys r;
  r.ours_.reset(sk[0]);
  UniqueFd low(sk[1]);
  r.task_.reset(fcntl(low.get(), F_DUPFD_CLOEXEC, base));
  if (!r.task_) return Error::Errno("moving the orphan pty socket above " + std::to_string(base));
  return r;
}

Status SendOrphanMaster(int sk, int master) {
  char byte = 'm';
  iovec iov = {&byte, 1};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = sizeof(cbuf);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &master, sizeof(int));
  if (sendmsg(sk, &m, MSG_DONTWAIT) != 1) return Error::Errno("sending the new pty master to ckpt");
  return Ok();
}

Status OrphanPtys::HandOut(const Options& o, pid_t root) {
  if (!ours_) return Ok();
  for (;;) {
    char byte;
    iovec iov = {&byte, 1};
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
    msghdr m = {};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = cbuf;
    m.msg_controllen = sizeof(cbuf);
    ssize_t n = recvmsg(ours_.get(), &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return Error::Errno("receiving orphan pty masters");
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    if (n != 1 || !c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
      return Error("orphan pty masters: a message without a master");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    masters_.emplace_back(fd);
    LOG_INFO("orphan-pts-master: a new pty master for the tree of pid " + std::to_string(root));
    TRY(RunAction(o, ActionEvent{Action::kOrphanPtsMaster, root, fd}));
  }
  if (!masters_.empty() && !o.notify)
    LOG_WARN(
        "no RPC client takes the new pty master(s): ckpt holds them until it exits, then "
        "the restored terminal hangs up");
  return Ok();
}

}  // namespace ckpt::files
