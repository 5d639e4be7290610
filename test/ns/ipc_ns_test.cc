// The contents of an IPC namespace on the real kernel (criu/ns/ipc_ns.h).
// Root. The POSIX message queue fd handler's tests (mqueue_fd_test.cc) are
// in the same binary, in the same private IPC namespace.
//
// Every object lives in an IPC namespace a child (or this test, see
// PrivateIpc below) made for itself: everything goes away with them, also
// when a check fails. The states are compared as text built here from
// /proc/sysvipc and the system calls, independently of ckpt's reader.
#include "criu/ns/ipc_ns.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/io.h"
#include "criu/files/file_context.h"
#include "criu/files/file_types.h"
#include "criu/net/net_dump.h"
#include "criu/shmem.h"
#include "images/image_dir.h"
#include "proto/inventory.pb.h"
#include "proto/ipc_ns.pb.h"
#include "test/unit/test_util.h"

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

namespace ckpt {
namespace {

// What ImageDir::Commit needs: it lists the raw files in checksums.img.
pb::InventoryEntry TestInventory() {
  pb::InventoryEntry inv;
  inv.set_format_version(images::kFormatVersion);
  inv.set_kernel("test"), inv.set_arch("x86_64");
  inv.set_root_pid(1), inv.set_page_size(4096);
  return inv;
}


using ckpt::testing::TempDir;

// This process's own objects (the fd handler tests) live in a namespace of
// its own too.
class PrivateIpc : public ::testing::Environment {
 public:
  void SetUp() override {
    if (unshare(CLONE_NEWIPC) < 0) throw std::runtime_error("unshare(CLONE_NEWIPC) failed");
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PrivateIpc);

union SemUn {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

void Must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + strerror(errno));
}

// ---- frames over pipes between the test and its children ----

void Send(int fd, const std::string& s) {
  uint32_t n = uint32_t(s.size());
  if (!io::WriteFull(fd, &n, 4).ok() || !io::WriteFull(fd, s.data(), s.size()).ok())
    _exit(3);  // the other side is gone
}

std::string Recv(int fd) {
  uint32_t n;
  if (!io::ReadFull(fd, &n, 4).ok()) return "EOF";
  std::string s(n, '\0');
  if (!io::ReadFull(fd, s.data(), n).ok()) return "EOF";
  return s;
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) {
    o += d[c >> 4];
    o += d[c & 15];
  }
  return o;
}

std::string Trim(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

std::string ReadOrDie(const std::string& path) {
  auto r = io::ReadFile(path);
  if (!r.ok()) throw std::runtime_error(r.error().message());
  return *r;
}

void WriteOrDie(const std::string& path, const std::string& v) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  Must(fd >= 0, "open " + path);
  bool ok = write(fd, v.data(), v.size()) == ssize_t(v.size());
  close(fd);
  Must(ok, "write " + path + " = " + v);
}

// Rows of a /proc/sysvipc file, split into columns, header dropped.
std::vector<std::vector<std::string>> SysvipcRows(const std::string& name) {
  std::istringstream in(ReadOrDie("/proc/sysvipc/" + name));
  std::string line;
  std::getline(in, line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::vector<std::string> cols;
    std::string c;
    while (l >> c) cols.push_back(c);
    if (!cols.empty()) rows.push_back(cols);
  }
  return rows;
}

const char* const kSysctls[] = {"kernel/msgmax",         "kernel/msgmnb",
                                "kernel/msgmni",         "kernel/sem",
                                "kernel/shmmax",         "kernel/shmall",
                                "kernel/shmmni",         "kernel/shm_rmid_forced",
                                "kernel/msg_next_id",    "kernel/sem_next_id",
                                "kernel/shm_next_id",    "fs/mqueue/queues_max",
                                "fs/mqueue/msg_max",     "fs/mqueue/msgsize_max",
                                "fs/mqueue/msg_default", "fs/mqueue/msgsize_default"};

const char* const kMqNames[] = {"/jobs", "/empty", "/memfd:tricky"};

// Everything observable about the caller's IPC namespace that a restore
// promises to keep. `drain` also reads the POSIX queues' messages (which
// empties them). Segment `skip_shm` is left out.
std::string Snapshot(bool drain, int skip_shm) {
  std::string out;
  for (const char* s : kSysctls)
    out +=
        std::string("sysctl ") + s + " = " + Trim(ReadOrDie(std::string("/proc/sys/") + s)) + "\n";
  // msg: key msqid perms cbytes qnum lspid lrpid uid gid cuid cgid ...
  for (const auto& r : SysvipcRows("msg")) {
    int id = std::stoi(r[1]);
    struct msqid_ds ds;
    Must(msgctl(id, IPC_STAT, &ds) >= 0, "msgctl IPC_STAT");
    out += "msg id=" + r[1] + " key=" + r[0] + " perms=" + r[2] + " cbytes=" + r[3] +
           " qnum=" + r[4] + " uid=" + r[7] + " gid=" + r[8] + " cuid=" + r[9] + " cgid=" + r[10] +
           " qbytes=" + std::to_string(ds.msg_qbytes) + "\n";
    std::vector<char> buf(sizeof(long) + 65536);
    for (msgqnum_t i = 0; i < ds.msg_qnum; i++) {
      ssize_t n = msgrcv(id, buf.data(), 65536, long(i), MSG_COPY | IPC_NOWAIT);
      Must(n >= 0, "msgrcv MSG_COPY");
      long type;
      memcpy(&type, buf.data(), sizeof(type));
      out += "  type=" + std::to_string(type) +
             " text=" + Hex(std::string(buf.data() + sizeof(long), n)) + "\n";
    }
  }
  // sem: key semid perms nsems uid gid cuid cgid otime ctime
  for (const auto& r : SysvipcRows("sem")) {
    int id = std::stoi(r[1]);
    int nsems = std::stoi(r[3]);
    out += "sem id=" + r[1] + " key=" + r[0] + " perms=" + r[2] + " nsems=" + r[3] +
           " uid=" + r[4] + " gid=" + r[5] + " cuid=" + r[6] + " cgid=" + r[7] + "\n";
    std::vector<unsigned short> vals(nsems);
    SemUn arg;
    arg.array = vals.data();
    Must(semctl(id, 0, GETALL, arg) >= 0, "GETALL");
    for (int i = 0; i < nsems; i++)
      out += "  value=" + std::to_string(vals[i]) +
             " pid=" + std::to_string(semctl(id, i, GETPID)) + "\n";
  }
  // shm: key shmid perms size cpid lpid nattch uid gid cuid cgid ...
  std::string forced = Trim(ReadOrDie("/proc/sys/kernel/shm_rmid_forced"));
  for (const auto& r : SysvipcRows("shm")) {
    int id = std::stoi(r[1]);
    if (id == skip_shm) continue;
    out += "shm id=" + r[1] + " key=" + r[0] + " perms=" + r[2] + " size=" + r[3] +
           " nattch=" + r[6] + " uid=" + r[7] + " gid=" + r[8] + " cuid=" + r[9] +
           " cgid=" + r[10] + "\n";
    // Detaching would destroy the segment with shm_rmid_forced on.
    if (forced != "0") WriteOrDie("/proc/sys/kernel/shm_rmid_forced", "0");
    void* p = shmat(id, nullptr, SHM_RDONLY);
    Must(p != reinterpret_cast<void*>(-1), "shmat");
    const unsigned char* c = static_cast<const unsigned char*>(p);
    size_t size = std::stoul(r[3]);
    uint64_t h = 1469598103934665603ull;
    size_t nonzero = 0;
    for (size_t i = 0; i < size; i++) {
      h = (h ^ c[i]) * 1099511628211ull;
      nonzero += c[i] != 0;
    }
    shmdt(p);
    if (forced != "0") WriteOrDie("/proc/sys/kernel/shm_rmid_forced", forced);
    out += "  fnv=" + std::to_string(h) + " nonzero=" + std::to_string(nonzero) + "\n";
  }
  for (const char* name : kMqNames) {
    mqd_t q = mq_open(name, O_RDONLY | O_NONBLOCK);
    if (q < 0) {
      out += std::string("mq ") + name + " missing\n";
      continue;
    }
    struct stat st;
    struct mq_attr a;
    Must(fstat(q, &st) == 0 && mq_getattr(q, &a) == 0, "mq stat");
    char status[256];
    ssize_t n = read(q, status, sizeof(status) - 1);
    Must(n > 0, "read mq status");
    std::string s(status, n);
    out += std::string("mq ") + name + " mode=" + std::to_string(st.st_mode & 07777) +
           " uid=" + std::to_string(st.st_uid) + " gid=" + std::to_string(st.st_gid) +
           " maxmsg=" + std::to_string(a.mq_maxmsg) + " msgsize=" + std::to_string(a.mq_msgsize) +
           " curmsgs=" + std::to_string(a.mq_curmsgs) + " " + Trim(s.substr(0, s.find("NOTIFY:"))) +
           "\n";
    if (drain) {
      std::vector<char> buf(a.mq_msgsize);
      unsigned prio;
      ssize_t m;
      while ((m = mq_receive(q, buf.data(), buf.size(), &prio)) >= 0)
        out += "  prio=" + std::to_string(prio) + " data=" + Hex(std::string(buf.data(), m)) + "\n";
    }
    mq_close(q);
  }
  return out;
}

// As uid/gid `u` (effective), then back to root.
template <typename F>
auto AsUser(uid_t u, F f) {
  Must(setresgid(-1, u, -1) == 0 && setresuid(-1, u, -1) == 0, "become " + std::to_string(u));
  auto r = f();
  Must(setresuid(-1, 0, -1) == 0 && setresgid(-1, 0, -1) == 0, "become root again");
  return r;
}

struct Made {
  int attached_shm;  // kept attached: "the tree's", skipped by the dump
};

// Objects of every kind with non-default settings, in the caller's (new)
// namespace.
Made Populate() {
  umask(0);
  WriteOrDie("/proc/sys/kernel/msgmax", "12000");
  WriteOrDie("/proc/sys/kernel/msgmnb", "20000");
  WriteOrDie("/proc/sys/kernel/msgmni", "100");
  WriteOrDie("/proc/sys/kernel/sem", "100 5000 40 64");
  WriteOrDie("/proc/sys/kernel/shmmax", "1073741824");
  WriteOrDie("/proc/sys/kernel/shmall", "1048576");
  WriteOrDie("/proc/sys/kernel/shmmni", "200");
  WriteOrDie("/proc/sys/fs/mqueue/queues_max", "100");
  WriteOrDie("/proc/sys/fs/mqueue/msg_max", "20");
  WriteOrDie("/proc/sys/fs/mqueue/msgsize_max", "16384");
  WriteOrDie("/proc/sys/fs/mqueue/msg_default", "5");
  WriteOrDie("/proc/sys/fs/mqueue/msgsize_default", "1024");

  // Message queues; a freed index makes an id with a non-zero sequence.
  int gone = msgget(IPC_PRIVATE, 0600);
  Must(gone >= 0, "msgget");
  int q1 = msgget(0x1234, IPC_CREAT | 0640);
  Must(q1 >= 0 && msgctl(gone, IPC_RMID, nullptr) == 0, "msgget q1");
  struct {
    long type;
    char text[400];
  } m;
  auto snd = [&](int q, long type, const std::string& t) {
    m.type = type;
    memcpy(m.text, t.data(), t.size());
    Must(msgsnd(q, &m, t.size(), IPC_NOWAIT) == 0, "msgsnd");
  };
  snd(q1, 1, "hello");
  snd(q1, 7, std::string(300, '\0') + "tail");
  snd(q1, 2, "");
  snd(q1, 1, "again");
  struct msqid_ds ds;
  Must(msgctl(q1, IPC_STAT, &ds) == 0, "IPC_STAT q1");
  ds.msg_perm.uid = 1000;
  ds.msg_perm.gid = 1001;
  Must(msgctl(q1, IPC_SET, &ds) == 0, "IPC_SET q1");
  int q2 = AsUser(1234, [] { return msgget(IPC_PRIVATE, 0600); });  // cuid 1234
  Must(q2 >= 0, "msgget q2");
  int q3 = msgget(IPC_PRIVATE, 0666);  // holds more than its (lowered) qbytes
  Must(q3 >= 0, "msgget q3");
  snd(q3, 3, std::string(390, 'x'));
  snd(q3, 3, std::string(390, 'y'));
  Must(msgctl(q3, IPC_STAT, &ds) == 0, "IPC_STAT q3");
  ds.msg_qbytes = 500;
  Must(msgctl(q3, IPC_SET, &ds) == 0, "IPC_SET q3");

  // Semaphores: values set by this process (its pid is the last op's),
  // one set never touched, one at SEMVMX.
  int s1 = semget(0x5678, 3, IPC_CREAT | 0660);
  Must(s1 >= 0, "semget s1");
  unsigned short v1[3] = {1, 0, 5};
  SemUn arg;
  arg.array = v1;
  Must(semctl(s1, 0, SETALL, arg) == 0, "SETALL");
  struct sembuf op = {2, -2, IPC_NOWAIT};
  Must(semop(s1, &op, 1) == 0, "semop");
  Must(semget(IPC_PRIVATE, 2, 0600) >= 0, "semget s2");
  int s3 = AsUser(1300, [] { return semget(IPC_PRIVATE, 1, 0644); });
  Must(s3 >= 0, "semget s3");
  arg.val = 32767;
  Must(semctl(s3, 0, SETVAL, arg) == 0, "SETVAL");

  // Segments: sparse contents, locked and chowned, and one kept attached.
  int g1 = shmget(0x9abc, 65536, IPC_CREAT | 0640);
  Must(g1 >= 0, "shmget g1");
  char* p = static_cast<char*>(shmat(g1, nullptr, 0));
  Must(p != reinterpret_cast<char*>(-1), "shmat g1");
  strcpy(p, "segment start");
  strcpy(p + 40960, "after a hole");
  p[65535] = 'z';
  shmdt(p);
  int g2 = AsUser(1400, [] { return shmget(IPC_PRIVATE, 5000, 0600); });
  Must(g2 >= 0, "shmget g2");
  p = static_cast<char*>(shmat(g2, nullptr, 0));
  Must(p != reinterpret_cast<char*>(-1), "shmat g2");
  strcpy(p, "private data");
  shmdt(p);
  struct shmid_ds sds;
  Must(shmctl(g2, IPC_STAT, &sds) == 0, "IPC_STAT g2");
  sds.shm_perm.uid = 1401;
  sds.shm_perm.mode = 0604;
  Must(shmctl(g2, IPC_SET, &sds) == 0 && shmctl(g2, SHM_LOCK, nullptr) == 0, "IPC_SET g2");
  Must(shmget(IPC_PRIVATE, 4096, 0600) >= 0, "shmget g3");  // never attached: all zero
  int g4 = shmget(IPC_PRIVATE, 8192, 0600);
  Must(g4 >= 0 && shmat(g4, nullptr, 0) != reinterpret_cast<void*>(-1), "shm g4");
  // On only now: it destroys a segment at its last detach.
  WriteOrDie("/proc/sys/kernel/shm_rmid_forced", "1");

  // POSIX queues: mixed priorities (received highest first, FIFO within
  // one), an empty message; an empty queue of another owner; a name that
  // looks like a memfd's link.
  struct mq_attr a = {};
  a.mq_maxmsg = 8;
  a.mq_msgsize = 128;
  mqd_t jobs = mq_open("/jobs", O_CREAT | O_EXCL | O_WRONLY, 0640, &a);
  Must(jobs >= 0, "mq_open /jobs");
  const std::pair<unsigned, std::string> msgs[] = {
      {1, "a1"}, {5, "b5"}, {1, "a2"}, {9, "c9"}, {5, std::string("b5\0two", 6)}, {0, ""}};
  for (const auto& [prio, text] : msgs)
    Must(mq_send(jobs, text.data(), text.size(), prio) == 0, "mq_send");
  mq_close(jobs);
  a.mq_maxmsg = 3;
  a.mq_msgsize = 16;
  mqd_t empty = mq_open("/empty", O_CREAT | O_EXCL | O_RDONLY, 0600, &a);
  Must(empty >= 0 && fchown(empty, 1000, 1000) == 0, "mq /empty");
  mq_close(empty);
  mqd_t tricky = mq_open("/memfd:tricky", O_CREAT | O_EXCL | O_RDWR, 0666, nullptr);  // defaults
  Must(tricky >= 0 && mq_send(tricky, "x", 1, 3) == 0, "mq /memfd:tricky");
  mq_close(tricky);
  return {g4};
}

// A descriptor of /jobs the victim keeps open.
int g_jobs = -1;

// The whole status line of /jobs, registration included, read through the
// descriptor kept open (closing one would end the victim's registration).
std::string JobsStatusLine() {
  char status[256];
  ssize_t n = pread(g_jobs, status, sizeof(status) - 1, 0);
  Must(n > 0, "read mq status");
  return Trim(std::string(status, n));
}

// A child in a new IPC namespace that runs `setup`, then answers commands:
// 's' snapshot, 'd' snapshot with the POSIX queues drained, 'n' the status
// line of /jobs, 'q' exit.
struct Victim {
  pid_t pid = -1;
  int in = -1, out = -1;  // ours: read its answers, write commands
  std::string first;      // its first answer
  ~Victim() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
  }
  std::string Ask(char c) {
    Send(out, std::string(1, c));
    return Recv(in);
  }
};

