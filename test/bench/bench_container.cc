// ckpt-bench's container section. Per row and per run: a fresh
// `ckpt-bench-victim container N ns` started with clone3(CLONE_NEWPID |
// CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) in a new session (the row
// "container"), or `... container N bare` started with a plain fork (the row
// "bare": the same processes, threads and memory in our own namespaces),
// READY; then timed, each as the wall time of the ckpt process:
//   ckpt dump -t ROOT -D IMG -o dump.log          (the tree is killed)
//   ckpt restore -D IMG -d --pidfile F -o restore.log
// Before the dump and after the restore ckpt-bench records what /proc
// shows: every process by its pid in the container's pid namespace (the
// last NSpid), its parent's, its threads' ids there, and that every one of
// them is in the root's pid, uts, ipc and net namespaces (new ones for the
// container, ours for bare); for the container also what a helper that
// setns()es into the root's uts, ipc and net namespaces sees: host and
// domain name, lo's flags, every SysV queue with its id, message count and
// bytes. The restore must show exactly the same, with the dumped root's
// pid in the pidfile, the root our child (we are a child subreaper) and
// nobody a zombie; then the SIGTERMed root checks the whole tree from
// inside (bench_victim_container.cc) and must exit 0. Images are on tmpfs.
// Every run ends with every process of ours killed and reaped (killing the
// pid 1 of a namespace kills the rest of it, so its namespaces go with
// it); /proc is then searched for any process still in a pid namespace the
// run made.
#include "bench_container.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bench_ckpt_run.h"
#include "bench_report.h"
#include "bench_util.h"
#include "bench_victim_container.h"

namespace {

using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing
namespace shape = container_shape;

constexpr unsigned long kNsFlags = CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
constexpr const char* kNsKinds[] = {"pid", "uts", "ipc", "net"};
constexpr double kHelperTimeout = 30;

struct Row {
  const char* key;  // "container" / "bare"
  bool ns;
  std::vector<double> dump, restore;
  std::optional<Usage> images;
  std::string error;  // first failure; the row is not run again
  int verified = 0;
};

double Best(const std::vector<double>& v) {
  return v.empty() ? NAN : *std::min_element(v.begin(), v.end());
}

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// The victim: argv with stdio redirected and every other fd closed, in a new
// session, as pid 1 of new namespaces (ns) or a plain child.
pid_t SpawnVictim(const std::vector<std::string>& argv, const std::string& out,
                  const std::string& err, const std::string& cwd, bool ns) {
  if (!ns) return spawn(argv, {"/dev/null", out, err}, true, cwd);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  fflush(stdout);
  fflush(stderr);
  struct clone_args ca;
  memset(&ca, 0, sizeof(ca));
  ca.flags = kNsFlags;
  ca.exit_signal = SIGCHLD;
  pid_t pid = pid_t(syscall(SYS_clone3, &ca, sizeof(ca)));
  if (pid < 0) fail_errno("clone3(CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)");
  if (pid > 0) return pid;
  // Child (pid 1 of the new pid namespace): async-signal-safe calls only.
  int in = open("/dev/null", O_RDONLY);
  int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(127);
  close_range(3, ~0U, 0);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (setsid() < 0 || chdir(cwd.c_str()) != 0) _exit(127);
  execv(args[0], args.data());
  _exit(127);
}

void WaitReady(pid_t pid, const std::string& out, const std::string& err, double timeout) {
  double deadline = now() + timeout;
  for (;;) {
    check_stop();
    if (read_file(out).find("READY") != std::string::npos) return;
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid)
      throw RunFailure(
          with_log("victim " + describe_status(st) + " before READY", {{"victim stderr", err}}));
    if (now() > deadline) throw RunFailure(fmt("victim not READY after %.0f s", timeout));
    sleep_ms(2);
  }
}

