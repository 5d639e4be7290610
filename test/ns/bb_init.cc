// bb_init: the init of a busybox container, for bb_container.py. Static,
// so it runs inside a rootfs that holds nothing but busybox.
//
//   bb_init ROOTFS CTLDIR CGDIR    (started by the driver, outside)
// moves itself into the cgroup CGDIR, unshares a user namespace (and waits
// for CTLDIR/maps-ready: the driver sees the new namespace, writes the uid
// and gid maps, then this becomes the namespace's root), then uts, ipc, net,
// mount, cgroup, time (monotonic +1 day, boottime +2 days) and pid
// namespaces owned by it, and forks the container's init (pid 1), writing
// its pid here to CTLDIR/pid; it then waits for it.
// The init makes ROOTFS the root of its mount namespace (pivot_root) with
// /ctl (CTLDIR), a tmpfs /dev with /dev/null, a devpts of its own on
// /dev/pts, /proc, a tmpfs /data holding a file, cgroup2 on
// /sys/fs/cgroup, and execs itself from inside as
//   /sbin/bb_init --inside
// which sets a hostname, installs a seccomp filter (acct(2) fails with
// ENOMSG), starts busybox sh on a pty of its devpts, waits for
// /ctl/veth-ready (the driver has moved eth0 in), configures eth0
// (10.199.0.2/24) and lo with busybox ip, writes /ctl/ready, and serves
// /ctl/ctl.sock: "report" answers key=value lines of what it sees from
// inside; "quit" ends the container.
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "bb_init: %s: %s\n", what, strerror(errno));
  exit(1);
}

void must(bool ok, const char* what) {
  if (!ok) die(what);
}

std::string read_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, size_t(n));
  close(fd);
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  must(fd >= 0 && write(fd, text.data(), text.size()) == ssize_t(text.size()), path.c_str());
  close(fd);
}

// Runs busybox with args; returns its exit status and output.
int run(const std::vector<const char*>& args, std::string* out = nullptr) {
  int p[2];
  must(pipe2(p, O_CLOEXEC) == 0, "pipe");
  pid_t c = fork();
  if (c == 0) {
    dup2(p[1], 1);
    dup2(p[1], 2);
    std::vector<char*> av = {const_cast<char*>("/bin/busybox")};
    for (const char* a : args) av.push_back(const_cast<char*>(a));
    av.push_back(nullptr);
    execv("/bin/busybox", av.data());
    _exit(127);
  }
  close(p[1]);
  std::string text;
  char buf[1024];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) text.append(buf, size_t(n));
  close(p[0]);
  int st = 0;
  waitpid(c, &st, 0);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// ---- outside: namespaces and pivot_root ----

// The time namespace's offsets (seconds), as /proc/PID/timens_offsets says them.
constexpr char kTimeOffsets[] = "monotonic 86400 0\nboottime 172800 0\n";

