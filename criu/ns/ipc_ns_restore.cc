// Restoring an IPC namespace (ipc_ns.h): check ipc-ns.img, then fill the
// caller's (fresh) namespace.
#include <fcntl.h>
#include <linux/sched.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/ns/ipc_ns.h"
#include "criu/ns/ipc_sysctl.h"
#include "criu/shmem.h"  // SysvShmFileName
#include "proto/ipc_ns.pb.h"

namespace ckpt::ns {
namespace {

constexpr uint32_t kShmLocked = 02000;  // SHM_LOCKED in shm_perm.mode
constexpr uint32_t kSemVmx = 32767;     // SEMVMX: the largest semaphore value
constexpr int kSemMslMax = 65536;       // no set has more semaphores (sem_nsems is 16 bits wide)
constexpr uint32_t kMqPrioMax = 32768;  // MQ_PRIO_MAX
constexpr size_t kMqNameMax = 255;      // NAME_MAX

union SemUn {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

struct Image {
  pb::IpcSysctls sysctls;
  std::vector<pb::SysvMsgQueue> msgs;
  std::vector<pb::SysvSemSet> sems;
  std::vector<pb::SysvShmSeg> shms;
  std::vector<pb::PosixMq> mqs;
};

Status CheckPerm(const pb::IpcPermEntry& p, uint32_t extra, const std::string& what) {
  if (p.mode() & ~(0777u | extra)) return Error(what + ": bad mode " + std::to_string(p.mode()));
  return Ok();
}

Status CheckRecord(const pb::IpcNsRecord& r, const images::ImageDir& dir,
                   std::set<std::string>& seen) {
  auto unique = [&](const std::string& key, const std::string& what) -> Status {
    if (!seen.insert(key).second) return Error(what + " appears twice");
    return Ok();
  };
  switch (r.obj_case()) {
    case pb::IpcNsRecord::kMsgQueue: {
      const pb::SysvMsgQueue& q = r.msg_queue();
      std::string what = "message queue " + std::to_string(q.id());
      if (q.id() < 0) return Error(what + ": bad id");
      TRY(unique("msg" + std::to_string(q.id()), what));
      TRY(CheckPerm(q.perm(), 0, what));
      if (q.qbytes() > INT_MAX) return Error(what + ": bad qbytes");
      for (const pb::SysvMsg& m : q.msgs())
        if (m.mtype() <= 0 || m.text().size() > INT_MAX)
          return Error(what + ": bad message (type " + std::to_string(m.mtype()) + ")");
      return Ok();
    }
    case pb::IpcNsRecord::kSemSet: {
      const pb::SysvSemSet& s = r.sem_set();
      std::string what = "semaphore set " + std::to_string(s.id());
      if (s.id() < 0) return Error(what + ": bad id");
      TRY(unique("sem" + std::to_string(s.id()), what));
      TRY(CheckPerm(s.perm(), 0, what));
      if (s.values_size() < 1 || s.values_size() >= kSemMslMax || s.pids_size() != s.values_size())
        return Error(what + ": bad number of semaphores");
      for (int i = 0; i < s.values_size(); i++)
        if (s.values(i) > kSemVmx || s.pids(i) < 0)
          return Error(what + ": bad semaphore " + std::to_string(i));
      return Ok();
    }
    case pb::IpcNsRecord::kShmSeg: {
      const pb::SysvShmSeg& s = r.shm_seg();
      std::string what = "shared memory segment " + std::to_string(s.id());
      if (s.id() < 0) return Error(what + ": bad id");
      TRY(unique("shm" + std::to_string(s.id()), what));
      TRY(CheckPerm(s.perm(), kShmLocked, what));
      if (s.size() == 0 || s.size() > (uint64_t(1) << 47)) return Error(what + ": bad size");
      TRY_ASSIGN(UniqueFd fd, dir.OpenRaw(SysvShmFileName(s.id())), what);
      struct stat st;
      if (fstat(fd.get(), &st) < 0) return Error::Errno(what + ": stat");
      if (uint64_t(st.st_size) != s.size())
        return Error(what + ": " + SysvShmFileName(s.id()) + " holds " +
                     std::to_string(st.st_size) + " bytes, not " + std::to_string(s.size()));
      return Ok();
    }
    case pb::IpcNsRecord::kPosixMq: {
      const pb::PosixMq& q = r.posix_mq();
      std::string what = "POSIX message queue /" + q.name();
      if (q.name().empty() || q.name().size() > kMqNameMax ||
          q.name().find('/') != std::string::npos || q.name().find('\0') != std::string::npos ||
          q.name() == "." || q.name() == "..")
        return Error("bad POSIX message queue name '" + q.name() + "'");
      TRY(unique("mq" + q.name(), what));
      if (q.mode() & ~07777u) return Error(what + ": bad mode");
      if (q.maxmsg() <= 0 || q.msgsize() <= 0 || q.maxmsg() > INT_MAX || q.msgsize() > INT_MAX)
        return Error(what + ": bad attributes");
      if (q.msgs_size() > q.maxmsg()) return Error(what + ": more messages than mq_maxmsg");
      for (const pb::PosixMqMsg& m : q.msgs())
        if (m.prio() >= kMqPrioMax || int64_t(m.data().size()) > q.msgsize())
          return Error(what + ": bad message");
      return Ok();
    }
    default:
      return Error("a record of no known kind");
  }
}

Result<Image> Load(const images::ImageDir& dir) {
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kIpcNs));
  Image img;
  bool first = true;
  std::set<std::string> seen;
  for (;;) {
    pb::IpcNsRecord rec;
    TRY_ASSIGN(bool more, r.Read(rec), r.name());
    if (!more) break;
    if (first != rec.has_sysctls()) return Error(r.name() + ": the sysctls must come first, once");
    if (first) {
      if (rec.sysctls().sem_size() != 0 && rec.sysctls().sem_size() != 4)
        return Error(r.name() + ": kernel.sem needs 4 values");
      img.sysctls = rec.sysctls();
      first = false;
      continue;
    }
    TRY(CheckRecord(rec, dir, seen), r.name());
    switch (rec.obj_case()) {
      case pb::IpcNsRecord::kMsgQueue:
        img.msgs.push_back(rec.msg_queue());
        break;
      case pb::IpcNsRecord::kSemSet:
        img.sems.push_back(rec.sem_set());
        break;
      case pb::IpcNsRecord::kShmSeg:
        img.shms.push_back(rec.shm_seg());
        break;
      default:
        img.mqs.push_back(rec.posix_mq());
        break;
    }
  }
  if (first) return Error(r.name() + ": empty (no sysctls)");
  return img;
}

// ---- restoring ----

// Switches the effective uid/gid to an object's creator while it is made,
// so cuid/cgid come back; switches back (regaining the capabilities) when
// destroyed. A change of euid makes the kernel reset the process's dumpable
// flag (to fs.suid_dumpable): it is put back too.
class AsCreator {
 public:
  AsCreator(uid_t uid, gid_t gid) : dumpable_(prctl(PR_GET_DUMPABLE)) {
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    euid_ = e;
    egid_ = ge;
    if (gid != ge && setresgid(-1, gid, -1) < 0)
      err_ = Error::Errno("setresgid " + std::to_string(gid));
    gid_changed_ = gid != ge && err_.message().empty();
    if (err_.message().empty() && uid != e && setresuid(-1, uid, -1) < 0)
      err_ = Error::Errno("setresuid " + std::to_string(uid));
    uid_changed_ = uid != e && err_.message().empty();
  }
  ~AsCreator() {
    if (uid_changed_ && setresuid(-1, euid_, -1) < 0) LOG_WARN("cannot switch back to euid 0");
    if (gid_changed_ && setresgid(-1, egid_, -1) < 0) LOG_WARN("cannot switch back to egid 0");
    if ((uid_changed_ || gid_changed_) && dumpable_ >= 0) prctl(PR_SET_DUMPABLE, dumpable_);
  }
  Status status() const {
    if (err_.message().empty()) return Ok();
    return err_;
  }

