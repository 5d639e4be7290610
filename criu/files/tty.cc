// Pseudo-terminal pairs held inside the dumped tree (FILE_PTY).
//
// Dump. Each end is read through a copy of the task's own open file
// (pidfd_getfd: opening /proc/PID/fd/N of /dev/ptmx would make a new pair,
// and of a locked slave would fail). The pair is recognised by its slave:
// devpts instance (st_dev) and device number (the TIOCGPTN index). Both
// ends store the pair's termios (tcgetattr works on either end and gives
// the slave's) and window size; the master also its lock (TIOCGPTLCK) and
// packet mode (TIOCGPKT); each end its TIOCEXCL. If a task of the tree
// leads a session whose controlling terminal is the pair's slave
// (/proc/PID/stat tty_nr), the entry records that session and its
// foreground process group (tpgid).
//
// Output the slave wrote that the master has not read yet (a program's
// stdout on a pty its parent reads: Open MPI's ranks and mpirun) is saved:
// ckpt reads it out through its copy of the master and writes it back at
// once through the slave with output processing (OPOST) off, so the queue
// is as it was (the tree is frozen: nobody else reads or writes the pair);
// restore queues it again the same way on the new pair. Not for a locked
// pair or a master in packet mode. Input the slave has not read cannot be
// saved: the line discipline holds partial canonical lines that no ioctl
// shows. Bytes lost that way (FIONREAD) are a warning in the dump log.
//
// Restore. The first entry of a pair opened (OpenFiles, in the root task)
// makes a new pair from /dev/ptmx (its index may differ), unlocks it, sets
// termios and window size. The master entry gets that master; each slave
// entry opens its own description of the new slave with TIOCGPTPEER
// (O_NOCTTY: nothing becomes a controlling terminal by accident), so the
// slave follows its own master whatever its number. The master's lock is
// put back in the master's in_task, once every slave is open. The slave
// node's owner, group and permissions (grantpt, chown, chmod) are saved
// and set on the new node. A slave whose master was closed (hung up: its
// /dev/pts node is gone, the link reads "(deleted)", its ioctls fail with
// EIO) needs no master in the tree: a new pair is made, the slave opened,
// and the master closed again once every file is open, which hangs it up.
//
// Controlling terminal: the session leader takes it with TIOCSCTTY and
// sets the foreground group with tcsetpgrp (SIGTTOU blocked). The kernel
// gives a controlling terminal only to the caller; the other processes of
// the session inherit it at fork. So the leader must take it before it
// creates the rest of its session: RestoreControllingTty is meant to be
// called by criu/restore_tree.cc right after setsid(). Without that, the
// leader's in_task takes it (if the leader holds an fd of the pair), and
// only the leader has it.
#include "criu/files/tty.h"

#include "criu/files/pid_view.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/deleted_node.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_context.h"
#include "criu/files/flock.h"
#include "criu/files/inherit_fd.h"  // TtyKey
#include "criu/files/orphan_pty.h"
#include "criu/ns/user_ns.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace ckpt::files {

bool IsPtyMaster(dev_t rdev) { return major(rdev) == 5 && minor(rdev) == 2; }
bool IsPtySlave(dev_t rdev) { return major(rdev) >= 136 && major(rdev) <= 143; }
bool IsTtyDevice(dev_t rdev) {
  unsigned ma = major(rdev);
  return IsPtySlave(rdev) || ma == 4 || (ma == 5 && minor(rdev) <= 2);
}

