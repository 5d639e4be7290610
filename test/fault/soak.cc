// soak: many dump/restore cycles of fault_victim; nothing may grow.
//
//   soak --ckpt PATH --victim PATH --workdir DIR [--cycles N] [--only MODE,...]
//
// Modes (each its own victim, all by default):
//   leave-running  one process dumped N times with --leave-running
//   killed         one process dumped (killed) and restored N times
//   tree           the same with fault_victim's two processes
// After every cycle each process of the victim must have the very
// mappings and fds it had after the first cycle (leave-running: before
// the first dump), and no thread stopped or traced; ckpt's own peak RSS
// (wait4) must not grow: the mean of the last fifth of the cycles may not
// exceed that of the first fifth by more than 10% + 2 MiB. ckpt is a new
// process each cycle, so its fds cannot pile up across cycles; a leak of
// one into the victim shows as an fd of the victim. At the end the victim
// checks its own memory, registers, masks, pipe, timer and connection
// (PASS). Prints one line per mode; exit 0 when all pass. Runs in mount,
// network and IPC namespaces of its own like fault-matrix.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "isolate.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

std::string g_ckpt, g_victim, g_workdir;


// ckpt with its peak RSS (KiB) from wait4.
struct Run {
  int status = 0;
  long maxrss_kb = 0;
  std::string out;
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};
Run Ckpt(const std::vector<std::string>& args, const std::string& out_path) {
  Run r;
  pid_t p = fork();
  if (p == 0) {
    int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(null, 0), dup2(fd, 1), dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(g_ckpt.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  track_pid(p);
  struct rusage ru = {};
  while (wait4(p, &r.status, 0, &ru) < 0 && errno == EINTR) {
  }
  untrack_pid(p);
  r.maxrss_kb = ru.ru_maxrss;
  r.out = read_text(out_path);
  return r;
}

// "pipe:[123]" -> "pipe:[]": a restore makes new objects, with new inodes.
std::string NoInode(std::string l) {
  size_t b = l.find('['), e = l.find(']');
  if (b != std::string::npos && e != std::string::npos && e > b &&
      l.find_first_not_of("0123456789", b + 1) == e)
    l.erase(b + 1, e - b - 1);
  return l;
}

// What must not change: per process, its mappings (address, protection,
// offset, name; not device and inode: shared memory is a new object after
// each restore) and fds (by kind and name).
std::string State(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  std::string s;
  std::istringstream maps(read_text(base + "/maps"));
  for (std::string line; std::getline(maps, line);) {
    char range[64], perms[8], off[32], dev[16];
    unsigned long ino;
    int n = 0;
    if (sscanf(line.c_str(), "%63s %7s %31s %15s %lu %n", range, perms, off, dev, &ino, &n) < 5)
      continue;
    s += std::string(range) + " " + perms + " " + off + " " + line.substr(size_t(n)) + "\n";
  }
  std::error_code ec;
  std::map<std::string, std::string> fds;
  for (const auto& e : fs::directory_iterator(base + "/fd", ec))
    fds[e.path().filename().string()] = NoInode(fs::read_symlink(e.path(), ec).string());
  for (const auto& [fd, l] : fds) s += "fd " + fd + " " + l + "\n";
  for (const auto& e : fs::directory_iterator(base + "/task", ec)) {
    std::string st = read_text(base + "/task/" + e.path().filename().string() + "/status");
    if (st.find("TracerPid:\t0\n") == std::string::npos) s += "traced thread\n";
    if (st.find("State:\tt") != std::string::npos || st.find("State:\tT") != std::string::npos)
      s += "stopped thread\n";
  }
  return s;
}

std::vector<pid_t> Tree(pid_t root) {
  std::vector<pid_t> out = {root};
  std::string kids =
      read_text("/proc/" + std::to_string(root) + "/task/" + std::to_string(root) + "/children");
  if (int c = atoi(kids.c_str()); c > 0) out.push_back(c);
  return out;
}

std::string TreeState(pid_t root) {
  std::string s;
  for (pid_t p : Tree(root)) s += "== " + std::to_string(p) + "\n" + State(p);
  return s;
}

std::string FirstDiff(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  size_t ls = a.rfind('\n', i == 0 ? 0 : i - 1);
  ls = ls == std::string::npos ? 0 : ls + 1;
  size_t hdr = a.rfind("== ", ls);  // which process
  std::string who = hdr == std::string::npos ? "" : a.substr(hdr + 3, a.find('\n', hdr) - hdr - 3);
  return "pid " + who + ": was: " + a.substr(ls, a.find('\n', ls) - ls) +
         " | now: " + b.substr(ls, b.find('\n', ls) - ls);
}

// One mode; "" when it passes.
std::string Soak(const std::string& mode, int cycles, std::string* stats) {
  std::string dir = g_workdir + "/" + mode, out = dir + "/victim.out";
  fs::create_directories(dir);
  std::vector<std::string> argv = {g_victim, "--tcp"};
  if (mode != "tree") argv.push_back("--single");
  pid_t root = start_test(argv, dir, out);
  if (std::string e = wait_ready(root, out, 30); !e.empty()) return "victim: " + e;
  bool leave = mode == "leave-running";
  std::string want = leave ? TreeState(root) : "";
  std::vector<long> rss;
  std::string img = dir + "/img";
  for (int i = 0; i < cycles; i++) {
    std::error_code ec;
    fs::remove_all(img, ec);
    std::vector<std::string> dump = {"dump", "-t", std::to_string(root), "-D", img, "-o",
                                     "dump.log", "-v4", "--tcp-established"};
    if (leave) dump.push_back("--leave-running");
    Run d = Ckpt(dump, dir + "/ckpt-dump.out");
    if (!d.ok()) return "cycle " + std::to_string(i) + ": dump failed: " + d.out.substr(0, 300);
    rss.push_back(d.maxrss_kb);
    if (!leave) {
      int st;
      if (!wait_exit(root, 30, &st)) return "cycle " + std::to_string(i) + ": the dump did not kill";
      kill_all_children();  // the tree's other process, reparented to us
      Run r = Ckpt({"restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--tcp-established"},
                   dir + "/ckpt-restore.out");
      if (!r.ok()) return "cycle " + std::to_string(i) + ": restore failed: " + r.out.substr(0, 300);
      rss.push_back(r.maxrss_kb);
    }
    std::string now = TreeState(root);
    if (want.empty()) want = now;
    if (now != want) return "cycle " + std::to_string(i) + ": the victim changed: " + FirstDiff(want, now);
  }
  kill(root, SIGTERM);
  int st;
  if (!wait_exit(root, 60, &st)) return "the victim did not exit after SIGTERM";
  if (count_lines(out, "PASS") != 1) return "the victim says: " + read_text(out).substr(0, 300);
  size_t k = std::max<size_t>(1, rss.size() / 5);
  double first = 0, last = 0;
  for (size_t i = 0; i < k; i++) first += double(rss[i]), last += double(rss[rss.size() - 1 - i]);
  first /= double(k), last /= double(k);
  char buf[160];
  snprintf(buf, sizeof(buf), "ckpt peak RSS %.0f KiB (first fifth) -> %.0f KiB (last fifth)", first,
           last);
  *stats = buf;
  if (last > first * 1.1 + 2048) return std::string("ckpt's memory grows: ") + buf;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  int cycles = 20;
  std::string only = "leave-running,killed,tree";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--ckpt") g_ckpt = v;
    else if (k == "--victim") g_victim = v;
    else if (k == "--workdir") g_workdir = v;
    else if (k == "--cycles") cycles = atoi(v.c_str());
    else if (k == "--only") only = v;
    else {
      fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (g_ckpt.empty() || g_victim.empty() || g_workdir.empty() || cycles <= 0) {
    fprintf(stderr, "usage: soak --ckpt PATH --victim PATH --workdir DIR [--cycles N] "
                    "[--only leave-running,killed,tree]\n");
    return 2;
  }
  g_ckpt = fs::absolute(g_ckpt).string();
  g_victim = fs::absolute(g_victim).string();
  g_workdir = fs::absolute(g_workdir).string();
  harness_init();
  if (std::string e = faulttest::Isolate("soak", {g_ckpt, g_victim, g_workdir}); !e.empty()) {
    fprintf(stderr, "soak: %s\n", e.c_str());
    return 1;
  }
  std::error_code ec;
  fs::remove_all(g_workdir, ec);
  fs::create_directories(g_workdir);
  int failed = 0;
  for (const char* mode : {"leave-running", "killed", "tree"}) {
    if (only.find(mode) == std::string::npos) continue;
    double t0 = now_s();
    std::string stats;
    std::string err = Soak(mode, cycles, &stats);
    for (const auto& k : kill_all_children()) err += (err.empty() ? "" : "; ") + ("left running: " + k);
    if (!err.empty()) failed++;
    printf("[%s] %-14s %d cycles %6.1fs  %s\n", err.empty() ? "PASS" : "FAIL", mode, cycles,
           now_s() - t0, err.empty() ? stats.c_str() : err.c_str());
    fflush(stdout);
  }
  return failed ? 1 : 0;
}