 private:
  int dumpable_;
  uid_t euid_;
  gid_t egid_;
  bool uid_changed_ = false, gid_changed_ = false;
  Error err_;
};

Status SetNextId(const char* field, int id) { return WriteIpcSysctl(field, std::to_string(id)); }

Status CheckId(int got, int want, const std::string& what) {
  if (got < 0) return Error::Errno(what + ": create");
  if (got != want) return Error(what + " came back as id " + std::to_string(got));
  return Ok();
}

key_t KeyOf(const pb::IpcPermEntry& p) { return p.key() == 0 ? IPC_PRIVATE : key_t(p.key()); }

template <typename Ds>
void SetPerm(Ds& ds, struct ipc_perm Ds::*perm, const pb::IpcPermEntry& p) {
  (ds.*perm).uid = p.uid();
  (ds.*perm).gid = p.gid();
  (ds.*perm).mode = p.mode() & 0777;
}

Status RestoreMsgQueue(const pb::SysvMsgQueue& q) {
  std::string what = "message queue " + std::to_string(q.id());
  uint64_t bytes = 0;
  for (const pb::SysvMsg& m : q.msgs()) bytes += m.text().size();
  // A new queue gets msg_qbytes = kernel.msgmnb, and raising qbytes later
  // needs CAP_SYS_RESOURCE: create it under a msgmnb that fits both.
  uint64_t need = std::max<uint64_t>(q.qbytes(), bytes);
  TRY(WriteIpcSysctl("msgmnb", std::to_string(std::max<uint64_t>(need, 1))), what);
  TRY(SetNextId("msg_next_id", q.id()), what);
  int id;
  {
    AsCreator as(q.perm().cuid(), q.perm().cgid());
    TRY(as.status(), what);
    id = msgget(KeyOf(q.perm()), IPC_CREAT | IPC_EXCL | int(q.perm().mode() & 0777));
  }
  TRY(CheckId(id, q.id(), what));
  std::vector<char> buf;
  int i = 0;
  for (const pb::SysvMsg& m : q.msgs()) {
    buf.resize(sizeof(long) + m.text().size());
    long type = long(m.mtype());
    memcpy(buf.data(), &type, sizeof(type));
    memcpy(buf.data() + sizeof(type), m.text().data(), m.text().size());
    if (msgsnd(id, buf.data(), m.text().size(), IPC_NOWAIT) < 0)
      return Error::Errno(what + ": msgsnd of message " + std::to_string(i));
    i++;
  }
  struct msqid_ds ds;
  if (msgctl(id, IPC_STAT, &ds) < 0) return Error::Errno(what + ": IPC_STAT");
  SetPerm(ds, &msqid_ds::msg_perm, q.perm());
  ds.msg_qbytes = q.qbytes();
  if (msgctl(id, IPC_SET, &ds) < 0) return Error::Errno(what + ": IPC_SET");
  return Ok();
}

Status RestoreSemSet(const pb::SysvSemSet& s) {
  std::string what = "semaphore set " + std::to_string(s.id());
  TRY(SetNextId("sem_next_id", s.id()), what);
  int id;
  {
    AsCreator as(s.perm().cuid(), s.perm().cgid());
    TRY(as.status(), what);
    id = semget(KeyOf(s.perm()), s.values_size(),
                IPC_CREAT | IPC_EXCL | int(s.perm().mode() & 0777));
  }
  TRY(CheckId(id, s.id(), what));
  struct semid_ds ds;
  SemUn arg;
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) < 0) return Error::Errno(what + ": IPC_STAT");
  SetPerm(ds, &semid_ds::sem_perm, s.perm());
  if (semctl(id, 0, IPC_SET, arg) < 0) return Error::Errno(what + ": IPC_SET");
  return Ok();
}