std::string NsId(pid_t pid, const char* kind) {
  char buf[64];
  ssize_t n = readlink(fmt("/proc/%d/ns/%s", pid, kind).c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  return buf;
}

// The last field of the "NSpid:" line of a /proc status file: the id in
// the innermost pid namespace; -1 if unreadable.
long InnermostId(const std::string& status_path) {
  std::istringstream in(read_file(status_path));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("NSpid:", 0) != 0) continue;
    std::istringstream f(line.substr(6));
    long v = -1;
    for (long x; f >> x;) v = x;
    return v;
  }
  return -1;
}

std::vector<long> ListNumbers(const std::string& dir) {
  std::vector<long> r;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] >= '0' && e->d_name[0] <= '9') r.push_back(atol(e->d_name));
    closedir(d);
  }
  return r;
}

struct Proc {
  long ns_ppid = 0;           // the parent's pid in the container (0: the root)
  std::vector<long> ns_tids;  // sorted
};

// What /proc shows of the tree under root.
struct View {
  std::map<long, Proc> procs;  // by pid in the container's pid namespace
  std::vector<pid_t> pids;     // the same processes, as we see them
  std::string pid_ns;          // the root's pid namespace, "pid:[...]"
  std::string error;           // a process outside the root's namespaces, unreadable entries
};

View TakeView(pid_t root, bool ns, long limit) {
  View v;
  auto problem = [&](const std::string& s) {
    if (v.error.empty()) v.error = s;
  };
  std::string root_ns[4];
  for (int k = 0; k < 4; k++) {
    root_ns[k] = NsId(root, kNsKinds[k]);
    std::string ours = NsId(getpid(), kNsKinds[k]);
    if (root_ns[k].empty())
      problem(fmt("cannot read /proc/%d/ns/%s", root, kNsKinds[k]));
    else if (ns && root_ns[k] == ours)
      problem(fmt("the root %d is in ckpt-bench's %s namespace, not a new one", root, kNsKinds[k]));
    else if (!ns && root_ns[k] != ours)
      problem(fmt("the bare root %d is not in ckpt-bench's %s namespace", root, kNsKinds[k]));
  }
  v.pid_ns = root_ns[0];
  std::map<pid_t, long> ns_of;  // our pid -> the container's
  std::vector<std::pair<pid_t, pid_t>> todo{{root, 0}};
  while (!todo.empty()) {
    if (long(v.pids.size()) > limit) {
      problem(fmt("more than %ld processes under %d", limit, root));
      break;
    }
    auto [p, parent] = todo.back();
    todo.pop_back();
    if (ns_of.count(p)) continue;
    long id = InnermostId(fmt("/proc/%d/status", p));
    if (id < 0) {
      problem(fmt("cannot read /proc/%d/status", p));
      continue;
    }
    ns_of[p] = id;
    v.pids.push_back(p);
    Proc& pr = v.procs[id];
    pr.ns_ppid = parent ? ns_of[parent] : 0;
    for (int k = 0; k < 4; k++) {
      std::string got = NsId(p, kNsKinds[k]);
      if (got != root_ns[k])
        problem(fmt("process %d (%ld in the container) is in %s namespace %s, the root in %s", p,
                    id, kNsKinds[k], got.c_str(), root_ns[k].c_str()));
    }
    for (long t : ListNumbers(fmt("/proc/%d/task", p))) {
      long tid = InnermostId(fmt("/proc/%d/task/%ld/status", p, t));
      if (tid < 0)
        problem(fmt("cannot read /proc/%d/task/%ld/status", p, t));
      else
        pr.ns_tids.push_back(tid);
      // The victim forks from main threads only, but a child of any thread
      // is listed under that thread.
      std::istringstream kids(read_file(fmt("/proc/%d/task/%ld/children", p, t)));
      for (pid_t c; kids >> c;) todo.emplace_back(c, p);
    }
    std::sort(pr.ns_tids.begin(), pr.ns_tids.end());
  }
  return v;
}

