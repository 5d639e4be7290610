// The ckpt binary on a two-process tree in ckpt-test-* cgroups (label
// `cgroup`, root): dump --manage-cgroups, remove the cgroups, restore them
// elsewhere (--cgroup-root); a restore missing a controller fails leaving
// nothing, and so does one failing once the tasks are placed;
// --freeze-cgroup dumps a running tree and lets it go on.
#include <gtest/gtest.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <filesystem>

#include "cgroup_test_util.h"
#include "images/image_check.h"
#include "proto/cgroup.pb.h"

namespace ckpt {
namespace {

using cgtest::CgroupOf;
using cgtest::IsDir;
using cgtest::ReadText;
using cgtest::TestCgroup;
using cgtest::WriteText;

std::string Ckpt() {
  const char* p = getenv("CKPT_BIN");
  return p ? p : "";
}

// Runs ckpt with args; returns its exit status, stderr into *err.
int RunCkpt(const std::vector<std::string>& args, std::string* err) {
  char tmpl[] = "/tmp/ckpt-cgroup-err-XXXXXX";
  int efd = mkstemp(tmpl);
  unlink(tmpl);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(efd, 2);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    syscall(SYS_close_range, 3, ~0u, 0);
    std::vector<char*> av;
    std::string bin = Ckpt();
    av.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) av.push_back(a.data());
    av.push_back(nullptr);
    execv(bin.c_str(), av.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  lseek(efd, 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  err->clear();
  while ((n = read(efd, buf, sizeof(buf))) > 0) err->append(buf, n);
  close(efd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// A tree: P (in dir_p) with one child G (in dir_g), both `sleep`. P is the
// test's child; G comes back to the test (a subreaper) when P dies.
struct Tree {
  pid_t p = -1, g = -1;
  ~Tree() { KillAll(); }
  void KillAll() {
    for (pid_t x : {g, p})
      if (x > 0) kill(x, SIGKILL);
    for (pid_t x : {p, g})
      if (x > 0) Reap(x);
    p = g = -1;
  }
  static void Reap(pid_t x) {
    int st;
    while (waitpid(x, &st, __WALL) < 0 && errno == EINTR) {
    }
  }
};

// Bounded wait until pid sleeps interruptibly (a just detached task runs
// a moment on its way back into nanosleep).
bool SleepsAgain(pid_t pid) {
  for (int i = 0; i < 1000; i++) {
    std::string st = ReadText("/proc/" + std::to_string(pid) + "/stat");
    if (st.rfind(')') != std::string::npos && st[st.rfind(')') + 2] == 'S') return true;
    usleep(5000);
  }
  return false;
}

bool IsSleep(pid_t pid) { return ReadText("/proc/" + std::to_string(pid) + "/comm") == "sleep"; }

// `file`: if given, P holds it open as fd 3.
void StartTree(Tree& t, const std::string& dir_p, const std::string& dir_g,
               const std::string& file = "") {
  int sync[2];
  ASSERT_EQ(pipe(sync), 0);
  t.p = fork();
  if (t.p == 0) {
    setsid();
    if (!WriteText(dir_p + "/cgroup.procs", "0")) _exit(1);
    pid_t g = fork();
    if (g == 0) {
      if (!WriteText(dir_g + "/cgroup.procs", "0")) _exit(1);
      pid_t self = getpid();
      (void)!write(sync[1], &self, sizeof(self));
      int null = open("/dev/null", O_RDWR);
      dup2(null, 0), dup2(null, 1), dup2(null, 2);
      syscall(SYS_close_range, 3, ~0u, 0);
      execl("/bin/sleep", "sleep", "1000", nullptr);
      _exit(127);
    }
    pid_t mine = getpid();
    (void)!write(sync[1], &mine, sizeof(mine));
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    syscall(SYS_close_range, 3, ~0u, 0);
    if (!file.empty() && open(file.c_str(), O_RDONLY) != 3) _exit(1);
    execl("/bin/sleep", "sleep", "1000", nullptr);
    _exit(127);
  }
  close(sync[1]);
  pid_t a = 0, b = 0;
  ASSERT_EQ(read(sync[0], &a, sizeof(a)), ssize_t(sizeof(a)));
  ASSERT_EQ(read(sync[0], &b, sizeof(b)), ssize_t(sizeof(b)));
  close(sync[0]);
  t.g = a == t.p ? b : a;
  // Never 0: writing "0" into cgroup.procs would move the test itself.
  ASSERT_TRUE(t.p > 0 && t.g > 0 && t.g != t.p) << a << " " << b;
  bool ready = false;
  for (int i = 0; i < 1000 && !ready; i++) {
    ready = IsSleep(t.p) && IsSleep(t.g);
    if (!ready) usleep(5000);
  }
  ASSERT_TRUE(ready) << "the tree did not start";
}

class CgroupRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    cgtest::CommonSetUp();
    if (IsSkipped()) return;
    ASSERT_FALSE(Ckpt().empty()) << "CKPT_BIN is not set";
    char tmpl[] = "/tmp/ckpt-cgroup-img-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    images_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    if (images_.empty()) return;
    std::filesystem::remove_all(images_, ec);
    unlink((images_ + ".file").c_str());
  }
  std::string Log(const char* name) { return ReadText(images_ + "/" + name); }
  std::string images_;
};

// cgroup.img as raw bytes: 8 bytes of magics, u32 length, the message.
bool RewriteImage(const std::string& file, void (*mangle)(pb::CgroupEntry&)) {
  std::string raw = ReadText(file + "");
  std::ifstream in(file, std::ios::binary);
  raw.assign(std::istreambuf_iterator<char>(in), {});
  if (raw.size() < 12) return false;
  uint32_t len;
  memcpy(&len, raw.data() + 8, 4);
  pb::CgroupEntry e;
  if (!e.ParseFromString(raw.substr(12, len))) return false;
  mangle(e);
  std::string msg = e.SerializeAsString();
  len = uint32_t(msg.size());
  // Sealed again (images/image_check.h): a changed image is otherwise refused as damaged.
  std::string out =
      images::SealImage(raw.substr(0, 8) + std::string(reinterpret_cast<char*>(&len), 4) + msg);
  std::ofstream o(file, std::ios::binary | std::ios::trunc);
  o << out;
  return bool(o);
}

TEST_F(CgroupRoundTrip, ManagedDumpRestoreElsewhere) {
  TestCgroup cg;
  cg.Make("a/b");
  ASSERT_TRUE(WriteText(cg.Dir("a") + "/cgroup.max.descendants", "6"));
  ASSERT_TRUE(WriteText(cg.Dir("a/b") + "/cgroup.max.depth", "2"));
  Tree t;
  ASSERT_NO_FATAL_FAILURE(StartTree(t, cg.Dir("a"), cg.Dir("a/b")));
  std::string err;
  ASSERT_EQ(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--manage-cgroups", "-v4",
                     "-o", "dump.log"},
                    &err),
            0)
      << err << Log("dump.log");
  Tree::Reap(t.p);  // killed by the dump
  Tree::Reap(t.g);
  pid_t p = t.p, g = t.g;
  t.p = t.g = -1;
  cgtest::RemoveTree(cg.Dir("a"));
  ASSERT_FALSE(IsDir(cg.Dir("a")));

