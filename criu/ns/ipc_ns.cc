// Dumping an IPC namespace (ipc_ns.h). ckpt forks a reader that enters the
// namespace and streams what it finds back over a pipe as frames:
//   u8 tag, u32 length, payload
//   'R' a serialized pb::IpcNsRecord
//   'S' u64 offset + bytes of the segment of the last shm_seg record
//   'W' a warning, 'E' the error that ended the reader, 'D' done.
// ckpt writes the records and segment files, so ImageDir owns every file
// (and removes them if the dump fails).
#include "criu/ns/ipc_ns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/mqueue.h"
#include "criu/ns/ipc_sysctl.h"
#include "criu/shmem.h"  // SysvShmFileName
#include "proto/ipc_ns.pb.h"

// The *_STAT_ANY commands (Linux 4.17) read an object without a permission
// check; older glibc headers lack them.
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif
#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef MSG_COPY
#define MSG_COPY 040000  // msgrcv: copy the message at index msgtyp, leave it queued
#endif

namespace ckpt::ns {
namespace {

constexpr uint32_t kShmLocked = 02000;  // SHM_LOCKED in shm_perm.mode
constexpr size_t kChunk = 1 << 20;      // segment bytes per 'S' frame

union SemUn {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
  struct seminfo* info;
};

// ---- the reader (a forked child inside the namespace) ----

class Out {
 public:
  explicit Out(int fd) : fd_(fd) {}
  Status Send(char tag, const void* p, size_t n) {
    uint8_t hdr[5];
    hdr[0] = uint8_t(tag);
    uint32_t len = uint32_t(n);
    memcpy(hdr + 1, &len, 4);
    TRY(io::WriteFull(fd_, hdr, sizeof(hdr)));
    return io::WriteFull(fd_, p, n);
  }
  Status Send(char tag, const std::string& s) { return Send(tag, s.data(), s.size()); }
  Status Record(const pb::IpcNsRecord& r) {
    std::string s;
    if (!r.SerializeToString(&s)) return Error("cannot serialize an IPC record");
    return Send('R', s);
  }
  void Warn(const std::string& w) { (void)Send('W', w); }

