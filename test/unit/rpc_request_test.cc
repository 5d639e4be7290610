// criu/rpc: criu_opts -> Options mapping, refusals, access checks, and the
// packet framing over a real SOCK_SEQPACKET socketpair.
#include "criu/rpc/rpc_request.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <string>

#include "criu/cgroup_v1.h"
#include "criu/rpc/rpc_server.h"

namespace ckpt::rpc {
namespace {

class RpcRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckpt-rpc-unit-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    dir_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd_, 0);
    me_.pid = getpid();
    me_.uid = 0;
    me_.gid = 0;
  }
  void TearDown() override {
    close(dir_fd_);
    rmdir(dir_.c_str());
  }
  criu_opts Base() {
    criu_opts o;
    o.set_images_dir_fd(dir_fd_);
    return o;
  }
  RequestContext Ctx(bool swrk = true) { return {me_, swrk}; }
  // The error of mapping `o`, "" if it maps.
  std::string Refusal(const criu_opts& o, criu_req_type t = DUMP, bool swrk = true) {
    auto r = MapRequestOptions(o, t, Ctx(swrk));
    return r.ok() ? "" : r.error().message();
  }

  std::string dir_;
  int dir_fd_ = -1;
  Peer me_;
};

TEST_F(RpcRequestTest, MapsDumpOptions) {
  criu_opts o = Base();
  o.set_pid(4242);
  o.set_leave_running(true);
  o.set_ext_unix_sk(true);
  o.set_tcp_established(true);
  o.set_shell_job(true);
  o.set_file_locks(true);
  o.set_tcp_skip_in_flight(true);
  o.set_log_level(4);
  o.set_log_file("dump.log");
  o.add_external("veth[eth0]:host0");
  ext_mount_map* m = o.add_ext_mnt();
  m->set_key("/data");
  m->set_val("data-key");
  o.set_manage_cgroups_mode(FULL);
  o.add_cg_root()->set_path("/a/b/");
  o.set_freeze_cgroup("/sys/fs/cgroup/x");
  o.set_network_lock(SKIP);
  o.set_notify_scripts(true);
  o.set_root("/newroot");
  auto r = MapRequestOptions(o, DUMP, Ctx());
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Options& op = r->opts;
  EXPECT_EQ(op.command, Command::kDump);
  EXPECT_EQ(op.pid, 4242);
  EXPECT_TRUE(op.leave_running && op.ext_unix_sk && op.tcp_established && op.shell_job &&
              op.file_locks && op.skip_in_flight);
  EXPECT_EQ(op.verbosity, 4);
  EXPECT_EQ(op.images_dir, dir_);              // the client's fd, resolved to its directory
  EXPECT_EQ(op.log_file, dir_ + "/dump.log");  // the work dir is the images dir
  ASSERT_EQ(op.external.size(), 2u);
  EXPECT_EQ(op.external[0], "mnt[/data]:data-key");
  EXPECT_EQ(op.external[1], "veth[eth0]:host0");
  EXPECT_TRUE(op.manage_cgroups);
  EXPECT_EQ(op.cgroup_mode, CgroupMode::kFull);
  EXPECT_EQ(op.cgroup_root, "/a/b");
  EXPECT_EQ(op.freeze_cgroup, "/sys/fs/cgroup/x");
  EXPECT_FALSE(op.network_lock);
  EXPECT_EQ(op.root, "/newroot");
  EXPECT_TRUE(r->notify);
}

