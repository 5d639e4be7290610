// criu/cgroup_freeze (label `cgroup`, root): freezing a real cgroup with
// running processes, seizing the frozen tasks with compel, thawing.
#include "criu/cgroup_freeze.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>

#include "cgroup_test_util.h"
#include "compel/seize.h"

namespace ckpt {
namespace {

using cgtest::ReadText;
using cgtest::Sitter;
using cgtest::TestCgroup;
using cgtest::WriteText;

class CgroupFreezeTest : public ::testing::Test {
 protected:
  void SetUp() override { cgtest::CommonSetUp(); }
};

std::string Err(const Status& s) { return s.ok() ? "(ok)" : s.error().message(); }
template <typename T>
std::string Err(const Result<T>& r) {
  return r.ok() ? "(ok)" : r.error().message();
}

char State(pid_t pid) {
  std::string s = ReadText("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = s.rfind(')');
  return paren == std::string::npos || paren + 2 >= s.size() ? '?' : s[paren + 2];
}

bool Frozen(const TestCgroup& cg) {
  return ReadText(cg.dir() + "/cgroup.events").find("frozen 1") != std::string::npos;
}

// Bounded wait for a state the kernel reaches asynchronously.
template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 1000; i++) {
    if (f()) return true;
    usleep(5000);
  }
  return f();
}

TEST_F(CgroupFreezeTest, FreezeSeizeThaw) {
  TestCgroup cg;
  cg.Make("sub");
  Sitter a(cg.dir(), true), b(cg.dir(), true), c(cg.Dir("sub"), true);
  {
    auto f = CgroupFreezer::Freeze(cg.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    EXPECT_EQ((*f)->cgroup(), cg.cgroup());
    // Freeze saw "frozen 1" in cgroup.events. (Read again now it may say 0
    // for a moment: this kernel reports a frozen task woken inside the
    // freezer as leaving it, though it never returns to user space.)
    EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "1");
    ASSERT_TRUE((*f)->CheckTasks({a.pid(), b.pid(), c.pid()}).ok());
    // PTRACE_SEIZE + PTRACE_INTERRUPT on frozen tasks: each reports its stop.
    std::vector<std::unique_ptr<compel::SeizedProcess>> seized;
    for (pid_t p : {a.pid(), b.pid(), c.pid()}) {
      auto s = compel::SeizedProcess::Seize(p);
      ASSERT_TRUE(s.ok()) << p << ": " << Err(s);
      seized.push_back(std::move(*s));
    }
    ASSERT_TRUE((*f)->Thaw().ok());
    EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "0");
    EXPECT_FALSE(Frozen(cg));
    // Thawed, but still held by ptrace: nothing runs until we let go.
    for (pid_t p : {a.pid(), b.pid(), c.pid()}) EXPECT_EQ(State(p), 't') << p;
    seized.clear();  // detach
    for (pid_t p : {a.pid(), b.pid(), c.pid()})
      EXPECT_TRUE(Eventually([&] { return State(p) == 'R'; })) << p << " " << State(p);
    EXPECT_TRUE((*f)->Thaw().ok()) << "a second thaw is a no-op";
  }
}

