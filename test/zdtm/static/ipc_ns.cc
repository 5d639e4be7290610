// The contents of an IPC namespace survive a round trip. The program does
// not unshare anything itself: it must run as pid 1 of new pid and IPC
// namespaces (the runner starts it so), and everything it makes dies with
// them. Made before READY, checked after:
//   - sysctls: kernel.msgmnb, kernel.sem, kernel.shm_rmid_forced,
//     fs.mqueue.msg_max (non-default values; --rmid-forced-off keeps
//     shm_rmid_forced 0, as a tree in a user namespace of its own needs with
//     a segment nobody attaches: criu/ns/user_ns.h)
//   - a SysV queue with an id of a non-zero sequence (a freed index), a key,
//     a lowered qbytes and messages of several types and sizes (one empty)
//   - a semaphore set with values; one semaphore last set by pid 1, one by
//     a child of the tree (its pid must come back)
//   - a segment nobody attaches (sparse contents) and one attached here
//   - a POSIX queue with prioritised messages, held open by an fd
//     (O_RDWR | O_NONBLOCK) that must still be that queue; an empty queue
// Contents depend on a per-run seed, so a stale image cannot pass.
#include <fcntl.h>
#include <mqueue.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

union SemUn {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

constexpr size_t kShmSize = 256 * 1024;

std::string Text(uint64_t seed, int i, size_t n) {
  std::string s(n, '\0');
  for (size_t k = 0; k < n; k++) s[k] = char(zdtm_mix(seed + i, k));
  return s;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s)
    if (c == '\t') c = ' ';
  return s;
}

void WriteSysctl(const char* path, const char* v) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, v, strlen(v)) != ssize_t(strlen(v)))
    fail("write %s: %s", path, strerror(errno));
  close(fd);
}

void CheckSysctl(const char* path, const char* want) {
  std::string got = Trim(zdtm_read_file(path));
  if (got != want) fail("%s is '%s', not '%s'", path, got.c_str(), want);
}

