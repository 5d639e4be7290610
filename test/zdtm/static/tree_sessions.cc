// tree_sessions: a process tree with sessions and process groups.
//
// The tree is a table of nodes; node 0 is the root (the test process, which
// the runner made a session leader). Each node is forked by its parent and
// may call setsid(), make its own process group, join the group of another
// node, or fork its children and exit (its parent reaps it; its children are
// then adopted by the root, a child subreaper, and keep the dead process's
// pid as their session or group id).
//
//   (default)       a tree 4 levels deep: nested sessions (A, D, D1), new
//                   groups (A1, B, E), members of a group whose leader is a
//                   sibling (A2 in A1), an uncle (C1, C1a in B) or the
//                   grandparent (E1 in R's group from inside E's).
//   --big           tree_big: 20 children x 10 grandchildren (221 processes),
//                   some children with their own group or session.
//   --dead-leaders  tree_dead_leader: sessions and groups whose leader has
//                   exited (X1, Y), their members adopted by the root.
//
// No pipes, sockets or shared memory: every node reports "set up" with a
// sigqueue() to the root (value = node index, si_pid = its pid); the root
// prints READY when all have. After SIGTERM the root checks itself and,
// through /proc/PID/stat, every other node, then SIGTERMs its children.
// Every node, on SIGTERM, checks its own getpid/gettid/getppid/getpgid/
// getpgrp/getsid, /proc/self/stat, comm and its exact set of children in
// /proc/self/task/TID/children, SIGTERMs its children and reaps each with
// waitpid(pid) (so the parent link is real), then exits 0 only if all of
// that held. The root prints PASS only if every direct child exited 0 and no
// other child (a restore helper, say) is left to reap.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

enum class Op { kInherit, kNewGroup, kSetsid, kJoinGroup };

struct Node {
  char name[12];
  int parent;     // the node that forks this one; -1 for the root
  Op op;
  int join;       // kJoinGroup: the node whose group this one joins
  bool exits;     // forks its children, reports, exits; its parent reaps it
  // Derived from the above by finish_table():
  int pgrp_node;  // the node whose pid is this node's pgid
  int sess_node;  // the node whose pid is this node's sid
  int adopter;    // the parent while verifying: parent, or the root if the parent exited
};

constexpr int kMaxNodes = 256;
constexpr int kSetupFailed = 1 << 16;      // or'ed into the ready value
const int kReadySig = SIGRTMIN + 1;        // glibc's SIGRTMIN is not a constant
constexpr double kReadyTimeout = 30, kRootExitTimeout = 40, kNodeExitTimeout = 30;

Node g_nodes[kMaxNodes];
int g_count;
// Pids as known to this process: a parent learns its children's from fork(),
// a node its own, the root everyone's from the ready signals.
pid_t g_pid[kMaxNodes];
int g_self;  // this process's node
bool g_subreaper;
bool g_ok = true;

// ---- output and time ----

void say(const char* prefix, const char* fmt, va_list ap) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "%s[%s pid %d] ", prefix, g_nodes[g_self].name, getpid());
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  size_t len = std::min(sizeof(buf) - 2, size_t(off + std::max(n, 0)));
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
}

// A failed check: printed at once (several can be), remembered in g_ok.
__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("FAIL: ", fmt, ap);
  va_end(ap);
  g_ok = false;
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(int ms) {
  timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, nullptr);
}

std::string describe_status(int st) {
  char buf[64];
  if (WIFEXITED(st))
    snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, sizeof(buf), "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  else
    snprintf(buf, sizeof(buf), "status %#x", st);
  return buf;
}

// waitpid(pid) until deadline; false with errno ETIMEDOUT or waitpid's errno.
bool wait_child(pid_t pid, int* status, double deadline) {
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (now_s() > deadline) {
      errno = ETIMEDOUT;
      return false;
    }
    sleep_ms(2);
  }
}

// ---- the table ----

int add(const char* name, int parent, Op op = Op::kInherit, int join = -1, bool exits = false) {
  if (g_count >= kMaxNodes) fail("table: too many nodes");
  Node& n = g_nodes[g_count];
  snprintf(n.name, sizeof(n.name), "%s", name);
  n.parent = parent;
  n.op = op;
  n.join = join;
  n.exits = exits;
  return g_count++;
}

