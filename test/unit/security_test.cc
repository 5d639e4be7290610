// Unit tests for the pure parts of criu/seccomp and criu/lsm: the plan that
// decides which restored thread clones which (so filters are shared as at
// dump), and what a thread writes to its LSM attr file.
#include <gtest/gtest.h>

#include "criu/lsm.h"
#include "criu/seccomp.h"

namespace ckpt {
namespace {

using Plan = std::vector<std::pair<int, uint32_t>>;

TEST(PlanThreadClones, AllShareTheLeadersChain) {
  EXPECT_EQ(PlanThreadClones({{0, 1}, {0, 1}, {0, 1}}), (Plan{{-1, 0}, {0, 2}, {0, 2}}));
}

TEST(PlanThreadClones, NoSeccomp) {
  EXPECT_EQ(PlanThreadClones({{}, {}}), (Plan{{-1, 0}, {0, 0}}));
}

TEST(PlanThreadClones, ExtraFilterAndFewerFilters) {
  // Thread 1 added filter 2 on top; thread 2 was created before the
  // leader's filter 1.
  EXPECT_EQ(PlanThreadClones({{0, 1}, {0, 1, 2}, {0}}), (Plan{{-1, 0}, {0, 2}, {0, 1}}));
}

TEST(PlanThreadClones, SharedBeyondTheLeader) {
  // Threads 1 and 2 share filter 2, which the leader lacks: 2 is cloned by 1.
  EXPECT_EQ(PlanThreadClones({{0, 1}, {0, 2}, {0, 2, 3}, {0, 2}}),
            (Plan{{-1, 0}, {0, 1}, {1, 2}, {1, 2}}));
}

TEST(PlanThreadClones, DonorNeverPastItsOwnStart) {
  // Thread 2 shares only filter 0 with thread 1 (which started at 1 filter
  // from the leader): the lowest donor with the longest prefix is the leader.
  Plan p = PlanThreadClones({{0, 1}, {0, 2}, {0, 3}});
  EXPECT_EQ(p[2], (std::pair<int, uint32_t>{0, 1}));
}

TEST(AppArmor, ProfileName) {
  EXPECT_EQ(AppArmorProfileName("unconfined"), "unconfined");
  EXPECT_EQ(AppArmorProfileName("/usr/bin/foo (enforce)"), "/usr/bin/foo");
  EXPECT_EQ(AppArmorProfileName("docker-default (complain)"), "docker-default");
  EXPECT_EQ(AppArmorProfileName("a//&b (mixed)"), "a//&b");
}

TEST(LsmRestoreText, AppArmor) {
  HostLsm h{"apparmor", "attr/apparmor/current", {"capability", "apparmor"}};
  std::set<std::string> loaded = {"prof", "unconfined"};
  auto t = LsmRestoreText(h, "apparmor", "prof (enforce)", "unconfined", &loaded);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "changeprofile prof");
  t = LsmRestoreText(h, "apparmor", "prof (enforce)", "prof (enforce)", &loaded);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "");
  t = LsmRestoreText(h, "apparmor", "gone (enforce)", "unconfined", &loaded);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("'gone' is not loaded"), std::string::npos);
  t = LsmRestoreText(h, "apparmor", "gone (enforce)", "unconfined", nullptr);  // unknown: try
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "changeprofile gone");
}

TEST(LsmRestoreText, HostWithoutThatLsm) {
  HostLsm none{"", "", {"capability", "landlock"}};
  auto t = LsmRestoreText(none, "apparmor", "unconfined", "", nullptr);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "");
  t = LsmRestoreText(none, "apparmor", "prof (enforce)", "", nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(
      t.error().message().find("this host has no apparmor (active LSMs: capability, landlock)"),
      std::string::npos);
  t = LsmRestoreText(none, "selinux", "system_u:system_r:init_t:s0", "", nullptr);
  ASSERT_FALSE(t.ok());
}

TEST(LsmRestoreText, SelinuxWritesTheContext) {
  HostLsm h{"selinux", "attr/current", {"selinux"}};
  auto t = LsmRestoreText(h, "selinux", "u:r:a_t:s0", "u:r:b_t:s0", nullptr);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "u:r:a_t:s0");
}

TEST(DetectHostLsm, ListsThisHost) {
  auto h = DetectHostLsm();
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->active.empty());  // capability is always there
  if (!h->name.empty()) {
    EXPECT_FALSE(h->attr.empty());
  }
}

}  // namespace
}  // namespace ckpt
