#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

namespace zdtm {
namespace {

constexpr int kTracked = 8;
volatile pid_t g_tracked[kTracked];

void on_fatal_signal(int sig) {
  for (int i = 0; i < kTracked; i++)
    if (g_tracked[i] > 0) kill(g_tracked[i], SIGKILL);
  const char msg[] = "zdtm: interrupted, killed tracked processes\n";
  (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
  _exit(128 + sig);
}

void sleep_ms(int ms) {
  timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

[[noreturn]] void exec_child(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  dprintf(STDERR_FILENO, "zdtm: exec %s: %s\n", args[0], strerror(errno));
  _exit(127);
}

// Points fds 0, 1, 2 at /dev/null and out (O_APPEND or O_TRUNC); closes
// everything else we may have inherited.
void redirect(const std::string& out, int mode) {
  int in = open("/dev/null", O_RDONLY);
  int o = open(out.c_str(), O_WRONLY | O_CREAT | mode, 0644);
  if (in < 0 || o < 0) _exit(126);
  dup2(in, 0);
  dup2(o, 1);
  dup2(o, 2);
  for (int fd = 3; fd < 1024; fd++) close(fd);
}

std::string stat_after_comm(pid_t pid) {
  std::string s = read_text("/proc/" + std::to_string(pid) + "/stat");
  size_t p = s.rfind(')');
  return p == std::string::npos ? "" : s.substr(p + 2);
}

}  // namespace

void harness_init() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1)) {
    perror("prctl(PR_SET_CHILD_SUBREAPER)");
    exit(1);
  }
  struct sigaction sa = {};
  sa.sa_handler = on_fatal_signal;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
}

void track_pid(pid_t pid) {
  for (int i = 0; i < kTracked; i++)
    if (g_tracked[i] == 0) {
      g_tracked[i] = pid;
      return;
    }
}

void untrack_pid(pid_t pid) {
  for (int i = 0; i < kTracked; i++)
    if (g_tracked[i] == pid) g_tracked[i] = 0;
}

namespace {

bool bind(const std::string& from, const std::string& to, bool ro) {
  if (mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) < 0) return false;
  return !ro || mount(nullptr, to.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) == 0;
}

}  // namespace