TEST_F(RpcRequestTest, DefaultsAndNeutralValues) {
  criu_opts o = Base();
  // What runc sends explicitly with their neutral values.
  o.set_log_level(2);
  o.set_notify_scripts(false);
  o.set_manage_cgroups(false);
  o.set_lsm_profile("");
  o.set_evasive_devices(true);
  o.set_auto_dedup(false);
  o.set_lazy_pages(false);
  o.set_empty_ns(0);
  o.set_network_lock(IPTABLES);  // CRIU's default: ckpt locks with nftables
  o.set_orphan_pts_master(true);
  auto r = MapRequestOptions(o, DUMP, Ctx());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->opts.pid, getpid());  // no pid: the caller itself, as CRIU
  EXPECT_EQ(r->opts.verbosity, 2);
  EXPECT_FALSE(r->opts.manage_cgroups);
  EXPECT_TRUE(r->opts.network_lock);
  EXPECT_FALSE(r->notify);
  EXPECT_TRUE(r->opts.log_file.empty());
  EXPECT_EQ(r->opts.empty_ns, 0u);
  o.set_empty_ns(0x40000000);  // CLONE_NEWNET: runc always sends it
  o.set_log_level(9);
  auto r2 = MapRequestOptions(o, DUMP, Ctx());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->opts.verbosity, 4);
  EXPECT_EQ(r2->opts.empty_ns, 0x40000000u);
}

TEST_F(RpcRequestTest, ManageCgroupsModes) {
  struct {
    criu_cg_mode m;
    CgroupMode want;
    bool manage;
  } cases[] = {{IGNORE, CgroupMode::kIgnore, false}, {CG_NONE, CgroupMode::kNone, true},
               {PROPS, CgroupMode::kProps, true},    {SOFT, CgroupMode::kSoft, true},
               {STRICT, CgroupMode::kStrict, true},  {DEFAULT, CgroupMode::kSoft, true}};
  for (const auto& c : cases) {
    criu_opts o = Base();
    o.set_manage_cgroups_mode(c.m);
    auto r = MapRequestOptions(o, RESTORE, Ctx());
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->opts.cgroup_mode, c.want) << criu_cg_mode_Name(c.m);
    EXPECT_EQ(r->opts.manage_cgroups, c.manage) << criu_cg_mode_Name(c.m);
  }
  criu_opts o = Base();
  o.set_manage_cgroups(true);  // CRIU's old switch alone
  auto r = MapRequestOptions(o, RESTORE, Ctx());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->opts.manage_cgroups);
  EXPECT_EQ(r->opts.cgroup_mode, CgroupMode::kSoft);
  o.add_cg_root()->set_path("/a");
  o.add_cg_root()->set_path("/b");
  EXPECT_NE(Refusal(o, RESTORE).find("criu_opts.cg_root"), std::string::npos);
}

// runc on a hybrid host sends one cg_root per line of /proc/self/cgroup:
// the v1 controllers' roots (each under runc's own cgroup there) are the
// client's business and kept aside; the cgroup2 one ("") is ckpt's.
TEST_F(RpcRequestTest, CgroupRootsOfV1ControllersAreKeptAside) {
  std::set<std::string> v1 = cgroupv1::V1Controllers();
  criu_opts o = Base();
  o.set_manage_cgroups(true);
  cgroup_root* r2 = o.add_cg_root();
  r2->set_ctrl("");
  r2->set_path("/ct");
  for (const std::string& c : v1) {
    cgroup_root* r = o.add_cg_root();
    r->set_ctrl(c);
    r->set_path("/runc-own-" + c + "/ct");
  }
  auto r = MapRequestOptions(o, RESTORE, Ctx());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->opts.cgroup_root, "/ct");
  EXPECT_EQ(r->opts.cgroup_root_v1.size(), v1.size());
  // A controller without a v1 hierarchy here is cgroup2's: one root only.
  cgroup_root* bad = o.add_cg_root();
  bad->set_ctrl("no-such-controller");
  bad->set_path("/other");
  EXPECT_NE(Refusal(o, RESTORE).find("criu_opts.cg_root"), std::string::npos);
}

