// criu/cgroup on real cgroups (label `cgroup`, root): what dump collects
// from processes placed in ckpt-test-* cgroups, what restore creates,
// writes, refuses and undoes, and corrupt cgroup images.
#include "criu/cgroup.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <filesystem>
#include <map>

#include "cgroup_test_util.h"
#include "images/image_dir.h"

namespace ckpt {
namespace {

using cgtest::CgroupOf;
using cgtest::IsDir;
using cgtest::ReadText;
using cgtest::Sitter;
using cgtest::TestCgroup;
using cgtest::WriteText;

class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override { cgtest::CommonSetUp(); }
};

std::map<std::string, std::string> Props(const pb::CgroupDirEntry& d) {
  std::map<std::string, std::string> m;
  for (const auto& p : d.props()) m[p.name()] = p.value();
  return m;
}

const pb::CgroupDirEntry* FindDir(const pb::CgroupEntry& cg, const std::string& rel) {
  for (const auto& d : cg.dirs())
    if (d.path() == rel) return &d;
  return nullptr;
}

std::string Err(const Status& s) { return s.ok() ? "(ok)" : s.error().message(); }
template <typename T>
std::string Err(const Result<T>& r) {
  return r.ok() ? "(ok)" : r.error().message();
}

TEST_F(CgroupTest, CollectEveryTaskAndTheDirsBetween) {
  TestCgroup cg;
  cg.Make("top/b/c");
  cg.Make("top/d");
  cg.Make("top/unused");
  Sitter a(cg.Dir("top")), b(cg.Dir("top/b/c")), d(cg.Dir("top/d"));
  Options o;
  auto r = CollectCgroups({a.pid(), b.pid(), d.pid()}, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->root(), cg.Cg("top"));
  EXPECT_FALSE(r->managed());
  std::vector<std::string> dirs;
  for (const auto& x : r->dirs()) {
    dirs.push_back(x.path());
    EXPECT_EQ(x.props_size(), 0) << "settings saved without --manage-cgroups";
  }
  EXPECT_EQ(dirs, (std::vector<std::string>{"", "b", "b/c", "d"}));
  ASSERT_EQ(r->tasks_size(), 3);
  EXPECT_EQ(r->tasks(0).pid(), uint32_t(a.pid()));
  EXPECT_EQ(r->tasks(0).path(), "");
  EXPECT_EQ(r->tasks(1).path(), "b/c");
  EXPECT_EQ(r->tasks(2).path(), "d");

  // The top is the deepest cgroup holding them all, even without the root task in it.
  r = CollectCgroups({b.pid(), d.pid()}, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->root(), cg.Cg("top"));
  r = CollectCgroups({b.pid()}, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->root(), cg.Cg("top/b/c"));
  EXPECT_EQ(r->dirs_size(), 1);

  // --cgroup-root at dump widens the saved subtree upwards, never sideways.
  o.cgroup_root = cg.cgroup();
  r = CollectCgroups({b.pid()}, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->root(), cg.cgroup());
  EXPECT_EQ(r->tasks(0).path(), "top/b/c");
  o.cgroup_root = cg.Cg("top/d");
  r = CollectCgroups({b.pid()}, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("is not an ancestor"), std::string::npos) << Err(r);
}

TEST_F(CgroupTest, CollectSettingsWithManage) {
  auto [ctrl, limit] = cgtest::LimitController();
  ASSERT_FALSE(ctrl.empty()) << "this system's cgroup2 hierarchy offers no pids, memory or "
                                "hugetlb controller to test settings with";
  cgtest::RootController on(ctrl);
  TestCgroup cg;
  cg.Make("a/b");
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  ASSERT_TRUE(WriteText(cg.Dir("a") + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  ASSERT_TRUE(WriteText(cg.Dir("a") + "/cgroup.max.descendants", "5"));
  ASSERT_TRUE(WriteText(cg.Dir("a/b") + "/" + limit, "4194304")) << strerror(errno);
  Sitter s(cg.Dir("a/b"));
  Options o;
  o.manage_cgroups = true;
  o.cgroup_root = cg.cgroup();
  auto r = CollectCgroups({s.pid()}, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_TRUE(r->managed());
  const pb::CgroupDirEntry* top = FindDir(*r, "");
  const pb::CgroupDirEntry* a = FindDir(*r, "a");
  const pb::CgroupDirEntry* b = FindDir(*r, "a/b");
  ASSERT_TRUE(top && a && b);
  EXPECT_EQ(Props(*top)["cgroup.subtree_control"], ctrl);
  EXPECT_EQ(Props(*a)["cgroup.subtree_control"], ctrl);
  EXPECT_EQ(Props(*a)["cgroup.max.descendants"], "5");
  EXPECT_EQ(Props(*b)[limit], "4194304");
  EXPECT_EQ(Props(*b).count("cgroup.type"), 0u) << "a domain cgroup's type is not saved";
  EXPECT_EQ(Props(*b).count("cgroup.procs"), 0u);
  EXPECT_EQ(std::vector<std::string>(b->controllers().begin(), b->controllers().end()),
            std::vector<std::string>{ctrl});
}

// A thread in another cgroup than its process (threaded subtree) is refused
// with --manage-cgroups (the tree would come back different).
TEST_F(CgroupTest, CollectRefusesThreadsInOtherCgroups) {
  TestCgroup cg;
  cg.Make("t1");
  cg.Make("t2");
  ASSERT_TRUE(WriteText(cg.Dir("t1") + "/cgroup.type", "threaded")) << strerror(errno);
  ASSERT_TRUE(WriteText(cg.Dir("t2") + "/cgroup.type", "threaded")) << strerror(errno);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    WriteText(cg.Dir("t1") + "/cgroup.procs", "0");
    pthread_t t;
    pthread_create(
        &t, nullptr,
        [](void* arg) -> void* {
          WriteText(*static_cast<std::string*>(arg) + "/cgroup.threads", "0");
          for (;;) pause();
        },
        new std::string(cg.Dir("t2")));
    usleep(100000);
    (void)!write(p[1], "x", 1);
    for (;;) pause();
  }
  close(p[1]);
  char c;
  ASSERT_EQ(read(p[0], &c, 1), 1);
  close(p[0]);
  Options o;
  auto plain = CollectCgroups({pid}, o);  // without --manage-cgroups: a warning
  o.manage_cgroups = true;
  auto r = CollectCgroups({pid}, o);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(plain.ok()) << Err(plain);
  EXPECT_EQ(plain->tasks(0).path(), "");
  EXPECT_EQ(plain->root(), cg.Cg("t1"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("threads in different cgroups are not supported"), std::string::npos)
      << Err(r);
  EXPECT_NE(Err(r).find("pid " + std::to_string(pid)), std::string::npos) << Err(r);
}

// A root task in a cgroup namespace of its own: the saved subtree starts
// at the namespace's root, which restore then names for the namespace code.
TEST_F(CgroupTest, CollectWidensToTheCgroupNamespaceRoot) {
  TestCgroup cg;
  cg.Make("ns/app");
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    char ok = 'n';
    if (WriteText(cg.Dir("ns") + "/cgroup.procs", "0") && unshare(CLONE_NEWCGROUP) == 0 &&
        WriteText(cg.Dir("ns/app") + "/cgroup.procs", "0") &&
        ReadText("/proc/self/cgroup").find("0::/app") != std::string::npos)
      ok = 'y';
    (void)!write(p[1], &ok, 1);
    for (;;) pause();
  }
  close(p[1]);
  char c = 0;
  EXPECT_EQ(read(p[0], &c, 1), 1);
  close(p[0]);
  Sitter outside(cg.Dir("ns/app"));  // the same cgroup, in ckpt's namespace
  Options o;
  auto r = CollectCgroups({pid, outside.pid()}, o);
  auto plain = CollectCgroups({outside.pid()}, o);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_EQ(c, 'y') << "the child could not make its cgroup namespace";
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->root(), cg.Cg("ns"));
  EXPECT_TRUE(r->has_ns_root());
  EXPECT_EQ(r->ns_root(), "");
  EXPECT_EQ(r->tasks(0).path(), "app");
  ASSERT_TRUE(plain.ok()) << Err(plain);
  EXPECT_EQ(plain->root(), cg.Cg("ns/app"));
  EXPECT_FALSE(plain->has_ns_root());

  // Restore names where the namespace must be made again (here: moved).
  Options ro;
  ro.cgroup_root = cg.Cg("again");
  auto back = CgroupRestore::Prepare(*r, ro);
  ASSERT_TRUE(back.ok()) << Err(back);
  EXPECT_EQ((*back)->NsRootDir(), cg.Dir("again"));
  EXPECT_EQ((*back)->TargetDir(uint32_t(pid)), cg.Dir("again/app"));
}

// An image as a dump with --manage-cgroups of `cg` would write it: top
// "<cg>/src", a task in "a" and one in "a/b", settings on both.
pb::CgroupEntry ManagedImage(const TestCgroup& cg, const std::string& ctrl,
                             const std::string& limit) {
  pb::CgroupEntry e;
  e.set_root(cg.Cg("src"));
  e.set_managed(true);
  auto dir = [&](const std::string& rel, std::vector<std::pair<std::string, std::string>> props,
                 bool with_ctrl) {
    pb::CgroupDirEntry* d = e.add_dirs();
    d->set_path(rel);
    if (with_ctrl && !ctrl.empty()) d->add_controllers(ctrl);
    for (auto& [n, v] : props) {
      pb::CgroupPropEntry* p = d->add_props();
      p->set_name(n);
      p->set_value(v);
    }
  };
  std::vector<std::pair<std::string, std::string>> top = {{"cgroup.max.depth", "4"}};
  std::vector<std::pair<std::string, std::string>> a = {{"cgroup.max.descendants", "3"}};
  std::vector<std::pair<std::string, std::string>> b = {{"cgroup.max.depth", "0"}};
  if (!ctrl.empty()) {
    top.push_back({"cgroup.subtree_control", ctrl});
    a.push_back({"cgroup.subtree_control", ctrl});
    b.push_back({limit, "4194304"});
  }
  dir("", top, true);
  dir("a", a, true);
  dir("a/b", b, true);
  pb::CgroupTaskEntry* t = e.add_tasks();
  t->set_pid(1001);
  t->set_path("a");
  t = e.add_tasks();
  t->set_pid(1002);
  t->set_path("a/b");
  return e;
}

TEST_F(CgroupTest, PrepareCreatesWritesPlacesAndUndoes) {
  auto [ctrl, limit] = cgtest::LimitController();
  ASSERT_FALSE(ctrl.empty()) << "no pids, memory or hugetlb controller in cgroup v2 here";
  cgtest::RootController on(ctrl);
  TestCgroup cg;
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  pb::CgroupEntry img = ManagedImage(cg, ctrl, limit);
  Options o;  // soft by default
  o.cgroup_root = cg.Cg("new/place");
  {
    auto r = CgroupRestore::Prepare(img, o);
    ASSERT_TRUE(r.ok()) << Err(r);
    // new, new/place (above the image's top, passing the controller down), a, a/b.
    EXPECT_EQ((*r)->created().size(), 4u);
    std::string top = cg.Dir("new/place");
    EXPECT_EQ(ReadText(cg.Dir("new") + "/cgroup.subtree_control"), ctrl);
    EXPECT_EQ(ReadText(top + "/cgroup.max.depth"), "4");
    EXPECT_EQ(ReadText(top + "/cgroup.subtree_control"), ctrl);
    EXPECT_EQ(ReadText(top + "/a/cgroup.max.descendants"), "3");
    EXPECT_EQ(ReadText(top + "/a/b/cgroup.max.depth"), "0");
    EXPECT_NE(ReadText(top + "/a/b/" + limit), "4194304") << "a limit came before the tasks";
    EXPECT_EQ((*r)->TargetDir(1002), top + "/a/b");
    EXPECT_EQ((*r)->TargetDir(77), "");
    // A fresh process goes where image pid 1002 was.
    cg.Make("start");  // not cg itself: it gives a controller to its children
    Sitter s(cg.Dir("start"));
    ASSERT_TRUE((*r)->Place(s.pid(), 1002).ok());
    EXPECT_EQ(CgroupOf(s.pid()), cg.Cg("new/place/a/b"));
    ASSERT_TRUE((*r)->Place(s.pid(), 4242).ok()) << "a pid the images do not name is left alone";
    EXPECT_EQ(CgroupOf(s.pid()), cg.Cg("new/place/a/b"));
    ASSERT_TRUE((*r)->ApplyLimits().ok());
    EXPECT_EQ(ReadText(top + "/a/b/" + limit), "4194304");
    s.Kill();  // reaped before the restore object goes
  }
  // Not committed: everything it made is gone.
  EXPECT_FALSE(IsDir(cg.Dir("new"))) << "a failed restore left cgroups behind";

  // Committed: it stays.
  {
    auto r = CgroupRestore::Prepare(img, o);
    ASSERT_TRUE(r.ok()) << Err(r);
    ASSERT_TRUE((*r)->ApplyLimits().ok());
    (*r)->Commit();
  }
  EXPECT_TRUE(IsDir(cg.Dir("new/place/a/b")));
  EXPECT_EQ(ReadText(cg.Dir("new/place/a/b") + "/" + limit), "4194304");
}

// --manage-cgroups=full into an existing top: it gets the controller for
// its children; undone, the made children go first, then the top gives
// the controller back.
TEST_F(CgroupTest, PrepareFullUndoesControllersOfExistingTop) {
  auto [ctrl, limit] = cgtest::LimitController();
  ASSERT_FALSE(ctrl.empty()) << "no pids, memory or hugetlb controller in cgroup v2 here";
  cgtest::RootController on(ctrl);
  TestCgroup cg;
  ASSERT_TRUE(WriteText(cg.dir() + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
  cg.Make("src");
  pb::CgroupEntry img = ManagedImage(cg, ctrl, limit);
  pb::CgroupPropEntry* top_limit = img.mutable_dirs(0)->add_props();  // into the existing top
  top_limit->set_name(limit);
  top_limit->set_value("2097152");
  // Values every limit file takes: pids.max up to 4M, hugetlb in 2 MB pages.
  ASSERT_TRUE(WriteText(cg.Dir("src") + "/" + limit, "6291456")) << strerror(errno);
  std::string old_limit = ReadText(cg.Dir("src") + "/" + limit);
  Options o;
  o.cgroup_mode = CgroupMode::kFull;
  {
    auto r = CgroupRestore::Prepare(img, o);
    ASSERT_TRUE(r.ok()) << Err(r);
    EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.subtree_control"), ctrl);
    EXPECT_EQ(ReadText(cg.Dir("src/a") + "/cgroup.subtree_control"), ctrl);
    ASSERT_TRUE((*r)->ApplyLimits().ok());
    EXPECT_EQ(ReadText(cg.Dir("src/a/b") + "/" + limit), "4194304");
    EXPECT_EQ(ReadText(cg.Dir("src") + "/" + limit), "2097152");
  }
  EXPECT_FALSE(IsDir(cg.Dir("src/a")));
  EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.subtree_control"), "");
  EXPECT_EQ(ReadText(cg.Dir("src") + "/" + limit), old_limit);
  EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.max.depth"), "max");
}

TEST_F(CgroupTest, PrepareModes) {
  TestCgroup cg;
  pb::CgroupEntry img = ManagedImage(cg, "", "");
  Options o;
  o.manage_cgroups = true;

  o.cgroup_mode = CgroupMode::kNone;  // must exist
  auto r = CgroupRestore::Prepare(img, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("cgroup " + cg.Cg("src") + " does not exist"), std::string::npos) << Err(r);
  o.cgroup_mode = CgroupMode::kProps;
  r = CgroupRestore::Prepare(img, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("--manage-cgroups=props"), std::string::npos) << Err(r);
  EXPECT_FALSE(IsDir(cg.Dir("src")));

  cg.Make("src/a/b");
  ASSERT_TRUE(WriteText(cg.Dir("src/a") + "/cgroup.max.descendants", "9"));
  o.cgroup_mode = CgroupMode::kNone;  // exists: placed, nothing written
  r = CgroupRestore::Prepare(img, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_TRUE((*r)->created().empty());
  EXPECT_EQ((*r)->TargetDir(1001), cg.Dir("src/a"));
  EXPECT_EQ(ReadText(cg.Dir("src/a") + "/cgroup.max.descendants"), "9");
  r = Error("");

  o.cgroup_mode = CgroupMode::kSoft;  // exists: not ours, not written
  r = CgroupRestore::Prepare(img, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(ReadText(cg.Dir("src/a") + "/cgroup.max.descendants"), "9");
  r = Error("");

  o.cgroup_mode = CgroupMode::kStrict;  // must not exist
  r = CgroupRestore::Prepare(img, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("exists already"), std::string::npos) << Err(r);

  // props/full write into existing cgroups; without Commit the old values come back.
  for (CgroupMode m : {CgroupMode::kProps, CgroupMode::kFull}) {
    o.cgroup_mode = m;
    {
      auto w = CgroupRestore::Prepare(img, o);
      ASSERT_TRUE(w.ok()) << Err(w);
      EXPECT_EQ(ReadText(cg.Dir("src/a") + "/cgroup.max.descendants"), "3");
      EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.max.depth"), "4");
    }
    EXPECT_EQ(ReadText(cg.Dir("src/a") + "/cgroup.max.descendants"), "9");
    EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.max.depth"), "max");
    EXPECT_TRUE(IsDir(cg.Dir("src/a/b"))) << "an existing cgroup was removed";
  }

  o.cgroup_mode = CgroupMode::kIgnore;  // nothing at all
  r = CgroupRestore::Prepare(img, o);
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ((*r)->TargetDir(1001), "");
}

// A setting the kernel refuses half-way: the error names the cgroup and
// the file; what was made is removed and what was changed is put back.
TEST_F(CgroupTest, PrepareFailingHalfWayLeavesNothing) {
  TestCgroup cg;
  cg.Make("src");
  pb::CgroupEntry img = ManagedImage(cg, "", "");
  img.mutable_dirs(2)->mutable_props(0)->set_value("not-a-number");  // a/b's cgroup.max.depth
  Options o;
  o.cgroup_mode = CgroupMode::kFull;
  auto r = CgroupRestore::Prepare(img, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("cgroup " + cg.Cg("src/a/b")), std::string::npos) << Err(r);
  EXPECT_NE(Err(r).find("cgroup.max.depth"), std::string::npos) << Err(r);
  EXPECT_FALSE(IsDir(cg.Dir("src/a"))) << "a half-made cgroup stayed";
  EXPECT_EQ(ReadText(cg.Dir("src") + "/cgroup.max.depth"), "max") << "a setting was not put back";
}

TEST_F(CgroupTest, PrepareRefusesMissingController) {
  TestCgroup cg;
  // A controller no kernel has, and one this kernel has outside v2 (if any):
  // checked before anything is created.
  std::vector<std::string> absent = {"ckptnosuch"};
  if (std::string v1 = cgtest::ControllerNotInV2(); !v1.empty()) absent.push_back(v1);
  for (const std::string& c : absent) {
    pb::CgroupEntry img = ManagedImage(cg, "", "");
    img.mutable_dirs(1)->add_controllers(c);
    Options o;
    auto r = CgroupRestore::Prepare(img, o);
    ASSERT_FALSE(r.ok()) << c;
    EXPECT_NE(Err(r).find("need the cgroup controller(s) " + c), std::string::npos) << Err(r);
    EXPECT_NE(Err(r).find("does not offer"), std::string::npos) << Err(r);
    EXPECT_FALSE(IsDir(cg.Dir("src"))) << "cgroups were created before the check";
  }
}

// Controllers the system has but the parent of the restored subtree does
// not give its children: named with the command that would fix it.
TEST_F(CgroupTest, PrepareRefusesControllerNotEnabledAbove) {
  auto [ctrl, limit] = cgtest::LimitController();
  ASSERT_FALSE(ctrl.empty()) << "no pids, memory or hugetlb controller in cgroup v2 here";
  cgtest::RootController on(ctrl);
  TestCgroup cg;
  pb::CgroupEntry img = ManagedImage(cg, ctrl, limit);  // cg's subtree_control is empty
  Options o;
  auto r = CgroupRestore::Prepare(img, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("cgroup " + cg.cgroup() + " does not give its children the controller(s) " +
                        ctrl),
            std::string::npos)
      << Err(r);
  EXPECT_NE(Err(r).find("echo '+" + ctrl + "' > " + cg.dir() + "/cgroup.subtree_control"),
            std::string::npos)
      << Err(r);
  EXPECT_FALSE(IsDir(cg.Dir("src")));
}

TEST_F(CgroupTest, CorruptImagesAreRefused) {
  TestCgroup cg;
  struct Case {
    const char* what;
    void (*mangle)(pb::CgroupEntry&);
    const char* expect;
  };
  const Case cases[] = {
      {"dotdot", [](pb::CgroupEntry& e) { e.mutable_dirs(1)->set_path("../../etc"); },
       "bad cgroup path"},
      {"absolute", [](pb::CgroupEntry& e) { e.mutable_dirs(1)->set_path("/a"); },
       "bad cgroup path"},
      {"procs",
       [](pb::CgroupEntry& e) { e.mutable_dirs(1)->mutable_props(0)->set_name("cgroup.procs"); },
       "'cgroup.procs' is not a setting ckpt restores"},
      {"kill",
       [](pb::CgroupEntry& e) { e.mutable_dirs(1)->mutable_props(0)->set_name("cgroup.kill"); },
       "not a setting ckpt restores"},
      {"orphan", [](pb::CgroupEntry& e) { e.mutable_dirs(2)->set_path("x/b"); },
       "comes before its parent"},
      {"twice", [](pb::CgroupEntry& e) { e.mutable_dirs(2)->set_path("a"); }, "listed twice"},
      {"top", [](pb::CgroupEntry& e) { e.mutable_dirs(0)->set_path("z"); }, "must be the top"},
      {"root", [](pb::CgroupEntry& e) { e.set_root("relative"); }, "bad root cgroup"},
      {"pid", [](pb::CgroupEntry& e) { e.mutable_tasks(1)->set_pid(1001); }, "twice"},
      {"nsroot", [](pb::CgroupEntry& e) { e.set_ns_root("zz"); }, "namespace root 'zz'"},
      {"nowhere", [](pb::CgroupEntry& e) { e.mutable_tasks(0)->set_path("q"); },
       "is not among the cgroups"},
      {"ctrl", [](pb::CgroupEntry& e) { e.mutable_dirs(0)->add_controllers("../x"); },
       "bad controller name"},
      {"type",
       [](pb::CgroupEntry& e) {
         auto* p = e.mutable_dirs(1)->add_props();
         p->set_name("cgroup.type");
         p->set_value("domain invalid");
       },
       "cannot be written"},
      {"nul",
       [](pb::CgroupEntry& e) {
         e.mutable_dirs(1)->mutable_props(0)->set_value(std::string("1\0 2", 4));
       },
       "bad value"},
  };
  for (const Case& c : cases) {
    pb::CgroupEntry img = ManagedImage(cg, "", "");
    c.mangle(img);
    Options o;
    o.cgroup_mode = CgroupMode::kFull;
    auto r = CgroupRestore::Prepare(img, o);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(Err(r).find(c.expect), std::string::npos) << c.what << ": " << Err(r);
    EXPECT_NE(Err(r).find("cgroup.img"), std::string::npos) << c.what << ": " << Err(r);
    EXPECT_FALSE(IsDir(cg.Dir("src"))) << c.what;
  }
}

// The file itself: truncated, or not there at all (dumped with
// --manage-cgroups=ignore: not an error, nothing to do).
TEST_F(CgroupTest, ImageFileRoundTripAndTruncation) {
  char tmpl[] = "/tmp/ckpt-cgroup-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string path = tmpl;
  TestCgroup cg;
  {
    auto dir = images::ImageDir::Create(path);
    ASSERT_TRUE(dir.ok()) << Err(dir);
    pb::CgroupEntry none;
    bool found = true;
    ASSERT_TRUE(ReadCgroups(**dir, &none, &found).ok());
    EXPECT_FALSE(found);
    ASSERT_TRUE(WriteCgroups(ManagedImage(cg, "", ""), **dir).ok());
    pb::CgroupEntry back;
    ASSERT_TRUE(ReadCgroups(**dir, &back, &found).ok());
    EXPECT_TRUE(found);
    EXPECT_EQ(back.root(), cg.Cg("src"));
    EXPECT_EQ(back.dirs_size(), 3);
    // Cut the record short.
    std::string file = path + "/cgroup.img";
    struct stat st;
    ASSERT_EQ(stat(file.c_str(), &st), 0);
    ASSERT_EQ(truncate(file.c_str(), st.st_size - 5), 0);
    auto bad = ReadCgroups(**dir, &back, &found);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(Err(bad).find("cgroup.img"), std::string::npos) << Err(bad);
    unlink(file.c_str());
  }
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace
}  // namespace ckpt