namespace {

unsigned PtsIndex(dev_t rdev) { return (major(rdev) - 136) * 256 + minor(rdev); }

// tty_nr of /proc/PID/stat: the kernel's new_encode_dev.
uint64_t EncodeDev(dev_t d) {
  uint64_t ma = major(d), mi = minor(d);
  return (mi & 0xff) | (ma << 8) | ((mi & ~0xffull) << 12);
}

// A copy of pid's fd: the same open file description.
Result<UniqueFd> GetFd(pid_t pid, int fd) {
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return Error::Errno("pidfd_open " + std::to_string(pid));
  int r = int(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  int e = errno;
  close(pidfd);
  if (r < 0) return Error::Errno("pidfd_getfd", e);
  return UniqueFd(r);
}

// The slave of a master we hold: without opening it (O_PATH), so a locked
// pair is fine.
Result<struct stat> SlaveOf(int master) {
  int s = ioctl(master, TIOCGPTPEER, O_PATH | O_CLOEXEC);
  if (s < 0) return Error::Errno("TIOCGPTPEER");
  struct stat st;
  int r = fstat(s, &st);
  int e = errno;
  close(s);
  if (r < 0) return Error::Errno("fstat pty slave", e);
  return st;
}

constexpr size_t kMaxQueued = 1 << 20;  // far above what a pty queues (64 KiB)

// Writes bytes into the pair of `master` as the slave's output, with the
// slave's output processing off meanwhile: they reach the master's queue
// unchanged.
Status QueueAsSlaveOutput(int master, const std::string& bytes) {
  UniqueFd slave(ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
  if (!slave) return Error::Errno("open the pty slave to queue its output");
  struct termios t, raw;
  if (tcgetattr(slave.get(), &t) < 0) return Error::Errno("tcgetattr");
  raw = t;
  raw.c_oflag &= ~OPOST;
  if (tcsetattr(slave.get(), TCSANOW, &raw) < 0) return Error::Errno("tcsetattr");
  size_t done = 0;
  int err = 0;
  for (int tries = 0; done < bytes.size() && tries < 1000; tries++) {
    ssize_t w = write(slave.get(), bytes.data() + done, bytes.size() - done);
    if (w > 0) {
      done += size_t(w);
    } else if (w < 0 && errno == EAGAIN) {  // the flip buffers drain into the master's queue
      pollfd p = {slave.get(), POLLOUT, 0};
      poll(&p, 1, 10);
    } else if (w < 0 && errno != EINTR) {
      err = errno;
      break;
    }
  }
  tcsetattr(slave.get(), TCSANOW, &t);
  if (done < bytes.size())
    return Error::Errno("queue " + std::to_string(bytes.size() - done) + " of " +
                            std::to_string(bytes.size()) + " bytes of pty output",
                        err ? err : EAGAIN);
  return Ok();
}

// The master's unread input (the slave's output), left queued as it was.
// poll() first pushes what is still in the pty's flip buffers into the
// queue, so nothing written earlier can land behind what is put back.
Result<std::string> PeekSlaveOutput(int master) {
  std::string out;
  char buf[4096];
  while (out.size() < kMaxQueued) {
    pollfd p = {master, POLLIN, 0};
    if (poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) break;
    ssize_t r = read(master, buf, sizeof(buf));
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) break;
    out.append(buf, size_t(r));
  }
  if (!out.empty()) TRY(QueueAsSlaveOutput(master, out), "putting back what was read");
  return out;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') out.push_back(pid_t(atoi(e->d_name)));
  closedir(d);
  return out;
}

std::vector<int> FdsOf(pid_t pid) {
  std::vector<int> out;
  std::string p = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(p.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') out.push_back(atoi(e->d_name));
  closedir(d);
  return out;
}

bool StatFd(pid_t pid, int fd, struct stat* st) {
  std::string p = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
  return stat(p.c_str(), st) == 0;
}

struct FdRef {
  pid_t pid;
  int fd;
};

// The tasks of the dumped tree, sorted (a scan of /proc; see SeizedByUs).
std::vector<pid_t> TreePids() {
  std::vector<pid_t> out;
  for (pid_t pid : AllPids())
    if (SeizedByUs(pid)) out.push_back(pid);
  std::sort(out.begin(), out.end());
  return out;
}

// The scans below look at every fd of many processes. A dump asks the same
// question once per fd of a pair, in every task holding it: an answer is
// kept while the tree (the set of tasks we trace) is the same, for a few
// seconds (a long-lived ckpt may dump the same tree again later).
struct ScanKey {
  std::vector<pid_t> tree;
  dev_t dev, rdev;
  bool operator<(const ScanKey& o) const {
    return std::tie(tree, dev, rdev) < std::tie(o.tree, o.dev, o.rdev);
  }
};
class ScanCache {
 public:
  const std::optional<FdRef>* Find(const ScanKey& k) {
    auto it = map_.find(k);
    if (it == map_.end()) return nullptr;
    if (Now() - it->second.first > kKeepSec) {
      map_.erase(it);
      return nullptr;
    }
    return &it->second.second;
  }
  void Put(const ScanKey& k, std::optional<FdRef> v) { map_[k] = {Now(), v}; }

 private:
  static constexpr double kKeepSec = 5;
  static double Now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
  }
  std::map<ScanKey, std::pair<double, std::optional<FdRef>>> map_;
};

// A master of the slave (dev, rdev) held by a task of the tree.
std::optional<FdRef> FindTreeMaster(dev_t dev, dev_t rdev) {
  static ScanCache cache;
  ScanKey key{TreePids(), dev, rdev};
  if (auto hit = cache.Find(key)) return *hit;
  std::optional<FdRef> found;
  for (pid_t pid : key.tree) {
    for (int fd : FdsOf(pid)) {
      struct stat st;
      if (!StatFd(pid, fd, &st) || !S_ISCHR(st.st_mode) || !IsPtyMaster(st.st_rdev)) continue;
      auto info = io::ReadFile("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
      if (!info.ok()) continue;
      auto idx = FdinfoValue(*info, "tty-index");
      if (!idx || strtoul(idx->c_str(), nullptr, 10) != PtsIndex(rdev)) continue;
      // Same index; make sure it is the same devpts instance too.
      auto copy = GetFd(pid, fd);
      if (copy.ok()) {
        auto slave = SlaveOf(copy->get());
        if (slave.ok() && (slave->st_dev != dev || slave->st_rdev != rdev)) continue;
      }
      found = FdRef{pid, fd};
      break;
    }
    if (found) break;
  }
  cache.Put(key, found);
  return found;
}

// An fd of the slave (dev, rdev) held by a process outside the tree.
std::optional<FdRef> FindOutsideSlave(dev_t dev, dev_t rdev) {
  static ScanCache cache;
  ScanKey key{TreePids(), dev, rdev};
  if (auto hit = cache.Find(key)) return *hit;
  std::optional<FdRef> found;
  pid_t self = getpid();
  for (pid_t pid : AllPids()) {
    if (pid == self || std::binary_search(key.tree.begin(), key.tree.end(), pid)) continue;
    for (int fd : FdsOf(pid)) {
      struct stat st;
      if (StatFd(pid, fd, &st) && S_ISCHR(st.st_mode) && st.st_rdev == rdev && st.st_dev == dev) {
        found = FdRef{pid, fd};
        break;
      }
    }
    if (found) break;
  }
  cache.Put(key, found);
  return found;
}

// The fields of /proc/PID/stat after the command name.
struct TaskTty {
  pid_t sid = 0, pgid = 0, tpgid = -1;
  uint64_t tty_nr = 0;
};
std::optional<TaskTty> ReadTaskTty(pid_t pid) {
  auto text = io::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text.ok()) return std::nullopt;
  size_t p = text->rfind(')');
  if (p == std::string::npos) return std::nullopt;
  char state;
  int ppid, pgrp, sid, tpgid;
  unsigned long long tty;
  if (sscanf(text->c_str() + p + 1, " %c %d %d %d %llu %d", &state, &ppid, &pgrp, &sid, &tty,
             &tpgid) != 6)
    return std::nullopt;
  return TaskTty{sid, pgrp, tpgid, tty};
}

// The session of the tree whose controlling terminal is the slave rdev.
void FindSession(dev_t rdev, pb::PtyEntry* p) {
  uint64_t want = EncodeDev(rdev);
  for (pid_t pid : TreePids()) {
    auto t = ReadTaskTty(pid);
    if (!t || t->tty_nr != want || t->sid != pid) continue;
    p->set_ctty_sid(uint32_t(pid));
    if (t->tpgid > 0) p->set_fg_pgrp(uint32_t(t->tpgid));
    return;
  }
}

std::string SlavePath(dev_t rdev) { return "/dev/pts/" + std::to_string(PtsIndex(rdev)); }

Status ReadPairState(int fd, pb::PtyEntry* p) {
  struct termios t;
  if (tcgetattr(fd, &t) < 0) return Error::Errno("tcgetattr");
  p->set_iflag(t.c_iflag);
  p->set_oflag(t.c_oflag);
  p->set_cflag(t.c_cflag);
  p->set_lflag(t.c_lflag);
  p->set_line(t.c_line);
  p->set_cc(std::string(reinterpret_cast<const char*>(t.c_cc), NCCS));
  p->set_ispeed(uint32_t(cfgetispeed(&t)));
  p->set_ospeed(uint32_t(cfgetospeed(&t)));
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) < 0) return Error::Errno("TIOCGWINSZ");
  p->set_rows(ws.ws_row);
  p->set_cols(ws.ws_col);
  p->set_xpixel(ws.ws_xpixel);
  p->set_ypixel(ws.ws_ypixel);
  int excl = 0;
  if (ioctl(fd, TIOCGEXCL, &excl) == 0 && excl) p->set_exclusive(true);
  return Ok();
}