void finish_table() {
  for (int i = 0; i < g_count; i++) {
    Node& n = g_nodes[i];
    if (i == 0) {
      n.pgrp_node = n.sess_node = 0;
      n.adopter = -1;
      continue;
    }
    const Node& p = g_nodes[n.parent];
    if (n.parent >= i || (n.op == Op::kJoinGroup && (n.join < 0 || n.join >= i)))
      fail("table: node %s refers to a later node", n.name);
    n.sess_node = n.op == Op::kSetsid ? i : p.sess_node;
    n.pgrp_node = n.op == Op::kSetsid || n.op == Op::kNewGroup ? i
                  : n.op == Op::kJoinGroup                     ? n.join
                                                               : p.pgrp_node;
    if (n.op == Op::kJoinGroup && g_nodes[n.join].sess_node != n.sess_node)
      fail("table: node %s joins a group of another session", n.name);
    // A child of an exiting node is adopted by the nearest subreaper: the root.
    n.adopter = p.exits ? 0 : n.parent;
    if (p.exits && !g_subreaper) fail("table: node %s needs the root to be a subreaper", n.name);
    if (p.exits && n.parent == 0) fail("table: the root cannot exit");
  }
}

void table_sessions() {
  int r = add("R", -1);
  int a = add("A", r, Op::kSetsid);
  int a1 = add("A1", a, Op::kNewGroup);
  add("A1a", a1);
  add("A2", a, Op::kJoinGroup, a1);  // group leader: its sibling
  int b = add("B", r, Op::kNewGroup);
  add("B1", b);
  int c = add("C", r);
  int c1 = add("C1", c, Op::kJoinGroup, b);  // group leader: its uncle
  add("C1a", c1);                            // inherits its parent's foreign group
  int d = add("D", r, Op::kSetsid);
  int d1 = add("D1", d, Op::kSetsid);  // a session inside a session leader's child
  add("D1a", d1);
  int e = add("E", r, Op::kNewGroup);
  add("E1", e, Op::kJoinGroup, r);  // back into the root's group
  add("E2", e);
}

void table_big() {
  int r = add("R", -1);
  for (int c = 0; c < 20; c++) {
    char name[12];
    snprintf(name, sizeof(name), "c%02d", c);
    Op op = c % 4 == 1 ? Op::kNewGroup : c % 4 == 3 ? Op::kSetsid : Op::kInherit;
    int ci = add(name, r, op);
    for (int g = 0; g < 10; g++) {
      snprintf(name, sizeof(name), "g%02d.%d", c, g);
      add(name, ci, c % 4 == 1 && g == 9 ? Op::kNewGroup : Op::kInherit);
    }
  }
}

void table_dead_leaders() {
  g_subreaper = true;
  int r = add("R", -1);
  int x = add("X", r);
  int x1 = add("X1", x, Op::kSetsid, -1, true);  // session leader that exits
  add("X1a", x1);                                // sid and pgid of a dead process
  int x1b = add("X1b", x1, Op::kNewGroup);       // own group in the dead leader's session
  add("X1b1", x1b);
  int y = add("Y", r, Op::kNewGroup, -1, true);  // group leader that exits
  add("Y1", y);
  add("Y2", y);
  int z = add("Z", r);
  add("Z1", z, Op::kJoinGroup, y);  // joins the group after its leader died
}

// ---- identity checks ----

struct Stat {
  bool ok = false;
  char state = 0;
  pid_t pid = 0, ppid = 0, pgrp = 0, session = 0;
  std::string comm;
};

Stat read_stat(pid_t pid) {
  Stat s;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return s;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  char* open = strchr(buf, '(');
  char* close = strrchr(buf, ')');
  if (!open || !close) return s;
  s.pid = atoi(buf);
  s.comm.assign(open + 1, close);
  s.ok = sscanf(close + 2, "%c %d %d %d", &s.state, &s.ppid, &s.pgrp, &s.session) == 4;
  return s;
}

std::string comm_of(int i) { return std::string("ts-") + g_nodes[i].name; }

