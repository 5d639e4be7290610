// user_ns_checks (not a round trip): a restore whose user namespace maps
// the kernel refuses fails cleanly and leaves nothing behind.
//
//   user_ns_checks --ckpt PATH --workdir DIR --victim PATH_TO_user_ns
//
// The victim (static/user_ns) runs as root of a user namespace owning its
// pid namespace (runner/harness.h writes the maps) and is dumped. Then:
//   bad-map   namespaces.img is rewritten (layout of images/image_types.h
//             and proto/ns.proto) with a uid map whose lines overlap inside
//             the namespace, which restore's image check lets through and
//             the kernel refuses when ckpt writes /proc/PID/uid_map: the
//             restore must fail (exit below 128) naming the uid map and the
//             reason, leave no process (we are the subreaper: anything it
//             made would come to us) and no task with the dumped pid;
//   good      the untouched images then restore, and the victim passes its
//             own checks (nothing of the failed restore was in the way);
//   dump-nested, dump-no-pidns  a victim in a user namespace nested in
//             another (not ckpt's) one, or in a user namespace without a
//             pid namespace of its own (two tasks): the dump is refused
//             with the reason, and the victim runs on and passes its checks.
// Prints "[ OK ] name" or "[FAIL] name: reason" per check; exit 0 if all pass.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.h"
#include "zdtm.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string g_ckpt, g_workdir, g_victim;
int g_failed = 0;

void check(const std::string& name, const std::function<void()>& fn) {
  try {
    fn();
    printf("[ OK ] %s\n", name.c_str());
  } catch (const std::exception& f) {
    printf("[FAIL] %s: %s\n", name.c_str(), f.what());
    g_failed++;
  }
  fflush(stdout);
  for (const auto& k : kill_all_children()) {
    printf("[FAIL] %s: left behind: %s\n", name.c_str(), k.c_str());
    g_failed++;
  }
}

CmdResult ckpt(const std::string& name, std::vector<std::string> args) {
  args.insert(args.begin(), g_ckpt);
  return run_cmd(args, g_workdir + "/ckpt-" + name + ".out", 120);
}

// ---- namespaces.img by hand ----

std::string varint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    s.push_back(char(v ? b | 0x80 : b));
  } while (v);
  return s;
}
std::string field(int num, const std::string& bytes) {  // length-delimited
  return varint(uint64_t(num) << 3 | 2) + varint(bytes.size()) + bytes;
}
std::string field_int(int num, uint64_t v) { return varint(uint64_t(num) << 3) + varint(v); }
std::string extent(uint32_t first, uint32_t lower, uint32_t count) {  // IdMapExtent
  return field_int(1, first) + field_int(2, lower) + field_int(3, count);
}

// NamespacesEntry{pid, user, user_ns{uid_map, gid_map, setgroups_deny,
// host_groups, owns_pid}}: the victim's, but for the uid map.
std::string namespaces_image() {
  std::string u = field(1, extent(0, kUsernsBase, kUsernsCount)) +
                  field(1, extent(100, 300000, 10)) +  // ids 100..109 inside twice
                  field(2, extent(0, kUsernsBase, kUsernsCount)) + field_int(3, 1);
  for (unsigned g : kUsernsGroups) u += field_int(4, g);
  u += field_int(5, 1);
  std::string msg = field_int(1, 1) + field_int(8, 1) + field(12, u);
  uint32_t head[3] = {0x54504b43, 0x4e535001, uint32_t(msg.size())};
  return zdtm_seal_image(std::string(reinterpret_cast<const char*>(head), sizeof(head)) + msg);
}

void expect_no_task(pid_t pid, const std::string& when) {
  if (kill(pid, 0) == 0 || errno != ESRCH)
    throw Fail("pid " + std::to_string(pid) + " exists " + when + ": " + describe_pid(pid));
  std::vector<pid_t> kids = our_children();
  if (!kids.empty()) throw Fail(when + " left " + describe_pid(kids[0]));
}

pid_t g_pid = 0;
bool g_dumped = false;
std::string g_img, g_out;

void dump_victim() {
  std::string run = g_workdir + "/run";
  fs::create_directories(run);
  g_out = run + "/out.txt";
  g_pid = start_test({g_victim}, run, g_out, CLONE_NEWUSER | CLONE_NEWPID);
  if (g_pid < 0) throw Fail(std::string("setup: start the victim: ") + strerror(errno));
  std::string err = wait_ready(g_pid, g_out, 60);
  if (!err.empty()) throw Fail("setup: victim: " + err + "\n" + read_text(g_out));
  g_img = g_workdir + "/img";
  fs::create_directories(g_img);
  CmdResult r = ckpt("dump", {"dump", "-t", std::to_string(g_pid), "-D", g_img, "-o", "dump.log"});
  if (!r.ok()) throw Fail("setup: dump failed (" + r.describe() + "):\n" + r.output);
  int st;
  if (!wait_exit(g_pid, 10, &st) || !WIFSIGNALED(st))
    throw Fail("setup: the dump did not kill the victim");
  untrack_pid(g_pid);
  kill_all_children();  // the rest of its tree
  g_dumped = true;
}