// One SETVAL: it also makes the caller the semaphore's last-operation pid.
struct SemVal {
  int id, num;
  unsigned value;
};

int SetVals(const std::vector<SemVal>& v) {
  for (const SemVal& s : v) {
    SemUn arg;
    arg.val = int(s.value);
    if (semctl(s.id, s.num, SETVAL, arg) < 0) return errno ? errno : EIO;
  }
  return 0;
}

// Runs SetVals(v) in a child whose pid is `pid` (clone3 set_tid; the pid
// must be free in our pid namespace, as every pid but 1 is in the new pid
// namespace of a restored tree). CLONE_VFORK: the caller waits for it, and
// a tracer of the caller that asked for fork and clone events but not
// vfork ones (ckpt restore's) never sees it; exit_signal 0: no SIGCHLD.
// Returns false when no such child could be made.
Result<bool> SetValsAs(pid_t pid, const std::vector<SemVal>& v) {
  struct clone_args args;
  memset(&args, 0, sizeof(args));
  pid_t tid = pid;
  args.flags = CLONE_VFORK;
  args.exit_signal = 0;
  args.set_tid = uint64_t(uintptr_t(&tid));
  args.set_tid_size = 1;
  long child = syscall(SYS_clone3, &args, sizeof(args));
  if (child < 0) {
    LOG_DBG("clone3 with pid " + std::to_string(pid) + ": " + strerror(errno));
    return false;
  }
  if (child == 0) _exit(SetVals(v));
  int st;
  while (waitpid(pid_t(child), &st, __WALL) < 0)
    if (errno != EINTR) return Error::Errno("waitpid semaphore helper");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error::Errno("semaphore values (as pid " + std::to_string(pid) + ")",
                        WIFEXITED(st) ? WEXITSTATUS(st) : EINTR);
  return true;
}

