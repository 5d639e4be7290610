// Unit tests for the pure permission checks of criu/security.h: which
// tasks a plain user may trace, which images they may restore. The end to
// end test with a real user is test/unpriv.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "criu/security.h"
#include "criu/task_images.h"

namespace ckpt::security {
namespace {

constexpr uint64_t kCr = 1ull << kCapCheckpointRestore;

Caller User(uint32_t uid = 1000, uint32_t gid = 1000) {
  Caller c;
  for (int i = 0; i < 4; i++) c.uid[i] = uid, c.gid[i] = gid;
  c.groups = {gid, 27};
  c.cap_prm = c.cap_eff = kCr;
  c.rlim_max.assign(RLIM_NLIMITS, 4096);
  return c;
}

Target Task(uint32_t uid = 1000, uint32_t gid = 1000) {
  Target t;
  t.pid = 4242;
  t.comm = "victim";
  for (int i = 0; i < 4; i++) t.status.uid[i] = uid, t.status.gid[i] = gid;
  return t;
}

std::string Msg(const Status& s) { return s.ok() ? "ok" : s.error().message(); }

TEST(CheckMayTrace, OwnProcess) { EXPECT_TRUE(CheckMayTrace(User(), Task()).ok()); }

TEST(CheckMayTrace, AnotherUsersProcessIsNamed) {
  Status s = CheckMayTrace(User(), Task(0, 0));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().err(), EPERM);
  EXPECT_NE(Msg(s).find("pid 4242 ('victim') belongs to uid 0; you are uid 1000"),
            std::string::npos)
      << Msg(s);
}

TEST(CheckMayTrace, SavedSetUidOfAnotherUserIsRefused) {
  Target t = Task();
  t.status.uid[2] = 0;  // a setuid program that dropped only its euid
  EXPECT_NE(Msg(CheckMayTrace(User(), t)).find("belongs to uid 0"), std::string::npos);
}

TEST(CheckMayTrace, OtherGidIsRefused) {
  Target t = Task();
  t.status.gid[1] = 42;
  EXPECT_NE(Msg(CheckMayTrace(User(), t)).find("effective gid is 42"), std::string::npos);
}

TEST(CheckMayTrace, NotDumpableIsRefused) {
  Target t = Task();
  t.dumpable = false;
  EXPECT_NE(Msg(CheckMayTrace(User(), t)).find("not dumpable"), std::string::npos);
}

TEST(CheckMayTrace, TargetWithMoreCapabilitiesIsRefused) {
  Target t = Task();
  t.status.cap_prm = kCr | 1ull << kCapSysAdmin;
  EXPECT_NE(Msg(CheckMayTrace(User(), t)).find("holds capability 21"), std::string::npos);
}

TEST(CheckMayTrace, SysPtraceReachesAnyone) {
  Caller c = User();
  c.cap_eff |= 1ull << kCapSysPtrace;
  Target t = Task(0, 0);
  t.dumpable = false;
  EXPECT_TRUE(CheckMayTrace(c, t).ok());
}

TEST(CheckMayTrace, YamaScopes) {
  Caller c = User();
  c.yama_scope = 1;  // descendants: not visible here, the seize decides
  EXPECT_TRUE(CheckMayTrace(c, Task()).ok());
  c.yama_scope = 2;
  EXPECT_NE(Msg(CheckMayTrace(c, Task())).find("ptrace_scope is 2"), std::string::npos);
  c.cap_eff |= 1ull << kCapSysPtrace;
  EXPECT_TRUE(CheckMayTrace(c, Task()).ok());
  c.yama_scope = 3;
  EXPECT_NE(Msg(CheckMayTrace(c, Task())).find("ptrace_scope is 3"), std::string::npos);
}

TreeImages Tree(uint32_t uid = 1000, uint32_t gid = 1000) {
  TreeImages tree;
  tree.tasks.emplace_back();
  TaskImages& t = tree.tasks.back();
  t.pstree.set_pid(77);
  t.core.set_comm("sleeper");
  pb::CredsEntry* c = t.core.mutable_creds();
  c->set_uid(uid), c->set_euid(uid), c->set_suid(uid), c->set_fsuid(uid);
  c->set_gid(gid), c->set_egid(gid), c->set_sgid(gid), c->set_fsgid(gid);
  c->add_groups(27), c->add_groups(gid);
  c->set_cap_bnd(~0ull);
  pb::RlimitEntry* r = t.core.add_rlimits();
  r->set_resource(RLIMIT_NOFILE), r->set_cur(1024), r->set_max(4096);
  return tree;
}

TEST(CheckMayRestore, OwnImages) {
  EXPECT_TRUE(CheckMayRestore(User(), Tree()).ok()) << Msg(CheckMayRestore(User(), Tree()));
}

TEST(CheckMayRestore, WithoutTheCapabilityTheMessageSaysWhatIsMissing) {
  Caller c = User();
  c.cap_prm = c.cap_eff = 0;
  EXPECT_EQ(Msg(CheckMayRestore(c, Tree())),
            "restore needs CAP_CHECKPOINT_RESTORE to choose pids (clone3 set_tid); give it with "
            "setcap cap_checkpoint_restore+eip ckpt or run as root");
}

TEST(CheckMayRestore, RootImagesAreRefusedNamingTaskAndField) {
  Status s = CheckMayRestore(User(), Tree(0, 1000));
  EXPECT_NE(Msg(s).find("pid 77 of the images ('sleeper'): its real uid is 0; you are uid 1000"),
            std::string::npos)
      << Msg(s);
}

TEST(CheckMayRestore, AnyOfTheCallersOwnIdsMayBeTaken) {
  Caller c = User();
  c.uid[2] = 2000;  // saved
  TreeImages tree = Tree();
  tree.tasks[0].core.mutable_creds()->set_euid(2000);
  EXPECT_TRUE(CheckMayRestore(c, tree).ok());
  tree.tasks[0].core.mutable_creds()->set_suid(3000);
  EXPECT_NE(Msg(CheckMayRestore(c, tree)).find("its saved uid is 3000"), std::string::npos);
  tree = Tree();
  tree.tasks[0].core.mutable_creds()->set_fsgid(5);
  EXPECT_NE(Msg(CheckMayRestore(c, tree)).find("its fs gid is 5"), std::string::npos);
}

TEST(CheckMayRestore, GroupsMustBeTheCallersOwn) {
  TreeImages tree = Tree();
  tree.tasks[0].core.mutable_creds()->add_groups(0);
  EXPECT_NE(Msg(CheckMayRestore(User(), tree)).find("in group 0, which you are not in"),
            std::string::npos);
  tree = Tree();
  tree.tasks[0].core.mutable_creds()->clear_groups();
  EXPECT_NE(Msg(CheckMayRestore(User(), tree)).find("needs CAP_SETGID"), std::string::npos);
}

TEST(CheckMayRestore, CapabilitiesBeyondTheCallersAreRefused) {
  TreeImages tree = Tree();
  tree.tasks[0].core.mutable_creds()->set_cap_prm(kCr);  // the caller has it
  EXPECT_TRUE(CheckMayRestore(User(), tree).ok());
  tree.tasks[0].core.mutable_creds()->set_cap_amb(1ull << kCapSysAdmin);
  EXPECT_NE(Msg(CheckMayRestore(User(), tree))
                .find("ambient capabilities 0x200000 include capability 21"),
            std::string::npos)
      << Msg(CheckMayRestore(User(), tree));
}

TEST(CheckMayRestore, SecurebitsAndHardLimits) {
  TreeImages tree = Tree();
  tree.tasks[0].core.set_securebits(4);
  EXPECT_NE(Msg(CheckMayRestore(User(), tree)).find("needs CAP_SETPCAP"), std::string::npos);
  tree = Tree();
  tree.tasks[0].core.mutable_rlimits(0)->set_max(RLIM_INFINITY);
  EXPECT_NE(Msg(CheckMayRestore(User(), tree))
                .find("its hard RLIMIT_NOFILE (unlimited) is above yours (4096)"),
            std::string::npos);
  Caller c = User();
  c.cap_eff |= 1ull << kCapSysResource;
  EXPECT_TRUE(CheckMayRestore(c, tree).ok());
}

TEST(CheckMayRestore, TcpEstablishedNeedsNetAdmin) {
  EXPECT_NE(
      Msg(CheckMayRestore(User(), Tree(), true)).find("--tcp-established needs CAP_NET_ADMIN"),
      std::string::npos);
  Caller c = User();
  c.cap_eff |= 1ull << kCapNetAdmin;
  EXPECT_TRUE(CheckMayRestore(c, Tree(), true).ok());
}

TEST(CheckMayRestore, NamespacesNeedRoot) {
  TreeImages tree = Tree();
  tree.namespaces.set_pid(true);
  tree.namespaces.set_net(true);
  EXPECT_NE(Msg(CheckMayRestore(User(), tree)).find("namespaces of their own (pid, net)"),
            std::string::npos);
}

TEST(CheckMayRestore, ZombiesAndHelpersCarryNoCredentials) {
  TreeImages tree = Tree();
  tree.tasks.emplace_back();
  tree.tasks.back().pstree.set_pid(78);
  tree.tasks.back().pstree.set_zombie(true);
  EXPECT_TRUE(CheckMayRestore(User(), tree).ok());
}

TEST(CheckMayRestore, AFullyPrivilegedCallerIsNotRestricted) {
  Caller c = User(0, 0);
  c.cap_prm = c.cap_eff = ~(1ull << kCapSysResource);  // as this machine's root
  EXPECT_TRUE(c.Privileged());
  TreeImages tree = Tree(0, 0);
  tree.namespaces.set_user(true);
  tree.tasks[0].core.mutable_creds()->set_cap_prm(~0ull);
  EXPECT_TRUE(CheckMayRestore(c, tree).ok());
}

}  // namespace
}  // namespace ckpt::security