 private:
  int fd_;
};

// Every object the kernel counts must have been found: a *_STAT_ANY the
// kernel lacks (before 4.17) would otherwise skip them all silently.
Status AllFound(int found, long in_use, const std::string& kind) {
  if (found == in_use) return Ok();
  return Error("found " + std::to_string(found) + " of the " + std::to_string(in_use) + " " + kind +
               " the kernel counts (one made or removed meanwhile from outside the tree?)");
}

void FillPerm(const struct ipc_perm& p, pb::IpcPermEntry* e) {
  e->set_key(int32_t(p.__key));
  e->set_uid(p.uid);
  e->set_gid(p.gid);
  e->set_cuid(p.cuid);
  e->set_cgid(p.cgid);
  e->set_mode(p.mode);
}

Status ReadMsgQueues(Out& out) {
  struct msginfo info;
  int max = msgctl(0, MSG_INFO, reinterpret_cast<struct msqid_ds*>(&info));
  if (max < 0) return Error::Errno("msgctl MSG_INFO");
  int found = 0;
  for (int idx = 0; idx <= max; idx++) {
    struct msqid_ds ds;
    int id = msgctl(idx, MSG_STAT_ANY, &ds);
    if (id < 0) {
      if (errno == EINVAL || errno == EIDRM) continue;  // free index
      return Error::Errno("msgctl MSG_STAT_ANY index " + std::to_string(idx));
    }
    found++;
    std::string what = "message queue " + std::to_string(id);
    pb::IpcNsRecord r;
    pb::SysvMsgQueue* q = r.mutable_msg_queue();
    q->set_id(id);
    FillPerm(ds.msg_perm, q->mutable_perm());
    q->set_qbytes(ds.msg_qbytes);
    // No message is longer than all queued bytes together.
    std::vector<char> buf(sizeof(long) + ds.__msg_cbytes + 1);
    for (msgqnum_t i = 0; i < ds.msg_qnum; i++) {
      ssize_t n = msgrcv(id, buf.data(), ds.__msg_cbytes + 1, long(i), MSG_COPY | IPC_NOWAIT);
      if (n < 0)
        return Error::Errno(what + ": msgrcv MSG_COPY of message " + std::to_string(i) + " of " +
                            std::to_string(ds.msg_qnum));
      pb::SysvMsg* m = q->add_msgs();
      long type;
      memcpy(&type, buf.data(), sizeof(type));
      m->set_mtype(type);
      m->set_text(buf.data() + sizeof(long), size_t(n));
    }
    if (r.ByteSizeLong() > images::kMaxRecordSize)
      return Error(what + ": holds " + std::to_string(ds.__msg_cbytes) +
                   " bytes, more than an image record takes");
    TRY(out.Record(r));
  }
  return AllFound(found, info.msgpool, "message queues");
}

// The pid of `global` (as ckpt sees it) in the pid namespace whose inode is
// pidns_ino, or 0 when it is not a live process of that namespace.
int PidInNs(int global, ino_t pidns_ino) {
  if (global <= 0) return 0;
  std::string base = "/proc/" + std::to_string(global);
  struct stat st;
  if (stat((base + "/ns/pid").c_str(), &st) < 0 || st.st_ino != pidns_ino) return 0;
  auto status = io::ReadFile(base + "/status");
  if (!status.ok()) return 0;
  size_t p = status->find("\nNSpid:");
  if (p == std::string::npos) return 0;
  std::string line = status->substr(p + 7, status->find('\n', p + 1) - p - 7);
  size_t last = line.find_last_of(" \t");
  return atoi(line.c_str() + (last == std::string::npos ? 0 : last + 1));
}

Status ReadSemSets(Out& out, ino_t pidns_ino) {
  struct seminfo info;
  SemUn arg;
  arg.info = &info;
  int max = semctl(0, 0, SEM_INFO, arg);
  if (max < 0) return Error::Errno("semctl SEM_INFO");
  int found = 0;
  for (int idx = 0; idx <= max; idx++) {
    struct semid_ds ds;
    arg.buf = &ds;
    int id = semctl(idx, 0, SEM_STAT_ANY, arg);
    if (id < 0) {
      if (errno == EINVAL || errno == EIDRM) continue;
      return Error::Errno("semctl SEM_STAT_ANY index " + std::to_string(idx));
    }
    found++;
    std::string what = "semaphore set " + std::to_string(id);
    pb::IpcNsRecord r;
    pb::SysvSemSet* s = r.mutable_sem_set();
    s->set_id(id);
    FillPerm(ds.sem_perm, s->mutable_perm());
    std::vector<unsigned short> vals(ds.sem_nsems);
    arg.array = vals.data();
    if (semctl(id, 0, GETALL, arg) < 0) return Error::Errno(what + ": GETALL");
    int waiters = 0;
    for (unsigned i = 0; i < ds.sem_nsems; i++) {
      s->add_values(vals[i]);
      int pid = semctl(id, int(i), GETPID);
      if (pid < 0) return Error::Errno(what + ": GETPID of semaphore " + std::to_string(i));
      s->add_pids(PidInNs(pid, pidns_ino));
      int n = semctl(id, int(i), GETNCNT), z = semctl(id, int(i), GETZCNT);
      if (n > 0) waiters += n;
      if (z > 0) waiters += z;
    }
    // Frozen tasks of the tree are not in the wait queues (the ptrace stop
    // interrupted their semop, which restarts after restore): whoever is
    // there runs outside the dumped tree.
    if (waiters)
      out.Warn(what + ": " + std::to_string(waiters) +
               " process(es) outside the dumped tree wait on it");
    TRY(out.Record(r));
  }
  return AllFound(found, info.semusz, "semaphore sets");
}

// Streams the contents of one attached segment: only its data extents
// (SEEK_DATA/SEEK_HOLE on the shmem file behind the mapping), so holes are
// neither allocated here nor written in the image.
Status SendSegment(Out& out, void* addr, uint64_t size, const std::string& what) {
  char link[96];
  uint64_t len = (size + 4095) / 4096 * 4096;
  snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
           (unsigned long)addr + (unsigned long)len);
  UniqueFd fd(open(link, O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::Errno(what + ": open " + link);
  std::vector<char> buf(sizeof(uint64_t) + kChunk);
  off_t off = 0;
  while (uint64_t(off) < size) {
    off_t data = lseek(fd.get(), off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole left
      return Error::Errno(what + ": SEEK_DATA");
    }
    off_t hole = lseek(fd.get(), data, SEEK_HOLE);
    if (hole < 0) return Error::Errno(what + ": SEEK_HOLE");
    if (uint64_t(hole) > size) hole = off_t(size);
    for (off_t p = data; p < hole;) {
      size_t n = std::min<size_t>(kChunk, size_t(hole - p));
      uint64_t o = uint64_t(p);
      memcpy(buf.data(), &o, sizeof(o));
      ssize_t r = pread(fd.get(), buf.data() + sizeof(o), n, p);
      if (r <= 0) return Error::Errno(what + ": read", r == 0 ? EIO : errno);
      TRY(out.Send('S', buf.data(), sizeof(o) + size_t(r)));
      p += r;
    }
    off = hole;
  }
  return Ok();
}

// kernel.shm_rmid_forced = 1 destroys a segment when its last attach goes
// away: reading an unattached segment (attach, detach) would remove it. The
// reader turns it off while it reads and back on after; turning it on
// destroys orphaned unattached segments, which with it on cannot exist.
class RmidForcedOff {
 public:
  Status Begin(const pb::IpcSysctls& s) {
    if (!value_.empty()) return Ok();  // already off
    if (!s.has_shm_rmid_forced() || s.shm_rmid_forced() == 0) return Ok();
    TRY(WriteIpcSysctl("shm_rmid_forced", "0"));
    value_ = std::to_string(s.shm_rmid_forced());
    return Ok();
  }
  Status End() {
    if (value_.empty()) return Ok();
    std::string v = std::move(value_);
    value_.clear();
    return WriteIpcSysctl("shm_rmid_forced", v);
  }
  ~RmidForcedOff() { (void)End(); }

 private:
  std::string value_;
};

Status ReadShmSegs(Out& out, const std::set<int>& attached, const pb::IpcSysctls& sysctls) {
  struct shm_info info;
  int max = shmctl(0, SHM_INFO, reinterpret_cast<struct shmid_ds*>(&info));
  if (max < 0) return Error::Errno("shmctl SHM_INFO");
  RmidForcedOff forced;
  int found = 0;
  for (int idx = 0; idx <= max; idx++) {
    struct shmid_ds ds;
    int id = shmctl(idx, SHM_STAT_ANY, &ds);
    if (id < 0) {
      if (errno == EINVAL || errno == EIDRM) continue;
      return Error::Errno("shmctl SHM_STAT_ANY index " + std::to_string(idx));
    }
    found++;
    if (attached.count(id)) continue;
    std::string what = "shared memory segment " + std::to_string(id);
    // A segment marked for removal lives only while attached: if none of
    // the tree attaches it, it belongs to processes outside the tree.
    if (ds.shm_perm.mode & SHM_DEST) {
      out.Warn(what + ": marked for removal and attached only outside the dumped tree; not saved");
      continue;
    }
    if (ds.shm_nattch > 0)
      out.Warn(what + ": attached by " + std::to_string(ds.shm_nattch) +
               " process(es) outside the dumped tree; saving its contents as they are now");
    pb::IpcNsRecord r;
    pb::SysvShmSeg* s = r.mutable_shm_seg();
    s->set_id(id);
    FillPerm(ds.shm_perm, s->mutable_perm());
    s->mutable_perm()->set_mode(ds.shm_perm.mode & (0777 | kShmLocked));
    s->set_size(ds.shm_segsz);
    TRY(out.Record(r));
    TRY(forced.Begin(sysctls));
    void* p = shmat(id, nullptr, SHM_RDONLY);
    if (p == reinterpret_cast<void*>(-1)) return Error::Errno(what + ": shmat");
    Status st = SendSegment(out, p, ds.shm_segsz, what);
    shmdt(p);
    TRY(st);
  }
  TRY(forced.End());
  return AllFound(found, long(info.used_ids), "shared memory segments");
}

// Receives every message of a POSIX queue and sends them back in the same
// order (the kernel has no peek; the queue orders by priority, then FIFO,
// so sending in the order received rebuilds it exactly). Who else could
// see the queue move: a task of the tree blocked in mq_receive or mq_send
// is not in the queue's wait lists (the freeze interrupted its call, which
// restarts after the dump); a process outside the tree could take or add a
// message meanwhile, which is detected (a short read, or a refill that does
// not fit) and fails the dump; an mq_notify registration would fire on the
// refill of the emptied queue, so such a queue is refused beforehand.
Status ReadPosixMq(Out& out, const std::string& dir, const std::string& name) {
  std::string what = "POSIX message queue /" + name;
  std::string path = dir + "/" + name;
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return Error::Errno(what + ": stat");
  TRY_ASSIGN(std::string text, io::ReadFile(path), what);
  TRY_ASSIGN(files::MqStatus status, files::ParseMqStatus(text), what);
  UniqueFd mq(mq_open(("/" + name).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!mq) return Error::Errno(what + ": mq_open");
  struct mq_attr attr;
  if (mq_getattr(mq.get(), &attr) < 0) return Error::Errno(what + ": mq_getattr");
  if (status.notify_pid != 0) {
    // Sending into the emptied queue would fire the notification (and end
    // the registration): refuse rather than wake the registered process.
    if (attr.mq_curmsgs > 0)
      return Error(what + ": holds " + std::to_string(attr.mq_curmsgs) +
                   " messages and an mq_notify registration (" + files::MqNotifyName(status) +
                   ", pid " + std::to_string(status.notify_pid) +
                   "): reading it would fire the notification; not supported");
    out.Warn(what + ": the mq_notify registration of pid " + std::to_string(status.notify_pid) +
             " is not restored");
  }
  pb::IpcNsRecord r;
  pb::PosixMq* q = r.mutable_posix_mq();
  q->set_name(name);
  q->set_mode(st.st_mode & 07777);
  q->set_uid(st.st_uid);
  q->set_gid(st.st_gid);
  q->set_maxmsg(attr.mq_maxmsg);
  q->set_msgsize(attr.mq_msgsize);
  std::vector<char> buf(size_t(attr.mq_msgsize));
  Status st_recv;
  for (long i = 0; i < attr.mq_curmsgs; i++) {
    unsigned prio;
    ssize_t n = mq_receive(mq.get(), buf.data(), buf.size(), &prio);
    if (n < 0) {
      st_recv = Error::Errno(what + ": mq_receive of message " + std::to_string(i) + " of " +
                             std::to_string(attr.mq_curmsgs) + " (someone else read it?)");
      break;
    }
    pb::PosixMqMsg* m = q->add_msgs();
    m->set_prio(prio);
    m->set_data(buf.data(), size_t(n));
  }
  // Put back what was taken, whatever happened: the victim must keep them.
  int sent = 0;
  Status st_send;
  for (const pb::PosixMqMsg& m : q->msgs()) {
    if (mq_send(mq.get(), m.data().data(), m.data().size(), m.prio()) < 0) {
      st_send = Error::Errno(what + ": sending message " + std::to_string(sent) + " back failed; " +
                             std::to_string(q->msgs_size() - sent) +
                             " message(s) LOST (did a process outside the tree write to it?)");
      break;
    }
    sent++;
  }
  TRY(st_send);
  TRY(st_recv);
  struct mq_attr now;
  if (mq_getattr(mq.get(), &now) < 0) return Error::Errno(what + ": mq_getattr");
  if (now.mq_curmsgs != q->msgs_size())
    return Error(what + ": holds " + std::to_string(now.mq_curmsgs) +
                 " messages after the refill, not " + std::to_string(q->msgs_size()) +
                 ": a process outside the dumped tree used it meanwhile");
  if (r.ByteSizeLong() > images::kMaxRecordSize)
    return Error(what + ": holds more bytes than an image record takes");
  return out.Record(r);
}

Status ReadPosixMqs(Out& out) {
  // Mounted in the reader's private mount namespace only, over a directory
  // that exists: nothing outside sees it, nothing is left behind.
  const char* const kDirs[] = {"/dev/mqueue", "/tmp", "/mnt", "/root", "/"};
  std::string dir;
  for (const char* d : kDirs)
    if (mount("mqueue", d, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) {
      dir = d;
      break;
    }
  if (dir.empty()) return Error::Errno("mounting an mqueue filesystem");
  DIR* d = opendir(dir.c_str());
  if (!d) return Error::Errno("open the mqueue filesystem");
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.push_back(e->d_name);
  closedir(d);
  for (const std::string& n : names) TRY(ReadPosixMq(out, dir == "/" ? "" : dir, n));
  return Ok();
}

Status ReadNamespace(Out& out, int ipc_ns, ino_t pidns_ino, const std::set<int>& attached) {
  if (unshare(CLONE_NEWNS) < 0) return Error::Errno("unshare(CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    return Error::Errno("making / private");
  if (setns(ipc_ns, CLONE_NEWIPC) < 0) return Error::Errno("setns into the IPC namespace");
  TRY_ASSIGN(pb::IpcSysctls sysctls, ReadIpcSysctls());
  pb::IpcNsRecord r;
  *r.mutable_sysctls() = sysctls;
  TRY(out.Record(r));
  TRY(ReadMsgQueues(out));
  TRY(ReadSemSets(out, pidns_ino));
  TRY(ReadShmSegs(out, attached, sysctls));
  TRY(ReadPosixMqs(out));
  return Ok();
}

// No PR_SET_PDEATHSIG: a reader killed half-way through refilling a POSIX
// queue, or with shm_rmid_forced turned off, would change the namespace.
// If ckpt goes away the reader finishes (nothing it does blocks) and its
// next write fails with EPIPE (SIGPIPE is ignored).
[[noreturn]] void Reader(int fd, int ipc_ns, ino_t pidns_ino, const std::set<int>& attached) {
  signal(SIGPIPE, SIG_IGN);
  Out out(fd);
  Status s = ReadNamespace(out, ipc_ns, pidns_ino, attached);
  if (s.ok())
    s = out.Send('D', "", 0);
  else
    (void)out.Send('E', s.error().message());
  _exit(s.ok() ? 0 : 1);
}

// ---- ckpt's side ----

// Writes one segment's data extents into its raw image file.
class SegmentFile {
 public:
  SegmentFile(UniqueFd fd, int id, uint64_t size) : fd_(std::move(fd)), id_(id), size_(size) {}
  Status Add(const std::string& payload) {
    uint64_t off;
    if (payload.size() < sizeof(off)) return Error("short segment frame");
    memcpy(&off, payload.data(), sizeof(off));
    size_t n = payload.size() - sizeof(off);
    if (off > size_ || n > size_ - off) return Error("segment data beyond its size");
    if (pwrite(fd_.get(), payload.data() + sizeof(off), n, off_t(off)) != ssize_t(n))
      return Error::Errno("write " + SysvShmFileName(id_));
    return Ok();
  }
  Status Finish() {
    if (ftruncate(fd_.get(), off_t(size_)) < 0)
      return Error::Errno("truncate " + SysvShmFileName(id_));
    return Ok();
  }

 private:
  UniqueFd fd_;
  int id_;
  uint64_t size_;
};

Status Collect(int in, images::ImageDir& dir) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kIpcNs));
  std::unique_ptr<SegmentFile> seg;
  int objects = 0;
  for (;;) {
    uint8_t hdr[5];
    auto got = io::ReadUpTo(in, hdr, sizeof(hdr));
    if (!got.ok()) return std::move(got.error());
    if (*got != sizeof(hdr)) return Error("the reader ended without an answer");
    uint32_t len;
    memcpy(&len, hdr + 1, 4);
    if (len > images::kMaxRecordSize + kChunk) return Error("oversized frame from the reader");
    std::string payload(len, '\0');
    TRY(io::ReadFull(in, payload.data(), len, "frame from the reader"));
    switch (hdr[0]) {
      case 'R': {
        pb::IpcNsRecord r;
        if (!r.ParseFromString(payload)) return Error("unparsable record from the reader");
        if (seg) TRY(seg->Finish());
        seg.reset();
        if (r.has_shm_seg()) {
          TRY_ASSIGN(UniqueFd fd, dir.CreateRaw(SysvShmFileName(r.shm_seg().id())));
          seg = std::make_unique<SegmentFile>(std::move(fd), r.shm_seg().id(), r.shm_seg().size());
        }
        if (!r.has_sysctls()) objects++;
        TRY(w.Write(r));
        break;
      }
      case 'S':
        if (!seg) return Error("segment data without a segment");
        TRY(seg->Add(payload));
        break;
      case 'W':
        LOG_WARN(payload);
        break;
      case 'E':
        return Error(payload);
      case 'D':
        if (seg) TRY(seg->Finish());
        LOG_INFO("IPC namespace: " + std::to_string(objects) + " objects");
        return w.Close();
      default:
        return Error("unknown frame from the reader");
    }
  }
}

}  // namespace

Status DumpIpcNamespace(pid_t pid, const std::set<int>& attached_shm_ids, images::ImageDir& dir) {
  std::string where = "IPC namespace of pid " + std::to_string(pid);
  std::string base = "/proc/" + std::to_string(pid) + "/ns/";
  UniqueFd ipc(open((base + "ipc").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ipc) return Error::Errno(where + ": open " + base + "ipc");
  struct stat pidns;
  if (stat((base + "pid").c_str(), &pidns) < 0)
    return Error::Errno(where + ": stat " + base + "pid");
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = fork();
  if (child < 0) return Error::Errno(where + ": fork");
  if (child == 0) {
    rd.reset();
    Reader(wr.get(), ipc.get(), pidns.st_ino, attached_shm_ids);
  }
  wr.reset();
  Status s = Collect(rd.get(), dir);
  rd.reset();  // a reader still writing gets EPIPE and ends
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!s.ok()) return std::move(s.error().Context(where));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error(where + ": the reader failed (status " + std::to_string(status) + ")");
  return Ok();
}

Result<std::vector<pid_t>> TasksWithSemUndo(const std::vector<pid_t>& pids) {
  std::vector<pid_t> out;
  pid_t self = getpid();
  for (pid_t p : pids) {
    long r = syscall(SYS_kcmp, self, p, KCMP_SYSVSEM, 0, 0);
    if (r < 0) return Error::Errno("pid " + std::to_string(p) + ": kcmp KCMP_SYSVSEM");
    if (r != 0) out.push_back(p);
  }
  return out;
}

Result<std::string> RunInIpcNamespace(pid_t pid, const std::function<Result<std::string>()>& fn) {
  std::string where = "IPC namespace of pid " + std::to_string(pid);
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/ipc";
  UniqueFd ipc(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ipc) return Error::Errno(where + ": open " + ns);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = fork();
  if (child < 0) return Error::Errno(where + ": fork");
  if (child == 0) {
    // Answer: 'O' + fn's string, or 'E' + the error.
    signal(SIGPIPE, SIG_IGN);
    rd.reset();
    std::string answer;
    if (setns(ipc.get(), CLONE_NEWIPC) < 0) {
      answer = "E" + Error::Errno("setns").message();
    } else {
      auto r = fn();
      answer = r.ok() ? "O" + *r : "E" + r.error().message();
    }
    _exit(io::WriteFull(wr.get(), answer.data(), answer.size()).ok() ? 0 : 1);
  }
  wr.reset();
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(rd.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out.append(buf, size_t(n));
  int err = errno;
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (n < 0) return Error::Errno(where + ": reading the answer", err);
  if (out.empty() || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Error(where + ": the helper failed (status " + std::to_string(st) + ")");
  if (out[0] != 'O') return Error(where + ": " + out.substr(1));
  return out.substr(1);
}

Result<std::string> ReadSysvipcOf(pid_t pid, const std::string& file) {
  return RunInIpcNamespace(pid, [&]() { return io::ReadFile("/proc/sysvipc/" + file); });
}

}  // namespace ckpt::ns