Status RestoreSemValues(const std::vector<pb::SysvSemSet>& sets) {
  std::map<pid_t, std::vector<SemVal>> by_pid;  // 0: by us
  for (const pb::SysvSemSet& s : sets)
    for (int i = 0; i < s.values_size(); i++) {
      // A semaphore never touched (0, no pid) stays as semget made it.
      if (s.values(i) == 0 && s.pids(i) == 0) continue;
      pid_t p = s.pids(i) == getpid() ? 0 : s.pids(i);
      by_pid[p].push_back({s.id(), i, s.values(i)});
    }
  int fallback = 0;
  for (auto& [pid, vals] : by_pid) {
    if (pid != 0) {
      TRY_ASSIGN(bool done, SetValsAs(pid, vals));
      if (done) continue;
      fallback += int(vals.size());
    }
    int e = SetVals(vals);
    if (e) return Error::Errno("setting semaphore values", e);
  }
  if (fallback)
    LOG_WARN("IPC namespace: " + std::to_string(fallback) +
             " semaphore(s) get the restoring process as their last pid (their pid is taken here)");
  return Ok();
}

// Copies the data extents of the segment's image into the attached segment.
Status FillSegment(int in, char* p, uint64_t size, const std::string& what) {
  off_t off = 0;
  std::vector<char> buf(1 << 20);
  while (uint64_t(off) < size) {
    off_t data = lseek(in, off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;
      return Error::Errno(what + ": SEEK_DATA");
    }
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) return Error::Errno(what + ": SEEK_HOLE");
    if (uint64_t(hole) > size) hole = off_t(size);
    for (off_t q = data; q < hole;) {
      ssize_t r = pread(in, p + q, size_t(hole - q), q);
      if (r <= 0) return Error::Errno(what + ": read", r == 0 ? EIO : errno);
      q += r;
    }
    off = hole;
  }
  return Ok();
}

Status RestoreShmSeg(const images::ImageDir& dir, const pb::SysvShmSeg& s) {
  std::string what = "shared memory segment " + std::to_string(s.id());
  TRY(SetNextId("shm_next_id", s.id()), what);
  int id;
  {
    AsCreator as(s.perm().cuid(), s.perm().cgid());
    TRY(as.status(), what);
    id = shmget(KeyOf(s.perm()), size_t(s.size()),
                IPC_CREAT | IPC_EXCL | int(s.perm().mode() & 0777));
  }
  TRY(CheckId(id, s.id(), what));
  TRY_ASSIGN(UniqueFd in, dir.OpenRaw(SysvShmFileName(s.id())), what);
  void* p = shmat(id, nullptr, 0);
  if (p == reinterpret_cast<void*>(-1)) return Error::Errno(what + ": shmat");
  Status st = FillSegment(in.get(), static_cast<char*>(p), s.size(), what);
  shmdt(p);
  TRY(st);
  struct shmid_ds ds;
  if (shmctl(id, IPC_STAT, &ds) < 0) return Error::Errno(what + ": IPC_STAT");
  SetPerm(ds, &shmid_ds::shm_perm, s.perm());
  if (shmctl(id, IPC_SET, &ds) < 0) return Error::Errno(what + ": IPC_SET");
  if ((s.perm().mode() & kShmLocked) && shmctl(id, SHM_LOCK, nullptr) < 0)
    return Error::Errno(what + ": SHM_LOCK");
  return Ok();
}