struct Msg {
  long type;
  std::string text;
};

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  if (getpid() != 1) fail("must run as pid 1 of new pid and IPC namespaces (pid is %d)", getpid());
  uint64_t seed = zdtm_seed();
  const char* forced = argc > 1 && !strcmp(argv[1], "--rmid-forced-off") ? "0" : "1";

  WriteSysctl("/proc/sys/kernel/msgmnb", "30000");
  WriteSysctl("/proc/sys/kernel/sem", "64 4096 16 32");
  WriteSysctl("/proc/sys/fs/mqueue/msg_max", "40");

  // SysV message queue at index 0, sequence 1.
  int gone = msgget(IPC_PRIVATE, 0600);
  if (gone < 0 || msgctl(gone, IPC_RMID, nullptr) < 0) fail("msgget: %s", strerror(errno));
  key_t mkey = key_t(0x10000 + (seed & 0xffff));
  int mq = msgget(mkey, IPC_CREAT | IPC_EXCL | 0620);
  if (mq < 0) fail("msgget: %s", strerror(errno));
  if (mq == gone) fail("queue id %d was not renewed", mq);
  std::vector<Msg> msgs = {
      {3, Text(seed, 1, 100)}, {1, ""}, {7, Text(seed, 2, 4000)}, {3, Text(seed, 3, 1)}};
  std::vector<char> buf(sizeof(long) + 8192);
  for (const Msg& m : msgs) {
    memcpy(buf.data(), &m.type, sizeof(long));
    memcpy(buf.data() + sizeof(long), m.text.data(), m.text.size());
    if (msgsnd(mq, buf.data(), m.text.size(), IPC_NOWAIT) < 0) fail("msgsnd: %s", strerror(errno));
  }
  struct msqid_ds mds;
  if (msgctl(mq, IPC_STAT, &mds) < 0) fail("IPC_STAT: %s", strerror(errno));
  mds.msg_qbytes = 2000;  // below what it holds
  if (msgctl(mq, IPC_SET, &mds) < 0) fail("IPC_SET: %s", strerror(errno));

  // Semaphores: #0 by us, #1 by a child that stays, #2 untouched.
  int sem = semget(IPC_PRIVATE, 3, 0640);
  if (sem < 0) fail("semget: %s", strerror(errno));
  SemUn arg;
  arg.val = int(seed % 1000) + 1;
  if (semctl(sem, 0, SETVAL, arg) < 0) fail("SETVAL: %s", strerror(errno));
  int ready[2];
  if (pipe(ready) < 0) fail("pipe");
  pid_t child = fork();
  if (child == 0) {
    struct sembuf op = {1, 5, 0};
    semop(sem, &op, 1);
    close(ready[0]);
    close(ready[1]);  // tells the parent the semop is done
    test_wait();
    _exit(0);
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 0) fail("child");
  close(ready[0]);

  // Segments: one nobody attaches, one attached here.
  int loose = shmget(IPC_PRIVATE, kShmSize, 0600);
  int held = shmget(key_t(0x20000 + (seed & 0xffff)), 8192, IPC_CREAT | IPC_EXCL | 0644);
  if (loose < 0 || held < 0) fail("shmget: %s", strerror(errno));
  auto* p = static_cast<char*>(shmat(loose, nullptr, 0));
  if (p == reinterpret_cast<char*>(-1)) fail("shmat: %s", strerror(errno));
  std::string head = Text(seed, 10, 5000), tail = Text(seed, 11, 3000);
  memcpy(p, head.data(), head.size());
  memcpy(p + kShmSize - tail.size(), tail.data(), tail.size());
  shmdt(p);
  auto* h = static_cast<char*>(shmat(held, nullptr, 0));
  if (h == reinterpret_cast<char*>(-1)) fail("shmat: %s", strerror(errno));
  std::string hs = Text(seed, 12, 8192);
  memcpy(h, hs.data(), hs.size());
  WriteSysctl("/proc/sys/kernel/shm_rmid_forced", forced);  // after the detach above

  // POSIX queues.
  struct mq_attr a = {};
  a.mq_maxmsg = 30;  // above the default msg_max, below ours
  a.mq_msgsize = 256;
  mqd_t q = mq_open("/zdtm-jobs", O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0640, &a);
  if (q < 0) fail("mq_open: %s", strerror(errno));
  struct {
    unsigned prio;
    std::string data;
  } pm[] = {{2, Text(seed, 20, 10)},
            {8, Text(seed, 21, 256)},
            {2, Text(seed, 22, 0)},
            {0, Text(seed, 23, 7)}};
  for (const auto& m : pm)
    if (mq_send(q, m.data.data(), m.data.size(), m.prio) < 0) fail("mq_send: %s", strerror(errno));
  a.mq_maxmsg = 2;
  a.mq_msgsize = 8;
  mqd_t e = mq_open("/zdtm-empty", O_CREAT | O_EXCL | O_RDONLY, 0600, &a);
  if (e < 0) fail("mq_open: %s", strerror(errno));
  mq_close(e);
  struct stat qst;
  if (fstat(q, &qst) < 0) fail("fstat");

  test_ready();
  test_wait();

  CheckSysctl("/proc/sys/kernel/msgmnb", "30000");
  CheckSysctl("/proc/sys/kernel/sem", "64 4096 16 32");
  CheckSysctl("/proc/sys/kernel/shm_rmid_forced", forced);
  CheckSysctl("/proc/sys/fs/mqueue/msg_max", "40");

  if (msgctl(mq, IPC_STAT, &mds) < 0) fail("message queue %d is gone: %s", mq, strerror(errno));
  if (mds.msg_perm.__key != mkey || (mds.msg_perm.mode & 0777) != 0620 || mds.msg_qbytes != 2000 ||
      mds.msg_qnum != msgs.size())
    fail("message queue %d: key %#x mode %o qbytes %lu qnum %lu", mq, mds.msg_perm.__key,
         mds.msg_perm.mode & 0777, (unsigned long)mds.msg_qbytes, (unsigned long)mds.msg_qnum);
  for (size_t i = 0; i < msgs.size(); i++) {
    ssize_t n = msgrcv(mq, buf.data(), 8192, 0, IPC_NOWAIT);
    long type;
    memcpy(&type, buf.data(), sizeof(long));
    if (n < 0 || type != msgs[i].type || std::string(buf.data() + sizeof(long), n) != msgs[i].text)
      fail("message %zu differs (type %ld, %zd bytes)", i, type, n);
  }

  unsigned short vals[3];
  arg.array = vals;
  if (semctl(sem, 0, GETALL, arg) < 0) fail("semaphore set %d is gone: %s", sem, strerror(errno));
  if (vals[0] != seed % 1000 + 1 || vals[1] != 5 || vals[2] != 0)
    fail("semaphore values %u %u %u", vals[0], vals[1], vals[2]);
  int p0 = semctl(sem, 0, GETPID), p1 = semctl(sem, 1, GETPID), p2 = semctl(sem, 2, GETPID);
  if (p0 != 1 || p1 != child || p2 != 0)
    fail("semaphore pids %d %d %d (want 1 %d 0)", p0, p1, p2, child);

  struct shmid_ds sds;
  if (shmctl(loose, IPC_STAT, &sds) < 0 || sds.shm_segsz != kShmSize || sds.shm_nattch != 0)
    fail("unattached segment %d is gone or changed", loose);
  // Reading it would destroy it at the detach with shm_rmid_forced on.
  WriteSysctl("/proc/sys/kernel/shm_rmid_forced", "0");
  p = static_cast<char*>(shmat(loose, nullptr, SHM_RDONLY));
  if (p == reinterpret_cast<char*>(-1)) fail("shmat: %s", strerror(errno));
  if (std::string(p, head.size()) != head ||
      std::string(p + kShmSize - tail.size(), tail.size()) != tail)
    fail("unattached segment contents differ");
  for (size_t i = head.size(); i < kShmSize - tail.size(); i++)
    if (p[i]) fail("unattached segment byte %zu is not zero", i);
  shmdt(p);
  if (shmctl(held, IPC_STAT, &sds) < 0 || sds.shm_nattch != 1 || std::string(h, hs.size()) != hs)
    fail("attached segment %d differs", held);

  struct stat now;
  struct mq_attr got;
  if (fstat(q, &now) < 0 || mq_getattr(q, &got) < 0) fail("the queue fd is broken");
  mqd_t again = mq_open("/zdtm-jobs", O_RDONLY);
  struct stat named;
  if (again < 0 || fstat(again, &named) < 0) fail("/zdtm-jobs is gone");
  if (named.st_ino != now.st_ino) fail("the fd is not the queue /zdtm-jobs");
  if ((now.st_mode & 07777) != 0640 || !(got.mq_flags & O_NONBLOCK) || got.mq_maxmsg != 30 ||
      got.mq_msgsize != 256 || got.mq_curmsgs != 4)
    fail("queue: mode %o flags %#lx maxmsg %ld msgsize %ld curmsgs %ld", now.st_mode & 07777,
         got.mq_flags, got.mq_maxmsg, got.mq_msgsize, got.mq_curmsgs);
  int order[] = {1, 0, 2, 3};  // priority 8, then the two of 2 in order, then 0
  for (int i : order) {
    char m[256];
    unsigned prio;
    ssize_t n = mq_receive(q, m, sizeof(m), &prio);
    if (n < 0 || prio != pm[i].prio || std::string(m, n) != pm[i].data)
      fail("POSIX message %d differs (prio %u, %zd bytes)", i, prio, n);
  }
  mqd_t e2 = mq_open("/zdtm-empty", O_RDONLY);
  if (e2 < 0 || mq_getattr(e2, &got) < 0 || got.mq_maxmsg != 2 || got.mq_msgsize != 8 ||
      got.mq_curmsgs)
    fail("/zdtm-empty differs");

  kill(child, SIGTERM);
  int st;
  if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st)) fail("child failed");
  pass();
}