// "" if a READY victim's view has the shape bench_victim_container.h says.
std::string CheckShape(const View& v, long n, bool ns) {
  if (!v.error.empty()) return v.error;
  long threads = 0, root_id = -1;
  for (const auto& [id, p] : v.procs) {
    threads += long(p.ns_tids.size());
    if (p.ns_ppid == 0) root_id = id;
  }
  if (long(v.procs.size()) != n)
    return fmt("the READY victim has %zu processes, expected %ld", v.procs.size(), n);
  if (threads != shape::TotalThreads(n))
    return fmt("the READY victim has %ld threads, expected %ld", threads, shape::TotalThreads(n));
  if (ns && root_id != 1)
    return fmt("the READY victim's root is pid %ld in its namespace, not 1", root_id);
  long direct = 0;
  for (const auto& [id, p] : v.procs)
    if (p.ns_ppid == root_id && id != root_id) direct++;
  if (direct != shape::Direct(n))
    return fmt("the READY victim's root has %ld children, expected %ld", direct, shape::Direct(n));
  return "";
}

// "" if the restored view is the dumped one, else what differs.
std::string DiffViews(const View& before, const View& after) {
  if (!after.error.empty()) return "after restore: " + after.error;
  std::vector<long> missing, extra;
  std::string first_moved, first_threads;
  size_t moved = 0, threads = 0;
  for (const auto& [id, p] : before.procs) {
    auto it = after.procs.find(id);
    if (it == after.procs.end()) {
      missing.push_back(id);
      continue;
    }
    if (it->second.ns_ppid != p.ns_ppid && moved++ == 0)
      first_moved = fmt("pid %ld has parent %ld, had %ld", id, it->second.ns_ppid, p.ns_ppid);
    if (it->second.ns_tids != p.ns_tids && threads++ == 0)
      first_threads =
          fmt("pid %ld has %zu threads, had %zu%s", id, it->second.ns_tids.size(), p.ns_tids.size(),
              it->second.ns_tids.size() == p.ns_tids.size() ? " (other tids)" : "");
  }
  for (const auto& [id, p] : after.procs)
    if (!before.procs.count(id)) extra.push_back(id);
  if (missing.empty() && extra.empty() && !moved && !threads) return "";
  auto some = [](const std::vector<long>& v) {
    std::string r;
    for (size_t i = 0; i < v.size() && i < 5; i++) r += fmt("%s%ld", i ? ", " : "", v[i]);
    return r + (v.size() > 5 ? ", ..." : "");
  };
  std::string r = fmt("after restore the container shows %zu processes, before the dump %zu",
                      after.procs.size(), before.procs.size());
  if (!missing.empty()) r += fmt("; %zu pids missing (%s)", missing.size(), some(missing).c_str());
  if (!extra.empty()) r += fmt("; %zu unexpected pids (%s)", extra.size(), some(extra).c_str());
  if (moved) r += fmt("; %zu with another parent (%s)", moved, first_moved.c_str());
  if (threads) r += fmt("; %zu with other threads (%s)", threads, first_threads.c_str());
  return r + " (pids as the container sees them)";
}

