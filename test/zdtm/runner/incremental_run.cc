// zdtm-incremental: incremental dumps on a real process (issue 10 item 2).
//
//   zdtm-incremental --ckpt PATH --workdir DIR --prog PATH --scenario NAME
//
// The program is static/incremental_mem (SIGUSR1: change a known part of
// its memory, print "INFO: ROUND n"; SIGTERM: verify every byte, PASS).
// Scenarios:
//   chain     round, pre-dump d1, round, pre-dump d2 (parent d1), round,
//             dump d3 (parent d2, --track-mem), restore from d3: PASS. After
//             each pre-dump the program holds no userfaultfd and its maps
//             are as before (no parasite); d2 and d3 hold under a quarter
//             of d1's pages; once the dump took the tracking, no tracker is
//             left.
//   tracker-killed  pre-dump d1, the tracker is SIGKILLed: no "uw" VmFlag
//             left, the program runs on; pre-dump d2 (parent d1) warns and
//             saves everything again; dump d3 (parent d2) is small again;
//             restore: PASS.
//   ckpt-killed  pre-dump to a page server that never reads (ckpt stays in
//             the copy, its tracker not yet committed), SIGKILL ckpt: the
//             tracker exits and no "uw" is left; the program passes.
//   timeout   pre-dump --track-mem-timeout 1: the tracker gives up, no
//             "uw" left; the program passes.
//   chain-compressed  chain with --compress zstd on every step (each
//             pages image must be compressed; sizes compared by the
//             contents' size in each file's index, images/zpages.h).
// Prints "[ OK ] ..." lines; exit 0 on success. Everything it started is
// killed and reaped at the end (we are a child subreaper).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string g_ckpt, g_workdir, g_prog;
bool g_compress = false;  // chain-compressed: every step with --compress zstd
pid_t g_pid = 0;
std::string g_out;

void ok(const std::string& what) { printf("[ OK ] %s\n", what.c_str()); }

CmdResult ckpt(const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), g_ckpt);
  CmdResult r = run_cmd(args, g_workdir + "/ckpt-" + name + ".out", 300);
  if (!r.ok()) {
    std::string logs;
    for (const char* d : {"d1", "d2", "d3"})
      if (fs::exists(g_workdir + "/" + d + "/ckpt.log"))
        logs += tail(g_workdir + "/" + d + "/ckpt.log", 15);
    throw Fail("ckpt " + name + ": " + r.describe() + "\n" + r.output + logs);
  }
  return r;
}

std::vector<std::string> dump_args(const std::string& cmd, const std::string& dir,
                                   const std::string& parent) {
  std::vector<std::string> a = {
      cmd, "-t", std::to_string(g_pid), "-D", g_workdir + "/" + dir, "-o", "ckpt.log", "-v4"};
  if (!parent.empty()) a.insert(a.end(), {"--prev-images-dir", "../" + parent});
  if (g_compress) a.insert(a.end(), {"--compress", "zstd"});
  return a;
}

void start() {
  g_out = g_workdir + "/out.txt";
  g_pid = start_test({g_prog}, g_workdir, g_out);
  if (g_pid < 0) throw Fail("fork failed");
  track_pid(g_pid);
  std::string err = wait_ready(g_pid, g_out, 60);
  if (!err.empty()) throw Fail("program: " + err + "\n" + tail(g_out));
}

void round(int n) {
  kill(g_pid, SIGUSR1);
  std::string want = "INFO: ROUND " + std::to_string(n);
  for (int i = 0; i < 6000 && count_lines(g_out, want) == 0; i++) usleep(10000);
  if (count_lines(g_out, want) != 1) throw Fail("the program did not finish " + want);
}

// SIGTERM; it verifies its memory and passes.
void finish(const std::string& when) {
  kill(g_pid, SIGTERM);
  int st;
  if (!wait_exit(g_pid, 120, &st)) throw Fail("no exit after SIGTERM " + when);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(g_out, "PASS") != 1)
    throw Fail("the program failed its verification " + when + " (" + describe_status(st) + ")\n" +
               tail(g_out));
  untrack_pid(g_pid);
  ok("every byte verified by the program " + when);
}

// Pages in a step's own pages files.
uint64_t pages_in(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(g_workdir + "/" + dir)) {
    if (e.path().filename().string().rfind("pages-", 0) != 0) continue;
    if (!g_compress) {
      bytes += fs::file_size(e.path());
      continue;
    }
    // zpages: header magic 0x184D2A5C + "CKZP" at 8; the contents' size
    // is the u64 16 bytes before the end.
    std::string f = read_text(e.path().string());
    uint32_t m0 = 0, m2 = 0;
    uint64_t raw = 0;
    if (f.size() >= 48) {
      memcpy(&m0, f.data(), 4);
      memcpy(&m2, f.data() + 8, 4);
      memcpy(&raw, f.data() + f.size() - 16, 8);
    }
    if (m0 != 0x184D2A5C || m2 != 0x505A4B43)
      throw Fail(e.path().string() + " is not a compressed pages image");
    bytes += raw;
  }
  return bytes / 4096;
}