  // A missing controller: refused before anything exists.
  std::string saved = images_ + "/cgroup.img.orig";
  std::filesystem::copy_file(images_ + "/cgroup.img", saved);
  ASSERT_TRUE(RewriteImage(images_ + "/cgroup.img", [](pb::CgroupEntry& e) {
    e.mutable_dirs(0)->add_controllers("ckptnosuch");
  }));
  EXPECT_NE(RunCkpt({"restore", "-D", images_, "-d", "--cgroup-root", cg.Cg("moved")}, &err), 0);
  EXPECT_NE(err.find("ckptnosuch"), std::string::npos) << err;
  EXPECT_NE(err.find("does not offer"), std::string::npos) << err;
  EXPECT_FALSE(IsDir(cg.Dir("moved"))) << "a failed restore left a cgroup";
  EXPECT_TRUE(kill(p, 0) < 0 && errno == ESRCH) << "a failed restore left a task";
  std::filesystem::rename(saved, images_ + "/cgroup.img");

  // Restored one level down, in a cgroup that did not exist.
  ASSERT_EQ(RunCkpt({"restore", "-D", images_, "-d", "--cgroup-root", cg.Cg("moved"), "-v4", "-o",
                     "restore.log"},
                    &err),
            0)
      << err << Log("restore.log");
  t.p = p, t.g = g;  // orphans now: ours (subreaper)
  EXPECT_EQ(CgroupOf(p), cg.Cg("moved"));
  EXPECT_EQ(CgroupOf(g), cg.Cg("moved/b"));
  EXPECT_EQ(ReadText(cg.Dir("moved") + "/cgroup.max.descendants"), "6");
  EXPECT_EQ(ReadText(cg.Dir("moved/b") + "/cgroup.max.depth"), "2");
  EXPECT_TRUE(IsSleep(p) && IsSleep(g));
}

// A controller's limit (pids, memory or hugetlb, whichever this system
// offers in v2) comes back, written once the tasks are in place.
TEST_F(CgroupRoundTrip, ControllerLimitComesBack) {
  auto [ctrl, limit] = cgtest::LimitController();
  ASSERT_FALSE(ctrl.empty()) << "no pids, memory or hugetlb controller in cgroup v2 here";
  cgtest::RootController on(ctrl);
  TestCgroup cg;
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  cg.Make("a/p");
  cg.Make("a/b");
  ASSERT_TRUE(WriteText(cg.Dir("a") + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  ASSERT_TRUE(WriteText(cg.Dir("a/b") + "/" + limit, "4194304")) << strerror(errno);
  Tree t;
  ASSERT_NO_FATAL_FAILURE(StartTree(t, cg.Dir("a/p"), cg.Dir("a/b")));
  std::string err;
  ASSERT_EQ(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--manage-cgroups", "-v4",
                     "-o", "dump.log"},
                    &err),
            0)
      << err << Log("dump.log");
  Tree::Reap(t.p);
  Tree::Reap(t.g);
  pid_t p = t.p, g = t.g;
  t.p = t.g = -1;
  cgtest::RemoveTree(cg.Dir("a"));
  ASSERT_EQ(RunCkpt({"restore", "-D", images_, "-d", "--cgroup-root", cg.Cg("moved"), "-v4", "-o",
                     "restore.log"},
                    &err),
            0)
      << err << Log("restore.log");
  t.p = p, t.g = g;
  EXPECT_EQ(CgroupOf(p), cg.Cg("moved/p"));
  EXPECT_EQ(CgroupOf(g), cg.Cg("moved/b"));
  EXPECT_EQ(ReadText(cg.Dir("moved") + "/cgroup.subtree_control"), ctrl);
  EXPECT_EQ(ReadText(cg.Dir("moved/b") + "/" + limit), "4194304");
  EXPECT_NE(Log("restore.log").find(" limits set"), std::string::npos)
      << Log("restore.log");
}

// A restore that fails once the tasks are in their new cgroups (here: a
// file they had open is gone) kills them and removes the cgroups it made.
TEST_F(CgroupRoundTrip, FailedRestoreRemovesItsCgroups) {
  TestCgroup cg;
  cg.Make("a/b");
  std::string file = images_ + ".file";
  {
    std::ofstream f(file);
    f << "x";
  }
  Tree t;
  ASSERT_NO_FATAL_FAILURE(StartTree(t, cg.Dir("a"), cg.Dir("a/b"), file));
  std::string err;
  ASSERT_EQ(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--manage-cgroups", "-v4",
                     "-o", "dump.log"},
                    &err),
            0)
      << err << Log("dump.log");
  Tree::Reap(t.p);
  Tree::Reap(t.g);
  pid_t p = t.p, g = t.g;
  t.p = t.g = -1;
  unlink(file.c_str());
  EXPECT_NE(RunCkpt({"restore", "-D", images_, "-d", "--cgroup-root", cg.Cg("moved"), "-v4", "-o",
                     "restore.log"},
                    &err),
            0);
  EXPECT_NE(err.find(file), std::string::npos) << err;
  EXPECT_NE(Log("restore.log").find("cgroups: 2 tasks into 2 cgroups"), std::string::npos)
      << "the restore failed before placing the tasks: " << Log("restore.log");
  EXPECT_FALSE(IsDir(cg.Dir("moved"))) << "a failed restore left its cgroups";
  EXPECT_TRUE(IsDir(cg.Dir("a/b"))) << "a cgroup the restore did not make was removed";
  EXPECT_TRUE(kill(p, 0) < 0 && errno == ESRCH);
  EXPECT_TRUE(kill(g, 0) < 0 && errno == ESRCH);
}