// What the container's uts, ipc and net namespaces hold, as seen by a
// child of ours that joins them: "host H domain D lo up|down queue
// ID:MSGS:BYTES ...". Throws if the helper fails.
std::string NsContents(pid_t root) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe");
  pid_t h = fork();
  if (h < 0) {
    close(fds[0]);
    close(fds[1]);
    fail_errno("fork");
  }
  if (h == 0) {
    close(fds[0]);
    char out[4096];
    int len = 0;
    auto say = [&](const char* f, auto... a) {
      int n = snprintf(out + len, sizeof(out) - size_t(len), f, a...);
      if (n > 0) len = std::min(len + n, int(sizeof(out)) - 1);
    };
    auto finish = [&](int code) {
      (void)!write(fds[1], out, size_t(len));
      _exit(code);
    };
    for (const char* kind : {"uts", "ipc", "net"}) {
      char path[64];
      snprintf(path, sizeof(path), "/proc/%d/ns/%s", root, kind);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, 0) != 0) {
        say("error: join %s: %s", path, strerror(errno));
        finish(1);
      }
      close(fd);
    }
    utsname u;
    if (uname(&u) != 0) {
      say("error: uname: %s", strerror(errno));
      finish(1);
    }
    say("host %s domain %s", u.nodename, u.domainname);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr = {};
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      say(" error: lo flags: %s", strerror(errno));
      finish(1);
    }
    say(" lo %s", (ifr.ifr_flags & IFF_UP) ? "up" : "down");
    msginfo mi;
    int max = msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&mi));
    if (max < 0) {
      say(" error: MSG_INFO: %s", strerror(errno));
      finish(1);
    }
    for (int idx = 0; idx <= max; idx++) {
      msqid_ds ds;
      int id = msgctl(idx, MSG_STAT_ANY, &ds);
      if (id >= 0)
        say(" queue %d:%lu:%lu", id, (unsigned long)ds.msg_qnum, (unsigned long)ds.msg_cbytes);
    }
    finish(0);
  }
  close(fds[1]);
  std::string text;
  double deadline = now() + kHelperTimeout;
  for (;;) {
    pollfd p = {fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      char buf[4096];
      ssize_t r = read(fds[0], buf, sizeof(buf));
      if (r > 0) {
        text.append(buf, size_t(r));
        continue;
      }
      if (r == 0 || errno != EINTR) break;
    }
    if (g_stop || now() > deadline) {
      close(fds[0]);
      kill(h, SIGKILL);
      waitpid(h, nullptr, 0);
      check_stop();
      throw RunFailure("the helper that joins the container's namespaces hung");
    }
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(h, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw RunFailure("reading the container's namespaces: " +
                     (text.empty() ? "the helper " + describe_status(st) : text));
  return text;
}

// What NsContents must show of a READY container.
std::string ExpectedNsContents(const std::string& got) {
  size_t bytes = 0;
  for (int k = 0; k < shape::kMessages; k++) bytes += size_t(shape::kMsgBase + shape::kMsgStep * k);
  // The queue's id is the kernel's; take it from what we got.
  size_t q = got.find(" queue ");
  std::string id = q == std::string::npos ? "?" : got.substr(q + 7, got.find(':', q) - q - 7);
  return fmt("host %s domain %s lo up queue %s:%d:%zu", shape::kHostname, shape::kDomainname,
             id.c_str(), shape::kMessages, bytes);
}

// Processes anywhere on the machine that are still in one of the pid
// namespaces our runs made.
std::vector<pid_t> StillInNamespaces(const std::set<std::string>& pid_ns) {
  std::vector<pid_t> r;
  if (pid_ns.empty()) return r;
  for (long p : ListNumbers("/proc"))
    if (pid_ns.count(NsId(pid_t(p), "pid"))) r.push_back(pid_t(p));
  return r;
}

class ContainerBench {
 public:
  explicit ContainerBench(const ContainerBenchOptions& o)
      : o_(o), img_(o.image_dir + "/container-images") {}

  // One round trip of a fresh victim of row r; records its times.
  void RoundTrip(Row& row, int run) {
    const long n = o_.procs;
    const std::string pre = fmt("%s/container-%s-run%d-", o_.work_dir.c_str(), row.key, run);
    const std::string v_out = pre + "victim.stdout", v_err = pre + "victim.stderr";
    const std::string d_log = pre + "dump.log", d_out = pre + "dump.out";
    const std::string r_log = pre + "restore.log", r_out = pre + "restore.out";
    const std::string r_pid = pre + "restore.pid";
    const std::string step = fmt("run %d/%d container (%s)", run, o_.runs, row.key);

    rm_rf(img_);
    if (mkdir(img_.c_str(), 0700) != 0) fail_errno("mkdir " + img_);

    progress(step + ": starting victim");
    pid_t root = SpawnVictim({o_.victim, "container", std::to_string(n), row.ns ? "ns" : "bare"},
                             v_out, v_err, o_.work_dir, row.ns);
    WaitReady(root, v_out, v_err, o_.timeout);
    const View before = TakeView(root, row.ns, 2 * n);
    if (!before.pid_ns.empty() && row.ns) made_pid_ns_.insert(before.pid_ns);
    std::string bad = CheckShape(before, n, row.ns);
    if (!bad.empty()) throw RunFailure(with_log(bad, {{"victim stderr", v_err}}));
    std::string ns_before;
    if (row.ns) {
      ns_before = NsContents(root);
      std::string want = ExpectedNsContents(ns_before);
      if (ns_before != want)
        throw RunFailure("the READY container's namespaces hold '" + ns_before + "', expected '" +
                         want + "'");
    }

    // ---- dump
    progress(step + ": ckpt dump");
    double t0 = now(), t1 = 0;
    pid_t d = spawn({o_.ckpt, "dump", "-t", std::to_string(root), "-D", img_, "-o", d_log},
                    {"/dev/null", d_out, d_out}, false);
    std::optional<int> st = wait_exit(d, o_.timeout, &t1);
    if (!st)
      throw RunFailure(
          with_log(fmt("ckpt dump did not finish within %.0f s; processes:\n", o_.timeout) +
                       describe_tree(d) + describe_tree(root),
                   {{"ckpt output", d_out}, {"dump log", d_log}}));
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(with_log("ckpt dump " + describe_status(*st),
                                {{"ckpt output", d_out}, {"dump log", d_log}}));
    const double dump_s = t1 - t0;
    std::optional<int> vst = wait_exit(root, 30);
    if (!vst)
      throw RunFailure(
          fmt("ckpt dump exited 0 but the dumped root %d is still alive 30 s later", root));
    if (!WIFSIGNALED(*vst) || WTERMSIG(*vst) != SIGKILL)
      throw RunFailure(with_log("after ckpt dump the victim's root " + describe_status(*vst) +
                                    " (expected: killed by SIGKILL)",
                                {{"victim stderr", v_err}}));
    reap_until_gone(before.pids, 30);
    Usage images = dir_usage(img_);
    if (images.files == 0)
      throw RunFailure("ckpt dump exited 0 but wrote no image files into " + img_);

    // ---- restore
    progress(step + ": ckpt restore");
    t0 = now();
    pid_t r = spawn({o_.ckpt, "restore", "-D", img_, "-d", "--pidfile", r_pid, "-o", r_log},
                    {"/dev/null", r_out, r_out}, false);
    st = wait_exit(r, o_.timeout, &t1);
    if (!st)
      throw RunFailure(
          with_log(fmt("ckpt restore -d did not return within %.0f s; processes:\n", o_.timeout) +
                       describe_tree(r),
                   {{"ckpt output", r_out}, {"restore log", r_log}}));
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(with_log("ckpt restore " + describe_status(*st),
                                {{"ckpt output", r_out}, {"restore log", r_log}}));
    const double restore_s = t1 - t0;

    std::string pf = read_file(r_pid);
    if (atoi(pf.c_str()) != root)
      throw RunFailure(fmt("ckpt restore --pidfile says '%s', the dumped root was %d",
                           pf.substr(0, pf.find('\n')).c_str(), root));
    char state = 0;
    pid_t ppid = 0;
    if (!proc_stat(root, &state, &ppid))
      throw RunFailure(with_log(fmt("ckpt restore exited 0 but there is no process %d", root),
                                {{"ckpt output", r_out}}));
    if (ppid != getpid())
      throw RunFailure(
          fmt("restored root %d has parent %d, not ckpt-bench (%d), the child subreaper", root,
              ppid, getpid()));
    const View after = TakeView(root, row.ns, 2 * n);
    if (!after.pid_ns.empty() && row.ns) made_pid_ns_.insert(after.pid_ns);
    std::string diff = DiffViews(before, after);
    if (!diff.empty()) throw RunFailure(with_log(diff, {{"victim stderr", v_err}}));
    for (pid_t p : after.pids)
      if (proc_stat(p, &state, &ppid) && (state == 'Z' || state == 'X'))
        throw RunFailure(with_log(fmt("restored process %d is a zombie", p),
                                  {{"victim stderr", v_err}, {"restore log", r_log}}));
    if (row.ns) {
      std::string ns_after = NsContents(root);
      if (ns_after != ns_before)
        throw RunFailure("after restore the container's namespaces hold '" + ns_after +
                         "', before the dump '" + ns_before + "'");
    }

    // ---- verify from inside: the root checks the tree on SIGTERM
    progress(step + ": verifying");
    if (kill(root, SIGTERM) != 0) fail_errno(fmt("kill(%d, SIGTERM)", root));
    vst = wait_exit(root, o_.timeout);
    if (!vst)
      throw RunFailure(
          with_log(fmt("restored root %d did not exit within %.0f s of SIGTERM; processes:\n", root,
                       o_.timeout) +
                       describe_tree(root),
                   {{"victim stderr", v_err}}));
    if (!WIFEXITED(*vst) || WEXITSTATUS(*vst) != 0)
      throw RunFailure(with_log("restored root " + describe_status(*vst) +
                                    (WIFEXITED(*vst) && WEXITSTATUS(*vst) == 1
                                         ? " (the container found its restored state wrong)"
                                         : ""),
                                {{"victim stderr", v_err}}));

    row.verified++;
    row.dump.push_back(dump_s);
    row.restore.push_back(restore_s);
    row.images = images;
    for (const auto& f : {v_out, v_err, d_log, d_out, r_log, r_out, r_pid}) unlink(f.c_str());
  }

  // Kills and reaps every process of ours, removes the images and checks
  // that no process is left in a pid namespace a run made. "" or what was
  // left behind. After a verified round trip nothing should be running.
  std::string Cleanup(bool after_success) {
    int killed = kill_all_children();
    if (killed > 0 && after_success)
      warn(
          fmt("container: %d process(es) of ours were still running after a verified round trip "
              "(killed)",
              killed));
    rm_rf(img_);
    std::vector<pid_t> left = StillInNamespaces(made_pid_ns_);
    // Our victims die with the pid 1 of their namespace; give the kernel a
    // moment to finish tearing them down before calling them left behind.
    for (int t = 0; !left.empty() && t < 500; t++) {
      sleep_ms(10);
      left = StillInNamespaces(made_pid_ns_);
    }
    made_pid_ns_.clear();
    if (!left.empty()) {
      std::string r =
          fmt("%zu process(es) left in the container's pid namespace after the run:", left.size());
      for (size_t i = 0; i < left.size() && i < 5; i++) {
        char state = '?';
        pid_t ppid = 0;
        proc_stat(left[i], &state, &ppid);
        r += fmt(" %d (state %c, parent %d)", left[i], state, ppid);
      }
      return r;
    }
    return "";
  }

 private:
  const ContainerBenchOptions& o_;
  const std::string img_;
  std::set<std::string> made_pid_ns_;  // pid namespaces of this run's victims
};

std::string RunsStr(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += fmt(" %.3f", x);
  return s.empty() ? s : s.substr(1);
}

void Print(const ContainerBenchOptions& o, const std::vector<Row>& rows) {
  const long n = o.procs;
  long threaded = 0;
  for (long i = 0; i < n; i++) threaded += shape::ThreadsOf(i) > 1;
  printf(
      "\ncontainer: pid 1 of new pid, uts, ipc and net namespaces and %ld processes in all (%ld "
      "children of pid 1,\n  %ld levels), %ld of them with %ld threads, %ld KiB private memory "
      "each; lo up, a hostname, a SysV queue\n  of %d messages; images on tmpfs; best and median "
      "of %d run%s\n",
      n, shape::Direct(n), shape::Depth(n), threaded, 1 + shape::kExtraThreads,
      shape::kMemPages * 4, shape::kMessages, o.runs, o.runs == 1 ? "" : "s");
  const Row* bare = nullptr;
  for (const Row& r : rows)
    if (!r.ns && !r.dump.empty()) bare = &r;
  auto banner = [](const char* w) {  // over 4 columns of 8 plus 3 spaces
    std::string s = fmt(" %s ", w);
    size_t left = (35 - s.size()) / 2;
    return std::string(left, '-') + s + std::string(35 - left - s.size(), '-');
  };
  printf("  %-10s   %s   %s\n", "", banner("dump").c_str(), banner("restore").c_str());
  printf("  %-10s   %8s %8s %8s %8s   %8s %8s %8s %8s   %8s %6s\n", "", "best s", "median s",
         "ms/proc", "vs bare", "best s", "median s", "ms/proc", "vs bare", "img KiB", "files");
  for (const Row& r : rows) {
    if (r.dump.empty()) {
      printf("  %-10s   FAILED: %s\n", r.key,
             r.error.empty() ? "no verified round trip"
                             : r.error.substr(0, r.error.find('\n')).c_str());
      continue;
    }
    printf("  %-10s", r.key);
    for (int op = 0; op < 2; op++) {
      const std::vector<double>& t = op == 0 ? r.dump : r.restore;
      const std::vector<double>* b = bare ? (op == 0 ? &bare->dump : &bare->restore) : nullptr;
      std::string vs = b && r.ns ? fmt("%.2fx", Best(t) / Best(*b)) : std::string("-");
      printf("   %8.3f %8.3f %8.2f %8s", Best(t), Median(t), Best(t) * 1e3 / double(n), vs.c_str());
    }
    report().Add("container", {{"row", r.key},
                               {"processes", double(n)},
                               {"dump_best_s", Best(r.dump)},
                               {"dump_runs_s", r.dump},
                               {"restore_best_s", Best(r.restore)},
                               {"restore_runs_s", r.restore},
                               {"image_bytes", r.images ? double(r.images->allocated) : NAN}});
    printf("   %8.1f %6llu%s\n", r.images ? double(r.images->allocated) / 1024 : NAN,
           r.images ? (unsigned long long)r.images->files : 0ULL,
           r.error.empty() ? "" : "   then FAILED");
  }
  printf("  all runs (s):\n");
  for (const Row& r : rows)
    if (!r.dump.empty())
      printf("  %-10s   dump %s   restore %s\n", r.key, RunsStr(r.dump).c_str(),
             RunsStr(r.restore).c_str());
  printf(
      "  ms/proc = best s * 1000 / %ld; vs bare = best / best of the bare row: the same "
      "processes,\n"
      "  threads and memory in ckpt-bench's own namespaces (no hostname, lo or queue), in the same "
      "run;\n"
      "  dump = `ckpt dump` until it exits (tree killed); restore = `ckpt restore -d` until it "
      "returns;\n"
      "  img KiB = allocated on tmpfs by the images of the last run\n",
      n);
  fflush(stdout);
}

}  // namespace