TEST_F(RpcRequestTest, MapsRestoreOptions) {
  char wtmpl[] = "/tmp/ckpt-rpc-unit-work-XXXXXX";
  ASSERT_NE(mkdtemp(wtmpl), nullptr);
  int wfd = open(wtmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  criu_opts o = Base();
  o.set_work_dir_fd(wfd);
  o.set_log_file("restore.log");
  o.set_rst_sibling(true);
  o.set_orphan_pts_master(true);
  o.set_tcp_close(true);
  o.set_config_file("/etc/criu/runc.conf");
  inherit_fd* f = o.add_inherit_fd();
  f->set_key("pipe:[1234]");
  f->set_fd(pipefd[0]);
  o.set_status_fd(pipefd[1]);
  o.set_pid(77);  // runc sends the old pid: the images name the pids
  {
    auto r = MapRequestOptions(o, RESTORE, Ctx(true));
    ASSERT_TRUE(r.ok()) << r.error().message();
    const Options& op = r->opts;
    EXPECT_EQ(op.command, Command::kRestore);
    EXPECT_TRUE(op.restore_detached);
    EXPECT_TRUE(op.rst_sibling);
    EXPECT_TRUE(op.orphan_pts_master);
    EXPECT_TRUE(op.tcp_close);
    EXPECT_EQ(op.config_file, "/etc/criu/runc.conf");
    EXPECT_EQ(op.log_file, std::string(wtmpl) + "/restore.log");
    ASSERT_EQ(op.inherit_fds.size(), 1u);
    EXPECT_EQ(op.inherit_fds[0].key, "pipe:[1234]");
    EXPECT_EQ(op.inherit_fds[0].fd, pipefd[0]);
    EXPECT_TRUE(bool(r->status_fd));
    EXPECT_TRUE(bool(r->work_dir_fd));
  }
  // The service is not swrk: rst_sibling and inherit_fd are refused.
  EXPECT_NE(Refusal(o, RESTORE, false).find("criu_opts.rst_sibling"), std::string::npos);
  o.set_rst_sibling(false);
  EXPECT_NE(Refusal(o, RESTORE, false).find("criu_opts.inherit_fd"), std::string::npos);
  // An inherit_fd that is not open in ckpt.
  o.mutable_inherit_fd(0)->set_fd(1000000);
  EXPECT_NE(Refusal(o, RESTORE, true).find("not open in ckpt"), std::string::npos);
  close(pipefd[0]);
  close(pipefd[1]);
  close(wfd);
  rmdir(wtmpl);
}

TEST_F(RpcRequestTest, MapsIncrementalDumps) {
  criu_opts o = Base();
  o.set_pid(4242);
  o.set_parent_img("../prev");
  o.set_track_mem(true);
  for (criu_req_type t : {PRE_DUMP, DUMP}) {
    auto r = MapRequestOptions(o, t, Ctx(true));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->opts.command, t == PRE_DUMP ? Command::kPreDump : Command::kDump);
    EXPECT_EQ(r->opts.pid, 4242);
    EXPECT_EQ(r->opts.prev_images_dir, "../prev");
    EXPECT_TRUE(r->opts.track_mem);
  }
  criu_opts rst = Base();
  rst.set_parent_img("../prev");
  EXPECT_NE(Refusal(rst, RESTORE).find("criu_opts.parent_img"), std::string::npos);
  rst = Base();
  rst.set_track_mem(true);
  EXPECT_NE(Refusal(rst, RESTORE).find("criu_opts.track_mem"), std::string::npos);
}

TEST_F(RpcRequestTest, MapsRestoreOnlyNamespaceAndLabelOptions) {
  criu_opts o = Base();
  o.set_lsm_profile("apparmor:runc-default");
  join_namespace* j = o.add_join_ns();
  j->set_ns("net");
  j->set_ns_file("/run/netns/x");
  auto r = MapRequestOptions(o, RESTORE, Ctx(true));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->opts.lsm_profile, "apparmor:runc-default");
  ASSERT_EQ(r->opts.join_ns.size(), 1u);
  EXPECT_EQ(r->opts.join_ns[0].ns, "net");
  EXPECT_EQ(r->opts.join_ns[0].file, "/run/netns/x");
  j->set_ns("mnt");
  EXPECT_NE(Refusal(o, RESTORE).find("criu_opts.join_ns"), std::string::npos);
}