Status ApplyPairState(int fd, const pb::PtyEntry& p) {
  struct termios t;
  if (tcgetattr(fd, &t) < 0) return Error::Errno("tcgetattr");
  t.c_iflag = p.iflag();
  t.c_oflag = p.oflag();
  t.c_cflag = p.cflag();
  t.c_lflag = p.lflag();
  t.c_line = cc_t(p.line());
  memset(t.c_cc, 0, sizeof(t.c_cc));
  memcpy(t.c_cc, p.cc().data(), std::min(p.cc().size(), sizeof(t.c_cc)));
  cfsetispeed(&t, speed_t(p.ispeed()));
  cfsetospeed(&t, speed_t(p.ospeed()));
  if (tcsetattr(fd, TCSANOW, &t) < 0) return Error::Errno("tcsetattr");
  struct winsize ws = {uint16_t(p.rows()), uint16_t(p.cols()), uint16_t(p.xpixel()),
                       uint16_t(p.ypixel())};
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) return Error::Errno("TIOCSWINSZ");
  return Ok();
}

// A slave whose master was closed: devpts removed its node.
bool HungUp(const FdContext& c) { return IsPtySlave(c.st.st_rdev) && IsDeletedLink(c.link); }

bool Match(const FdContext& c) {
  if (!S_ISCHR(c.st.st_mode) || !IsTtyDevice(c.st.st_rdev)) return false;
  if (IsPtyMaster(c.st.st_rdev) || !c.shell_job || HungUp(c)) return true;
  // With --shell-job, terminals from outside are kTtyHandler's.
  return IsPtySlave(c.st.st_rdev) && PtySlaveInTree(c);
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  dev_t rdev = c.st.st_rdev;
  if (IsPtyMaster(rdev)) {
    TRY_ASSIGN(UniqueFd copy, GetFd(c.pid, c.fd), Where(c));
    TRY_ASSIGN(struct stat slave, SlaveOf(copy.get()), Where(c));
    if (auto out = FindOutsideSlave(slave.st_dev, slave.st_rdev))
      return Error(Where(c) + ": pty master of " + SlavePath(slave.st_rdev) +
                   " whose slave is open outside the dumped tree (pid " + std::to_string(out->pid) +
                   " fd " + std::to_string(out->fd) + ") is not supported");
    return Ok();
  }
  if (IsPtySlave(rdev) && PtySlaveInTree(c)) return Ok();
  if (HungUp(c)) return Ok();  // no master anywhere: made again hung up
  // A container's console: its master is the runtime's (orphan_pty.h).
  if (IsPtySlave(rdev) && c.orphan_pts_master) return Ok();
  if (major(rdev) == 5 && minor(rdev) == 0)
    return Error(Where(c) + ": " + c.link +
                 " (the controlling terminal, opened by that name) is not supported "
                 "(use --shell-job if it is the shell's terminal)");
  if (IsPtySlave(rdev))
    return Error(Where(c) + ": terminal " + c.link +
                 " is outside the dumped tree (use --shell-job); for a pty whose master stays "
                 "outside (a container's console): --orphan-pts-master or --external " +
                 TtyKey(c.st.st_rdev, c.st.st_dev));
  return Error(Where(c) + ": terminal " + c.link + " is outside the dumped tree (use --shell-job)");
}

