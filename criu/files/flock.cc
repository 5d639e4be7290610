// File locks: see flock.h.
#include "criu/files/flock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <set>
#include <sstream>
#include <vector>

#include "base/io.h"
#include "criu/files/fdinfo_fields.h"

namespace ckpt::files {
namespace {

constexpr uint64_t kMaxOffset = uint64_t(INT64_MAX);

// One "lock:" line of fdinfo, or one line of /proc/locks:
//   "1: POSIX  ADVISORY  WRITE 21514 fe:00:10994409 10 29"
//   "2: OFDLCK ADVISORY  READ  -1 fe:00:10994409 100 EOF"
//   "3: FLOCK  ADVISORY  WRITE 21514 fe:00:10994457 0 EOF"
//   "4: -> POSIX ..." (a waiter, /proc/locks only)
struct LockLine {
  std::string kind;  // POSIX, OFDLCK, FLOCK, LEASE, DELEG, ACCESS, ...
  std::string mode;  // ADVISORY, MANDATORY, ACTIVE, BREAKING, ...
  std::string type;  // READ, WRITE, UNLCK
  long pid = 0;
  uint64_t ino = 0;
  uint64_t start = 0;
  bool to_eof = false;
  uint64_t end = 0;
  bool waiter = false;
};

Result<LockLine> ParseLockLine(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  if (!w.empty() && w[0] == "lock:") w.erase(w.begin());
  LockLine l;
  if (w.size() > 1 && w[1] == "->") {
    l.waiter = true;
    w.erase(w.begin() + 1);
  }
  if (w.size() < 8) return Error("unexpected lock line '" + text + "'");
  l.kind = w[1], l.mode = w[2], l.type = w[3];
  char* end = nullptr;
  l.pid = strtol(w[4].c_str(), &end, 10);
  if (*end) return Error("bad pid in lock line '" + text + "'");
  size_t colon = w[5].rfind(':');
  if (colon == std::string::npos) return Error("bad inode in lock line '" + text + "'");
  TRY_ASSIGN(l.ino, ParseNumber(w[5].substr(colon + 1), 10, "lock inode"));
  TRY_ASSIGN(l.start, ParseNumber(w[6], 10, "lock start"));
  if (w[7] == "EOF") {
    l.to_eof = true;
  } else {
    TRY_ASSIGN(l.end, ParseNumber(w[7], 10, "lock end"));
  }
  return l;
}

Result<std::vector<LockLine>> FdLocks(const std::string& fdinfo) {
  std::vector<LockLine> out;
  for (const std::string& s : FdinfoLines(fdinfo, "lock:")) {
    TRY_ASSIGN(LockLine l, ParseLockLine(s));
    out.push_back(l);
  }
  return out;
}

bool Supported(const LockLine& l) {
  if (l.kind == "LEASE")  // one not being broken (a break in progress cannot be made again)
    return l.mode == "ACTIVE" && (l.type == "READ" || l.type == "WRITE");
  return (l.kind == "POSIX" || l.kind == "OFDLCK" || l.kind == "FLOCK") && l.mode == "ADVISORY" &&
         (l.type == "READ" || l.type == "WRITE");
}

pb::FileLock ToProto(const LockLine& l, pb::FileLockKind kind, pid_t owner) {
  pb::FileLock p;
  p.set_kind(kind);
  p.set_write(l.type == "WRITE");
  if (kind == pb::LK_FLOCK || kind == pb::LK_LEASE) {
    p.set_start(0);
    return p;
  }
  p.set_start(l.start);
  if (!l.to_eof) p.set_end(l.end);
  if (kind == pb::LK_POSIX) p.set_owner(uint32_t(owner));
  return p;
}

// The owner of a POSIX lock line read from the fdinfo of an fd of `pid`:
// the line names the process that took it, which is another one when
// processes share one fd table (criu/shared_tables.h: the lock belongs to
// the table, and the fdinfo of each of them shows it); `pid` when the
// line names no process of the dumped tree.
pid_t PosixOwner(const LockLine& l, pid_t pid);

bool SameLock(const pb::FileLock& a, const pb::FileLock& b) {
  return a.kind() == b.kind() && a.write() == b.write() && a.start() == b.start() &&
         a.has_end() == b.has_end() && a.end() == b.end() && a.owner() == b.owner();
}

void Add(LockList* out, const pb::FileLock& l) {
  for (const pb::FileLock& have : *out)
    if (SameLock(have, l)) return;
  *out->Add() = l;
}

// The POSIX locks pid set through the open file description of (c.pid,
// c.fd), read from the fdinfo of an fd of pid that shares it.
Status AddPosixLocksOf(pid_t pid, const FdContext& c, LockList* out) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return Ok();  // gone meanwhile: not one of ours
  std::vector<int> fds;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') fds.push_back(atoi(e->d_name));
  closedir(d);
  constexpr int kKcmpFile = 0;
  for (int fd : fds) {
    struct stat st;
    std::string link = dir + "/" + std::to_string(fd);
    if (stat(link.c_str(), &st) < 0 || st.st_ino != c.st.st_ino || st.st_dev != c.st.st_dev)
      continue;
    if (syscall(SYS_kcmp, c.pid, pid, kKcmpFile, c.fd, fd) != 0) continue;
    auto text = io::ReadFile("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    if (!text.ok()) continue;
    TRY_ASSIGN(std::vector<LockLine> locks, FdLocks(*text));
    for (const LockLine& l : locks)
      if (l.kind == "POSIX") {
        if (!Supported(l))
          return Error("pid " + std::to_string(pid) + " fd " + std::to_string(fd) + ": " + l.mode +
                       " " + l.kind + " lock on " + c.link + " is not supported");
        Add(out, ToProto(l, pb::LK_POSIX, PosixOwner(l, pid)));
      }
    return Ok();  // every fd sharing the description shows the same locks
  }
  return Ok();
}

struct flock Range(const pb::FileLock& l) {
  struct flock f = {};
  f.l_type = short(l.write() ? F_WRLCK : F_RDLCK);
  f.l_whence = SEEK_SET;
  f.l_start = off_t(l.start());
  f.l_len = l.has_end() ? off_t(l.end() - l.start() + 1) : 0;
  return f;
}

// Who holds a lock that conflicts with l now, for the error message.
std::string Holder(int fd, const pb::FileLock& l) {
  if (l.kind() == pb::LK_FLOCK) return "someone else holds a conflicting lock";
  struct flock f = Range(l);
  int cmd = l.kind() == pb::LK_OFD ? F_OFD_GETLK : F_GETLK;
  if (fcntl(fd, cmd, &f) < 0 || f.l_type == F_UNLCK) return "someone else holds a conflicting lock";
  if (f.l_pid > 0) return "pid " + std::to_string(f.l_pid) + " holds a conflicting lock";
  return "an open file description elsewhere holds a conflicting lock";
}

Status Take(int fd, const pb::FileLock& l, const std::string& what) {
  int r;
  if (l.kind() == pb::LK_LEASE) {
    // Right after the open, before anything else opens the file (which a
    // write lease would not allow).
    if (fcntl(fd, F_SETLEASE, l.write() ? F_WRLCK : F_RDLCK) == 0) return Ok();
    return Error::Errno(what + ": " + (l.write() ? "write" : "read") +
                        " lease (F_SETLEASE): the file is open elsewhere" +
                        (l.write() ? "" : " for writing"));
  }
  if (l.kind() == pb::LK_FLOCK) {
    r = flock(fd, (l.write() ? LOCK_EX : LOCK_SH) | LOCK_NB);
  } else {
    struct flock f = Range(l);
    r = fcntl(fd, l.kind() == pb::LK_OFD ? F_OFD_SETLK : F_SETLK, &f);
  }
  if (r == 0) return Ok();
  int e = errno;
  std::string msg = "cannot take the " + DescribeLock(l) + " on " + what + " again";
  if (e == EAGAIN || e == EACCES || e == EWOULDBLOCK) return Error(msg + ": " + Holder(fd, l), e);
  return Error::Errno(msg, e);
}

}  // namespace

std::string DescribeLock(const pb::FileLock& l) {
  if (l.kind() == pb::LK_FLOCK)
    return std::string("flock (") + (l.write() ? "exclusive)" : "shared)");
  std::string s = l.kind() == pb::LK_OFD ? "OFD " : "POSIX ";
  s += l.write() ? "write lock [" : "read lock [";
  s += std::to_string(l.start()) + ", " + (l.has_end() ? std::to_string(l.end()) : "EOF") + "]";
  if (l.kind() == pb::LK_POSIX) s += " of pid " + std::to_string(l.owner());
  return s;
}

namespace {
pid_t PosixOwner(const LockLine& l, pid_t pid) {
  return l.pid > 0 && pid_t(l.pid) != pid && SeizedByUs(pid_t(l.pid)) ? pid_t(l.pid) : pid;
}
}  // namespace

bool SeizedByUs(pid_t pid) {
  auto text = io::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!text.ok()) return false;
  auto v = FdinfoValue(*text, "TracerPid");
  return v && atol(v->c_str()) == long(getpid());
}