TEST_F(RpcRequestTest, RestoreLazyPagesIsTheCommandLineOption) {
  criu_opts o = Base();
  o.set_lazy_pages(true);
  auto r = MapRequestOptions(o, RESTORE, Ctx(true));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->opts.lazy_pages);
  EXPECT_NE(Refusal(o, DUMP).find("criu_opts.lazy_pages"), std::string::npos);
}

TEST_F(RpcRequestTest, RefusesWhatCkptCannotHonour) {
  struct {
    const char* field;
    void (*set)(criu_opts&);
  } cases[] = {
      {"lazy_pages", [](criu_opts& o) { o.set_lazy_pages(true); }},
      {"lsm_profile", [](criu_opts& o) { o.set_lsm_profile("apparmor:foo"); }},
      {"empty_ns", [](criu_opts& o) { o.set_empty_ns(0x40000000 | 0x20000000); }},
      {"join_ns",
       [](criu_opts& o) {
         join_namespace* j = o.add_join_ns();
         j->set_ns("net");
         j->set_ns_file("/proc/1/ns/net");
       }},
      {"ps", [](criu_opts& o) { o.mutable_ps()->set_port(1234); }},
      {"exec_cmd", [](criu_opts& o) { o.add_exec_cmd("true"); }},
      {"auto_dedup", [](criu_opts& o) { o.set_auto_dedup(true); }},
      {"skip_mnt", [](criu_opts& o) { o.add_skip_mnt("/x"); }},
      {"tls", [](criu_opts& o) { o.set_tls(true); }},
      {"pidfd_store_sk", [](criu_opts& o) { o.set_pidfd_store_sk(5); }},
      {"ghost_limit", [](criu_opts& o) { o.set_ghost_limit(1); }},
      {"timeout", [](criu_opts& o) { o.set_timeout(10); }},
      {"log_file", [](criu_opts& o) { o.set_log_file("../x.log"); }},
      {"leave_stopped", [](criu_opts& o) { o.set_leave_stopped(true); }},
  };
  for (const auto& c : cases) {
    criu_opts o = Base();
    c.set(o);
    std::string err = Refusal(o);
    EXPECT_NE(err.find(std::string("criu_opts.") + c.field), std::string::npos)
        << c.field << ": " << err;
  }
  criu_opts none;
  none.set_images_dir_fd(-1);
  EXPECT_NE(Refusal(none).find("criu_opts.images_dir_fd"), std::string::npos);
  criu_opts bad = Base();
  bad.set_images_dir_fd(999999);
  EXPECT_NE(Refusal(bad).find("criu_opts.images_dir_fd"), std::string::npos);
}

TEST_F(RpcRequestTest, CallerThatIsNotRoot) {
  // Another uid than root: nobody when the test runs as root (which then
  // gives it the test's directory), else the test's own.
  Peer other = me_;
  other.uid = other.gid = getuid() == 0 ? 65534 : getuid();
  if (getuid() == 0) {
    ASSERT_EQ(chown(dir_.c_str(), other.uid, other.gid), 0);
  }
  RequestContext ctx{other, true};
  criu_opts o = Base();
  o.set_root("/");
  auto r = MapRequestOptions(o, DUMP, ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("criu_opts.root"), std::string::npos);
  criu_opts path;
  path.set_images_dir_fd(-1);
  path.set_images_dir(dir_);
  r = MapRequestOptions(path, DUMP, ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("criu_opts.images_dir"), std::string::npos);
  // ckpt writes as root: only into the caller's own directories.
  int slash = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  criu_opts theirs;
  theirs.set_images_dir_fd(slash);
  r = MapRequestOptions(theirs, DUMP, ctx);
  close(slash);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("must own the directory"), std::string::npos);
  // A restore must leave cgroups alone.
  criu_opts rs = Base();
  r = MapRequestOptions(rs, RESTORE, ctx);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("manage_cgroups_mode"), std::string::npos);
  rs.set_manage_cgroups_mode(IGNORE);
  r = MapRequestOptions(rs, RESTORE, ctx);
  EXPECT_TRUE(r.ok()) << r.error().message();
  // init runs as root: not the caller's to dump; root may.
  Status s = CheckDumpAccess(other, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("access denied"), std::string::npos);
  EXPECT_TRUE(CheckDumpAccess(me_, getpid()).ok());
}