Status Dump(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  TRY_ASSIGN(UniqueFd copy, GetFd(c.pid, c.fd));
  int fd = copy.get();
  pb::PtyEntry* p = e->mutable_pty();
  bool master = IsPtyMaster(c.st.st_rdev);
  struct stat slave = c.st;
  p->set_master(master);
  p->set_flags(c.info.flags);
  p->set_path(c.link);
  if (master) {
    unsigned n = 0;
    int locked = 0, pkt = 0;
    if (ioctl(fd, TIOCGPTN, &n) < 0) return Error::Errno("TIOCGPTN");
    TRY_ASSIGN(slave, SlaveOf(fd));
    if (ioctl(fd, TIOCGPTLCK, &locked) < 0) return Error::Errno("TIOCGPTLCK");
    if (ioctl(fd, TIOCGPKT, &pkt) < 0) return Error::Errno("TIOCGPKT");
    p->set_index(n);
    if (locked) p->set_locked(true);
    if (pkt) p->set_packet(true);
  } else if (HungUp(c)) {
    p->set_index(PtsIndex(slave.st_rdev));
    p->set_path(StripDeleted(c.link));
    p->set_hung_up(true);
  } else {
    p->set_index(PtsIndex(slave.st_rdev));
    if (!PtySlaveInTree(c)) {  // --orphan-pts-master (Check)
      p->set_orphan(true);
      p->set_rdev(c.st.st_rdev);
      p->set_dev(c.st.st_dev);
      LOG_INFO(Where(c) + ": " + c.link + " is a pty slave whose master is outside the tree: " +
               "restore makes a new pair (--orphan-pts-master) or takes --inherit-fd fd[N]:" +
               TtyKey(c.st.st_rdev, c.st.st_dev));
    }
  }
  p->set_slave_uid(slave.st_uid);
  p->set_slave_gid(slave.st_gid);
  p->set_slave_mode(slave.st_mode & 07777);
  if (p->hung_up()) {  // its ioctls fail with EIO: nothing more to read
    DumpContext::Object obj = ctx.Share(
        "pty:" + std::to_string(slave.st_dev) + ":" + std::to_string(slave.st_rdev), e->id());
    p->set_object_id(obj.id);
    p->set_cc(std::string());
    for (auto set : {&pb::PtyEntry::set_iflag, &pb::PtyEntry::set_oflag, &pb::PtyEntry::set_cflag,
                     &pb::PtyEntry::set_lflag, &pb::PtyEntry::set_line, &pb::PtyEntry::set_ispeed,
                     &pb::PtyEntry::set_ospeed, &pb::PtyEntry::set_rows, &pb::PtyEntry::set_cols,
                     &pb::PtyEntry::set_xpixel, &pb::PtyEntry::set_ypixel})
      (p->*set)(0);
    return Ok();
  }
  TRY(ReadPairState(fd, p));
  if (master && !p->locked() && !p->packet()) {
    TRY_ASSIGN(std::string out, PeekSlaveOutput(fd), Where(c) + ": pty output");
    if (!out.empty()) {
      LOG_DBG(Where(c) + ": " + std::to_string(out.size()) + " bytes of " +
              SlavePath(slave.st_rdev) + "'s output not read yet: saved");
      p->set_output(out);
    }
  }
  int queued = 0;
  if ((!master || !p->has_output()) && ioctl(fd, FIONREAD, &queued) == 0 && queued > 0)
    LOG_WARN(Where(c) + ": " + std::to_string(queued) + " unread bytes in " +
             (master ? "the pty master of " : "the pty ") + SlavePath(slave.st_rdev) +
             " are lost (tty data cannot be saved)");
  DumpContext::Object obj = ctx.Share(
      "pty:" + std::to_string(slave.st_dev) + ":" + std::to_string(slave.st_rdev), e->id());
  p->set_object_id(obj.id);
  FindSession(slave.st_rdev, p);
  return Ok();
}

