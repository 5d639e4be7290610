// fault-matrix: ckpt failing (CKPT_FAULT=POINT) and SIGKILLed
// (CKPT_FAULT=POINT:kill) at every point `ckpt fault-points` lists
// (base/fault.h), each with fault_victim (a tree of two processes: memory,
// threads, a pipe, signal masks, a POSIX timer, a loopback TCP connection).
//
//   fault-matrix --ckpt PATH --victim PATH --workdir DIR [--only POINT] [--modes fail,kill]
//
// A dump point passes when ckpt fails (naming the point) or dies, and then
// the tree runs on exactly as before: every process's /proc/PID/maps and
// fds (no parasite mapping, no memfd, no userfaultfd, no extra fd) and
// every thread's blocked mask are as they were, no thread is stopped or
// traced, no nftables table is left, the failed dump left no image; and
// the victim, told to stop, checks its memory, registers, masks, pipe,
// timer and connection itself and says PASS.
// A restore point passes when ckpt fails or dies and then nothing of the
// tree is alive (no pid of it), and /dev/shm, /tmp, SysV objects, the
// mounts, the cgroups under ours and the nftables tables are as before;
// then a restore without a fault brings the tree back and it says PASS.
//
// The matrix runs in mount, network and IPC namespaces of its own, with
// fresh tmpfs on /dev/shm and /tmp: what it sees there is its own, not
// other tests'. Prints one line per case and "fault matrix: N points,
// M cases, K pass"; exit 0 when all pass.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "isolate.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

constexpr double kCkptTimeout = 120;
constexpr double kSettleTimeout = 15;  // bound for a killed ckpt's leftovers to go

std::string g_ckpt, g_victim, g_workdir;

std::string Join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}


// What a dump must leave as it found it, per process of the tree.
struct ProcState {
  std::string maps;
  std::map<std::string, std::string> fds;  // fd -> link
  std::map<std::string, std::string> sigblk;  // tid -> SigBlk
  std::vector<std::string> odd;  // stopped/traced threads, parasite traces
  std::set<std::string> children;  // of every thread (a snapshot child must be gone)
};

std::string Field(const std::string& status, const std::string& name) {
  size_t p = status.find("\n" + name + ":");
  if (p == std::string::npos) return "";
  p = status.find_first_not_of(" \t", p + name.size() + 2);
  return status.substr(p, status.find('\n', p) - p);
}

ProcState Snap(pid_t pid) {
  ProcState s;
  std::string base = "/proc/" + std::to_string(pid);
  s.maps = read_text(base + "/maps");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(base + "/fd", ec)) {
    std::string link = fs::read_symlink(e.path(), ec).string();
    s.fds[e.path().filename().string()] = link;
    if (link.find("userfaultfd") != std::string::npos || link.find("memfd:") != std::string::npos)
      s.odd.push_back("fd " + e.path().filename().string() + " -> " + link);
  }
  for (const auto& e : fs::directory_iterator(base + "/task", ec)) {
    std::string tid = e.path().filename().string();
    std::string st = read_text(base + "/task/" + tid + "/status");
    s.sigblk[tid] = Field(st, "SigBlk");
    std::istringstream kids(read_text(base + "/task/" + tid + "/children"));
    for (std::string k; kids >> k;) s.children.insert(k);
    std::string state = Field(st, "State");
    if (!state.empty() && (state[0] == 't' || state[0] == 'T'))
      s.odd.push_back("tid " + tid + " is stopped (" + state + ")");
    if (Field(st, "TracerPid") != "0") s.odd.push_back("tid " + tid + " is traced");
  }
  if (s.maps.find("memfd:") != std::string::npos)
    s.odd.push_back("a parasite mapping is left in /proc/" + std::to_string(pid) + "/maps");
  return s;
}

