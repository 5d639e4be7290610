// user_ns: a tree in a user namespace of its own (zdtm-run --ns user,...:
// maps 0 100000 65536, setgroups deny; see runner/harness.h).
//
//   R (root of the namespace, uid 0)  records, and checks the same after
//       restore: its uid_map, gid_map and setgroups; getres[ug]id and the
//       /proc/self/status Uid/Gid/Groups lines; getgroups(); capget (all
//       capabilities of the namespace) and the bounding set; which of its
//       namespaces its user namespace owns (NS_GET_USERNS on each
//       /proc/self/ns/*); what privileged calls give: sethostname to the
//       same name (needs a uts namespace its user namespace owns),
//       SO_MARK (CAP_NET_ADMIN over the network namespace), setgroups
//       (EPERM when denied). Files it creates are owned by 0:0 inside,
//       before the dump and after the restore (a restore that left it
//       with ckpt's uid would make them the overflow uid).
//   T (a thread of R)  its own (per-thread) credentials and capabilities
//       after restore, read with raw syscalls, are R's.
//   C (child)  uids 1000/1001/1002, gids 2000/2001/2002 inside, kept
//       capabilities: permitted {CHOWN, KILL, FOWNER}, effective {KILL}; a
//       file it creates in a shared directory is owned by 1001:2001 inside,
//       before and after; after restore it chowns a new one to 1000:2000
//       with CAP_CHOWN raised.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

bool g_ok = true;
const char* g_who = "R";

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s pid %d] ", g_who, getpid());
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  va_end(ap);
  size_t len = off + (n < 0 ? 0 : n);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
  g_ok = false;
}

uint64_t cap(int c) { return 1ull << c; }

struct Caps {
  uint64_t eff = 0, prm = 0, inh = 0;
  bool operator==(const Caps& o) const { return eff == o.eff && prm == o.prm && inh == o.inh; }
};

// tid 0: the calling thread (capabilities are per thread).
Caps get_caps() {
  __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  if (syscall(SYS_capget, &h, d)) fail("capget: %s", strerror(errno));
  Caps c;
  c.eff = d[0].effective | uint64_t(d[1].effective) << 32;
  c.prm = d[0].permitted | uint64_t(d[1].permitted) << 32;
  c.inh = d[0].inheritable | uint64_t(d[1].inheritable) << 32;
  return c;
}

void set_caps(const Caps& c) {
  __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  d[0] = {uint32_t(c.eff), uint32_t(c.prm), uint32_t(c.inh)};
  d[1] = {uint32_t(c.eff >> 32), uint32_t(c.prm >> 32), uint32_t(c.inh >> 32)};
  if (syscall(SYS_capset, &h, d)) fail("capset: %s", strerror(errno));
}

uint64_t bounding_set(int last_cap) {
  uint64_t m = 0;
  for (int c = 0; c <= last_cap; c++)
    if (prctl(PR_CAPBSET_READ, c) == 1) m |= cap(c);
  return m;
}

std::string status_field(const char* field) {
  std::string text = "\n" + zdtm_read_file("/proc/self/status");
  std::string key = std::string("\n") + field + ":";
  size_t p = text.find(key);
  if (p == std::string::npos) return "(missing)";
  p += key.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) p++;
  std::string v = text.substr(p, text.find('\n', p) - p);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return v;
}