// Sets the flags open(2) took that F_SETFL can set.
void SetFlags(int fd, uint32_t flags) {
  int cur = fcntl(fd, F_GETFL);
  if (cur < 0) return;
  int want = (cur & ~(O_NONBLOCK | O_APPEND)) | (int(flags) & (O_NONBLOCK | O_APPEND));
  if (want != cur) fcntl(fd, F_SETFL, want);
}

// A new pair, in the state the dump saw (but unlocked, so its slave can be
// opened).
// Masters made early for bind mounts of devpts files (ReservePtyFile), by
// pty index; taken by CreatePair. Root task only.
std::map<unsigned, int>& Reserved() {
  static std::map<unsigned, int> m;
  return m;
}

// The slave node's owner and permissions as they were (the new node has
// the opener's and devpts' defaults).
Status ApplySlaveOwner(int master, const pb::PtyEntry& p, const pb::UserNsEntry* user_ns) {
  if (!p.has_slave_mode()) return Ok();
  UniqueFd node(ioctl(master, TIOCGPTPEER, O_PATH | O_NOCTTY | O_CLOEXEC));
  if (!node) return Error::Errno("TIOCGPTPEER (O_PATH)");
  std::string path = "/proc/self/fd/" + std::to_string(node.get());
  uid_t uid = ns::UidInside(user_ns, p.slave_uid());
  gid_t gid = ns::GidInside(user_ns, p.slave_gid());
  struct stat st;
  if (fstat(node.get(), &st) < 0) return Error::Errno("stat the new pty slave");
  if ((st.st_uid != uid || st.st_gid != gid) && chown(path.c_str(), uid, gid) < 0) {
    // In a user namespace, a devpts whose group (tty) is not mapped there
    // lets nobody inside change the node's owner.
    if (!(user_ns && errno == EPERM))
      return Error::Errno("owner " + std::to_string(p.slave_uid()) + ":" +
                          std::to_string(p.slave_gid()) + " of the new pty slave");
    LOG_WARN("pty slave: owner " + std::to_string(uid) + ":" + std::to_string(gid) +
             " cannot be set inside the tree's user namespace (devpts ids not mapped there); it "
             "stays " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid));
  }
  if (chmod(path.c_str(), p.slave_mode() & 07777) < 0)
    return Error::Errno("mode of the new pty slave");
  return Ok();
}