bool has_uw() {
  std::string s = read_text("/proc/" + std::to_string(g_pid) + "/smaps");
  size_t at = 0;
  while ((at = s.find("VmFlags:", at)) != std::string::npos) {
    size_t nl = s.find('\n', at);
    std::string flags = " " + s.substr(at + 8, nl - at - 8) + " ";
    if (flags.find(" uw ") != std::string::npos) return true;
    at = nl;
  }
  return false;
}

// The program as it was: no userfaultfd among its fds, the same mappings.
void check_clean(const std::string& maps_before, const std::string& when) {
  std::string fd_dir = "/proc/" + std::to_string(g_pid) + "/fd";
  for (const auto& e : fs::directory_iterator(fd_dir)) {
    std::error_code ec;
    std::string target = fs::read_symlink(e.path(), ec).string();
    if (target.find("userfaultfd") != std::string::npos)
      throw Fail("fd " + e.path().filename().string() + " of the program is a userfaultfd " + when);
  }
  std::string maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  if (maps != maps_before)
    throw Fail("the program's mappings changed " + when + ":\nbefore:\n" + maps_before +
               "after:\n" + maps);
  ok("no userfaultfd in the program's fds, its maps unchanged " + when);
}

std::vector<pid_t> trackers() {
  std::vector<pid_t> out;
  for (pid_t p : our_children()) {
    std::string comm = read_text("/proc/" + std::to_string(p) + "/comm");
    if (comm.rfind("ckpt-memtrack", 0) == 0 && proc_state(p) != 'Z') out.push_back(p);
  }
  return out;
}

// Reaps trackers that exited (they are our children: we are a subreaper).
void wait_no_tracker(const std::string& when, double timeout_s) {
  double end = now_s() + timeout_s;
  for (;;) {
    for (pid_t p : our_children())
      if (proc_state(p) == 'Z' && p != g_pid) waitpid(p, nullptr, WNOHANG);
    if (trackers().empty()) break;
    if (now_s() > end) throw Fail("a memory tracker is still there " + when);
    usleep(20000);
  }
  if (has_uw()) throw Fail("write-protection (VmFlags uw) left in the program " + when);
  ok("no tracker and no write-protection left " + when);
}

void restore(const std::string& dir) {
  ckpt("restore", {"restore", "-D", g_workdir + "/" + dir, "-d", "-o", "restore.log", "-v4"});
  track_pid(g_pid);
  char st = proc_state(g_pid);
  if (st != 'R' && st != 'S') throw Fail("the restored program is not running");
  ok("restored from the chain ending in " + dir);
}

void scenario_chain() {
  start();
  std::string maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  round(1);
  maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  ckpt("pre-dump-1", dump_args("pre-dump", "d1", ""));
  check_clean(maps, "after pre-dump 1");
  if (!has_uw()) throw Fail("no VMA of the program is write-tracked (VmFlags uw) after pre-dump 1");
  if (trackers().size() != 1) throw Fail("want exactly one memory tracker after pre-dump 1");
  ok("pre-dump 1: tracking on, one tracker");
  round(2);
  maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  ckpt("pre-dump-2", dump_args("pre-dump", "d2", "d1"));
  check_clean(maps, "after pre-dump 2");
  if (trackers().size() != 1) throw Fail("want exactly one memory tracker after pre-dump 2");
  round(3);
  auto a = dump_args("dump", "d3", "d2");
  a.push_back("--track-mem");
  ckpt("dump", a);
  int st;
  if (!wait_exit(g_pid, 30, &st)) throw Fail("the dump did not kill the program");
  untrack_pid(g_pid);
  uint64_t p1 = pages_in("d1"), p2 = pages_in("d2"), p3 = pages_in("d3");
  printf("pages: d1 %lu, d2 %lu, d3 %lu\n", (unsigned long)p1, (unsigned long)p2,
         (unsigned long)p3);
  if (p1 < 65536) throw Fail("pre-dump 1 holds only " + std::to_string(p1) + " pages");
  if (p2 * 4 >= p1 || p3 * 4 >= p1)
    throw Fail("later steps are not much smaller than the first: " + std::to_string(p1) + ", " +
               std::to_string(p2) + ", " + std::to_string(p3) + " pages");
  // Each round rewrites 1/16 of A: the later steps must hold at least that.
  if (p2 < 65536 / 16 || p3 < 65536 / 16)
    throw Fail("a later step holds fewer pages than its round changed");
  ok("pre-dump 2 and the dump hold only about the changed pages");
  wait_no_tracker("after the final dump", 10);
  restore("d3");
  finish("after the restore from the chain");
}

