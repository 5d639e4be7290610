// The id translations of criu/ns/user_ns.h on fixed maps (no namespace is
// made: these run as any user).
#include "criu/ns/user_ns.h"

#include <gtest/gtest.h>

namespace ckpt::ns {
namespace {

void Add(google::protobuf::RepeatedPtrField<pb::IdMapExtent>* m, uint32_t first, uint32_t lower,
         uint32_t count) {
  pb::IdMapExtent* x = m->Add();
  x->set_first(first);
  x->set_lower_first(lower);
  x->set_count(count);
}

// 0..65535 inside are 100000.. outside; 70000 inside is 5000 outside.
pb::UserNsEntry Maps(bool deny = true) {
  pb::UserNsEntry u;
  Add(u.mutable_uid_map(), 0, 100000, 65536);
  Add(u.mutable_uid_map(), 70000, 5000, 1);
  Add(u.mutable_gid_map(), 0, 100000, 65536);
  u.set_setgroups_deny(deny);
  for (uint32_t g : {5u, 100005u, 100007u}) u.add_host_groups(g);
  return u;
}

pb::CredsEntry Creds(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups) {
  pb::CredsEntry c;
  c.set_uid(uid), c.set_euid(uid), c.set_suid(uid), c.set_fsuid(uid);
  c.set_gid(gid), c.set_egid(gid), c.set_sgid(gid), c.set_fsgid(gid);
  for (uint32_t g : groups) c.add_groups(g);
  return c;
}

TEST(UserNs, CredsBecomeTheNamespacesIds) {
  pb::UserNsEntry u = Maps();
  pb::CredsEntry c = Creds(101000, 102001, {100007, 5, 100005});
  c.set_euid(5000);  // the second line of the map
  ASSERT_TRUE(CredsIntoUserNs(u, 42, &c).ok());
  EXPECT_EQ(c.uid(), 1000u);
  EXPECT_EQ(c.euid(), 70000u);
  EXPECT_EQ(c.suid(), 1000u);
  EXPECT_EQ(c.gid(), 2001u);
  // The unmapped group 5 is the root's own: it shows as the overflow gid.
  ASSERT_EQ(c.groups_size(), 3);
  EXPECT_EQ(c.groups(0), 7u);
  EXPECT_EQ(c.groups(2), 5u);
  EXPECT_NE(c.groups(1), 5u);
}

TEST(UserNs, UnmappedIdsAreRefusedNamingThem) {
  pb::UserNsEntry u = Maps();
  pb::CredsEntry c = Creds(1000, 100000, {5, 100005, 100007});
  Status s = CredsIntoUserNs(u, 42, &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("pid 42"), std::string::npos);
  EXPECT_NE(s.error().message().find("uid 1000"), std::string::npos);
  c = Creds(100000, 7, {5, 100005, 100007});
  s = CredsIntoUserNs(u, 42, &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("gid 7"), std::string::npos);
}

TEST(UserNs, GroupsOtherThanTheRootsNeedSetgroups) {
  // setgroups denied: any other list cannot be given back.
  pb::CredsEntry c = Creds(100000, 100000, {100005});
  Status s = CredsIntoUserNs(Maps(true), 7, &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("setgroups is denied"), std::string::npos);
  // Allowed: mapped groups are fine, an unmapped one is not.
  c = Creds(100000, 100000, {100005});
  ASSERT_TRUE(CredsIntoUserNs(Maps(false), 7, &c).ok());
  EXPECT_EQ(c.groups(0), 5u);
  c = Creds(100000, 100000, {100005, 9});
  s = CredsIntoUserNs(Maps(false), 7, &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("group 9"), std::string::npos);
}

TEST(UserNs, ImageChecks) {
  EXPECT_TRUE(CheckUserNsImage(Maps()).ok());
  pb::UserNsEntry u = Maps();
  u.clear_gid_map();
  EXPECT_FALSE(CheckUserNsImage(u).ok());
  u = Maps();
  Add(u.mutable_uid_map(), 80000, 0, 0);
  EXPECT_FALSE(CheckUserNsImage(u).ok());
  u = Maps();
  Add(u.mutable_uid_map(), 0xfffffff0u, 1, 0x20);
  EXPECT_FALSE(CheckUserNsImage(u).ok());
  u = Maps();
  for (int i = 0; i < 340; i++) Add(u.mutable_gid_map(), 100 + uint32_t(i), 200000, 1);
  EXPECT_FALSE(CheckUserNsImage(u).ok());
}

TEST(UserNs, IdsAndMountOptionsInside) {
  pb::UserNsEntry u = Maps();
  EXPECT_EQ(UidInside(&u, 100000), 0u);
  EXPECT_EQ(UidInside(&u, 5000), 70000u);
  EXPECT_EQ(UidInside(nullptr, 5000), 5000u);
  EXPECT_EQ(UidInside(&u, 3), 65534u);
  EXPECT_EQ(GidInside(&u, 100005), 5u);
  EXPECT_EQ(MountOptionInside(&u, "uid=100000"), "uid=0");
  EXPECT_EQ(MountOptionInside(&u, "gid=100005"), "gid=5");
  EXPECT_EQ(MountOptionInside(&u, "mode=1777"), "mode=1777");
  EXPECT_EQ(MountOptionInside(&u, "uid=x"), "uid=x");
  EXPECT_EQ(MountOptionInside(nullptr, "uid=100000"), "uid=100000");
}

TEST(UserNs, TidsInsideLeaveOutCkptsLevel) {
  EXPECT_EQ(TidsSettableInside(3), 2u);
  EXPECT_EQ(TidsSettableInside(2), 1u);
  EXPECT_EQ(TidsSettableInside(1), 1u);
}

TEST(UserNs, RootCloneFlags) {
  pb::NamespacesEntry e;
  EXPECT_EQ(RootUserNsCloneFlags(e), 0u);
  e.set_user(true);
  *e.mutable_user_ns() = Maps();
  e.set_net(true);
  e.mutable_user_ns()->set_owns_net(true);
  e.set_uts(true);  // owned by ckpt's user namespace: made by ckpt, inherited
  EXPECT_EQ(RootUserNsCloneFlags(e), uint64_t(CLONE_NEWUSER | CLONE_NEWNET));
}

}  // namespace
}  // namespace ckpt::ns