TEST_F(CgroupRoundTrip, UnmanagedRestoreRecreatesTaskCgroups) {
  TestCgroup cg;
  cg.Make("x/y");
  ASSERT_TRUE(WriteText(cg.Dir("x/y") + "/cgroup.max.depth", "1"));
  Tree t;
  ASSERT_NO_FATAL_FAILURE(StartTree(t, cg.Dir("x"), cg.Dir("x/y")));
  std::string err;
  ASSERT_EQ(
      RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "-v4", "-o", "dump.log"}, &err), 0)
      << err << Log("dump.log");
  Tree::Reap(t.p);
  Tree::Reap(t.g);
  pid_t p = t.p, g = t.g;
  t.p = t.g = -1;
  cgtest::RemoveTree(cg.Dir("x"));
  // --manage-cgroups=props needs them to exist.
  EXPECT_NE(RunCkpt({"restore", "-D", images_, "-d", "--manage-cgroups=props"}, &err), 0);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  EXPECT_TRUE(kill(p, 0) < 0 && errno == ESRCH);
  // Default (soft): made again where they were, without settings (none saved).
  ASSERT_EQ(RunCkpt({"restore", "-D", images_, "-d", "-v4", "-o", "restore.log"}, &err), 0)
      << err << Log("restore.log");
  t.p = p, t.g = g;
  EXPECT_EQ(CgroupOf(p), cg.Cg("x"));
  EXPECT_EQ(CgroupOf(g), cg.Cg("x/y"));
  EXPECT_EQ(ReadText(cg.Dir("x/y") + "/cgroup.max.depth"), "max");
}