// In the test's new mount namespace: a tmpfs root under workdir/rootfs with
// /usr (read-only), the test programs' directory as /zdtm (read-only), the
// workdir as /work, /dev/null, a tmpfs /tmp and, in a new pid namespace,
// its own /proc; pivot_root into it. argv[0] becomes the program's path
// inside; fds 0-2 are opened again inside (/dev/null, /work/OUT_NAME).
bool enter_container(const std::string& workdir, const std::string& out_name,
                     unsigned long ns_flags, std::vector<std::string>* argv) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0) return false;
  std::string root = workdir + "/rootfs";
  mkdir(root.c_str(), 0755);
  if (mount("zdtm-root", root.c_str(), "tmpfs", 0, "mode=755") < 0) return false;
  for (const char* d : {"usr", "zdtm", "work", "dev", "tmp", "proc", "etc"})
    mkdir((root + "/" + d).c_str(), 0755);
  for (const char* l : {"lib", "lib64", "bin", "sbin"}) {
    std::string target = std::string("usr/") + l;
    if (symlink(target.c_str(), (root + "/" + l).c_str()) < 0) return false;
  }
  int fd = open((root + "/dev/null").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) return false;
  close(fd);
  std::string prog = (*argv)[0];
  std::string dir = prog.substr(0, prog.rfind('/'));
  if (!bind("/usr", root + "/usr", true) || !bind(dir, root + "/zdtm", true) ||
      !bind(workdir, root + "/work", false) || !bind("/dev/null", root + "/dev/null", false))
    return false;
  if (mount("zdtm-tmp", (root + "/tmp").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=16m") < 0)
    return false;
  // Before the old root goes: in a user namespace of its own the kernel
  // mounts a proc only while another one is fully visible.
  if ((ns_flags & CLONE_NEWPID) && mount("proc", (root + "/proc").c_str(), "proc",
                                         MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    return false;
  if (chdir(root.c_str()) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
      umount2(".", MNT_DETACH) < 0 || chdir("/work") < 0)
    return false;
  (*argv)[0] = "/zdtm/" + prog.substr(prog.rfind('/') + 1);
  // stdio again, through the container's own mounts (the old ones are gone).
  redirect("/work/" + out_name, O_APPEND);
  return true;
}

std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream f(line);
    std::string id, parent, devno, root, mnt;
    f >> id >> parent >> devno >> root >> mnt;
    if (root == "/") return mnt;
  }
  return "";
}

pid_t start_test(const std::vector<std::string>& argv, const std::string& workdir,
                 const std::string& out_path, unsigned long ns_flags,
                 const std::string& cgroup_dir) {
  constexpr unsigned long kNewTime = 0x80;  // CLONE_NEWTIME
  int own_time = -1;
  if (ns_flags & kNewTime) {
    // Only children enter a new time namespace, and only before any offset
    // is fixed: we make it, set the offsets, start the test, and go back.
    own_time = open("/proc/self/ns/time", O_RDONLY | O_CLOEXEC);
    if (own_time < 0 || unshare(int(kNewTime)) < 0) return -1;
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    const char offs[] = "monotonic 1000 0\nboottime 2000 0\n";
    if (fd < 0 || write(fd, offs, sizeof(offs) - 1) != ssize_t(sizeof(offs) - 1)) return -1;
    close(fd);
  }
  // A user namespace: its maps are ours to write, and the child waits for
  // them (on `go`) before it becomes the namespace's root.
  bool userns = ns_flags & CLONE_NEWUSER;
  int go[2] = {-1, -1};
  std::vector<gid_t> own_groups;
  if (userns) {
    if (pipe2(go, O_CLOEXEC) < 0) return -1;
    if (chown(workdir.c_str(), kUsernsBase, kUsernsBase) < 0) return -1;
    int n = getgroups(0, nullptr);
    own_groups.resize(size_t(n > 0 ? n : 0));
    if (n < 0 || getgroups(n, own_groups.data()) != n) return -1;
    std::vector<gid_t> test_groups(std::begin(kUsernsGroups), std::end(kUsernsGroups));
    if (setgroups(test_groups.size(), test_groups.data()) < 0) return -1;
  }
  struct clone_args ca;
  memset(&ca, 0, sizeof(ca));
  ca.flags = ns_flags & ~(kNewTime | CLONE_NEWCGROUP);
  ca.exit_signal = SIGCHLD;
  pid_t pid = pid_t(syscall(SYS_clone3, &ca, sizeof(ca)));
  if (own_time >= 0 && pid != 0) {
    setns(own_time, int(kNewTime));
    close(own_time);
  }
  if (userns && pid != 0) {
    setgroups(own_groups.size(), own_groups.data());
    close(go[0]);
    if (pid > 0) {
      std::string base = "/proc/" + std::to_string(pid) + "/";
      std::string map = "0 " + std::to_string(kUsernsBase) + " " + std::to_string(kUsernsCount);
      bool ok = true;
      for (const auto& [file, text] : {std::pair<std::string, std::string>{"setgroups", "deny"},
                                       {"uid_map", map},
                                       {"gid_map", map}}) {
        int fd = open((base + file).c_str(), O_WRONLY | O_CLOEXEC);
        ok = ok && fd >= 0 && write(fd, text.data(), text.size()) == ssize_t(text.size());
        if (fd >= 0) close(fd);
      }
      if (ok) ok = write(go[1], "g", 1) == 1;
      if (!ok) {
        int e = errno;
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        close(go[1]);
        errno = e;
        return -1;
      }
    }
    close(go[1]);
  }
  if (pid == 0) {
    char c;
    if (userns && read(go[0], &c, 1) != 1) _exit(125);  // our maps are written
    if (ns_flags & CLONE_NEWCGROUP) {  // rooted where the test is: move first
      int fd = open((cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1 || unshare(CLONE_NEWCGROUP) < 0) _exit(123);
      close(fd);
    }
    if (ns_flags & CLONE_NEWNET) {  // a new network namespace's lo is down
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      struct ifreq ifr;
      memset(&ifr, 0, sizeof(ifr));
      strcpy(ifr.ifr_name, "lo");
      if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) _exit(124);
      ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
      if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) _exit(124);
      close(s);
    }
    // The namespace's root, once the cgroup move (a host file) is done.
    if (userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) _exit(125);
    setsid();
    if (chdir(workdir.c_str())) _exit(125);
    redirect(out_path, O_APPEND);
    if (ns_flags & CLONE_NEWNS) {
      std::vector<std::string> in_argv = argv;
      if (out_path.rfind(workdir + "/", 0) != 0) _exit(122);  // must be in the workdir
      if (!enter_container(workdir, out_path.substr(workdir.size() + 1), ns_flags, &in_argv))
        _exit(122);
      exec_child(in_argv);
    }
    exec_child(argv);
  }
  if (pid > 0) track_pid(pid);
  return pid;
}

std::string wait_ready(pid_t pid, const std::string& out_path, double timeout_s) {
  double deadline = now_s() + timeout_s;
  for (;;) {
    if (count_lines(out_path, "READY") > 0) return "";
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      untrack_pid(pid);
      return "test exited before READY: " + describe_status(status);
    }
    if (now_s() > deadline) return "no READY within " + std::to_string(int(timeout_s)) + " s";
    sleep_ms(10);
  }
}