Result<int> CreatePair(const pb::PtyEntry& p) {
  std::string path = p.master() ? p.path() : "/dev/ptmx";
  int acc = p.master() ? int(p.flags() & O_ACCMODE) : O_RDWR;
  int fd;
  if (auto r = Reserved().find(p.index()); r != Reserved().end()) {
    fd = r->second;
    Reserved().erase(r);
    path = "the pty made for the mount of /dev/pts/" + std::to_string(p.index());
  } else {
    fd = open(path.c_str(), acc | O_NOCTTY | O_CLOEXEC);
  }
  if (fd < 0) return Error::Errno("open " + path);
  UniqueFd guard(fd);
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode) || !IsPtyMaster(st.st_rdev))
    return Error(path + " is not the pty multiplexer");
  int unlock = 0;
  if (ioctl(fd, TIOCSPTLCK, &unlock) < 0) return Error::Errno("TIOCSPTLCK");
  if (!p.hung_up()) TRY(ApplyPairState(fd, p), "pty " + path);
  unsigned n = 0;
  ioctl(fd, TIOCGPTN, &n);
  LOG_DBG("pty pair " + std::to_string(p.object_id()) + ": /dev/pts/" + std::to_string(p.index()) +
          " at dump is /dev/pts/" + std::to_string(n) + " now");
  return guard.release();
}

}  // namespace