std::vector<std::string> Diff(pid_t pid, const ProcState& a, const ProcState& b) {
  std::vector<std::string> d;
  std::string who = "pid " + std::to_string(pid) + ": ";
  if (a.maps != b.maps) d.push_back(who + "its mappings changed");
  if (a.fds != b.fds) {
    for (const auto& [fd, l] : b.fds)
      if (!a.fds.count(fd) || a.fds.at(fd) != l) d.push_back(who + "fd " + fd + " -> " + l + " is new");
    for (const auto& [fd, l] : a.fds)
      if (!b.fds.count(fd)) d.push_back(who + "fd " + fd + " -> " + l + " is gone");
  }
  if (a.sigblk != b.sigblk) d.push_back(who + "a thread's blocked signals changed");
  for (const auto& k : b.children)
    if (!a.children.count(k)) d.push_back(who + "has a new child, pid " + k);
  for (const auto& o : b.odd) d.push_back(who + o);
  return d;
}

std::string Nft() { return run_cmd({"nft", "list", "tables"}, g_workdir + "/nft.out", 30).output; }

// What a restore must leave as it found it, on the host (our namespaces).
std::string OwnCgroupDir() {
  std::string c = read_text("/proc/self/cgroup");  // "0::/path"
  size_t p = c.find("0::");
  if (p == std::string::npos) return "";
  std::string rel = c.substr(p + 3, c.find('\n', p) - p - 3);
  std::string mnt = cgroup2_mount();
  return mnt.empty() ? "" : mnt + rel;
}
std::string HostSnap() {
  std::ostringstream o;
  std::error_code ec;
  for (const char* d : {"/dev/shm", "/tmp"})
    for (const auto& e : fs::directory_iterator(d, ec)) o << "file " << e.path().string() << "\n";
  for (const char* k : {"shm", "sem", "msg"}) {
    std::string t = read_text(std::string("/proc/sysvipc/") + k);
    o << "sysv " << k << ": " << t.substr(std::min(t.size(), t.find('\n') + 1));
  }
  o << "mounts:\n" << read_text("/proc/self/mountinfo");
  if (std::string cg = OwnCgroupDir(); !cg.empty())
    for (auto it = fs::recursive_directory_iterator(cg, ec); it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_directory(ec)) o << "cgroup " << it->path().string() << "\n";
  o << "nft:\n" << Nft();
  return o.str();
}
std::string LineDiff(const std::string& a, const std::string& b) {
  std::istringstream ia(a), ib(b);
  std::multiset<std::string> la, lb;
  for (std::string l; std::getline(ia, l);) la.insert(l);
  for (std::string l; std::getline(ib, l);) lb.insert(l);
  std::vector<std::string> d;
  for (const auto& l : lb)
    if (!la.count(l)) d.push_back("new: " + l);
  for (const auto& l : la)
    if (!lb.count(l)) d.push_back("gone: " + l);
  return Join(d, "; ");
}

std::vector<pid_t> TreeTids(pid_t root, pid_t* child) {
  std::vector<pid_t> out;
  std::string kids = read_text("/proc/" + std::to_string(root) + "/task/" + std::to_string(root) +
                               "/children");
  *child = atoi(kids.c_str());
  for (pid_t p : {root, *child}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(p) + "/task", ec))
      out.push_back(pid_t(std::stol(e.path().filename().string())));
  }
  return out;
}

struct Case {
  std::string point;
  bool kill;
  std::string dir;
  std::vector<std::string> fails;
  void Fail(const std::string& why) { fails.push_back(why); }
};

CmdResult Ckpt(Case& c, const std::string& name, std::vector<std::string> args, bool fault) {
  args.insert(args.begin(), g_ckpt);
  if (fault) setenv("CKPT_FAULT", (c.point + (c.kill ? ":kill" : "")).c_str(), 1);
  CmdResult r = run_cmd(args, c.dir + "/ckpt-" + name + ".out", kCkptTimeout);
  unsetenv("CKPT_FAULT");
  return r;
}