void scenario_tracker_killed() {
  start();
  round(1);
  ckpt("pre-dump-1", dump_args("pre-dump", "d1", ""));
  std::vector<pid_t> t = trackers();
  if (t.size() != 1 || !has_uw()) throw Fail("no tracking after pre-dump 1");
  kill(t[0], SIGKILL);
  int st;
  if (!wait_exit(t[0], 10, &st)) throw Fail("the tracker did not die");
  wait_no_tracker("once the tracker was killed", 10);
  if (proc_state(g_pid) != 'R' && proc_state(g_pid) != 'S') throw Fail("the program died");
  round(2);
  CmdResult r = ckpt("pre-dump-2", dump_args("pre-dump", "d2", "d1"));
  std::string log = read_text(g_workdir + "/d2/ckpt.log");
  if (log.find("write tracking of ../d1 is lost") == std::string::npos)
    throw Fail("pre-dump 2 did not warn that the tracking was lost\n" +
               tail(g_workdir + "/d2/ckpt.log"));
  uint64_t p1 = pages_in("d1"), p2 = pages_in("d2");
  if (p2 * 2 < p1)
    throw Fail("without tracking, pre-dump 2 saved only " + std::to_string(p2) + " of " +
               std::to_string(p1) + " pages");
  ok("pre-dump 2 without a tracker: a warning, every page saved again");
  round(3);
  auto a = dump_args("dump", "d3", "d2");
  a.push_back("--track-mem");
  ckpt("dump", a);
  if (!wait_exit(g_pid, 30, &st)) throw Fail("the dump did not kill the program");
  untrack_pid(g_pid);
  if (pages_in("d3") * 4 >= p1) throw Fail("the dump after pre-dump 2 is not small");
  ok("the dump after pre-dump 2 is small again");
  restore("d3");
  finish("after the restore");
}

void scenario_ckpt_killed() {
  start();
  std::string maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  // A page server that accepts nothing and reads nothing: ckpt blocks in
  // the copy, after its tracker started and before it committed.
  int lsk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  if (lsk < 0 || bind(lsk, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0 ||
      listen(lsk, 1) < 0 || getsockname(lsk, reinterpret_cast<sockaddr*>(&sa), &len) < 0)
    throw Fail("setup: a listening socket");
  std::string port = std::to_string(ntohs(sa.sin_port));
  auto a = dump_args("pre-dump", "d1", "");
  a.insert(a.end(), {"--page-server", "--address", "127.0.0.1", "--port", port});
  a.insert(a.begin(), g_ckpt);
  pid_t c = fork();
  if (c == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    std::vector<char*> av;
    for (auto& s : a) av.push_back(s.data());
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  track_pid(c);
  // Wait for the tracker and for ckpt to stall (its log says it copies).
  std::string log = g_workdir + "/d1/ckpt.log";
  for (int i = 0; i < 3000; i++) {
    if (trackers().size() == 1 && read_text(log).find("copying its pages") != std::string::npos)
      break;
    usleep(10000);
  }
  if (trackers().size() != 1) throw Fail("the pre-dump started no tracker\n" + tail(log));
  if (!has_uw()) throw Fail("no write tracking during the pre-dump");
  usleep(200000);
  if (proc_state(c) == 'Z' || proc_state(c) == 0)
    throw Fail("the pre-dump did not block on the silent page server");
  kill(c, SIGKILL);
  int st;
  wait_exit(c, 10, &st);
  untrack_pid(c);
  close(lsk);
  wait_no_tracker("after ckpt was killed during a pre-dump", 10);
  check_clean(maps, "after ckpt was killed during a pre-dump");
  if (fs::exists(g_workdir + "/d1/inventory.img"))
    throw Fail("the killed pre-dump left an inventory");
  finish("after the killed pre-dump");
}

void scenario_timeout() {
  start();
  std::string maps = read_text("/proc/" + std::to_string(g_pid) + "/maps");
  auto a = dump_args("pre-dump", "d1", "");
  a.insert(a.end(), {"--track-mem-timeout", "1"});
  ckpt("pre-dump", a);
  wait_no_tracker("once the tracker timed out", 60);
  check_clean(maps, "after the tracker timed out");
  finish("after the abandoned chain");
}

}  // namespace

int main(int argc, char** argv) {
  std::string scenario;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--ckpt")
      g_ckpt = v;
    else if (k == "--workdir")
      g_workdir = v;
    else if (k == "--prog")
      g_prog = v;
    else if (k == "--scenario")
      scenario = v;
  }
  if (g_ckpt.empty() || g_workdir.empty() || g_prog.empty() || scenario.empty()) {
    fprintf(stderr, "usage: zdtm-incremental --ckpt PATH --workdir DIR --prog PATH --scenario S\n");
    return 2;
  }
  harness_init();
  fs::remove_all(g_workdir);
  fs::create_directories(g_workdir);
  int rc = 0;
  try {
    if (scenario == "chain")
      scenario_chain();
    else if (scenario == "chain-compressed")
      g_compress = true, scenario_chain();
    else if (scenario == "tracker-killed")
      scenario_tracker_killed();
    else if (scenario == "ckpt-killed")
      scenario_ckpt_killed();
    else if (scenario == "timeout")
      scenario_timeout();
    else
      throw Fail("unknown scenario " + scenario);
  } catch (const Fail& f) {
    printf("[FAIL] %s: %s\n", scenario.c_str(), f.what());
    printf("program output:\n%s", tail(g_out, 20).c_str());
    rc = 1;
  }
  for (const std::string& k : kill_all_children()) printf("killed leftover %s\n", k.c_str());
  if (rc == 0) fs::remove_all(g_workdir);  // 300+ MiB of images
  return rc;
}