template <typename Setup>
void StartVictim(Victim& v, Setup setup, int skip_shm_from_setup) {
  int down[2], up[2];
  ASSERT_EQ(pipe2(down, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(up, O_CLOEXEC), 0);
  v.pid = fork();
  ASSERT_GE(v.pid, 0);
  if (v.pid == 0) {
    close(down[1]);
    close(up[0]);
    try {
      Must(unshare(CLONE_NEWIPC) == 0, "unshare");
      int skip = setup();
      Send(up[1], std::to_string(skip));
      for (;;) {
        std::string c = Recv(down[0]);
        if (c == "s")
          Send(up[1], Snapshot(false, skip_shm_from_setup ? skip : -1));
        else if (c == "d")
          Send(up[1], Snapshot(true, skip_shm_from_setup ? skip : -1));
        else if (c == "n")
          Send(up[1], JobsStatusLine());
        else
          _exit(0);
      }
    } catch (const std::exception& e) {
      Send(up[1], std::string("ERROR: ") + e.what());
      _exit(1);
    }
  }
  close(down[0]);
  close(up[1]);
  v.in = up[0];
  v.out = down[1];
  v.first = Recv(v.in);
  ASSERT_EQ(v.first.rfind("ERROR", 0), std::string::npos) << v.first;
}

// Restores `path` in pid 1 of new pid and IPC namespaces (so every
// semaphore pid is free) and returns its drained snapshot or "ERROR: ...".
std::string RestoreInNewNamespaces(const std::string& path) {
  int up[2];
  if (pipe2(up, O_CLOEXEC) < 0) return "ERROR: pipe";
  pid_t r = fork();
  if (r < 0) return "ERROR: fork";
  if (r == 0) {
    close(up[0]);
    if (unshare(CLONE_NEWPID) < 0) {
      Send(up[1], "ERROR: unshare(CLONE_NEWPID)");
      _exit(1);
    }
    pid_t init = fork();
    if (init == 0) {
      try {
        Must(unshare(CLONE_NEWIPC) == 0, "unshare(CLONE_NEWIPC)");
        auto dir = images::ImageDir::Open(path);
        if (!dir.ok()) throw std::runtime_error(dir.error().message());
        Status s = ns::RestoreIpcNamespace(**dir);
        if (s.ok() && (prctl(PR_GET_DUMPABLE) != 1 || geteuid() != 0 || getegid() != 0))
          s = Error("the restoring process is no longer dumpable root");
        Send(up[1], s.ok() ? Snapshot(true, -1) : "ERROR: " + s.error().message());
      } catch (const std::exception& e) {
        Send(up[1], std::string("ERROR: ") + e.what());
      }
      _exit(0);
    }
    int st = 0;
    if (init > 0) waitpid(init, &st, 0);
    _exit(init > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 1);
  }
  close(up[1]);
  std::string s = Recv(up[0]);
  close(up[0]);
  waitpid(r, nullptr, 0);
  return s;
}

TEST(IpcNs, DumpLeavesEverythingAndRestoreRebuildsIt) {
  Victim v;
  StartVictim(
      v, [] { return Populate().attached_shm; }, true);
  if (::testing::Test::HasFatalFailure()) return;
  int attached = std::stoi(v.first);
  std::string before = v.Ask('s');
  ASSERT_EQ(before.rfind("ERROR", 0), std::string::npos) << before;

  TempDir tmp;
  auto dir = images::ImageDir::Create(tmp.path());
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  Status s = ns::DumpIpcNamespace(v.pid, {attached}, **dir);
  ASSERT_TRUE(s.ok()) << s.error().message();
  ASSERT_TRUE((*dir)->Commit(TestInventory()).ok());  // checksums.img lists the segments
  EXPECT_FALSE(testing::PathExists(tmp / SysvShmFileName(attached)));

  // Nothing moved: every message still there, in order.
  std::string after = v.Ask('s');
  EXPECT_EQ(before, after);
  std::string orig = v.Ask('d');
  ASSERT_EQ(orig.rfind("ERROR", 0), std::string::npos) << orig;
  // The snapshot really holds what Populate made (so equal means something).
  EXPECT_NE(orig.find("key=4660 perms=640 cbytes=314 qnum=4 uid=1000 gid=1001 cuid=0 cgid=0"),
            std::string::npos)
      << orig;
  EXPECT_NE(orig.find("cuid=1234 cgid=1234 qbytes=20000"), std::string::npos) << orig;
  EXPECT_NE(orig.find("cbytes=780 qnum=2"), std::string::npos) << orig;
  EXPECT_NE(orig.find("qbytes=500"), std::string::npos) << orig;
  EXPECT_NE(orig.find("  value=32767 pid="), std::string::npos) << orig;
  EXPECT_NE(orig.find("  value=3 pid=" + std::to_string(v.pid)), std::string::npos) << orig;
  EXPECT_NE(orig.find("perms=2604 size=5000 nattch=0 uid=1401 gid=1400 cuid=1400 cgid=1400"),
            std::string::npos)
      << orig;
  EXPECT_NE(orig.find("sysctl kernel/shm_rmid_forced = 1"), std::string::npos) << orig;
  EXPECT_NE(orig.find("sysctl fs/mqueue/msgsize_default = 1024"), std::string::npos) << orig;
  EXPECT_NE(orig.find("  prio=9 data=6339\n  prio=5 data=6235\n  prio=5 data=62350074776f\n"
                      "  prio=1 data=6131\n  prio=1 data=6132\n  prio=0 data=\n"),
            std::string::npos)
      << orig;
  EXPECT_NE(orig.find("mq /empty mode=384 uid=1000 gid=1000 maxmsg=3 msgsize=16 curmsgs=0"),
            std::string::npos)
      << orig;
  EXPECT_NE(orig.find("mq /memfd:tricky mode=438 uid=0 gid=0 maxmsg=5 msgsize=1024 curmsgs=1"),
            std::string::npos)
      << orig;
  v.Ask('q');

  std::string restored = RestoreInNewNamespaces(tmp.path());
  EXPECT_EQ(orig, restored);
}

// Frames a namespace image by hand: sysctls, then `records`.
void WriteImage(images::ImageDir& dir, const std::vector<pb::IpcNsRecord>& records,
                bool sysctls_first = true) {
  auto w = dir.OpenWriter(images::ImageType::kIpcNs);
  ASSERT_TRUE(w.ok());
  pb::IpcNsRecord sys;
  sys.mutable_sysctls()->set_msgmax(8192);
  if (sysctls_first) {
    ASSERT_TRUE(w->Write(sys).ok());
  }
  for (const auto& r : records) ASSERT_TRUE(w->Write(r).ok());
  ASSERT_TRUE(w->Close().ok());
}

std::string CheckError(const std::string& path) {
  auto dir = images::ImageDir::Open(path);
  if (!dir.ok()) return dir.error().message();
  Status s = ns::CheckIpcNamespaceImage(**dir);
  return s.ok() ? "ok" : s.error().message();
}

TEST(IpcNs, BadImagesAreRefused) {
  pb::IpcNsRecord q;
  q.mutable_msg_queue()->set_id(5);
  auto* perm = q.mutable_msg_queue()->mutable_perm();
  perm->set_key(0);
  perm->set_uid(0);
  perm->set_gid(0);
  perm->set_cuid(0);
  perm->set_cgid(0);
  perm->set_mode(0600);
  q.mutable_msg_queue()->set_qbytes(100);
  auto* m = q.mutable_msg_queue()->add_msgs();
  m->set_mtype(1);
  m->set_text("some text that will be cut");
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    WriteImage(**dir, {q});
    EXPECT_EQ(CheckError(tmp.path()), "ok");
    // Truncated in the middle of the last record.
    struct stat st;
    ASSERT_EQ(stat((tmp / "ipc-ns.img").c_str(), &st), 0);
    ASSERT_EQ(truncate((tmp / "ipc-ns.img").c_str(), st.st_size - 7), 0);
    std::string e = CheckError(tmp.path());
    EXPECT_NE(e.find("ipc-ns.img"), std::string::npos) << e;
    // The restore refuses it too, before it creates anything.
    std::string r = RestoreInNewNamespaces(tmp.path());
    EXPECT_EQ(r.rfind("ERROR: IPC namespace: ", 0), 0u) << r;
  }
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    pb::IpcNsRecord bad = q;
    bad.mutable_msg_queue()->mutable_msgs(0)->set_mtype(0);
    WriteImage(**dir, {bad});
    EXPECT_NE(CheckError(tmp.path()).find("message queue 5: bad message"), std::string::npos)
        << CheckError(tmp.path());
  }
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    pb::IpcNsRecord sem;
    sem.mutable_sem_set()->set_id(3);
    *sem.mutable_sem_set()->mutable_perm() = *perm;
    sem.mutable_sem_set()->add_values(40000);  // above SEMVMX
    sem.mutable_sem_set()->add_pids(0);
    WriteImage(**dir, {sem});
    EXPECT_NE(CheckError(tmp.path()).find("semaphore set 3: bad semaphore 0"), std::string::npos)
        << CheckError(tmp.path());
  }
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    pb::IpcNsRecord shm;
    shm.mutable_shm_seg()->set_id(7);
    *shm.mutable_shm_seg()->mutable_perm() = *perm;
    shm.mutable_shm_seg()->set_size(4096);
    WriteImage(**dir, {shm});  // and no sysvshm-7.img
    EXPECT_NE(CheckError(tmp.path()).find("shared memory segment 7: "), std::string::npos)
        << CheckError(tmp.path());
    {  // a listed file (images/image_check.h), of the wrong size
      auto raw = (*dir)->CreateRaw(SysvShmFileName(7));
      ASSERT_TRUE(raw.ok());
      ASSERT_EQ(write(raw->get(), "short", 5), 5);
      ASSERT_TRUE((*dir)->Commit(TestInventory()).ok());
    }
    EXPECT_NE(CheckError(tmp.path()).find("holds 5 bytes, not 4096"), std::string::npos)
        << CheckError(tmp.path());
  }
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    pb::IpcNsRecord mq;
    mq.mutable_posix_mq()->set_name("a/b");
    mq.mutable_posix_mq()->set_mode(0600);
    mq.mutable_posix_mq()->set_uid(0);
    mq.mutable_posix_mq()->set_gid(0);
    mq.mutable_posix_mq()->set_maxmsg(1);
    mq.mutable_posix_mq()->set_msgsize(1);
    WriteImage(**dir, {mq});
    EXPECT_NE(CheckError(tmp.path()).find("bad POSIX message queue name 'a/b'"), std::string::npos)
        << CheckError(tmp.path());
  }
  {
    TempDir tmp;
    auto dir = images::ImageDir::Create(tmp.path());
    ASSERT_TRUE(dir.ok());
    WriteImage(**dir, {q}, false);
    EXPECT_NE(CheckError(tmp.path()).find("sysctls must come first"), std::string::npos)
        << CheckError(tmp.path());
  }
}