Status CheckLocks(const FdContext& c) {
  TRY_ASSIGN(std::vector<LockLine> locks, FdLocks(c.fdinfo), Where(c));
  for (const LockLine& l : locks)
    if (!Supported(l)) {
      std::string kind = l.kind == "LEASE"   ? "lease being broken (" + l.mode + " " + l.type + ")"
                         : l.kind == "DELEG" ? "delegation"
                                             : l.mode + " " + l.kind + " lock";
      return Error(Where(c) + ": " + kind + " on " + c.link + " is not supported");
    }
  return Ok();
}

Status DumpLocks(const FdContext& c, LockList* out) {
  TRY_ASSIGN(std::vector<LockLine> locks, FdLocks(c.fdinfo));
  for (const LockLine& l : locks) {
    if (!Supported(l)) return Error(l.kind + " lock on " + c.link + " is not supported");
    if (l.kind == "FLOCK")
      Add(out, ToProto(l, pb::LK_FLOCK, 0));
    else if (l.kind == "LEASE")
      Add(out, ToProto(l, pb::LK_LEASE, 0));
    else if (l.kind == "OFDLCK")
      Add(out, ToProto(l, pb::LK_OFD, 0));
    else
      Add(out, ToProto(l, pb::LK_POSIX, PosixOwner(l, c.pid)));  // c.pid's table's
  }
  // POSIX locks other processes set through this description show only in
  // their own fdinfo. /proc/locks names their owners.
  TRY_ASSIGN(std::string all, io::ReadFile("/proc/locks"));
  std::set<pid_t> done = {c.pid};
  std::istringstream in(all);
  for (std::string line; std::getline(in, line);) {
    auto l = ParseLockLine(line);
    if (!l.ok() || l->waiter || l->kind != "POSIX" || l->ino != uint64_t(c.st.st_ino) ||
        l->pid <= 0)
      continue;
    pid_t owner = pid_t(l->pid);
    if (!done.insert(owner).second || !SeizedByUs(owner)) continue;  // not of the tree
    TRY(AddPosixLocksOf(owner, c, out));
  }
  return Ok();
}