void bad_map() {
  if (!g_dumped) throw Fail("no dump (see setup)");
  std::string bad = g_workdir + "/img-bad";
  fs::remove_all(bad);
  fs::copy(g_img, bad, fs::copy_options::recursive);
  {
    std::string img = namespaces_image();
    std::ofstream f(bad + "/namespaces.img", std::ios::binary | std::ios::trunc);
    f.write(img.data(), std::streamsize(img.size()));
    if (!f) throw Fail("setup: cannot write namespaces.img");
  }
  CmdResult r = ckpt("restore-bad", {"restore", "-D", bad, "-d", "-o", "restore.log", "--pidfile",
                                     g_workdir + "/pidfile-bad"});
  if (r.ok()) throw Fail("the restore succeeded, want a failure\n" + r.output);
  if (r.crashed()) throw Fail("the restore crashed: " + r.describe() + "\n" + r.output);
  if (r.output.find("uid map") == std::string::npos ||
      r.output.find("Invalid argument") == std::string::npos)
    throw Fail("the error does not name the uid map and the reason:\n" + r.output);
  expect_no_task(g_pid, "after the failed restore");
  printf("       refused: %s", r.output.c_str());
}

// Starts the victim with ns_flags and args, has the dump refused with a
// message containing `want`, and checks the victim runs on untouched (it
// passes its own checks on SIGTERM).
void refused(const std::string& name, unsigned long ns_flags, const std::vector<std::string>& args,
             const std::string& want) {
  std::string run = g_workdir + "/" + name;
  fs::create_directories(run);
  std::string out = run + "/out.txt";
  std::vector<std::string> argv = {g_victim};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = start_test(argv, run, out, ns_flags);
  if (pid < 0) throw Fail(std::string("setup: start the victim: ") + strerror(errno));
  std::string err = wait_ready(pid, out, 60);
  if (!err.empty()) throw Fail("setup: victim: " + err + "\n" + read_text(out));
  CmdResult r = ckpt("dump-" + name, {"dump", "-t", std::to_string(pid), "-D", run + "/img"});
  if (r.ok()) throw Fail("the dump succeeded, want a refusal");
  if (r.crashed()) throw Fail("the dump crashed: " + r.describe() + "\n" + r.output);
  if (r.output.find(want) == std::string::npos)
    throw Fail("the refusal does not say '" + want + "':\n" + r.output);
  printf("       refused: %s", r.output.c_str());
  char st = proc_state(pid);
  if (st != 'R' && st != 'S')
    throw Fail("the victim is not running after the refusal: " + describe_pid(pid));
  kill(pid, SIGTERM);
  int status;
  if (!wait_exit(pid, 60, &status)) throw Fail("the victim did not exit after SIGTERM");
  untrack_pid(pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || count_lines(out, "PASS") != 1)
    throw Fail("the victim failed its own checks (" + describe_status(status) + "):\n" +
               read_text(out));
}

void good() {
  if (!g_dumped) throw Fail("no dump (see setup)");
  std::string pidfile = g_workdir + "/pidfile";
  CmdResult r =
      ckpt("restore", {"restore", "-D", g_img, "-d", "-o", "restore.log", "--pidfile", pidfile});
  if (!r.ok())
    throw Fail("restore of the untouched images failed (" + r.describe() + "):\n" + r.output);
  track_pid(g_pid);
  if (atoi(read_text(pidfile).c_str()) != g_pid) throw Fail("restored with another pid");
  kill(g_pid, SIGTERM);
  int st;
  if (!wait_exit(g_pid, 60, &st)) throw Fail("the restored victim did not exit");
  untrack_pid(g_pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(g_out, "PASS") != 1)
    throw Fail("the restored victim failed its checks (" + describe_status(st) + "):\n" +
               read_text(g_out));
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--ckpt")) g_ckpt = argv[i + 1];
    if (!strcmp(argv[i], "--workdir")) g_workdir = argv[i + 1];
    if (!strcmp(argv[i], "--victim")) g_victim = argv[i + 1];
  }
  if (g_ckpt.empty() || g_workdir.empty() || g_victim.empty()) {
    fprintf(stderr, "usage: user_ns_checks --ckpt PATH --workdir DIR --victim PATH\n");
    return 2;
  }
  harness_init();
  g_workdir = fs::absolute(g_workdir).string();
  g_victim = fs::absolute(g_victim).string();
  g_ckpt = fs::absolute(g_ckpt).string();
  std::error_code ec;
  fs::remove_all(g_workdir, ec);
  fs::create_directories(g_workdir);
  check("setup", dump_victim);
  check("bad-map", bad_map);
  check("good", good);
  check("dump-nested",
        [] { refused("nested", CLONE_NEWUSER | CLONE_NEWPID, {"--nested"}, "nested inside it"); });
  check("dump-no-pidns", [] { refused("no-pidns", CLONE_NEWUSER, {}, "needs a pid namespace"); });
  if (g_failed) return 1;
  fs::remove_all(g_workdir, ec);
  return 0;
}