// Whitespace runs as one space: the kernel pads map columns.
std::string squeeze(const std::string& s) {
  std::string out;
  for (char c : s) {
    bool space = c == ' ' || c == '\t' || c == '\n';
    if (space) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::vector<gid_t> groups() {
  int n = getgroups(0, nullptr);
  std::vector<gid_t> g(size_t(n > 0 ? n : 0));
  if (n < 0 || getgroups(n, g.data()) != n) fail("getgroups: %s", strerror(errno));
  std::sort(g.begin(), g.end());
  return g;
}

std::string join(const std::vector<gid_t>& v) {
  std::string s;
  for (gid_t g : v) s += (s.empty() ? "" : ",") + std::to_string(g);
  return s;
}

ino_t inode_of(const char* path) {
  struct stat st;
  if (stat(path, &st) < 0) fail("stat %s: %s", path, strerror(errno));
  return st.st_ino;
}

// "pid:own uts:own net:EPERM ...": whether our user namespace owns each
// of our namespaces (NS_GET_USERNS answers EPERM for an owner above it).
std::string ownership() {
  ino_t user = inode_of("/proc/self/ns/user");
  std::string out;
  for (const char* k : {"pid", "uts", "ipc", "net", "time", "mnt", "cgroup"}) {
    std::string path = std::string("/proc/self/ns/") + k;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open %s: %s", path.c_str(), strerror(errno));
    int owner = ioctl(fd, NS_GET_USERNS);
    std::string what;
    if (owner < 0) {
      what = strerrorname_np(errno);
    } else {
      struct stat st;
      fstat(owner, &st);
      what = st.st_ino == user ? "own" : "other";
      close(owner);
    }
    close(fd);
    out += std::string(out.empty() ? "" : " ") + k + ":" + what;
  }
  return out;
}

// The errno of each privileged call (0: allowed).
std::string privileges() {
  std::string out;
  char name[65] = {};
  gethostname(name, sizeof(name) - 1);
  int r = sethostname(name, strlen(name));
  out += std::string("sethostname:") + (r < 0 ? strerrorname_np(errno) : "0");
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int mark = 7;
  r = s < 0 ? -1 : setsockopt(s, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  out += std::string(" SO_MARK:") + (r < 0 ? strerrorname_np(errno) : "0");
  if (s >= 0) close(s);
  // Same groups again: changes nothing when it is allowed.
  std::vector<gid_t> g = groups();
  r = setgroups(g.size(), g.data());
  out += std::string(" setgroups:") + (r < 0 ? strerrorname_np(errno) : "0");
  return out;
}

// Creates (again) dir/name and checks its owner inside the namespace.
void create_owned(const std::string& path, uid_t uid, gid_t gid, const char* when) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    bad("%s: create %s: %s", when, path.c_str(), strerror(errno));
    return;
  }
  struct stat st;
  fstat(fd, &st);
  close(fd);
  if (st.st_uid != uid || st.st_gid != gid)
    bad("%s: %s is owned by %u:%u, want %u:%u", when, path.c_str(), st.st_uid, st.st_gid, uid, gid);
}

void expect_owner(const std::string& path, uid_t uid, gid_t gid, const char* when) {
  struct stat st;
  if (stat(path.c_str(), &st) < 0) {
    bad("%s: stat %s: %s", when, path.c_str(), strerror(errno));
    return;
  }
  if (st.st_uid != uid || st.st_gid != gid)
    bad("%s: %s is owned by %u:%u, want %u:%u", when, path.c_str(), st.st_uid, st.st_gid, uid, gid);
}

struct Ids {
  uid_t u[3];
  gid_t g[3];
  bool operator==(const Ids& o) const { return !memcmp(this, &o, sizeof(o)); }
};
Ids ids() {
  Ids i;
  getresuid(&i.u[0], &i.u[1], &i.u[2]);
  getresgid(&i.g[0], &i.g[1], &i.g[2]);
  return i;
}

// Everything R checks twice.
struct State {
  std::string uid_map, gid_map, setgroups, status_uid, status_gid, status_groups, owners, privs;
  std::vector<gid_t> groups;
  Ids ids;
  Caps caps;
  uint64_t bnd = 0;
};

State read_state(int last_cap) {
  State s;
  s.uid_map = squeeze(zdtm_read_file("/proc/self/uid_map"));
  s.gid_map = squeeze(zdtm_read_file("/proc/self/gid_map"));
  s.setgroups = squeeze(zdtm_read_file("/proc/self/setgroups"));
  s.status_uid = status_field("Uid");
  s.status_gid = status_field("Gid");
  s.status_groups = status_field("Groups");
  s.owners = ownership();
  s.privs = privileges();
  s.groups = groups();
  s.ids = ids();
  s.caps = get_caps();
  s.bnd = bounding_set(last_cap);
  return s;
}

void compare(const State& a, const State& b) {
  auto same = [](const char* what, const std::string& x, const std::string& y) {
    if (x != y) bad("%s: '%s' after restore, '%s' before", what, y.c_str(), x.c_str());
  };
  same("uid_map", a.uid_map, b.uid_map);
  same("gid_map", a.gid_map, b.gid_map);
  same("setgroups", a.setgroups, b.setgroups);
  same("status Uid", a.status_uid, b.status_uid);
  same("status Gid", a.status_gid, b.status_gid);
  same("status Groups", a.status_groups, b.status_groups);
  same("namespace owners", a.owners, b.owners);
  same("privileged calls", a.privs, b.privs);
  same("getgroups", join(a.groups), join(b.groups));
  if (!(a.ids == b.ids)) bad("getres[ug]id changed");
  if (!(a.caps == b.caps))
    bad("capabilities eff/prm/inh %#lx/%#lx/%#lx after restore, %#lx/%#lx/%#lx before",
        (unsigned long)b.caps.eff, (unsigned long)b.caps.prm, (unsigned long)b.caps.inh,
        (unsigned long)a.caps.eff, (unsigned long)a.caps.prm, (unsigned long)a.caps.inh);
  if (a.bnd != b.bnd) bad("bounding set changed");
}

// ---- T: a thread of R ----

int g_thread_pipe[2];
struct ThreadResult {
  long uid, euid, gid, egid;
  Caps caps;
};
ThreadResult g_thread_result;

void* thread_main(void*) {
  char c;
  while (read(g_thread_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
  // Raw syscalls: this thread's own credentials, not glibc's idea.
  g_thread_result = {syscall(SYS_getuid), syscall(SYS_geteuid), syscall(SYS_getgid),
                     syscall(SYS_getegid), get_caps()};
  return nullptr;
}

// ---- C: the child with other ids ----

constexpr uid_t kCUid[3] = {1000, 1001, 1002};
constexpr gid_t kCGid[3] = {2000, 2001, 2002};
const uint64_t kCPrm = cap(CAP_CHOWN) | cap(CAP_KILL) | cap(CAP_FOWNER);
const uint64_t kCEff = cap(CAP_KILL);

volatile sig_atomic_t g_child_term = 0;
void on_child_term(int) { g_child_term = 1; }

[[noreturn]] void child_main(int ready_fd, const std::string& dir) {
  g_who = "C";
  signal(SIGTERM, on_child_term);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, &old);
  if (prctl(PR_SET_KEEPCAPS, 1) < 0) fail("PR_SET_KEEPCAPS: %s", strerror(errno));
  if (setresgid(kCGid[0], kCGid[1], kCGid[2]) < 0) fail("setresgid: %s", strerror(errno));
  if (setresuid(kCUid[0], kCUid[1], kCUid[2]) < 0) fail("setresuid: %s", strerror(errno));
  set_caps({kCEff, kCPrm, 0});
  std::string file = dir + "/child_file";
  create_owned(file, kCUid[1], kCGid[1], "before");
  std::vector<gid_t> g0 = groups();
  (void)!write(ready_fd, "c", 1);
  close(ready_fd);
  while (!g_child_term) sigsuspend(&old);

  Ids want = {{kCUid[0], kCUid[1], kCUid[2]}, {kCGid[0], kCGid[1], kCGid[2]}};
  if (!(ids() == want)) bad("getres[ug]id are not 1000/1001/1002, 2000/2001/2002");
  if (status_field("Uid") != "1000\t1001\t1002\t1001")
    bad("status Uid '%s'", status_field("Uid").c_str());
  Caps c = get_caps();
  if (!(c == Caps{kCEff, kCPrm, 0}))
    bad("capabilities eff/prm %#lx/%#lx, want %#lx/%#lx", (unsigned long)c.eff,
        (unsigned long)c.prm, (unsigned long)kCEff, (unsigned long)kCPrm);
  if (join(groups()) != join(g0))
    bad("getgroups %s, before %s", join(groups()).c_str(), join(g0).c_str());
  expect_owner(file, kCUid[1], kCGid[1], "after restore");
  std::string after = dir + "/child_file_after";
  create_owned(after, kCUid[1], kCGid[1], "after restore");
  // CAP_CHOWN is permitted inside: raise it and give the file to uid 1000.
  set_caps({kCEff | cap(CAP_CHOWN), kCPrm, 0});
  if (chown(after.c_str(), kCUid[0], kCGid[0]) < 0)
    bad("chown with CAP_CHOWN raised: %s", strerror(errno));
  else
    expect_owner(after, kCUid[0], kCGid[0], "after chown");
  _exit(g_ok ? 0 : 1);
}

}  // namespace

// --nested: R first moves into a user namespace of its own inside the
// runner's (mapping only its uid and gid 0), and makes no child C: ckpt
// must refuse to dump it (user_ns_checks) and leave it running.
void write_file(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) != ssize_t(strlen(text)))
    fail("write %s: %s", path, strerror(errno));
  close(fd);
}

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool nested = argc > 1 && !strcmp(argv[1], "--nested");
  if (nested) {
    if (unshare(CLONE_NEWUSER) < 0) fail("unshare(CLONE_NEWUSER): %s", strerror(errno));
    write_file("/proc/self/uid_map", "0 0 1");
    write_file("/proc/self/setgroups", "deny");
    write_file("/proc/self/gid_map", "0 0 1");
  }
  int last_cap = atoi(zdtm_read_file("/proc/sys/kernel/cap_last_cap").c_str());
  uint64_t all = last_cap >= 63 ? ~0ull : (cap(last_cap + 1) - 1);
  if (getuid() != 0 || geteuid() != 0) fail("not started as root of the namespace");
  Caps c0 = get_caps();
  if (c0.eff != all || c0.prm != all)
    fail("the namespace's root lacks capabilities (eff %#lx)", (unsigned long)c0.eff);

  char cwd[4096];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd: %s", strerror(errno));
  std::string dir = std::string(cwd) + "/userns_dir";
  mkdir(dir.c_str(), 0777);
  if (chmod(dir.c_str(), 0777) < 0) fail("chmod %s: %s", dir.c_str(), strerror(errno));
  create_owned(dir + "/root_file", 0, 0, "before");

  State before = read_state(last_cap);
  if (before.setgroups == "deny" && before.privs.find("setgroups:EPERM") == std::string::npos)
    bad("setgroups is denied but setgroups() worked: %s", before.privs.c_str());
  test_msg("uid_map '%s' gid_map '%s' setgroups %s groups %s; %s; %s", before.uid_map.c_str(),
           before.gid_map.c_str(), before.setgroups.c_str(), join(before.groups).c_str(),
           before.owners.c_str(), before.privs.c_str());

  if (pipe(g_thread_pipe) < 0) fail("pipe");
  pthread_t th;
  if (pthread_create(&th, nullptr, thread_main, nullptr)) fail("pthread_create");

  pid_t child = 0;
  if (!nested) {
    int ready[2];
    if (pipe(ready) < 0) fail("pipe");
    child = fork();
    if (child < 0) fail("fork: %s", strerror(errno));
    if (child == 0) {
      close(ready[0]);
      child_main(ready[1], dir);
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1) fail("the child failed to set up");
    close(ready[0]);
  }

  test_ready();
  test_wait();

  State after = read_state(last_cap);
  compare(before, after);
  expect_owner(dir + "/root_file", 0, 0, "after restore");
  create_owned(dir + "/root_file_after", 0, 0, "after restore");

  (void)!write(g_thread_pipe[1], "t", 1);
  pthread_join(th, nullptr);
  const ThreadResult& t = g_thread_result;
  if (t.uid != 0 || t.euid != 0 || t.gid != 0 || t.egid != 0)
    bad("thread: uid/euid/gid/egid %ld/%ld/%ld/%ld, want 0", t.uid, t.euid, t.gid, t.egid);
  if (!(t.caps == after.caps)) bad("thread: capabilities differ from the leader's");

  if (child > 0) {
    kill(child, SIGTERM);
    int st;
    if (waitpid(child, &st, 0) != child) fail("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad("the child failed (status %#x)", st);
  }
  if (!g_ok) fail("see above");
  pass();
}