ContainerBenchResult RunContainerBench(const ContainerBenchOptions& o) {
  ContainerBenchResult res;
  int subreaper = 0;
  if (prctl(PR_GET_CHILD_SUBREAPER, &subreaper) != 0 || !subreaper) {
    fprintf(stderr,
            "ckpt-bench: FAIL (container) ckpt-bench is not a child subreaper: restored containers "
            "would not come back to it\n");
    res.ok = false;
    return res;
  }
  std::vector<Row> rows;
  rows.push_back(Row{"container", true, {}, {}, {}, {}, 0});
  if (o.baseline) rows.push_back(Row{"bare", false, {}, {}, {}, {}, 0});
  ContainerBench b(o);
  try {
    for (int run = 1; run <= o.runs; run++) {
      for (Row& row : rows) {
        if (!row.error.empty()) continue;
        try {
          b.RoundTrip(row, run);
          res.verified++;
        } catch (const Interrupted&) {
          throw;
        } catch (const std::exception& e) {
          row.error = fmt("run %d: ", run) + e.what();
          progress_clear();
          fprintf(stderr, "ckpt-bench: FAIL (container, %s) %s\n", row.key, row.error.c_str());
          res.ok = false;
          std::string left = b.Cleanup(false);
          if (!left.empty()) fprintf(stderr, "ckpt-bench: FAIL (container) %s\n", left.c_str());
          continue;
        }
        std::string left = b.Cleanup(true);
        if (!left.empty()) {
          row.error = fmt("run %d: ", run) + left;
          fprintf(stderr, "ckpt-bench: FAIL (container, %s) %s\n", row.key, row.error.c_str());
          res.ok = false;
        }
      }
    }
  } catch (const Interrupted&) {
    b.Cleanup(false);
    throw;
  }
  progress_clear();
  Print(o, rows);
  return res;
}