TEST_F(CgroupRoundTrip, FreezeCgroupDump) {
  TestCgroup cg, other;
  cg.Make("in");
  Tree t;
  ASSERT_NO_FATAL_FAILURE(StartTree(t, cg.dir(), cg.Dir("in")));
  std::string err;
  ASSERT_EQ(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--freeze-cgroup", cg.dir(),
                     "-R", "-v4", "-o", "dump.log"},
                    &err),
            0)
      << err << Log("dump.log");
  EXPECT_NE(Log("dump.log").find("cgroup " + cg.cgroup() + " frozen"), std::string::npos);
  EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "0");
  EXPECT_TRUE(IsDir(images_) && std::filesystem::exists(images_ + "/cgroup.img"));
  // Left running: both back asleep in their nanosleep, not held, not frozen.
  for (pid_t x : {t.p, t.g}) EXPECT_TRUE(SleepsAgain(x)) << x;

  // Frozen by its owner before the dump: dumped all the same (thawed while
  // the tasks are held), and frozen again after.
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.freeze", "1"));
  std::filesystem::remove_all(images_);
  ASSERT_EQ(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--freeze-cgroup", cg.dir(),
                     "-R", "-v4", "-o", "dump.log"},
                    &err),
            0)
      << err << Log("dump.log");
  EXPECT_NE(Log("dump.log").find("thawed"), std::string::npos);
  EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "1");
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.freeze", "0"));

  // A tree partly outside the frozen cgroup: refused, the tree runs on.
  ASSERT_TRUE(WriteText(other.dir() + "/cgroup.procs", std::to_string(t.g)));
  std::filesystem::remove_all(images_);
  EXPECT_NE(RunCkpt({"dump", "-t", std::to_string(t.p), "-D", images_, "--freeze-cgroup", cg.dir()},
                    &err),
            0);
  EXPECT_NE(err.find("outside the frozen cgroup"), std::string::npos) << err;
  EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "0");
  for (pid_t x : {t.p, t.g}) EXPECT_TRUE(SleepsAgain(x)) << x;
}

}  // namespace
}  // namespace ckpt
