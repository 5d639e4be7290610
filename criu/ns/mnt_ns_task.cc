#include "criu/ns/mnt_ns_task.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <set>

#include "criu/ns/mnt_ns.h"
#include "criu/ns/mountinfo.h"

namespace ckpt::ns {
namespace {

constexpr size_t kMaxMsg = 65536;

// Sends one message, with `fd` attached if >= 0.
bool SendMsg(int sock, const std::string& s, int fd) {
  struct iovec iov = {const_cast<char*>(s.data()), s.size()};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  return sendmsg(sock, &mh, MSG_NOSIGNAL) == ssize_t(s.size());
}

// Receives one message and the fd that came with it (-1 if none). EOF: "".
Result<std::pair<std::string, UniqueFd>> RecvMsg(int sock) {
  std::string buf(kMaxMsg, '\0');
  struct iovec iov = {buf.data(), buf.size()};
  struct msghdr mh = {};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  mh.msg_control = cbuf;
  mh.msg_controllen = sizeof(cbuf);
  ssize_t n;
  while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
  }
  if (n < 0) return Error::Errno("reading from the mount namespace helper");
  UniqueFd fd;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int f;
      memcpy(&f, CMSG_DATA(c), sizeof(int));
      fd.reset(f);
    }
  buf.resize(size_t(n));
  return std::make_pair(std::move(buf), std::move(fd));
}

// Runs `work(sock)` in a child inside pid's mount namespace and root, and
// `collect(sock)` here; the child's messages start with 'o' (ok) or 'e'
// (an error message, which ends the exchange).
Status InTaskMountNs(pid_t pid, const std::function<void(int)>& work,
                     const std::function<Status(int)>& collect) {
  std::string p = "/proc/" + std::to_string(pid);
  UniqueFd root(open((p + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return Error::Errno("open " + p + "/root");
  UniqueFd mntns(open((p + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!mntns) return Error::Errno("open " + p + "/ns/mnt");
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return Error::Errno("socketpair");
  UniqueFd ours(sv[0]), theirs(sv[1]);
  pid_t child = fork();
  if (child < 0) return Error::Errno("fork");
  if (child == 0) {
    ours.reset();
    if (setns(mntns.get(), CLONE_NEWNS) < 0 || fchdir(root.get()) < 0 || chroot(".") < 0) {
      SendMsg(theirs.get(),
              "ejoining the mount namespace and root of pid " + std::to_string(pid) + ": " +
                  strerror(errno),
              -1);
      _exit(1);
    }
    work(theirs.get());
    _exit(0);
  }
  theirs.reset();
  Status s = collect(ours.get());
  ours.reset();  // a child still writing gets EPIPE
  int st;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  return s;
}

}  // namespace

Result<std::vector<UniqueFd>> CloneMountsOf(pid_t pid, const std::vector<std::string>& mountpoints) {
  std::vector<UniqueFd> out;
  auto work = [&](int sock) {
    for (const std::string& mp : mountpoints) {
      std::string rel = mp == "/" ? "" : mp.substr(1);
      int fd = open_tree(AT_FDCWD, mp == "/" ? "." : rel.c_str(),
                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW);
      if (fd < 0) {
        SendMsg(sock, "e" + mp + ": cloning the mount (open_tree): " + strerror(errno), -1);
        return;
      }
      if (!SendMsg(sock, "o", fd)) return;
      close(fd);
    }
  };
  auto collect = [&](int sock) -> Status {
    for (const std::string& mp : mountpoints) {
      TRY_ASSIGN(auto m, RecvMsg(sock));
      if (m.first.empty()) return Error(mp + ": the mount namespace helper died");
      if (m.first[0] == 'e') return Error(m.first.substr(1));
      if (!m.second) return Error(mp + ": the mount namespace helper sent no fd");
      out.push_back(std::move(m.second));
    }
    return Ok();
  };
  TRY(InTaskMountNs(pid, work, collect));
  return out;
}

namespace {

// The paths of our own fds `fds` (named `links` in errors) as task pid
// sees them, and whether their mounts are of its namespace.
Result<std::vector<TaskPath>> PathsInTaskNs(pid_t pid, const std::vector<int>& fds,
                                            const std::vector<std::string>& links) {
  TRY_ASSIGN(std::vector<MountInfo> mounts, ReadMountInfo(pid));
  std::set<int> ids;
  for (const MountInfo& m : mounts) ids.insert(int(m.id));
  UniqueFd proc(open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc) return Error::Errno("open /proc");
  std::vector<TaskPath> out;
  auto work = [&](int sock) {
    for (size_t i = 0; i < links.size(); i++) {
      char buf[PATH_MAX + 1];
      std::string self = "self/fd/" + std::to_string(fds[i]);
      ssize_t n = readlinkat(proc.get(), self.c_str(), buf, sizeof(buf) - 1);
      if (n < 0) {
        SendMsg(sock, "e" + links[i] + ": readlink: " + strerror(errno), -1);
        return;
      }
      if (!SendMsg(sock, "o" + std::string(buf, size_t(n)), -1)) return;
    }
  };
  auto collect = [&](int sock) -> Status {
    for (size_t i = 0; i < links.size(); i++) {
      TRY_ASSIGN(auto m, RecvMsg(sock));
      if (m.first.empty()) return Error(links[i] + ": the mount namespace helper died");
      if (m.first[0] == 'e') return Error(m.first.substr(1));
      TaskPath tp;
      tp.path = m.first.substr(1);
      struct statx sx;
      if (statx(fds[i], "", AT_EMPTY_PATH, STATX_MNT_ID, &sx) < 0)
        return Error::Errno(links[i] + ": statx");
      if (sx.stx_mask & STATX_MNT_ID) tp.mnt_id = int(sx.stx_mnt_id);
      tp.in_ns = ids.count(tp.mnt_id) > 0;
      out.push_back(std::move(tp));
    }
    return Ok();
  };
  TRY(InTaskMountNs(pid, work, collect), "pid " + std::to_string(pid));
  return out;
}

}  // namespace

Result<std::vector<TaskPath>> TaskPaths(pid_t pid, const std::vector<std::string>& links) {
  // Opened here (O_PATH: no open of the file itself, a FIFO or device is
  // not touched), before the child changes its root.
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  for (const std::string& l : links) {
    std::string p = "/proc/" + std::to_string(pid) + "/" + l;
    UniqueFd fd(open(p.c_str(), O_PATH | O_CLOEXEC));
    if (!fd) return Error::Errno("open " + p);
    raw.push_back(fd.get());
    fds.push_back(std::move(fd));
  }
  return PathsInTaskNs(pid, raw, links);
}

Result<TaskPath> HeldFilePath(pid_t pid, int fd, const std::string& what) {
  TRY_ASSIGN(std::vector<TaskPath> p, PathsInTaskNs(pid, {fd}, {what}));
  if (p.size() != 1)
    return Error(what + ": its path in the mount namespace of pid " + std::to_string(pid) +
                 " was not found");
  return p[0];
}

}  // namespace ckpt::ns
