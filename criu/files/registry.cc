#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/io.h"
#include "criu/files/file_types.h"
#include "criu/files/inet_sk.h"  // kInetSkHandler
#include "criu/files/sk_common.h"  // SockProtoName
#include "criu/files/tty.h"  // kPtyHandler

namespace ckpt::files {
namespace {

// Order matters where matches overlap: POSIX message queues, memfds and
// unlinked files are regular files too, so they come before kRegFileHandler
// (and a queue, told by its filesystem, before the kinds told by their link:
// a queue may be named "memfd:x", or be unlinked). A file named by
// --external comes first: the key decides (ext_file.cc).
const FileHandler* const kHandlers[] = {&kExtFileHandler,
                                        &kMqueueHandler,  &kMemfdHandler,   &kGhostFileHandler,
                                        &kRegFileHandler,
                                        &kCttyHandler,  // /dev/tty, before the chr/tty kinds
                                        &kChrDevHandler,  &kTtyHandler,       &kPipeHandler,
                                        &kFifoHandler,    &kEventfdHandler,   &kSignalfdHandler,
                                        &kTimerfdHandler, &kEpollHandler,     &kInotifyHandler,
                                        // pty ends of the tree and terminals without --shell-job
                                        &kPtyHandler,
                                        &kUnixSkHandler,  // unix_sk.h
                                        &kInetSkHandler,  // inet_sk.h
                                        &kNetlinkSkHandler, &kPacketSkHandler,
                                        &kPidfdHandler, &kFanotifyHandler};

// A human name for an fd no handler takes, from its /proc link.
std::string KindName(const FdContext& c) {
  const std::string& l = c.link;
  if (l.rfind("socket:", 0) == 0) {
    // The kernel's protocol name: "socket (SCTP)", "socket (BLUETOOTH)".
    std::string p = SockProtoName(c.pid, c.fd);
    return p.empty() ? "socket" : "socket (" + p + ")";
  }
  if (l.rfind("pipe:", 0) == 0) return "pipe";
  if (l.rfind("anon_inode:", 0) == 0) {
    std::string k = l.substr(11);
    if (!k.empty() && k.front() == '[') k = k.substr(1, k.size() - 2);
    return k;  // io_uring, eventfd, eventpoll, signalfd, timerfd, inotify, ...
  }
  if (S_ISFIFO(c.st.st_mode)) return "fifo " + l;
  if (S_ISSOCK(c.st.st_mode)) return "socket";
  if (S_ISCHR(c.st.st_mode))
    return "character device " + l + " (" + std::to_string(major(c.st.st_rdev)) + ":" +
           std::to_string(minor(c.st.st_rdev)) + ")";
  if (S_ISBLK(c.st.st_mode)) return "block device " + l;
  return "file " + l;
}

}  // namespace

std::string Where(const FdContext& c) {
  return "pid " + std::to_string(c.pid) + " fd " + std::to_string(c.fd);
}

Result<FdContext> InspectFd(pid_t pid, int fd, const FdOptions& o) {
  FdContext c{pid, fd, {}, {}, {}, o.shell_job, {}, o.ext_unix_sk, o.tcp_established,
              o.skip_in_flight};
  c.externals = o.externals;
  c.orphan_pts_master = o.orphan_pts_master;
  std::string p = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  TRY_ASSIGN(c.link, io::ReadLink(p));
  if (stat(p.c_str(), &c.st) < 0) {
    // Some links (e.g. anon inodes) stat fine; a vanished file doesn't.
    return Error::Errno("pid " + std::to_string(pid) + " fd " + std::to_string(fd) + ": stat");
  }
  TRY_ASSIGN(c.fdinfo,
             io::ReadFile("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd)));
  TRY_ASSIGN(c.info, proc::ParseFdInfo(c.fdinfo), Where(c));
  return c;
}

Result<const FileHandler*> Classify(const FdContext& c) {
  for (const FileHandler* h : kHandlers)
    if (h->match(c)) return h;
  std::string where = Where(c);
  if (S_ISCHR(c.st.st_mode)) {
    unsigned maj = major(c.st.st_rdev);
    if (maj == 136 || maj == 4 || maj == 5)
      return Error(where + ": terminal " + c.link +
                   " is outside the dumped tree (use --shell-job to dump a shell job)");
  }
  return Error(where + ": " + KindName(c) + " is not supported");
}

const FileHandler* HandlerFor(pb::FileKind kind) {
  for (const FileHandler* h : kHandlers)
    if (h->kind == kind) return h;
  return nullptr;
}

}  // namespace ckpt::files
