// Plumbing of ckpt-bench (see bench_util.h).
#include "bench_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

namespace bench {

// ---------------------------------------------------------------- basics --

volatile sig_atomic_t g_stop = 0;  // set by SIGINT/SIGTERM/SIGHUP

void on_stop_signal(int) { g_stop = 1; }

std::string fmt(const char* f, ...) {
  va_list ap;
  va_start(ap, f);
  char* s = nullptr;
  int n = vasprintf(&s, f, ap);
  va_end(ap);
  if (n < 0) return "?";
  std::string r(s, static_cast<size_t>(n));
  free(s);
  return r;
}

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + strerror(errno));
}

void check_stop() {
  if (g_stop) throw Interrupted();
}

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

bool tty_progress() {
  static const bool tty = isatty(STDERR_FILENO);
  return tty;
}

// One progress line on a terminal, overwritten by the next; nothing otherwise.
void progress(const std::string& s) {
  if (!tty_progress()) return;
  fprintf(stderr, "\r\033[K%s", s.c_str());
  fflush(stderr);
}

void progress_clear() {
  if (!tty_progress()) return;
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
}

void warn(const std::string& s) {
  progress_clear();
  fprintf(stderr, "ckpt-bench: warning: %s\n", s.c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail_lines(const std::string& path, size_t n) {
  std::string s = read_file(path);
  if (s.empty()) return "";
  size_t pos = s.size();
  if (s.back() == '\n') pos--;
  size_t count = 0;
  while (pos > 0) {
    if (s[pos - 1] == '\n' && ++count == n) break;
    pos--;
  }
  std::string r = s.substr(pos);
  if (!r.empty() && r.back() != '\n') r += '\n';
  return r;
}

void write_file(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail_errno("open " + path);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t r = write(fd, data.data() + off, data.size() - off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      close(fd);
      fail_errno("write " + path);
    }
    off += static_cast<size_t>(r);
  }
  close(fd);
}

// --------------------------------------------------------- filesystem ----

namespace {

int rm_cb(const char* path, const struct stat*, int type, struct FTW*) {
  if (type == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

Usage* g_usage = nullptr;  // dir_usage's result while nftw runs

}  // namespace

// Recursive remove that stays on one filesystem and never follows symlinks.
void rm_rf(const std::string& path) {
  if (path.empty() || path == "/") return;
  nftw(path.c_str(), rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

namespace {

int usage_cb(const char*, const struct stat* st, int type, struct FTW*) {
  if (type == FTW_F) {
    g_usage->apparent += static_cast<uint64_t>(st->st_size);
    g_usage->allocated += static_cast<uint64_t>(st->st_blocks) * 512;
    g_usage->files++;
  }
  return 0;
}

}  // namespace

Usage dir_usage(const std::string& path) {
  Usage u;
  g_usage = &u;
  nftw(path.c_str(), usage_cb, 32, FTW_PHYS);
  g_usage = nullptr;
  return u;
}

std::string fs_type(const std::string& path, long* magic_out) {
  struct statfs sfs;
  if (statfs(path.c_str(), &sfs) != 0) return "?";
  long m = static_cast<long>(sfs.f_type);
  if (magic_out) *magic_out = m;
  switch (static_cast<unsigned long>(m)) {
    case 0x01021994:
      return "tmpfs";
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    case 0x2fc12fc1:
      return "zfs";
    default:
      return fmt("fs 0x%lx", m);
  }
}

std::string make_temp_dir(const std::string& parent, const std::string& prefix) {
  std::string tmpl = parent + "/" + prefix + ".XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  if (!mkdtemp(buf.data())) fail_errno("mkdtemp " + tmpl);
  return std::string(buf.data());
}

std::string abs_path(const std::string& p) {
  char* r = realpath(p.c_str(), nullptr);
  if (!r) fail_errno("realpath " + p);
  std::string s(r);
  free(r);
  return s;
}

// ---------------------------------------------------- cleanup registry ----

Cleanup g_cleanup;

std::vector<pid_t> list_children() {
  std::vector<pid_t> r;
  std::string s = read_file(fmt("/proc/self/task/%d/children", getpid()));
  std::istringstream in(s);
  pid_t p;
  while (in >> p) r.push_back(p);
  return r;
}

// SIGKILL and reap every child (as subreaper we also inherit orphans of
// children, e.g. a process ckpt restore created). Returns how many live
// processes had to be killed.
int kill_all_children() {
  std::set<pid_t> killed;
  double deadline = now() + 30;
  for (;;) {
    std::vector<pid_t> kids = list_children();
    for (pid_t k : kids) {
      // A zombie is listed too; it only needs reaping.
      std::string st = read_file(fmt("/proc/%d/stat", k));
      size_t rp = st.rfind(')');
      bool zombie = rp != std::string::npos && rp + 2 < st.size() && st[rp + 2] == 'Z';
      if (!zombie) {
        kill(k, SIGKILL);
        killed.insert(k);
      }
    }
    int status;
    while (waitpid(-1, &status, WNOHANG) > 0) {
    }
    if (kids.empty()) {
      if (waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD) break;
    }
    if (now() > deadline) {
      fprintf(stderr, "ckpt-bench: could not reap all children within 30 s\n");
      break;
    }
    sleep_ms(5);
  }
  return static_cast<int>(killed.size());
}

void cleanup_all() {
  kill_all_children();
  for (auto it = g_cleanup.mounts.rbegin(); it != g_cleanup.mounts.rend(); ++it) {
    if (umount2(it->c_str(), 0) != 0 && umount2(it->c_str(), MNT_DETACH) != 0)
      fprintf(stderr, "ckpt-bench: umount %s: %s\n", it->c_str(), strerror(errno));
  }
  g_cleanup.mounts.clear();
  for (auto it = g_cleanup.dirs.rbegin(); it != g_cleanup.dirs.rend(); ++it) rm_rf(*it);
  g_cleanup.dirs.clear();
}

// ---------------------------------------------------------- processes ----

// fork+exec with stdio redirected to files and every other fd closed.
pid_t spawn(const std::vector<std::string>& argv, const Redirect& r, bool new_session,
            const std::string& cwd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) fail_errno("fork");
  if (pid > 0) return pid;

  // Child: only async-signal-safe calls from here on.
  auto die = [](const char* what) {
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "ckpt-bench (child): %s: %s\n", what, strerror(errno));
    if (n > 0) (void)!write(STDERR_FILENO, buf, static_cast<size_t>(n));
    _exit(127);
  };
  int in = open(r.in.c_str(), O_RDONLY);
  int out = open(r.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int err = r.err == r.out ? out : open(r.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in < 0 || out < 0 || err < 0) die("open stdio");
  if (dup2(err, STDERR_FILENO) < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0)
    die("dup2");
  close_range(3, ~0U, 0);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (new_session && setsid() < 0) die("setsid");
  if (!cwd.empty() && chdir(cwd.c_str()) != 0) die("chdir");
  execv(args[0], args.data());
  die(args[0]);
  return -1;
}

// Raw syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
int pidfd_open(pid_t pid, unsigned flags) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, flags));
}

// Waits until `pid` (a child, or a process that will become one) exits.
// Returns the wait status, or nullopt on timeout. Throws on interrupt.
std::optional<int> wait_exit(pid_t pid, double timeout_s, double* t_exit, struct rusage* ru) {
  int pfd = pidfd_open(pid, 0);
  if (pfd < 0) {
    // Already reaped or never existed.
    throw std::runtime_error(fmt("pidfd_open(%d): %s", pid, strerror(errno)));
  }
  double deadline = now() + timeout_s;
  for (;;) {
    struct pollfd p = {pfd, POLLIN, 0};
    double left = deadline - now();
    if (left <= 0) {
      close(pfd);
      return std::nullopt;
    }
    int ms = static_cast<int>(std::min(left, 0.2) * 1000) + 1;
    int n = poll(&p, 1, ms);
    if (n > 0) break;
    if (n < 0 && errno != EINTR) {
      close(pfd);
      fail_errno("poll pidfd");
    }
    if (g_stop) {
      close(pfd);
      throw Interrupted();
    }
  }
  if (t_exit) *t_exit = now();
  close(pfd);
  int status = 0;
  for (;;) {
    pid_t r = wait4(pid, &status, 0, ru);
    if (r == pid) return status;
    if (r < 0 && errno == EINTR) continue;
    fail_errno(fmt("waitpid(%d)", pid));
  }
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return fmt("exited with status %d", WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return fmt("was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  return fmt("wait status 0x%x", st);
}

// Field 4 (ppid) and field 3 (state) of /proc/PID/stat.
bool proc_stat(pid_t pid, char* state, pid_t* ppid) {
  std::string st = read_file(fmt("/proc/%d/stat", pid));
  size_t rp = st.rfind(')');
  if (rp == std::string::npos) return false;
  std::istringstream in(st.substr(rp + 1));
  std::string s;
  in >> s >> *ppid;
  if (s.empty() || !in) return false;
  *state = s[0];
  return true;
}

// "pid comm state wchan" for `pid` and its descendants: what a hung ckpt and
// the task it works on are blocked in.
std::string describe_tree(pid_t pid, int depth) {
  if (depth > 8) return "";
  std::string stat = read_file(fmt("/proc/%d/stat", pid));
  size_t lp = stat.find('('), rp = stat.rfind(')');
  if (lp == std::string::npos || rp == std::string::npos || rp + 2 >= stat.size()) return "";
  std::string wchan = read_file(fmt("/proc/%d/wchan", pid));
  std::string tracer;
  std::istringstream status(read_file(fmt("/proc/%d/status", pid)));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("TracerPid:", 0) == 0) tracer = line.substr(line.find_first_not_of(" \t", 10));
  std::string r = fmt("%*spid %d (%s) state %c, in %s%s\n", 2 * depth, "", pid,
                      stat.substr(lp + 1, rp - lp - 1).c_str(), stat[rp + 2],
                      wchan.empty() || wchan == "0" ? "-" : wchan.c_str(),
                      tracer.empty() || tracer == "0" ? "" : (", traced by " + tracer).c_str());
  std::istringstream kids(read_file(fmt("/proc/%d/task/%d/children", pid, pid)));
  for (pid_t k; kids >> k;) r += describe_tree(k, depth + 1);
  return r;
}

}  // namespace bench