// ckpt must have failed at the point: an error naming it, or killed there.
// A point reached in a restoring task (restore-forked) kills that task:
// ckpt must then fail cleanly, naming the signal.
void ExpectFault(Case& c, const CmdResult& r, const std::string& log) {
  if (c.kill && c.point == "restore-forked") {
    if (r.ok() || r.crashed() || r.timed_out)
      c.Fail("ckpt did not fail cleanly (" + r.describe() + ")");
    else if (r.output.find("killed by signal 9") == std::string::npos)
      c.Fail("the error does not say the task was killed: " + r.output.substr(0, 300));
    return;
  }
  if (c.kill) {
    bool killed = (WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL) ||
                  (WIFEXITED(r.status) && WEXITSTATUS(r.status) == 128 + SIGKILL);
    if (!killed) c.Fail("ckpt was not killed at the point (" + r.describe() + ")");
    return;
  }
  if (r.ok() || r.crashed() || r.timed_out)
    c.Fail("ckpt did not fail cleanly (" + r.describe() + ")");
  else if ((r.output + read_text(log)).find("fault injected at " + c.point) == std::string::npos)
    c.Fail("the error does not name the point: " + r.output.substr(0, 300));
}

// Tells the victim to stop and waits for its own verdict.
void Verdict(Case& c, pid_t root, const std::string& out, const char* when) {
  kill(root, SIGTERM);
  int st = 0;
  if (!wait_exit(root, 60, &st)) {
    c.Fail(std::string(when) + ": the victim did not exit after SIGTERM");
    kill(root, SIGKILL);
    wait_exit(root, 10, &st);
    return;
  }
  std::string text = read_text(out);
  if (count_lines(out, "PASS") != 1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    c.Fail(std::string(when) + ": the victim says: " + text.substr(text.rfind("READY") + 5, 300) +
           " (" + describe_status(st) + ")");
}

void DumpCase(Case& c) {
  std::string out = c.dir + "/victim.out", img = c.dir + "/img";
  pid_t root = start_test({g_victim, "--tcp"}, c.dir, out);
  if (std::string e = wait_ready(root, out, 30); !e.empty()) return c.Fail("victim: " + e);
  pid_t child = 0;
  TreeTids(root, &child);
  std::map<pid_t, ProcState> before;
  for (pid_t p : {root, child}) before[p] = Snap(p);
  std::string nft = Nft();
  CmdResult r = Ckpt(c, "dump", {"dump", "-t", std::to_string(root), "-D", img, "-o", "dump.log",
                                 "-v4", "--tcp-established", "--leave-running"}, true);
  ExpectFault(c, r, img + "/dump.log");
  // A killed ckpt's parasite puts its victim back by itself: bounded wait.
  std::vector<std::string> d;
  for (double end = now_s() + kSettleTimeout;;) {
    d.clear();
    for (pid_t p : {root, child}) {
      auto x = Diff(p, before[p], Snap(p));
      d.insert(d.end(), x.begin(), x.end());
    }
    if (std::string n = Nft(); n != nft) d.push_back("nftables: " + LineDiff(nft, n));
    if (d.empty() || now_s() > end) break;
    usleep(50000);
  }
  for (const auto& x : d) c.Fail(x);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(img, ec)) {
    std::string n = e.path().filename().string();
    if (n == "inventory.img" || (!c.kill && n.size() > 4 && n.substr(n.size() - 4) == ".img"))
      c.Fail("the failed dump left " + n);
  }
  Verdict(c, root, out, "after the failed dump");
}