TEST_F(CgroupFreezeTest, DestructorThawsAndTasksOutsideAreNamed) {
  TestCgroup in, out;
  Sitter a(in.dir(), true), b(out.dir(), true);
  {
    auto f = CgroupFreezer::Freeze(in.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    Status s = (*f)->CheckTasks({a.pid(), b.pid()});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(Err(s).find("pid " + std::to_string(b.pid()) + " is in cgroup " + out.cgroup() +
                          ", outside the frozen cgroup " + in.cgroup()),
              std::string::npos)
        << Err(s);
    EXPECT_EQ(State(b.pid()), 'R');
  }
  // The failed dump's freezer is gone: the victim runs again.
  EXPECT_EQ(ReadText(in.dir() + "/cgroup.freeze"), "0");
  EXPECT_TRUE(Eventually([&] { return State(a.pid()) == 'R'; }));
}

// Frozen before the dump: thawed for the dump (the parasite must run),
// frozen again at the end.
TEST_F(CgroupFreezeTest, AlreadyFrozenIsFrozenAgain) {
  TestCgroup cg;
  Sitter a(cg.dir(), true);
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.freeze", "1"));
  {
    auto f = CgroupFreezer::Freeze(cg.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    auto s = compel::SeizedProcess::Seize(a.pid());
    ASSERT_TRUE(s.ok()) << Err(s);
    ASSERT_TRUE((*f)->Thaw().ok());
    EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "0");
    f = Error("");  // the freezer goes first, the seized task after
  }
  EXPECT_EQ(ReadText(cg.dir() + "/cgroup.freeze"), "1");
}

TEST_F(CgroupFreezeTest, BadPaths) {
  auto f = CgroupFreezer::Freeze("/tmp");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(Err(f).find("not a directory of a cgroup2 filesystem"), std::string::npos) << Err(f);
  f = CgroupFreezer::Freeze("/nonexistent/ckpt-test");
  ASSERT_FALSE(f.ok());
  // ckpt's own cgroup (or an ancestor of it): it would freeze itself.
  auto own = cgroupfs::TaskCgroup(getpid());
  ASSERT_TRUE(own.ok());
  auto m = cgroupfs::FindMount(*own);
  ASSERT_TRUE(m.ok());
  f = CgroupFreezer::Freeze(cgroupfs::FsPath(*m, *own));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(Err(f).find("would freeze itself"), std::string::npos) << Err(f);
}

// cgroup v1 freezer (what runc gives as freeze_cgroup on hybrid hosts).
// The test mounts the v1 freezer hierarchy in a mount namespace of its
// own (the host's superblock when the host mounts it too; a v2-only host
// leaves the v1 freezer free to mount), makes ckpt-test-* cgroups in it
// and removes them.
class V1Freezer {
 public:
  V1Freezer() {
    static bool unshared = false;
    if (!unshared) {
      EXPECT_EQ(unshare(CLONE_NEWNS), 0) << strerror(errno);
      EXPECT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr), 0) << strerror(errno);
      unshared = true;
    }
    char tmpl[] = "/tmp/ckpt-test-freezer-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    mnt_ = tmpl;
    EXPECT_EQ(mount("cgroup", mnt_.c_str(), "cgroup", 0, "freezer"), 0)
        << "mount the v1 freezer hierarchy: " << strerror(errno);
    static int n = 0;
    dir_ = mnt_ + "/ckpt-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    EXPECT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_ << ": " << strerror(errno);
  }
  ~V1Freezer() {
    // Sitters are gone by now (declared after this object).
    WriteText(dir_ + "/freezer.state", "THAWED");
    std::string sub = dir_ + "/sub";
    for (const std::string& d : {sub, dir_})
      for (int i = 0; i < 500 && rmdir(d.c_str()) < 0 && errno == EBUSY; i++) usleep(10000);
    EXPECT_FALSE(cgtest::IsDir(dir_)) << dir_;
    umount2(mnt_.c_str(), MNT_DETACH);
    rmdir(mnt_.c_str());
  }
  const std::string& dir() const { return dir_; }
  std::string Sub() const {
    std::string d = dir_ + "/sub";
    if (!cgtest::IsDir(d)) {
      EXPECT_EQ(mkdir(d.c_str(), 0755), 0) << strerror(errno);
    }
    return d;
  }
  std::string State() const { return ReadText(dir_ + "/freezer.state"); }

 private:
  std::string mnt_, dir_;
};