bool CmdResult::ok() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
bool CmdResult::crashed() const {
  return timed_out || WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) >= 128);
}
std::string CmdResult::describe() const {
  return timed_out ? "timed out (killed)" : describe_status(status);
}

CmdResult run_cmd(const std::vector<std::string>& argv, const std::string& capture_path,
                  double timeout_s) {
  CmdResult r;
  pid_t pid = fork();
  if (pid == 0) {
    redirect(capture_path, O_TRUNC);
    exec_child(argv);
  }
  if (pid < 0) {
    r.output = std::string("fork: ") + strerror(errno);
    r.status = 127 << 8;
    return r;
  }
  track_pid(pid);
  if (!wait_exit(pid, timeout_s, &r.status)) {
    r.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &r.status, 0);
  }
  untrack_pid(pid);
  r.output = read_text(capture_path);
  return r;
}

bool wait_exit(pid_t pid, double timeout_s, int* status) {
  double deadline = now_s() + timeout_s;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) {
      untrack_pid(pid);
      return true;
    }
    if (r < 0 && errno != EINTR) return false;
    if (now_s() > deadline) {
      errno = ETIMEDOUT;
      return false;
    }
    sleep_ms(10);
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  return "status " + std::to_string(status);
}

char proc_state(pid_t pid) {
  std::string s = stat_after_comm(pid);
  return s.empty() ? 0 : s[0];
}

pid_t proc_ppid(pid_t pid) {
  std::string s = stat_after_comm(pid);
  return s.size() < 3 ? -1 : static_cast<pid_t>(atol(s.c_str() + 2));
}

std::vector<pid_t> our_children() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  const pid_t self = getpid();
  while (dirent* e = readdir(d)) {
    pid_t pid = static_cast<pid_t>(atol(e->d_name));
    if (pid > 0 && proc_ppid(pid) == self) out.push_back(pid);
  }
  closedir(d);
  return out;
}

std::string describe_pid(pid_t pid) {
  std::string comm = read_text("/proc/" + std::to_string(pid) + "/comm");
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  char st = proc_state(pid);
  return "pid " + std::to_string(pid) + " (" + comm + ") state " +
         (st ? std::string(1, st) : "gone");
}

std::vector<std::string> kill_all_children(const std::vector<pid_t>& keep) {
  std::vector<std::string> killed;
  auto kept = [&](pid_t p) {
    for (pid_t k : keep)
      if (k == p) return true;
    return false;
  };
  double deadline = now_s() + 10;
  for (;;) {
    bool any = false;
    for (pid_t p : our_children()) {
      if (kept(p)) continue;
      any = true;
      // A killed ckpt's cure guard (compel/cure_guard.h) reparented to
      // us: it puts its victim back and exits by itself; not a leftover.
      if (read_text("/proc/" + std::to_string(p) + "/comm") == "ckpt-cureguard\n") {
        int st;
        for (double end = now_s() + 10; waitpid(p, &st, WNOHANG) == 0 && now_s() < end;)
          usleep(10000);
        if (proc_state(p) == 0) continue;
      }
      killed.push_back(describe_pid(p));
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
      untrack_pid(p);
    }
    if (!any || now_s() > deadline) break;
  }
  return killed;
}

int free_loopback_port() {
  int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sk < 0) return -1;
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(sk, reinterpret_cast<sockaddr*>(&a), len) < 0 ||
      getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    int e = errno;
    close(sk);
    errno = e;
    return -1;
  }
  close(sk);
  return ntohs(a.sin_port);
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string tail(const std::string& path, int lines) {
  std::istringstream in(read_text(path));
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  if (all.empty()) return "  (empty or missing)\n";
  std::string out;
  for (size_t i = all.size() > size_t(lines) ? all.size() - lines : 0; i < all.size(); i++)
    out += "  | " + all[i] + "\n";
  return out;
}

std::string grep(const std::string& path, const std::string& word, int max) {
  std::istringstream in(read_text(path));
  std::string out;
  int n = 0;
  for (std::string l; n < max && std::getline(in, l);)
    if (l.find(word) != std::string::npos) out += "  | " + l + "\n", n++;
  return out;
}

int count_lines(const std::string& path, const std::string& line) {
  std::istringstream in(read_text(path));
  int n = 0;
  for (std::string l; std::getline(in, l);) n += l == line;
  return n;
}

bool mentions_number(const std::string& text, long n) {
  std::string s = std::to_string(n);
  for (size_t p = text.find(s); p != std::string::npos; p = text.find(s, p + 1)) {
    bool left = p == 0 || !isdigit(static_cast<unsigned char>(text[p - 1]));
    bool right =
        p + s.size() >= text.size() || !isdigit(static_cast<unsigned char>(text[p + s.size()]));
    if (left && right) return true;
  }
  return false;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

}  // namespace zdtm