Status RestoreFileLocks(int fd, const LockList& locks, const std::string& what) {
  for (const pb::FileLock& l : locks)
    if (l.kind() != pb::LK_POSIX) TRY(Take(fd, l, what));
  return Ok();
}

Status RestoreTaskLocks(int fd, const LockList& locks, const std::string& what) {
  pid_t self = getpid();
  for (const pb::FileLock& l : locks)
    if (l.kind() == pb::LK_POSIX && pid_t(l.owner()) == self) TRY(Take(fd, l, what));
  return Ok();
}

int LockedFdFor(const std::vector<pb::FdinfoEntry>& fds,
                const std::map<uint32_t, pb::FileEntry>& files, const struct stat& st, bool write) {
  pid_t self = getpid();
  for (const pb::FdinfoEntry& f : fds) {
    auto it = files.find(f.file_id());
    if (it == files.end()) continue;
    const LockList* locks = it->second.has_reg()   ? &it->second.reg().locks()
                            : it->second.has_chr() ? &it->second.chr().locks()
                                                   : nullptr;
    if (!locks) continue;
    bool mine = false;
    for (const pb::FileLock& l : *locks)
      mine |= l.kind() == pb::LK_POSIX && pid_t(l.owner()) == self;
    if (!mine) continue;
    int fd = int(f.fd());
    struct stat fst;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) || fstat(fd, &fst) < 0) continue;
    if (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) continue;
    int acc = fl & O_ACCMODE;
    if (acc == O_WRONLY || (write && acc != O_RDWR)) continue;
    return fd;
  }
  return -1;
}

Status ValidateLocks(const LockList& locks, const std::string& what) {
  int flocks = 0, leases = 0;
  for (const pb::FileLock& l : locks) {
    if (!pb::FileLockKind_IsValid(l.kind())) return Error(what + ": lock of unknown kind");
    if (l.kind() == pb::LK_LEASE) {
      if (++leases > 1) return Error(what + ": more than one lease");
      continue;
    }
    if (l.kind() == pb::LK_FLOCK) {
      if (++flocks > 1) return Error(what + ": more than one flock lock");
      continue;
    }
    if (l.start() > kMaxOffset || (l.has_end() && (l.end() < l.start() || l.end() > kMaxOffset)))
      return Error(what + ": bad lock range");
    if (l.kind() == pb::LK_POSIX && l.owner() == 0)
      return Error(what + ": POSIX lock without an owner");
  }
  return Ok();
}

}  // namespace ckpt::files