TEST_F(CgroupFreezeTest, V1HoldsTheTreeAndLetsOthersGo) {
  V1Freezer cg;
  Sitter a(cg.dir(), true), b(cg.Sub(), true), other(cg.dir(), true);
  {
    auto f = CgroupFreezer::Freeze(cg.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    // Thawed already, every thread held in its ptrace stop.
    EXPECT_EQ(cg.State(), "THAWED");
    for (pid_t p : {a.pid(), b.pid(), other.pid()}) EXPECT_EQ(State(p), 't') << p;
    // SeizeTree's seize takes the held threads as they are.
    std::vector<std::unique_ptr<compel::SeizedProcess>> seized;
    for (pid_t p : {a.pid(), b.pid()}) {
      auto s = compel::SeizedProcess::Seize(p);
      ASSERT_TRUE(s.ok()) << p << ": " << Err(s);
      seized.push_back(std::move(*s));
    }
    ASSERT_TRUE((*f)->CheckTasks({a.pid(), b.pid()}).ok());
    // Not the tree's: let go now; the tree's stay held.
    EXPECT_TRUE(Eventually([&] { return State(other.pid()) == 'R'; })) << State(other.pid());
    for (pid_t p : {a.pid(), b.pid()}) EXPECT_EQ(State(p), 't') << p;
    EXPECT_TRUE((*f)->Thaw().ok());
    f = Error("");
    EXPECT_EQ(cg.State(), "THAWED");
    for (pid_t p : {a.pid(), b.pid()}) EXPECT_EQ(State(p), 't') << p;
    seized.clear();
    for (pid_t p : {a.pid(), b.pid()})
      EXPECT_TRUE(Eventually([&] { return State(p) == 'R'; })) << p << " " << State(p);
  }
}

TEST_F(CgroupFreezeTest, V1FailedDumpLetsEverythingGo) {
  V1Freezer cg;
  TestCgroup out;
  Sitter a(cg.dir(), true), b(out.dir(), true);
  {
    auto f = CgroupFreezer::Freeze(cg.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    Status s = (*f)->CheckTasks({a.pid(), b.pid()});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(
        Err(s).find("pid " + std::to_string(b.pid()) + " is not in the frozen cgroup " + cg.dir()),
        std::string::npos)
        << Err(s);
  }
  // The failed dump's freezer is gone: nothing held, nothing frozen.
  EXPECT_EQ(cg.State(), "THAWED");
  EXPECT_TRUE(Eventually([&] { return State(a.pid()) == 'R'; })) << State(a.pid());
}

TEST_F(CgroupFreezeTest, V1AlreadyFrozenIsFrozenAgain) {
  V1Freezer cg;
  Sitter a(cg.dir(), true);
  ASSERT_TRUE(WriteText(cg.dir() + "/freezer.state", "FROZEN"));
  ASSERT_TRUE(Eventually([&] { return cg.State() == "FROZEN"; }));
  {
    auto f = CgroupFreezer::Freeze(cg.dir());
    ASSERT_TRUE(f.ok()) << Err(f);
    EXPECT_EQ(cg.State(), "THAWED");
    auto s = compel::SeizedProcess::Seize(a.pid());
    ASSERT_TRUE(s.ok()) << Err(s);
    ASSERT_TRUE((*f)->CheckTasks({a.pid()}).ok());
    f = Error("");  // the freezer goes first, the seized task after
  }
  EXPECT_TRUE(Eventually([&] { return cg.State() == "FROZEN"; })) << cg.State();
  ASSERT_TRUE(WriteText(cg.dir() + "/freezer.state", "THAWED"));
}

TEST_F(CgroupFreezeTest, V1RefusesToFreezeItself) {
  V1Freezer cg;
  std::string top = cg.dir().substr(0, cg.dir().rfind('/'));
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.procs", "0"));
  auto f = CgroupFreezer::Freeze(cg.dir());
  ASSERT_TRUE(WriteText(top + "/cgroup.procs", "0"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(Err(f).find("would freeze itself"), std::string::npos) << Err(f);
  EXPECT_EQ(cg.State(), "THAWED");
  f = CgroupFreezer::Freeze(top + "/../" + top.substr(top.rfind('/') + 1));
  ASSERT_FALSE(f.ok()) << "the hierarchy's root has no freezer.state";
}

}  // namespace
}  // namespace ckpt