TEST(RpcTypes, Names) {
  EXPECT_EQ(RequestTypeName(DUMP), "DUMP");
  EXPECT_EQ(RequestTypeName(WAIT_PID), "WAIT_PID");
  EXPECT_EQ(RequestTypeName(99), "type 99");
}

class RpcFramingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk_), 0);
  }
  void TearDown() override {
    if (sk_[0] >= 0) close(sk_[0]);
    if (sk_[1] >= 0) close(sk_[1]);
  }
  void SendRaw(const std::string& b) {
    ASSERT_EQ(send(sk_[0], b.data(), b.size(), 0), ssize_t(b.size()));
  }
  int sk_[2] = {-1, -1};
};

TEST_F(RpcFramingTest, RequestsGarbageAndClose) {
  criu_req req;
  req.set_type(VERSION);
  SendRaw(req.SerializeAsString());
  SendRaw("\xff\xff\xff\xff");  // garbage
  criu_req dump;
  dump.set_type(DUMP);
  dump.mutable_opts()->set_images_dir_fd(3);
  dump.mutable_opts()->set_log_file("dump.log");
  std::string full = dump.SerializeAsString();
  SendRaw(full.substr(0, full.size() - 4));  // truncated
  SendRaw(std::string("\x08\x63", 2));       // type 99: unknown to the schema
  criu_req no_images;                        // opts without their required field
  no_images.set_type(DUMP);
  no_images.mutable_opts()->set_pid(1);
  SendRaw(no_images.SerializePartialAsString());
  SendRaw(std::string());  // empty packet
  req.set_type(CHECK);
  SendRaw(req.SerializeAsString());
  close(sk_[0]);
  sk_[0] = -1;

  criu_req got;
  int unknown;
  auto r = RecvRequest(sk_[1], &got, &unknown);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_EQ(got.type(), VERSION);
  EXPECT_FALSE(RecvRequest(sk_[1], &got, &unknown).ok());  // garbage
  EXPECT_FALSE(RecvRequest(sk_[1], &got, &unknown).ok());  // truncated
  r = RecvRequest(sk_[1], &got, &unknown);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_EQ(unknown, 99);
  r = RecvRequest(sk_[1], &got, &unknown);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("images_dir_fd"), std::string::npos);
  EXPECT_FALSE(RecvRequest(sk_[1], &got, &unknown).ok());  // empty
  r = RecvRequest(sk_[1], &got, &unknown);
  ASSERT_TRUE(r.ok() && *r);
  EXPECT_EQ(got.type(), CHECK);
  r = RecvRequest(sk_[1], &got, &unknown);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);  // closed
}

TEST_F(RpcFramingTest, ResponseCarriesAnFd) {
  criu_resp r;
  r.set_type(NOTIFY);
  r.set_success(true);
  r.mutable_notify()->set_script("orphan-pts-master");
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_TRUE(SendResponse(sk_[1], r, p[1]).ok());
  char buf[256];
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {buf, sizeof(buf)};
  struct msghdr m = {};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = cbuf;
  m.msg_controllen = sizeof(cbuf);
  ssize_t n = recvmsg(sk_[0], &m, 0);
  ASSERT_GT(n, 0);
  criu_resp got;
  ASSERT_TRUE(got.ParseFromArray(buf, int(n)));
  EXPECT_EQ(got.notify().script(), "orphan-pts-master");
  struct cmsghdr* c = CMSG_FIRSTHDR(&m);
  ASSERT_NE(c, nullptr);
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(int));
  ASSERT_EQ(write(fd, "z", 1), 1);  // the same pipe
  char z;
  ASSERT_EQ(read(p[0], &z, 1), 1);
  EXPECT_EQ(z, 'z');
  close(fd);
  close(p[0]);
  close(p[1]);
}

}  // namespace
}  // namespace ckpt::rpc