[[noreturn]] void outside(const std::string& rootfs, const std::string& ctl,
                          const std::string& cg) {
  write_file(cg + "/cgroup.procs", "0");
  must(unshare(CLONE_NEWUSER) == 0, "unshare user");
  for (int i = 0; access((ctl + "/maps-ready").c_str(), F_OK) != 0; i++) {
    must(i < 3000, "wait for the uid/gid maps");
    usleep(10000);
  }
  // Still the host's root in kernel terms: become the namespace's root.
  must(setgroups(0, nullptr) == 0 && setresgid(0, 0, 0) == 0 && setresuid(0, 0, 0) == 0,
       "become root of the user namespace");
  // Changing ids made it undumpable, which leaves its /proc files to the host's root.
  must(prctl(PR_SET_DUMPABLE, 1) == 0, "dumpable");
  must(unshare(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWCGROUP |
               CLONE_NEWPID | CLONE_NEWTIME) == 0,
       "unshare");
  write_file("/proc/self/timens_offsets", std::string(kTimeOffsets));
  pid_t init = fork();
  must(init >= 0, "fork");
  if (init > 0) {
    write_file(ctl + "/pid.tmp", std::to_string(init) + "\n");
    must(rename((ctl + "/pid.tmp").c_str(), (ctl + "/pid").c_str()) == 0, "rename pid");
    int st;
    while (waitpid(init, &st, 0) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  must(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "make / private");
  must(mount(rootfs.c_str(), rootfs.c_str(), nullptr, MS_BIND, nullptr) == 0, "bind rootfs");
  must(mount(ctl.c_str(), (rootfs + "/ctl").c_str(), nullptr, MS_BIND, nullptr) == 0, "bind ctl");
  must(mount("dev", (rootfs + "/dev").c_str(), "tmpfs", MS_NOSUID, "mode=755") == 0, "tmpfs dev");
  write_file(rootfs + "/dev/null", "");
  must(mount("/dev/null", (rootfs + "/dev/null").c_str(), nullptr, MS_BIND, nullptr) == 0,
       "bind null");
  must(mkdir((rootfs + "/dev/pts").c_str(), 0755) == 0, "mkdir pts");
  // Before pivot_root: in a user namespace a new proc needs a fully visible
  // one in the same mount namespace (the host's, until it is detached).
  must(mount("proc", (rootfs + "/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
             nullptr) == 0,
       "proc");
  must(chdir(rootfs.c_str()) == 0 && syscall(SYS_pivot_root, ".", ".") == 0 &&
           umount2(".", MNT_DETACH) == 0 && chdir("/") == 0,
       "pivot_root");
  must(mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666") ==
           0,
       "devpts");
  must(symlink("pts/ptmx", "/dev/ptmx") == 0, "ptmx");
  must(mount("data", "/data", "tmpfs", MS_NODEV, "size=1m") == 0, "tmpfs data");
  write_file("/data/file", "kept in a tmpfs\n");
  must(mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) ==
           0,
       "cgroup2");
  // Stdio from inside the container (the driver's are not in it).
  int in = open("/dev/null", O_RDONLY), log = open("/ctl/init.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
  must(in >= 0 && log >= 0, "stdio");
  dup2(in, 0), dup2(log, 1), dup2(log, 2);
  close(in), close(log);
  execl("/sbin/bb_init", "bb_init", "--inside", (char*)nullptr);
  die("exec /sbin/bb_init");
}

// ---- inside ----

int g_master = -1;

void install_filter() {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_acct, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMSG),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
  must(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0, "seccomp");
}

void start_shell() {
  g_master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  must(g_master >= 0, "open /dev/ptmx");
  int unlock = 0;
  must(ioctl(g_master, TIOCSPTLCK, &unlock) == 0, "unlock pty");
  int slave = ioctl(g_master, TIOCGPTPEER, O_RDWR);
  must(slave >= 0, "open the pty slave");
  pid_t sh = fork();
  if (sh == 0) {
    setsid();
    ioctl(slave, TIOCSCTTY, 0);
    dup2(slave, 0), dup2(slave, 1), dup2(slave, 2);
    if (slave > 2) close(slave);
    execl("/bin/busybox", "sh", (char*)nullptr);
    _exit(127);
  }
  close(slave);
}

// Types a command into the shell and waits for `want` in its output.
std::string shell(const std::string& cmd, const std::string& want) {
  std::string line = cmd + "\n";
  if (write(g_master, line.data(), line.size()) != ssize_t(line.size())) return "write failed";
  std::string got;
  for (int i = 0; i < 100 && got.find(want) == std::string::npos; i++) {
    struct pollfd p = {g_master, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    ssize_t n = read(g_master, buf, sizeof(buf));
    if (n > 0) got.append(buf, size_t(n));
  }
  return got.find(want) != std::string::npos ? "ok" : "no '" + want + "' in '" + got + "'";
}

// The whitespace-separated words of text, joined by one space.
std::string words(const std::string& text) {
  std::string out, w;
  for (char c : text + " ") {
    if (c == ' ' || c == '\n' || c == '\t') {
      if (!w.empty()) out += (out.empty() ? "" : " ") + w;
      w.clear();
    } else {
      w += c;
    }
  }
  return out;
}

std::string line_of(const std::string& text, const std::string& key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return "";
  size_t end = text.find('\n', at);
  return text.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

std::string report() {
  std::string r;
  struct utsname u;
  uname(&u);
  r += "pid=" + std::to_string(getpid()) + "\n";
  r += "uid=" + std::to_string(getuid()) + "\n";
  r += "uid_map=" + words(read_file("/proc/self/uid_map")) + "\n";
  r += "gid_map=" + words(read_file("/proc/self/gid_map")) + "\n";
  r += "setgroups=" + words(read_file("/proc/self/setgroups")) + "\n";
  r += "timens=" + words(read_file("/proc/self/timens_offsets")) + "\n";
  struct timespec mono, boot;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_BOOTTIME, &boot);
  r += std::string("clocks_offset=") + (mono.tv_sec >= 86400 && boot.tv_sec >= 172800 ? "yes" : "no") + "\n";
  r += "hostname=" + std::string(u.nodename) + "\n";
  r += "data=" + read_file("/data/file");
  struct stat st = {};
  stat("/data/file", &st);
  r += "data_owner=" + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + "\n";
  std::string mi = read_file("/proc/self/mountinfo");
  for (const char* mp : {" /proc ", " /dev/pts ", " /data ", " /sys/fs/cgroup ", " /ctl "})
    r += std::string("mount") + mp + "=" + (mi.find(mp) != std::string::npos ? "yes" : "no") + "\n";
  long a = syscall(SYS_acct, nullptr);
  r += "acct=" + std::string(a == -1 && errno == ENOMSG ? "ENOMSG" : "not filtered") + "\n";
  r += line_of(read_file("/proc/self/status"), "Seccomp:") + "\n";
  r += "cgroup=" + read_file("/proc/self/cgroup").substr(read_file("/proc/self/cgroup").find("0::"));
  std::string lim = read_file("/sys/fs/cgroup/hugetlb.2MB.max");
  r += "hugetlb.2MB.max=" + (lim.empty() ? std::string("none\n") : lim);
  r += "shell=" + shell("echo marker-$((6*7))", "marker-42") + "\n";
  std::string addr;
  run({"ip", "-o", "-4", "addr", "show", "dev", "eth0"}, &addr);
  r += "eth0=" + std::string(addr.find("10.199.0.2/24") != std::string::npos ? "10.199.0.2/24" : addr) + "\n";
  r += "ping=" + std::to_string(run({"ping", "-c", "1", "-W", "2", "10.199.0.1"})) + "\n";
  return r;
}

[[noreturn]] void inside() {
  must(sethostname("bb-container", 12) == 0, "sethostname");
  install_filter();
  start_shell();
  shell("stty -echo", "");  // fewer bytes to wade through
  while (access("/ctl/veth-ready", F_OK) != 0) usleep(20000);
  must(run({"ip", "link", "set", "lo", "up"}) == 0, "ip link set lo up");
  must(run({"ip", "addr", "add", "10.199.0.2/24", "dev", "eth0"}) == 0, "ip addr add");
  must(run({"ip", "link", "set", "eth0", "up"}) == 0, "ip link set eth0 up");
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, "/ctl/ctl.sock");
  unlink(sa.sun_path);
  must(ls >= 0 && bind(ls, (struct sockaddr*)&sa, sizeof(sa)) == 0 && listen(ls, 4) == 0, "ctl");
  write_file("/ctl/ready", "1\n");
  signal(SIGCHLD, SIG_DFL);
  for (;;) {
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) continue;
      die("accept");
    }
    char req[64] = {};
    ssize_t n = read(c, req, sizeof(req) - 1);
    std::string q = n > 0 ? std::string(req, size_t(n)) : "";
    if (q.rfind("quit", 0) == 0) {
      close(c);
      exit(0);  // pid 1: the namespace's other tasks go with it
    }
    std::string r = report() + "end\n";
    if (write(c, r.data(), r.size()) < 0) {
    }
    close(c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "--inside")) inside();
  if (argc != 4) {
    fprintf(stderr, "usage: bb_init ROOTFS CTLDIR CGDIR\n");
    return 2;
  }
  outside(argv[1], argv[2], argv[3]);
}