Status RestorePosixMq(const pb::PosixMq& q) {
  std::string what = "POSIX message queue /" + q.name();
  struct mq_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.mq_maxmsg = q.maxmsg();
  attr.mq_msgsize = q.msgsize();
  std::string name = "/" + q.name();
  const int flags = O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC;
  UniqueFd mq(mq_open(name.c_str(), flags, 0600, &attr));
  if (!mq && errno == EOVERFLOW) {
    // The mqueue filesystem of an IPC namespace owned by another user
    // namespace (criu/ns/user_ns.h) takes only owners mapped there, which
    // ckpt's root is not: the queue is made with its owner as fs uid and
    // gid (this thread only: raw system calls), given back right after.
    uid_t fsuid = uid_t(syscall(SYS_setfsuid, -1));
    gid_t fsgid = gid_t(syscall(SYS_setfsgid, -1));
    syscall(SYS_setfsgid, q.gid());
    syscall(SYS_setfsuid, q.uid());
    mq = UniqueFd(mq_open(name.c_str(), flags, 0600, &attr));
    int e = errno;
    syscall(SYS_setfsuid, fsuid);
    syscall(SYS_setfsgid, fsgid);
    errno = e;
  }
  if (!mq) {
    if (errno == EMFILE)
      return Error::Errno(what + ": mq_open (the restoring user's RLIMIT_MSGQUEUE is spent?)");
    return Error::Errno(what + ": mq_open");
  }
  int i = 0;
  for (const pb::PosixMqMsg& m : q.msgs()) {
    if (mq_send(mq.get(), m.data().data(), m.data().size(), m.prio()) < 0)
      return Error::Errno(what + ": mq_send of message " + std::to_string(i));
    i++;
  }
  // mq_open applied our umask; set the mode and owner as they were.
  if (fchmod(mq.get(), q.mode()) < 0) return Error::Errno(what + ": chmod");
  if (fchown(mq.get(), q.uid(), q.gid()) < 0) return Error::Errno(what + ": chown");
  return Ok();
}

// Every limit at least what the dumped objects need: a limit may have been
// lowered below what is in use after the objects were made.
pb::IpcSysctls CreationLimits(const Image& img) {
  pb::IpcSysctls l = img.sysctls;
  auto raise_i = [&](int64_t cur, int64_t need, void (pb::IpcSysctls::*set)(int64_t)) {
    if (need > cur) (l.*set)(need);
  };
  if (l.has_msgmni()) raise_i(l.msgmni(), int64_t(img.msgs.size()), &pb::IpcSysctls::set_msgmni);
  int64_t longest = 0;
  for (const pb::SysvMsgQueue& q : img.msgs)
    for (const pb::SysvMsg& m : q.msgs())
      longest = std::max<int64_t>(longest, int64_t(m.text().size()));
  if (l.has_msgmax()) raise_i(l.msgmax(), longest, &pb::IpcSysctls::set_msgmax);
  if (l.has_shmmni()) raise_i(l.shmmni(), int64_t(img.shms.size()), &pb::IpcSysctls::set_shmmni);
  uint64_t biggest = 0, pages = 0;
  for (const pb::SysvShmSeg& s : img.shms) {
    biggest = std::max(biggest, s.size());
    pages += (s.size() + 4095) / 4096;
  }
  if (l.has_shmmax() && biggest > l.shmmax()) l.set_shmmax(biggest);
  if (l.has_shmall() && pages > l.shmall()) l.set_shmall(pages);
  if (l.sem_size() == 4) {
    int64_t most = 0, total = 0;
    for (const pb::SysvSemSet& s : img.sems) {
      most = std::max<int64_t>(most, s.values_size());
      total += s.values_size();
    }
    l.set_sem(0, std::max(l.sem(0), most));
    l.set_sem(1, std::max(l.sem(1), total));
    l.set_sem(3, std::max(l.sem(3), int64_t(img.sems.size())));
  }
  int64_t maxmsg = 0, msgsize = 0;
  for (const pb::PosixMq& q : img.mqs) {
    maxmsg = std::max(maxmsg, q.maxmsg());
    msgsize = std::max(msgsize, q.msgsize());
  }
  if (l.has_mq_queues_max())
    raise_i(l.mq_queues_max(), int64_t(img.mqs.size()), &pb::IpcSysctls::set_mq_queues_max);
  if (l.has_mq_msg_max()) raise_i(l.mq_msg_max(), maxmsg, &pb::IpcSysctls::set_mq_msg_max);
  if (l.has_mq_msgsize_max())
    raise_i(l.mq_msgsize_max(), msgsize, &pb::IpcSysctls::set_mq_msgsize_max);
  return l;
}

