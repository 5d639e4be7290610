// criu/cgroup_freeze (label `cgroup`, root): freezing a real cgroup with
// running processes, seizing the frozen tasks with compel, thawing.
#include "criu/cgroup_freeze.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ckpt