// A queue with messages and an mq_notify registration: reading it would
// fire the notification, so the dump refuses it by name and changes nothing.
TEST(IpcNs, NotifiedQueueWithMessagesIsRefused) {
  Victim v;
  StartVictim(
      v,
      [] {
        mqd_t q = mq_open("/jobs", O_CREAT | O_RDWR, 0600, nullptr);
        Must(q >= 0 && mq_send(q, "m", 1, 1) == 0, "mq");
        g_jobs = q;
        struct sigevent ev = {};
        ev.sigev_notify = SIGEV_NONE;
        Must(mq_notify(q, &ev) == 0, "mq_notify");
        return 0;
      },
      false);
  if (::testing::Test::HasFatalFailure()) return;
  // Only 'n' here: a close of any descriptor of the queue by the
  // registered process ends its registration (a snapshot would close one).
  std::string before = v.Ask('n');
  EXPECT_NE(before.find("QSIZE:1 "), std::string::npos) << before;
  EXPECT_NE(before.find("NOTIFY:1 "), std::string::npos) << before;
  EXPECT_NE(before.find("NOTIFY_PID:" + std::to_string(v.pid)), std::string::npos) << before;
  TempDir tmp;
  auto dir = images::ImageDir::Create(tmp.path());
  ASSERT_TRUE(dir.ok());
  Status s = ns::DumpIpcNamespace(v.pid, {}, **dir);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("IPC namespace of pid " + std::to_string(v.pid) +
                                     ": POSIX message queue /jobs: holds 1 messages and an "
                                     "mq_notify registration (SIGEV_NONE, pid " +
                                     std::to_string(v.pid) + ")"),
            std::string::npos)
      << s.error().message();
  // The message is still there and the registration too (a fired
  // SIGEV_NONE notification would have ended it).
  EXPECT_EQ(before, v.Ask('n'));
}