Status CheckEmpty() {
  struct msginfo mi;
  struct seminfo si;
  struct shm_info hi;
  SemUn arg;
  arg.buf = reinterpret_cast<struct semid_ds*>(&si);
  if (msgctl(0, MSG_INFO, reinterpret_cast<struct msqid_ds*>(&mi)) < 0 ||
      semctl(0, 0, SEM_INFO, arg) < 0 ||
      shmctl(0, SHM_INFO, reinterpret_cast<struct shmid_ds*>(&hi)) < 0)
    return Error::Errno("reading the IPC namespace's usage");
  if (mi.msgpool || si.semusz || hi.used_ids)
    return Error("the IPC namespace is not empty (" + std::to_string(mi.msgpool) + " queues, " +
                 std::to_string(si.semusz) + " semaphore sets, " + std::to_string(hi.used_ids) +
                 " segments)");
  return Ok();
}

Status Restore(const images::ImageDir& dir, const std::function<Status()>& also, bool defer_rmid) {
  TRY_ASSIGN(Image img, Load(dir));
  TRY(CheckEmpty());
  TRY(WriteIpcLimits(CreationLimits(img)));
  for (const pb::SysvMsgQueue& q : img.msgs) TRY(RestoreMsgQueue(q));
  for (const pb::SysvSemSet& s : img.sems) TRY(RestoreSemSet(s));
  TRY(RestoreSemValues(img.sems));
  for (const pb::SysvShmSeg& s : img.shms) TRY(RestoreShmSeg(dir, s));
  for (const pb::PosixMq& q : img.mqs) TRY(RestorePosixMq(q));
  if (also) TRY(also());
  // The dumped values exactly; shm_rmid_forced only now (with it on, our
  // detach from a filled segment would have destroyed it); then any
  // next-id request that was pending at dump time.
  TRY(WriteIpcLimits(img.sysctls));
  for (const char* f : {"shm_rmid_forced", "msg_next_id", "sem_next_id", "shm_next_id"}) {
    if (defer_rmid && !strcmp(f, "shm_rmid_forced")) continue;
    std::string v = IpcSysctlValue(img.sysctls, f);
    // The kernel takes -1 ("none") only from itself, after using a request.
    if (!v.empty() && v != "-1") TRY(WriteIpcSysctl(f, v));
  }
  LOG_INFO("IPC namespace: " + std::to_string(img.msgs.size()) + " message queues, " +
           std::to_string(img.sems.size()) + " semaphore sets, " + std::to_string(img.shms.size()) +
           " segments, " + std::to_string(img.mqs.size()) + " POSIX queues restored");
  return Ok();
}

}  // namespace

Status CheckIpcNamespaceImage(const images::ImageDir& dir) {
  auto img = Load(dir);
  if (!img.ok()) return std::move(img.error().Context("IPC namespace"));
  return Ok();
}

Status RestoreIpcNamespace(const images::ImageDir& dir, const std::function<Status()>& also,
                           bool defer_shm_rmid_forced) {
  TRY(Restore(dir, also, defer_shm_rmid_forced), "IPC namespace");
  return Ok();
}

Status RestoreSemValuesOf(const images::ImageDir& dir, pid_t pid) {
  auto img = Load(dir);
  if (!img.ok()) return std::move(img.error().Context("IPC namespace"));
  std::vector<SemVal> vals;
  for (const pb::SysvSemSet& s : img->sems)
    for (int i = 0; i < s.values_size(); i++)
      if (pid_t(s.pids(i)) == pid) vals.push_back({s.id(), i, s.values(i)});
  int e = SetVals(vals);
  std::string what = "IPC namespace: semaphores last used by pid " + std::to_string(pid);
  if (e) return Error::Errno(what + ": setting their values", e);
  return Ok();
}

Status WriteShmRmidForced(const images::ImageDir& dir) {
  auto img = Load(dir);
  if (!img.ok()) return std::move(img.error().Context("IPC namespace"));
  std::string v = IpcSysctlValue(img->sysctls, "shm_rmid_forced");
  if (!v.empty()) TRY(WriteIpcSysctl("shm_rmid_forced", v), "IPC namespace");
  return Ok();
}

}  // namespace ckpt::ns
