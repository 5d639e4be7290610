#include "compel/seize.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "base/log.h"

namespace ckpt::compel {
namespace {

Result<std::vector<pid_t>> ListThreads(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return Error("pid " + std::to_string(pid) + ": no such process", ESRCH);
    return Error::Errno("open " + dir);
  }
  std::vector<pid_t> out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    out.push_back(static_cast<pid_t>(atoi(e->d_name)));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// /proc/TID/status says "TracerPid:\tN" (0: not traced, -1: unreadable).
long TracerOf(pid_t tid) {
  std::string path = "/proc/" + std::to_string(tid) + "/status";
  FILE* f = fopen(path.c_str(), "re");
  if (!f) return -1;
  char line[256];
  long tracer = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "TracerPid: %ld", &tracer) == 1) break;
  fclose(f);
  return tracer;
}

bool TracedByUs(pid_t tid) { return TracerOf(tid) == getpid(); }

// "pid N (comm)" of the tracer of tid, or "" if there is none.
std::string Tracer(pid_t tid) {
  long tracer = TracerOf(tid);
  if (tracer <= 0) return "";
  std::string comm = "?";
  std::string path = "/proc/" + std::to_string(tracer) + "/comm";
  if (FILE* f = fopen(path.c_str(), "re")) {
    char buf[64] = {};
    if (fgets(buf, sizeof(buf), f)) comm = std::string(buf, strcspn(buf, "\n"));
    fclose(f);
  }
  return "pid " + std::to_string(tracer) + " (" + comm + ")";
}

int64_t g_deadline_ms = 0;  // SeizeDeadline: CLOCK_MONOTONIC ms, 0 = none
int g_timeout_ms = 0;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// "D (disk sleep)", from /proc/TID/stat's third field.
std::string StateOf(pid_t tid) {
  std::string path = "/proc/" + std::to_string(tid) + "/stat";
  FILE* f = fopen(path.c_str(), "re");
  if (!f) return "?";
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  std::string s(buf, n);
  size_t p = s.rfind(')');
  return p == std::string::npos || p + 2 >= s.size() ? "?" : s.substr(p + 2, 1);
}

}  // namespace

SeizeDeadline::SeizeDeadline(int ms) {
  g_timeout_ms = ms;
  g_deadline_ms = ms > 0 ? NowMs() + ms : 0;
}
SeizeDeadline::~SeizeDeadline() { g_deadline_ms = 0; }

Result<int> WaitStop(pid_t tid) {
  int status = 0;
  for (;;) {
    pid_t r = waitpid(tid, &status, __WALL | (g_deadline_ms ? WNOHANG : 0));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("waitpid " + std::to_string(tid));
    }
    if (r == 0) {  // WNOHANG: not stopped yet
      if (NowMs() >= g_deadline_ms) {
        std::string st = StateOf(tid);
        return Error("tid " + std::to_string(tid) + " did not stop within the --timeout of " +
                         std::to_string(g_timeout_ms / 1000) + " s (state " + st +
                         (st == "D" ? ": uninterruptible sleep" : "") + ")",
                     ETIMEDOUT);
      }
      struct timespec ts = {0, 1000000};  // 1 ms
      nanosleep(&ts, nullptr);
      continue;
    }
    break;
  }
  if (WIFEXITED(status) || WIFSIGNALED(status))
    return Error("tid " + std::to_string(tid) + " exited unexpectedly", ESRCH);
  return status;
}

Result<std::unique_ptr<SeizedProcess>> SeizedProcess::Seize(pid_t pid) {
  if (pid <= 0) return Error("bad pid " + std::to_string(pid));
  std::unique_ptr<SeizedProcess> p(new SeizedProcess(pid));
  TRY(p->SeizeAll());
  std::string mem = "/proc/" + std::to_string(pid) + "/mem";
  p->mem_.reset(open(mem.c_str(), O_RDWR | O_CLOEXEC));
  if (!p->mem_) return Error::Errno("open " + mem);
  return p;
}