std::vector<pid_t> expected_children(int i) {
  std::vector<pid_t> out;
  for (int c = 1; c < g_count; c++)
    if (g_nodes[c].adopter == i && !g_nodes[c].exits) out.push_back(g_pid[c]);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<pid_t> proc_children() {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%ld/children", syscall(SYS_gettid));
  std::vector<pid_t> out;
  std::string text = zdtm_read_file(path);
  for (const char* p = text.c_str(); *p;) {
    char* end;
    long v = strtol(p, &end, 10);
    if (end == p) break;
    out.push_back(static_cast<pid_t>(v));
    p = end;
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string pid_list(const std::vector<pid_t>& v) {
  std::string s;
  for (pid_t p : v) s += (s.empty() ? "" : " ") + std::to_string(p);
  return "{" + s + "}";
}

// Checks this process against the table. pre_dump: during setup, when an
// exiting parent may not have exited yet (so getppid() is not checked then).
void check_self(pid_t my_pid, pid_t my_ppid, bool pre_dump) {
  const Node& n = g_nodes[g_self];
  const pid_t want_pgrp = g_pid[n.pgrp_node], want_sid = g_pid[n.sess_node];
  if (getpid() != my_pid) bad("getpid() %d, want %d", getpid(), my_pid);
  if (syscall(SYS_getpid) != my_pid) bad("SYS_getpid %ld, want %d", syscall(SYS_getpid), my_pid);
  if (syscall(SYS_gettid) != my_pid) bad("gettid %ld, want %d", syscall(SYS_gettid), my_pid);
  bool check_ppid = !(pre_dump && n.adopter != n.parent);
  if (check_ppid && getppid() != my_ppid) bad("getppid() %d, want %d", getppid(), my_ppid);
  if (getpgid(0) != want_pgrp) bad("getpgid(0) %d, want %d (node %s)", getpgid(0), want_pgrp, g_nodes[n.pgrp_node].name);
  if (getpgrp() != want_pgrp) bad("getpgrp() %d, want %d", getpgrp(), want_pgrp);
  if (getsid(0) != want_sid) bad("getsid(0) %d, want %d (node %s)", getsid(0), want_sid, g_nodes[n.sess_node].name);
  Stat s = read_stat(getpid());
  if (!s.ok) {
    bad("cannot parse /proc/self/stat");
  } else {
    if (s.pid != my_pid) bad("/proc/self/stat pid %d, want %d", s.pid, my_pid);
    if (check_ppid && s.ppid != my_ppid) bad("/proc/self/stat ppid %d, want %d", s.ppid, my_ppid);
    if (s.pgrp != want_pgrp) bad("/proc/self/stat pgrp %d, want %d", s.pgrp, want_pgrp);
    if (s.session != want_sid) bad("/proc/self/stat session %d, want %d", s.session, want_sid);
    if (s.comm != comm_of(g_self)) bad("/proc/self/stat comm '%s', want '%s'", s.comm.c_str(), comm_of(g_self).c_str());
  }
  char name[17] = {};
  prctl(PR_GET_NAME, name);
  if (comm_of(g_self) != name) bad("PR_GET_NAME '%s', want '%s'", name, comm_of(g_self).c_str());
  if (!pre_dump) {
    std::vector<pid_t> want = expected_children(g_self), have = proc_children();
    if (want != have) bad("children in /proc %s, want %s", pid_list(have).c_str(), pid_list(want).c_str());
  }
}

// The root's view of another node, from /proc/PID/stat.
void check_other(int i) {
  const Node& n = g_nodes[i];
  const pid_t pid = g_pid[i];
  Stat s = read_stat(pid);
  if (!s.ok) return bad("node %s: pid %d does not exist", n.name, pid);
  const pid_t ppid = g_pid[n.adopter], pgrp = g_pid[n.pgrp_node], sid = g_pid[n.sess_node];
  if (s.state == 'Z' || s.state == 'X') bad("node %s: pid %d is a zombie", n.name, pid);
  if (s.ppid != ppid) bad("node %s (pid %d): ppid %d, want %d", n.name, pid, s.ppid, ppid);
  if (s.pgrp != pgrp) bad("node %s (pid %d): pgrp %d, want %d", n.name, pid, s.pgrp, pgrp);
  if (s.session != sid) bad("node %s (pid %d): session %d, want %d", n.name, pid, s.session, sid);
  if (s.comm != comm_of(i)) bad("node %s (pid %d): comm '%s'", n.name, pid, s.comm.c_str());
}

// ---- setup ----

void send_ready(int value) {
  sigval v;
  v.sival_int = value;
  double deadline = now_s() + 10;
  while (sigqueue(g_pid[0], kReadySig, v) != 0) {
    if (errno != EAGAIN || now_s() > deadline) {
      bad("sigqueue to the root: %s", strerror(errno));
      _exit(1);
    }
    sleep_ms(1);  // RLIMIT_SIGPENDING reached: the root is draining the queue
  }
}

[[noreturn]] __attribute__((format(printf, 1, 2))) void setup_fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  say("FAIL: ", fmt, ap);
  va_end(ap);
  if (g_self != 0) send_ready(g_self | kSetupFailed);
  _exit(1);
}

[[noreturn]] void node_main(int i);

// Forks this node's children (in table order), applies the parent's half of
// setpgid() (the usual race-free idiom; the child does it too), then reaps
// the children that exit.
void fork_children() {
  for (int c = 1; c < g_count; c++) {
    if (g_nodes[c].parent != g_self) continue;
    pid_t pid = fork();
    if (pid < 0) setup_fail("fork for node %s: %s", g_nodes[c].name, strerror(errno));
    if (pid == 0) node_main(c);
    g_pid[c] = pid;
    // Errors ignored: the child's own call is the one that is checked.
    if (g_nodes[c].op == Op::kNewGroup) setpgid(pid, pid);
    if (g_nodes[c].op == Op::kJoinGroup) setpgid(pid, g_pid[g_nodes[c].join]);
  }
  for (int c = 1; c < g_count; c++) {
    if (g_nodes[c].parent != g_self || !g_nodes[c].exits) continue;
    int st;
    if (!wait_child(g_pid[c], &st, now_s() + kReadyTimeout))
      setup_fail("waitpid(%d) for exiting node %s: %s", g_pid[c], g_nodes[c].name, strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      setup_fail("exiting node %s ended with %s", g_nodes[c].name, describe_status(st).c_str());
  }
}

// SIGTERMs this node's live children and reaps each; bad() for every child
// that is not there, not ours, or did not exit 0.
void stop_children(double timeout) {
  std::vector<int> kids;
  for (int c = 1; c < g_count; c++)
    if (g_nodes[c].adopter == g_self && !g_nodes[c].exits) kids.push_back(c);
  for (int c : kids)
    if (kill(g_pid[c], SIGTERM)) bad("kill(%d, SIGTERM) for node %s: %s", g_pid[c], g_nodes[c].name, strerror(errno));
  double deadline = now_s() + timeout;
  for (int c : kids) {
    int st;
    if (!wait_child(g_pid[c], &st, deadline)) {
      if (errno == ECHILD)
        bad("node %s (pid %d) is not our child", g_nodes[c].name, g_pid[c]);
      else
        bad("node %s (pid %d) did not exit within %.0f s of SIGTERM: %s", g_nodes[c].name, g_pid[c], timeout,
            strerror(errno));
      kill(g_pid[c], SIGKILL);
      waitpid(g_pid[c], &st, 0);
      continue;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      bad("node %s (pid %d) ended with %s", g_nodes[c].name, g_pid[c], describe_status(st).c_str());
  }
}

void node_main(int i) {
  g_self = i;
  g_pid[i] = getpid();
  const Node& n = g_nodes[i];
  if (prctl(PR_SET_NAME, comm_of(i).c_str())) setup_fail("PR_SET_NAME: %s", strerror(errno));
  switch (n.op) {
    case Op::kInherit: break;
    case Op::kSetsid:
      if (setsid() != getpid()) setup_fail("setsid: %s", strerror(errno));
      break;
    case Op::kNewGroup:
      if (setpgid(0, 0)) setup_fail("setpgid(0, 0): %s", strerror(errno));
      break;
    case Op::kJoinGroup:
      if (g_pid[n.join] == 0) setup_fail("table: pid of node %s unknown here", g_nodes[n.join].name);
      if (setpgid(0, g_pid[n.join]))
        setup_fail("setpgid(0, %d) (node %s): %s", g_pid[n.join], g_nodes[n.join].name, strerror(errno));
      break;
  }
  for (int k : {n.pgrp_node, n.sess_node, n.adopter})
    if (g_pid[k] == 0) setup_fail("table: pid of node %s unknown here", g_nodes[k].name);
  const pid_t my_pid = getpid(), my_ppid = g_pid[n.adopter];
  fork_children();
  check_self(my_pid, my_ppid, true);
  if (!g_ok) setup_fail("identity wrong before the dump");
  send_ready(i);
  if (n.exits) _exit(0);

  test_wait();

  check_self(my_pid, my_ppid, false);
  stop_children(kNodeExitTimeout);
  _exit(g_ok ? 0 : 1);
}

void root_main(const char* mode) {
  g_self = 0;
  g_pid[0] = getpid();
  const pid_t my_pid = getpid(), my_ppid = getppid();
  if (getsid(0) != my_pid || getpgid(0) != my_pid)
    fail("the root must be a session leader (the runner does setsid()): sid %d pgid %d", getsid(0), getpgid(0));
  if (prctl(PR_SET_NAME, comm_of(0).c_str())) fail("PR_SET_NAME: %s", strerror(errno));
  if (g_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1)) fail("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

  // Children inherit this mask; they never receive kReadySig themselves.
  sigset_t ready_set;
  sigemptyset(&ready_set);
  sigaddset(&ready_set, kReadySig);
  sigprocmask(SIG_BLOCK, &ready_set, nullptr);

  fork_children();

  // Collect one ready signal from every other node.
  std::vector<bool> seen(g_count, false);
  int got = 0;
  const double deadline = now_s() + kReadyTimeout;
  while (got < g_count - 1) {
    double left = deadline - now_s();
    if (left <= 0) {
      std::string missing;
      for (int i = 1; i < g_count; i++)
        if (!seen[i]) missing += std::string(" ") + g_nodes[i].name;
      fail("%d of %d processes not set up within %.0f s:%s", g_count - 1 - got, g_count - 1, kReadyTimeout,
           missing.c_str());
    }
    timespec ts = {static_cast<time_t>(left), static_cast<long>((left - static_cast<time_t>(left)) * 1e9)};
    siginfo_t si;
    if (sigtimedwait(&ready_set, &si, &ts) < 0) continue;  // EINTR or EAGAIN: loop checks the deadline
    if (si.si_code != SI_QUEUE) continue;
    int v = si.si_value.sival_int, idx = v & ~kSetupFailed;
    if (idx <= 0 || idx >= g_count) fail("ready signal with bad value %#x from pid %d", v, si.si_pid);
    if (v & kSetupFailed) fail("node %s (pid %d) failed to set up (see above)", g_nodes[idx].name, si.si_pid);
    if (seen[idx]) fail("node %s reported twice (pids %d, %d)", g_nodes[idx].name, g_pid[idx], si.si_pid);
    if (g_pid[idx] != 0 && g_pid[idx] != si.si_pid)
      fail("node %s: forked as pid %d but reported from pid %d", g_nodes[idx].name, g_pid[idx], si.si_pid);
    seen[idx] = true;
    g_pid[idx] = si.si_pid;
    got++;
  }
  check_self(my_pid, my_ppid, true);
  for (int i = 1; i < g_count; i++)
    if (!g_nodes[i].exits) check_other(i);
  if (!g_ok) fail("tree is not as designed before the dump");
  int sessions = 0, groups = 0, exited = 0;
  for (int i = 0; i < g_count; i++) {
    sessions += g_nodes[i].sess_node == i;
    groups += g_nodes[i].pgrp_node == i;
    exited += g_nodes[i].exits;
  }
  test_msg("mode %s: %d processes (%d exited), %d sessions, %d process groups", mode, g_count - exited, exited,
           sessions, groups);
  test_ready();
  test_wait();

  check_self(my_pid, my_ppid, false);
  int subreaper = -1;
  prctl(PR_GET_CHILD_SUBREAPER, &subreaper);
  if (subreaper != (g_subreaper ? 1 : 0)) bad("PR_GET_CHILD_SUBREAPER %d, want %d", subreaper, g_subreaper ? 1 : 0);
  for (int i = 1; i < g_count; i++)
    if (!g_nodes[i].exits) check_other(i);
  stop_children(kRootExitTimeout);
  // Nothing else may be left to reap: no helper of the restore, no zombie.
  int st;
  pid_t extra = waitpid(-1, &st, WNOHANG);
  if (extra > 0) bad("unexpected child pid %d reaped (%s)", extra, describe_status(st).c_str());
  else if (extra == 0) bad("an unexpected child is still running");
  if (!g_ok) fail("tree verification failed (see above)");
  pass();
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "--big") == 0)
    table_big();
  else if (strcmp(mode, "--dead-leaders") == 0)
    table_dead_leaders();
  else if (mode[0] == 0)
    table_sessions();
  else
    fail("unknown argument %s (--big, --dead-leaders)", mode);
  finish_table();
  root_main(mode[0] ? mode : "sessions");
}