Status ReservePtyFile(int devpts_root, const std::string& name) {
  if (name.empty() || name.size() > 6 || name.find_first_not_of("0123456789") != std::string::npos)
    return Ok();
  struct stat st;
  if (fstatat(devpts_root, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return Ok();
  unsigned want = unsigned(std::stoul(name));
  std::vector<UniqueFd> below;  // lower indexes, freed again at the end
  for (unsigned i = 0; i <= want; i++) {
    UniqueFd m(openat(devpts_root, "ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!m) return Error::Errno("making pty " + name + " for its bind mount: open ptmx");
    unsigned n = 0;
    if (ioctl(m.get(), TIOCGPTN, &n) < 0) return Error::Errno("TIOCGPTN");
    if (n == want) {
      Reserved()[want] = m.release();
      LOG_DBG("pty " + name + " made for a bind mount of it");
      return Ok();
    }
    if (n > want) return Error("making pty " + name + " for its bind mount: the instance gave " +
                               std::to_string(n));
    below.push_back(std::move(m));
  }
  return Error("making pty " + name + " for its bind mount: index not reached");
}

namespace {

Result<int> Open(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("pty ends need the restore context");
  const pb::PtyEntry& p = e.pty();
  std::string key = "pty:" + std::to_string(p.object_id());
  int m = o.ctx->Find(key);
  if (m < 0) {
    if (p.orphan() && o.orphan_pty_sk < 0)
      return Error("pty slave " + p.path() +
                   " whose master was outside the tree needs --orphan-pts-master");
    TRY_ASSIGN(int fd, CreatePair(p));
    TRY_ASSIGN(m, o.ctx->Keep(key, fd));
    TRY(ApplySlaveOwner(m, p, o.user_ns), "pty " + p.path());
    // Hung up: the master is closed with the restore context, after the
    // slave entries took theirs (OpenFiles).
    // Its master belongs to whoever restored the tree (orphan_pty.h).
    if (p.orphan()) TRY(SendOrphanMaster(o.orphan_pty_sk, m));
  }
  int fd;
  if (p.master()) {
    // The slave's output the master had not read (see the top).
    if (p.has_output()) TRY(QueueAsSlaveOutput(m, p.output()), "pty " + p.path());
    // A pair has one master open file: every master entry is it.
    fd = fcntl(m, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return Error::Errno("dup pty master");
    int pkt = p.packet() ? 1 : 0;
    if (ioctl(fd, TIOCPKT, &pkt) < 0) {
      int e2 = errno;
      close(fd);
      return Error::Errno("TIOCPKT", e2);
    }
  } else {
    // The dumped flags as open(2) left them (O_LARGEFILE included, which
    // F_SETFL cannot set later). Not O_CLOEXEC: unlike open(2), TIOCGPTPEER
    // would keep it in the file's flags (F_GETFL); OpenFiles makes the fd
    // close-on-exec anyway.
    int flags = int(p.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_PATH);
    fd = ioctl(m, TIOCGPTPEER, flags | O_NOCTTY);
    if (fd < 0) return Error::Errno("open the slave of the new pty (TIOCGPTPEER)");
  }
  SetFlags(fd, p.flags());
  if (p.exclusive()) ioctl(fd, TIOCEXCL);
  return fd;
}

// Makes the pair behind fd (either end) our controlling terminal, unless
// it already is.
Status SetCtty(int fd, const pb::PtyEntry& p) {
  if (tcgetsid(fd) == getpid()) return Ok();
  int slave = fd;
  UniqueFd peer;
  if (p.master()) {
    // TIOCSCTTY on a master would make the master side the terminal.
    // (A locked pair, whose slave cannot be opened, is unlocked meanwhile.)
    int locked = 0, off = 0;
    if (ioctl(fd, TIOCGPTLCK, &locked) == 0 && locked) ioctl(fd, TIOCSPTLCK, &off);
    peer = UniqueFd(ioctl(fd, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    int e = errno;
    if (locked) ioctl(fd, TIOCSPTLCK, &locked);
    if (!peer) return Error::Errno("open the pty slave to make it the controlling terminal", e);
    slave = peer.get();
  }
  if (ioctl(slave, TIOCSCTTY, 0) < 0)
    return Error::Errno("TIOCSCTTY (controlling terminal of session " + std::to_string(getpid()) +
                        ")");
  return Ok();
}

Status SetForeground(int fd, const pb::PtyEntry& p) {
  if (!p.has_fg_pgrp()) return Ok();
  // A background caller would get SIGTTOU; blocked, it is not sent.
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  sigprocmask(SIG_BLOCK, &ttou, &old);
  int r = tcsetpgrp(fd, ToOwnView(pid_t(p.fg_pgrp())));
  int e = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (r < 0)
    LOG_WARN("session " + std::to_string(getpid()) + ": cannot make process group " +
             std::to_string(p.fg_pgrp()) +
             " the terminal's foreground group again: " + strerror(e));
  return Ok();
}

bool LeadsItsSession(const pb::PtyEntry& p) {
  return p.has_ctty_sid() && pid_t(p.ctty_sid()) == DumpPidOfSelf() && getsid(0) == getpid();
}

Status InTask(const pb::FileEntry& e, int fd) {
  const pb::PtyEntry& p = e.pty();
  if (LeadsItsSession(p)) {
    TRY(SetCtty(fd, p));
    TRY(SetForeground(fd, p));
  }
  if (p.master() && p.locked()) {
    int one = 1;
    if (ioctl(fd, TIOCSPTLCK, &one) < 0) return Error::Errno("TIOCSPTLCK");
  }
  return Ok();
}

Status Validate(const pb::FileEntry& e) {
  std::string what = "file " + std::to_string(e.id());
  if (!e.has_pty()) return Error(what + ": bad pty entry");
  const pb::PtyEntry& p = e.pty();
  if (p.object_id() == 0 || p.cc().size() > NCCS || p.path().empty() || p.rows() > 0xffff ||
      (p.hung_up() && p.master()) || p.slave_mode() > 07777 ||
      p.cols() > 0xffff || p.xpixel() > 0xffff || p.ypixel() > 0xffff ||
      p.output().size() > kMaxQueued || (p.has_output() && !p.master()))
    return Error(what + ": bad pty entry");
  if (p.master()) {
    const std::string& s = p.path();
    if (s[0] != '/' || s.size() < 5 || s.compare(s.size() - 5, 5, "/ptmx") != 0)
      return Error(what + ": pty master path " + s + " is not a ptmx");
  }
  return Ok();
}

// Entries of the tree's ptys that name our session (slaves first).
std::vector<std::pair<int, const pb::PtyEntry*>> OurTerminal(
    const std::map<uint32_t, pb::FileEntry>& files, const std::map<uint32_t, int>& opened) {
  std::vector<std::pair<int, const pb::PtyEntry*>> out;
  for (const auto& [id, e] : files) {
    if (e.kind() != pb::FILE_PTY || !e.has_pty() || !LeadsItsSession(e.pty())) continue;
    auto it = opened.find(id);
    if (it == opened.end()) continue;
    auto item = std::make_pair(it->second, &e.pty());
    if (e.pty().master())
      out.push_back(item);
    else
      out.insert(out.begin(), item);
  }
  return out;
}

}  // namespace

bool PtySlaveInTree(const FdContext& c) {
  return IsPtySlave(c.st.st_rdev) && FindTreeMaster(c.st.st_dev, c.st.st_rdev).has_value();
}

Status RestoreControllingTty(const std::map<uint32_t, pb::FileEntry>& files,
                             const std::map<uint32_t, int>& opened) {
  auto mine = OurTerminal(files, opened);
  if (mine.empty()) return Ok();
  return SetCtty(mine[0].first, *mine[0].second);
}

Status RestoreForegroundGroup(const std::map<uint32_t, pb::FileEntry>& files,
                              const std::map<uint32_t, int>& opened) {
  auto mine = OurTerminal(files, opened);
  if (mine.empty()) return Ok();
  return SetForeground(mine[0].first, *mine[0].second);
}

const FileHandler kPtyHandler = {.kind = pb::FILE_PTY,
                                 .name = "pty",
                                 .match = Match,
                                 .check = Check,
                                 .dump = Dump,
                                 .open = Open,
                                 .validate = Validate,
                                 .deps = nullptr,
                                 .in_task = InTask};

}  // namespace ckpt::files