Status SeizedProcess::SeizeAll() {
  std::set<pid_t> seized;
  for (int round = 0;; round++) {
    TRY_ASSIGN(std::vector<pid_t> tids, ListThreads(pid_));
    bool fresh = false;
    for (pid_t t : tids) {
      if (seized.count(t)) continue;
      if (ptrace(PTRACE_SEIZE, t, nullptr, nullptr) < 0) {
        if (errno == ESRCH && t != pid_) continue;  // a thread that just exited
        if (errno == ESRCH)
          return Error("pid " + std::to_string(pid_) + ": no such process", ESRCH);
        if (errno == EPERM && TracedByUs(t)) {
          // Held already (a cgroup v1 freezer's seize): in its ptrace stop.
          seized.insert(t);
          threads_.push_back(t);
          fresh = true;
          continue;
        }
        if (errno == EPERM && !Tracer(t).empty())
          return Error("pid " + std::to_string(t) + ": traced by " + Tracer(t) +
                           ": a traced process cannot be dumped (ptrace allows one tracer, "
                           "which must be ckpt, and the other tracer's hold on it cannot be "
                           "read back or set up again)",
                       EPERM);
        if (errno == EPERM)
          return Error::Errno("pid " + std::to_string(t) + ": cannot trace (already traced?)");
        return Error::Errno("pid " + std::to_string(t) + ": PTRACE_SEIZE");
      }
      seized.insert(t);
      threads_.push_back(t);
      fresh = true;
      if (ptrace(PTRACE_INTERRUPT, t, nullptr, nullptr) < 0)
        return Error::Errno("tid " + std::to_string(t) + ": PTRACE_INTERRUPT");
      // Wait for the interrupt stop. A signal that was already on its way is
      // reported first: let it be delivered (as it would have been) and wait
      // for the stop that follows.
      for (;;) {
        TRY_ASSIGN(int st, WaitStop(t));
        if (!WIFSTOPPED(st)) return Error("tid " + std::to_string(t) + ": not stopped");
        if ((st >> 16) == PTRACE_EVENT_STOP) {
          // In a group stop (job control) the event carries its signal.
          if (WSTOPSIG(st) != SIGTRAP) stop_signal_ = WSTOPSIG(st);
          break;
        }
        int sig = WSTOPSIG(st);
        LOG_DBG("tid " + std::to_string(t) + ": passing signal " + std::to_string(sig) +
                " through while seizing");
        if (ptrace(PTRACE_CONT, t, nullptr, (void*)(long)sig) < 0)
          return Error::Errno("tid " + std::to_string(t) + ": PTRACE_CONT");
      }
    }
    if (!fresh && round > 0) break;
    if (round > 100) return Error("pid " + std::to_string(pid_) + ": threads keep appearing");
  }
  std::sort(threads_.begin(), threads_.end());
  // The leader first.
  auto it = std::find(threads_.begin(), threads_.end(), pid_);
  if (it != threads_.end()) std::rotate(threads_.begin(), it, it + 1);
  return Ok();
}

void SeizedProcess::Detach() {
  if (done_) return;
  for (pid_t t : threads_) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
  done_ = true;
}

Status SeizedProcess::DieWithTracer() {
  for (pid_t t : threads_)
    if (ptrace(PTRACE_SETOPTIONS, t, nullptr, (void*)PTRACE_O_EXITKILL) < 0)
      return Error::Errno("pid " + std::to_string(pid_) + " thread " + std::to_string(t) +
                          ": PTRACE_SETOPTIONS(PTRACE_O_EXITKILL)");
  return Ok();
}

Status SeizedProcess::Kill() {
  if (done_) return Ok();
  if (kill(pid_, SIGKILL) < 0 && errno != ESRCH)
    return Error::Errno("kill " + std::to_string(pid_));
  // Each thread reports its death to us, the tracer; the parent reaps.
  // Collected in whatever order they come: the leader's report waits until
  // every other thread's was collected, and when the process is pid 1 of a
  // pid namespace its last thread to exit waits (zap_pid_ns_processes)
  // until the other threads' zombies, which only we can reap, are gone; a
  // blocking wait on any one thread could wait for ever.
  std::set<pid_t> left(threads_.begin(), threads_.end());
  while (!left.empty()) {
    bool reaped = false;
    for (auto it = left.begin(); it != left.end();) {
      int st;
      pid_t r = waitpid(*it, &st, __WALL | WNOHANG);
      if ((r == *it && (WIFEXITED(st) || WIFSIGNALED(st))) || (r < 0 && errno == ECHILD)) {
        it = left.erase(it);
        reaped = true;
      } else {
        ++it;
      }
    }
    if (!reaped) {
      struct timespec ts = {0, 200000};  // 0.2 ms
      nanosleep(&ts, nullptr);
    }
  }
  done_ = true;
  return Ok();
}

SeizedProcess::~SeizedProcess() { Detach(); }

}  // namespace ckpt::compel