void RestoreCase(Case& c) {
  std::string out = c.dir + "/victim.out", img = c.dir + "/img";
  pid_t root = start_test({g_victim, "--tcp"}, c.dir, out);
  if (std::string e = wait_ready(root, out, 30); !e.empty()) return c.Fail("victim: " + e);
  pid_t child = 0;
  std::vector<pid_t> tids = TreeTids(root, &child);
  CmdResult d = Ckpt(c, "dump", {"dump", "-t", std::to_string(root), "-D", img, "-o", "dump.log",
                                 "-v4", "--tcp-established"}, false);
  int st;
  if (!d.ok()) {
    kill(root, SIGKILL);
    wait_exit(root, 10, &st);
    return c.Fail("the dump failed: " + d.output.substr(0, 300));
  }
  if (!wait_exit(root, 30, &st)) return c.Fail("the dumped victim did not go away");
  kill_all_children();  // its child, reparented to us: reaped, its pid free
  std::string host = HostSnap();
  CmdResult r = Ckpt(c, "restore-fault", {"restore", "-D", img, "-d", "-o", "restore-fault.log",
                                          "-v4", "--tcp-established"}, true);
  ExpectFault(c, r, img + "/restore-fault.log");
  std::vector<pid_t> alive;
  std::string h;
  for (double end = now_s() + kSettleTimeout;;) {
    alive.clear();
    for (pid_t t : tids) {
      char s = proc_state(t);
      if (s == 'Z') waitpid(t, &st, WNOHANG);  // reparented to us: reap it
      if (proc_state(t)) alive.push_back(t);
    }
    h = HostSnap();
    if ((alive.empty() && h == host) || now_s() > end) break;
    usleep(50000);
  }
  for (pid_t t : alive) c.Fail("a task of the tree is alive: " + describe_pid(t));
  if (!alive.empty()) kill_all_children();
  if (h != host) c.Fail("left behind: " + LineDiff(host, h));
  // The images are still good, and the pids free: a plain restore works.
  CmdResult ok = Ckpt(c, "restore", {"restore", "-D", img, "-d", "-o", "restore.log", "-v4",
                                     "--tcp-established"}, false);
  if (!ok.ok()) return c.Fail("the restore after it failed: " + ok.output.substr(0, 300));
  if (proc_state(root) == 0) return c.Fail("the restored victim is not there");
  Verdict(c, root, out, "after the restore that followed");
}

}  // namespace

int main(int argc, char** argv) {
  std::string only, modes = "fail,kill";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--ckpt") g_ckpt = v;
    else if (k == "--victim") g_victim = v;
    else if (k == "--workdir") g_workdir = v;
    else if (k == "--only") only = v;
    else if (k == "--modes") modes = v;
    else {
      fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (g_ckpt.empty() || g_victim.empty() || g_workdir.empty()) {
    fprintf(stderr, "usage: fault-matrix --ckpt PATH --victim PATH --workdir DIR "
                    "[--only POINT] [--modes fail,kill]\n");
    return 2;
  }
  g_ckpt = fs::absolute(g_ckpt).string();
  g_victim = fs::absolute(g_victim).string();
  g_workdir = fs::absolute(g_workdir).string();
  harness_init();
  if (std::string e = faulttest::Isolate("fault-matrix", {g_ckpt, g_victim, g_workdir}); !e.empty()) {
    fprintf(stderr, "fault-matrix: %s\n", e.c_str());
    return 1;
  }
  std::error_code ec;
  fs::remove_all(g_workdir, ec);
  fs::create_directories(g_workdir);
  CmdResult list = run_cmd({g_ckpt, "fault-points"}, g_workdir + "/points.out", 30);
  std::vector<std::string> points;
  std::istringstream in(list.output);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) points.push_back(line.substr(0, line.find(' ')));
  if (!list.ok() || points.empty()) {
    fprintf(stderr, "fault-matrix: `ckpt fault-points` gave nothing (%s)\n", list.describe().c_str());
    return 1;
  }
  int cases = 0, passed = 0;
  size_t npoints = 0;
  for (const std::string& p : points) {
    if (!only.empty() && p != only) continue;
    npoints++;
    for (bool kill : {false, true}) {
      if (modes.find(kill ? "kill" : "fail") == std::string::npos) continue;
      Case c{p, kill, g_workdir + "/" + p + (kill ? "-kill" : "-fail"), {}};
      fs::create_directories(c.dir);
      double t0 = now_s();
      if (p.rfind("dump-", 0) == 0 || p.rfind("infect-", 0) == 0)
        DumpCase(c);
      else
        RestoreCase(c);
      for (const auto& k : kill_all_children()) c.Fail("left running, killed: " + k);
      cases++;
      if (c.fails.empty()) passed++;
      printf("[%s] %-24s %-4s %5.1fs%s%s\n", c.fails.empty() ? "PASS" : "FAIL", p.c_str(),
             kill ? "kill" : "fail", now_s() - t0, c.fails.empty() ? "" : "\n    ",
             Join(c.fails, "\n    ").c_str());
      fflush(stdout);
    }
  }
  printf("fault matrix: %zu points, %d cases, %d pass\n", npoints, cases, passed);
  return cases > 0 && passed == cases ? 0 : 1;
}