// SEM_UNDO lists cannot be read, but who has one can be told.
TEST(IpcNs, TasksWithSemUndoAreFound) {
  Victim undo, plain;
  StartVictim(
      undo,
      [] {
        int s = semget(IPC_PRIVATE, 1, 0600);
        struct sembuf op = {0, 1, SEM_UNDO};
        Must(s >= 0 && semop(s, &op, 1) == 0, "semop SEM_UNDO");
        return 0;
      },
      false);
  if (::testing::Test::HasFatalFailure()) return;
  StartVictim(
      plain,
      [] {
        int s = semget(IPC_PRIVATE, 1, 0600);
        struct sembuf op = {0, 1, 0};
        Must(s >= 0 && semop(s, &op, 1) == 0, "semop");
        return 0;
      },
      false);
  if (::testing::Test::HasFatalFailure()) return;
  auto r = ns::TasksWithSemUndo({plain.pid, undo.pid});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, std::vector<pid_t>{undo.pid});
}

// /proc/sysvipc as another namespace shows it.
TEST(IpcNs, ReadSysvipcOfAnotherNamespace) {
  Victim v;
  StartVictim(
      v,
      [] {
        int id = shmget(0x4242, 12288, IPC_CREAT | 0640);
        Must(id >= 0 && shmat(id, nullptr, 0) != reinterpret_cast<void*>(-1), "shm");
        return id;
      },
      false);
  if (::testing::Test::HasFatalFailure()) return;
  auto text = ns::ReadSysvipcOf(v.pid, "shm");
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto rows = [](const std::string& t) {
    std::vector<std::string> r;
    std::istringstream in(t);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) r.push_back(line);
    return r;
  };
  auto theirs = rows(*text);
  ASSERT_EQ(theirs.size(), 1u) << *text;
  std::istringstream row(theirs[0]);
  std::string key, id, perms, size;
  row >> key >> id >> perms >> size;
  EXPECT_EQ(key, "16962");
  EXPECT_EQ(id, v.first);
  EXPECT_EQ(perms, "640");
  EXPECT_EQ(size, "12288");
  // Ours (this test's private namespace) has no segment.
  EXPECT_TRUE(rows(ReadOrDie("/proc/sysvipc/shm")).empty());
  auto bad = ns::ReadSysvipcOf(v.pid, "nonexistent");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(
      bad.error().message().rfind(
          "IPC namespace of pid " + std::to_string(v.pid) + ": open /proc/sysvipc/nonexistent", 0),
      0u)
      << bad.error().message();
  // Acting there: the segment goes away in its namespace.
  int shmid = std::stoi(v.first);
  auto rm = ns::RunInIpcNamespace(v.pid, [shmid]() -> Result<std::string> {
    if (shmctl(shmid, IPC_RMID, nullptr) < 0) return Error::Errno("IPC_RMID");
    return std::string("done");
  });
  ASSERT_TRUE(rm.ok()) << rm.error().message();
  EXPECT_EQ(*rm, "done");
  text = ns::ReadSysvipcOf(v.pid, "shm");
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find(" 1640 "), std::string::npos) << *text;  // SHM_DEST|0640, still attached
}

}  // namespace
}  // namespace ckpt
