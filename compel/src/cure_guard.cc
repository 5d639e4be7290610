#include "compel/cure_guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "base/log.h"
#include "compel/infect.h"
#include "compel/regs.h"
#include "compel/remote_reap.h"
#include "base/io.h"
#include "compel/seize.h"

namespace ckpt::compel::guard {
namespace {

struct Record {
  int32_t tid;  // 0: none
  int32_t memfd;
  uint64_t region, len;  // len 0: cleared
  // Snapshots of `tid` (then memfd, region, len are unused): 1 it may
  // have some, 2 they are released.
  int32_t snapshots = 0, pad = 0;
};

constexpr int kSeizeTries = 400;   // x 10 ms: ckpt's ptrace link goes with its exit
constexpr int kLeaveTries = 400;   // x 10 ms: the parasite returns on EOF at once

// Puts `tid`'s process back: out of the parasite, no region, no memfd.
void Cure(const Record& r) {
  pid_t pid = r.tid;
  for (int i = 0; i < kLeaveTries; i++) {
    auto proc = SeizedProcess::Seize(pid);
    if (!proc.ok()) {
      if (kill(pid, 0) < 0 && errno == ESRCH) return;  // gone: nothing to cure
      usleep(10000);
      continue;
    }
    auto regs = GetRegs(pid);
    if (!regs.ok()) return;
    uint64_t ip = regs->gp.rip;
    if (r.len && ip >= r.region && ip < r.region + r.len) {  // still on its way home
      (*proc)->Detach();
      usleep(10000);
      continue;
    }
    auto exec = FindExecAddr(pid, r.region, r.region + r.len);
    if (!exec.ok()) return;
    int mem = (*proc)->mem_fd();
    if (r.len) (void)RemoteSyscallRestoring(pid, mem, *exec, SYS_munmap, long(r.region), long(r.len));
    if (r.memfd >= 0) (void)RemoteSyscallRestoring(pid, mem, *exec, SYS_close, r.memfd);
    return;  // ~SeizedProcess resumes every thread
  }
}

// State and parent of `pid` as /proc/PID/stat shows them; false if gone.
bool StatOf(pid_t pid, char* state, pid_t* ppid) {
  auto st = io::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!st.ok()) return false;
  size_t p = st->rfind(')');
  int pp = 0;
  if (p == std::string::npos || sscanf(st->c_str() + p + 1, " %c %d", state, &pp) != 2)
    return false;
  *ppid = pp;
  return true;
}

// The snapshot children of `pid` ("ckpt-snapshot"), each with its pid as
// `pid` sees it (the last NSpid: it is in `pid`'s pid namespace).
std::map<pid_t, pid_t> SnapshotsOf(pid_t pid) {
  std::map<pid_t, pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto kids = io::ReadFile(dir + "/" + e->d_name + "/children");
    if (!kids.ok()) continue;
    std::istringstream in(*kids);
    for (pid_t c; in >> c;) {
      auto comm = io::ReadFile("/proc/" + std::to_string(c) + "/comm");
      auto status = io::ReadFile("/proc/" + std::to_string(c) + "/status");
      if (!comm.ok() || *comm != "ckpt-snapshot\n" || !status.ok()) continue;
      size_t p = status->find("\nNSpid:");
      if (p == std::string::npos) continue;
      std::istringstream ids(status->substr(p + 7, status->find('\n', p + 1) - p - 7));
      pid_t last = 0;
      for (pid_t x; ids >> x;) last = x;
      if (last > 0) out[c] = last;
    }
  }
  closedir(d);
  return out;
}

// Kills the snapshot children of `pid`; once each is a zombie, `pid`
// collects it. `pid` is seized only for that one call, so that nobody sees
// it traced for longer than a moment.
void ReapSnapshots(pid_t pid) {
  for (const auto& [child, nspid] : SnapshotsOf(pid)) {
    kill(child, SIGKILL);
    char state = 0;
    pid_t ppid = 0;
    for (int i = 0; i < kSeizeTries; i++) {
      if (!StatOf(child, &state, &ppid) || ppid != pid || state == 'Z') break;
      usleep(10000);
    }
    for (int i = 0; i < kSeizeTries; i++) {
      auto got = RemoteReap(pid, nspid);
      if (got.ok()) break;                               // reaped (or not its child any more)
      if (kill(pid, 0) < 0 && errno == ESRCH) return;    // parent gone
      usleep(10000);  // ckpt's ptrace link on it still going away
    }
  }
}

[[noreturn]] void GuardMain(int in) {
  std::map<pid_t, Record> held;
  std::map<pid_t, bool> snapshots;  // victims that may have snapshot children
  for (;;) {
    Record r;
    ssize_t n = read(in, &r, sizeof(r));
    if (n < 0 && errno == EINTR) continue;
    if (n != ssize_t(sizeof(r))) break;  // EOF: ckpt is gone
    if (r.snapshots == 1)
      snapshots[r.tid] = true;
    else if (r.snapshots == 2)
      snapshots.erase(r.tid);
    else if (r.memfd < 0 && r.len == 0)
      held.erase(r.tid);
    else
      held[r.tid] = r;
  }
  for (const auto& [tid, r] : held) Cure(r);
  for (const auto& [pid, may] : snapshots) ReapSnapshots(pid);
  _exit(0);
}

struct Guard {
  pid_t pid = -1;
  int out = -1;
  bool failed = false;
  ~Guard() {  // normal exit of ckpt: the guard sees EOF and ends
    if (pid <= 0 || getpid() != owner) return;
    close(out);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
  pid_t owner = 0;

  bool Start() {
    if (pid > 0 && owner == getpid()) return true;
    if (failed) return false;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      failed = true;
      LOG_WARN("cure guard: pipe: " + std::string(strerror(errno)) + " (dumping unguarded)");
      return false;
    }
    pid_t c = fork();
    if (c < 0) {
      failed = true;
      close(p[0]), close(p[1]);
      LOG_WARN("cure guard: fork: " + std::string(strerror(errno)) + " (dumping unguarded)");
      return false;
    }
    if (c == 0) {
      setsid();
      prctl(PR_SET_NAME, "ckpt-cureguard");
      int null = open("/dev/null", O_RDWR | O_CLOEXEC);
      if (dup2(p[0], 3) < 0) _exit(1);
      for (int fd = 0; fd < 3; fd++) dup2(null, fd);
      syscall(SYS_close_range, 4, ~0u, 0);
      GuardMain(3);
    }
    close(p[0]);
    pid = c;
    out = p[1];
    owner = getpid();
    return true;
  }

  void Send(const Record& r) {
    if (!Start()) return;
    if (write(out, &r, sizeof(r)) != ssize_t(sizeof(r)))
      LOG_WARN("cure guard: write failed: " + std::string(strerror(errno)));
  }
};

Guard g_guard;  // process-wide: one guard per dumping ckpt

}  // namespace

void Holds(pid_t tid, int memfd, uint64_t region, uint64_t len) {
  g_guard.Send({tid, memfd, region, len});
}

void Clear(pid_t tid) {
  if (g_guard.pid <= 0) return;
  g_guard.Send({tid, -1, 0, 0});
}

void MayHoldSnapshots(pid_t pid) { g_guard.Send({pid, -1, 0, 0, 1}); }

void SnapshotsReleased(pid_t pid) {
  if (g_guard.pid <= 0) return;
  g_guard.Send({pid, -1, 0, 0, 2});
}

}  // namespace ckpt::compel::guard
