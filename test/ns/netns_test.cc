// A network namespace made with ip/nft, saved with DumpNetNamespace, made
// again with RestoreNetNamespace in a fresh namespace, and compared through
// what ip and nft print. main() moves the whole test into a network
// namespace of its own first: that is the "host" (ckpt's namespace) here,
// where the outer ends of veths go; it goes away with the test process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "criu/ns/net_ns.h"
#include "images/image_dir.h"
#include "proto/net_ns.pb.h"

namespace ckpt::ns {
namespace {

// Runs argv, returns its stdout (stderr too when `err`); status in *rc.
std::string Capture(const std::vector<std::string>& argv, int* rc = nullptr, bool err = false) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    if (err) dup2(p[1], 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) out.append(buf, size_t(n));
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (rc) *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
  return out;
}

std::string Sh(const std::string& cmd, int* rc = nullptr) {
  return Capture({"sh", "-c", cmd}, rc, true);
}
// A shell command inside the network namespace of `pid`.
std::string InNs(pid_t pid, const std::string& cmd, int* rc = nullptr) {
  return Capture({"nsenter", "-t", std::to_string(pid), "-n", "sh", "-c", cmd}, rc, true);
}

// A child process alone in a new network namespace: runs `fn` there (its
// result, "" for success, comes back as result()), then waits until this
// object goes, and is killed and reaped by the destructor.
class NsChild {
 public:
  explicit NsChild(const std::function<std::string()>& fn) {
    int res[2], ctl[2];
    if (pipe2(res, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0) abort();
    pid_ = fork();
    if (pid_ == 0) {
      close(res[0]);
      close(ctl[1]);
      std::string r = unshare(CLONE_NEWNET) == 0 ? fn() : "unshare(CLONE_NEWNET) failed";
      if (r.empty()) r = "ok";
      (void)!write(res[1], r.data(), r.size());
      close(res[1]);
      char c;
      while (read(ctl[0], &c, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
    close(res[1]);
    close(ctl[0]);
    ctl_ = ctl[1];
    char buf[8192];
    ssize_t n;
    while ((n = read(res[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) result_.append(buf, size_t(n));
    close(res[0]);
  }
  ~NsChild() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    close(ctl_);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  // "ok" or what failed.
  const std::string& result() const { return result_; }

 private:
  pid_t pid_ = -1;
  int ctl_ = -1;
  std::string result_;
};

std::string Replace(std::string s, const std::string& re, const std::string& with) {
  return std::regex_replace(s, std::regex(re), with);
}

// What ip and nft print of a namespace, with what legitimately differs
// between two namespaces made at different times taken out.
struct Snapshot {
  std::string links, addrs, routes, rules, sysctls, nft;
};

Snapshot Take(pid_t pid, const std::string& nft_tables) {
  Snapshot s;
  s.links = InNs(pid, "ip -d link show");
  s.links = Replace(s.links, "link-netnsid [0-9]+", "link-netnsid N");
  s.links = Replace(s.links, "_timer +[0-9.]+", "_timer T");
  s.addrs = InNs(pid, "ip addr show");
  s.addrs = Replace(s.addrs, "(valid|preferred)_lft [0-9]+sec", "$1_lft N");
  s.routes = InNs(pid, "ip route show table all; ip -6 route show table all");
  s.routes = Replace(s.routes, "expires [0-9]+sec", "expires N");
  s.rules = InNs(pid, "ip rule show; ip -6 rule show");
  // Every per-namespace sysctl but the secret and the ones that count.
  s.sysctls = InNs(pid,
                   "sysctl -a 2>/dev/null | grep -E '^net\\.(ipv4|ipv6|core|unix)\\.' | "
                   "grep -v -E 'stable_secret|tcp_fastopen_key|hash_seed'");
  for (const auto& t : {nft_tables}) s.nft += InNs(pid, "nft list table " + t);
  return s;
}

void ExpectSame(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.links, b.links);
  EXPECT_EQ(a.addrs, b.addrs);
  EXPECT_EQ(a.routes, b.routes);
  EXPECT_EQ(a.rules, b.rules);
  EXPECT_EQ(a.sysctls, b.sysctls);
  EXPECT_EQ(a.nft, b.nft);
}

// Waits (bounded) until no IPv6 address of `pid`'s namespace is tentative:
// restored addresses go through duplicate address detection again.
void WaitNoTentative(pid_t pid) {
  for (int i = 0; i < 100; i++) {
    if (InNs(pid, "ip addr show").find("tentative") == std::string::npos) return;
    usleep(100 * 1000);
  }
}

// Waits (bounded) until the device `name` is gone from this namespace (a
// dead namespace's devices go asynchronously).
bool WaitGone(const std::string& name) {
  for (int i = 0; i < 200; i++) {
    int rc = 0;
    Sh("ip link show " + name, &rc);
    if (rc != 0) return true;
    usleep(50 * 1000);
  }
  return false;
}

class ImageTmp {
 public:
  ImageTmp() {
    char t[] = "/tmp/ckpt-netns-XXXXXX";
    if (!mkdtemp(t)) abort();
    path_ = t;
  }
  ~ImageTmp() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char kSetup[] = R"(set -e
ip link set lo up
ip link add d0 type veth peer name p0
ip link set d0 address 02:00:00:00:00:01 mtu 1400 txqueuelen 500
ip link set d0 alias "an end"
ip link add d1 type veth peer name p1
ip link set d1 multicast off
ip link add br0 type bridge
ip link set d1 master br0
ip link add m0 link d0 type macvlan mode private
ip link set p0 up
ip link set m0 up
echo 0 > /proc/sys/net/ipv6/conf/d0/accept_dad
echo 1 > /proc/sys/net/ipv4/conf/d0/rp_filter
echo 1 > /proc/sys/net/ipv4/ip_forward
echo "20000 30000" > /proc/sys/net/ipv4/ip_local_port_range
echo 512 > /proc/sys/net/core/somaxconn
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad
ip addr add 10.10.0.1/24 dev d0
ip addr add 10.10.0.2/24 dev d0
ip addr add 10.10.1.1/24 dev d0 valid_lft 3000 preferred_lft 2000
ip -6 addr add fd00::1/64 dev d0
ip link set d0 up
ip link set br0 up
ip route add 10.20.0.0/16 via 10.10.0.254 table 100
ip route add default via 10.10.0.254 dev d0
ip route add blackhole 10.30.0.0/16
ip route add 10.40.0.0/16 via 10.20.0.1 table 100 onlink dev d0
ip -6 route add fd01::/64 via fd00::fe dev d0 table 200
ip rule add from 10.10.0.0/24 lookup 100 pref 1000
ip rule add not fwmark 0x10 lookup 200 pref 1001
ip -6 rule add to fd01::/64 lookup 200 pref 1002
nft -f - <<'EOF'
table inet filt {
  counter hits { packets 7 bytes 700 }
  set blocked { type ipv4_addr; flags interval; elements = { 192.0.2.0/24, 198.51.100.7 } }
  map ports { type inet_service : verdict; elements = { 22 : jump other, 80 : accept } }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @blocked counter packets 3 bytes 300 drop
    tcp dport { 22, 80, 443 } counter name hits accept
    tcp dport vmap @ports
  }
  chain other {
    counter packets 1 bytes 2
  }
}
table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "d0" masquerade
  }
}
table ip ckpt-run-1-2-test {
  chain c {
  }
}
EOF
)";

TEST(NetNs, DumpAndRestoreMatch) {
  NsChild orig([] {
    int rc = 0;
    std::string out = Sh(kSetup, &rc);
    return rc == 0 ? "" : out;
  });
  ASSERT_EQ(orig.result(), "ok");
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  Status st = DumpNetNamespace(orig.pid(), {}, **dir);
  ASSERT_TRUE(st.ok()) << st.error().message();
  {
    // Sysctls the setup changed are marked so, the others not.
    auto rd = images::ImageDir::Open(img.path());
    ASSERT_TRUE(rd.ok());
    auto r = (*rd)->OpenReader(images::ImageType::kNetNsSysctl);
    ASSERT_TRUE(r.ok());
    std::map<std::string, bool> changed;
    pb::NetSysctlEntry e;
    while (true) {
      auto got = r->Read(e);
      ASSERT_TRUE(got.ok()) << got.error().message();
      if (!got.value()) break;
      changed[e.path()] = e.changed();
    }
    EXPECT_TRUE(changed.at("ipv4/ip_forward"));
    EXPECT_TRUE(changed.at("ipv4/conf/d0/rp_filter"));
    EXPECT_TRUE(changed.at("core/somaxconn"));
    EXPECT_FALSE(changed.at("ipv4/tcp_syncookies"));
    EXPECT_FALSE(changed.at("ipv6/conf/all/forwarding"));
  }

  UniqueFd host(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  NsChild restored([&] {
    auto rd = images::ImageDir::Open(img.path());
    if (!rd.ok()) return rd.error().message();
    Status r = RestoreNetNamespace(**rd, {}, host.get());
    return r.ok() ? std::string() : r.error().message();
  });
  ASSERT_EQ(restored.result(), "ok");
  WaitNoTentative(restored.pid());
  WaitNoTentative(orig.pid());
  Snapshot a = Take(orig.pid(), "inet filt; nft list table ip nat");
  Snapshot b = Take(restored.pid(), "inet filt; nft list table ip nat");
  ExpectSame(a, b);
  // ckpt's own table stays behind.
  EXPECT_NE(InNs(orig.pid(), "nft list tables").find("ckpt-run-1-2-test"), std::string::npos);
  EXPECT_EQ(InNs(restored.pid(), "nft list tables").find("ckpt-"), std::string::npos);
}

// Restores the image at `path` in a fresh namespace child with `o`.
std::unique_ptr<NsChild> RestoreIn(const std::string& path, const NetNsOptions& o = {}) {
  int host = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  auto c = std::make_unique<NsChild>([&] {
    auto rd = images::ImageDir::Open(path);
    if (!rd.ok()) return rd.error().message();
    Status r = RestoreNetNamespace(**rd, o, host);
    return r.ok() ? std::string() : r.error().message();
  });
  close(host);
  return c;
}

// Removes devices of this (the test's "host") namespace when a test ends.
struct HostDevices {
  std::vector<std::string> names;
  ~HostDevices() {
    for (const auto& n : names) Sh("ip link del " + n + " 2>/dev/null");
  }
};

// A namespace with a veth whose other end, outer0, is in the test's
// namespace, a port of bridge brh there.
std::unique_ptr<NsChild> VethNamespace() {
  std::string me = std::to_string(getpid());
  auto c = std::make_unique<NsChild>([me] {
    int rc = 0;
    std::string out =
        Sh("set -e; ip link set lo up; ip link add eth0 type veth peer name outer0 netns " + me +
               "; ip link set eth0 address 02:00:00:00:00:02; ip addr add "
               "10.99.0.2/24 dev eth0; ip link set eth0 up; ip route add default via "
               "10.99.0.1",
           &rc);
    return rc == 0 ? std::string() : out;
  });
  if (c->result() == "ok") {
    Sh("ip link set outer0 address 02:00:00:00:00:03 mtu 1450; ip link set outer0 master brh up");
  }
  return c;
}

TEST(NetNs, VethOuterEndComesBackInCkptsNamespace) {
  HostDevices hd{{"brh", "outer0"}};
  int rc = 0;
  Sh("ip link add brh type bridge && ip link set brh up", &rc);
  ASSERT_EQ(rc, 0);
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  {
    auto orig = VethNamespace();
    ASSERT_EQ(orig->result(), "ok");
    Status st = DumpNetNamespace(orig->pid(), {}, **dir);
    ASSERT_TRUE(st.ok()) << st.error().message();
    orig->Stop();
  }
  ASSERT_TRUE(WaitGone("outer0"));  // the dumped namespace is gone, its veth too

  auto restored = RestoreIn(img.path());
  ASSERT_EQ(restored->result(), "ok");
  std::string outer = Sh("ip -d link show outer0");
  EXPECT_NE(outer.find("master brh"), std::string::npos) << outer;
  EXPECT_NE(outer.find("state UP"), std::string::npos) << outer;
  EXPECT_NE(outer.find("mtu 1450"), std::string::npos) << outer;
  EXPECT_NE(outer.find("02:00:00:00:00:03"), std::string::npos) << outer;
  EXPECT_NE(outer.find("veth"), std::string::npos) << outer;
  std::string inner = InNs(restored->pid(), "ip addr show eth0; ip route show");
  EXPECT_NE(inner.find("02:00:00:00:00:02"), std::string::npos) << inner;
  EXPECT_NE(inner.find("10.99.0.2/24"), std::string::npos) << inner;
  EXPECT_NE(inner.find("default via 10.99.0.1 dev eth0"), std::string::npos) << inner;
  // The two ends are one pair: eth0's peer index is outer0's.
  std::string idx =
      Sh("cat /sys/class/net/outer0/ifindex 2>/dev/null || ip -o link show outer0 | cut -d: -f1");
  EXPECT_NE(InNs(restored->pid(), "ip -o link show eth0").find("eth0@if" + Replace(idx, "\\s", "")),
            std::string::npos);
  restored->Stop();
  EXPECT_TRUE(WaitGone("outer0"));
}

TEST(NetNs, VethExternalRenamesOuterEndAndPicksBridge) {
  HostDevices hd{{"brh", "br9", "outer0", "outer9"}};
  int rc = 0;
  Sh("ip link add brh type bridge && ip link add br9 type bridge", &rc);
  ASSERT_EQ(rc, 0);
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  {
    auto orig = VethNamespace();
    ASSERT_EQ(orig->result(), "ok");
    Status st = DumpNetNamespace(orig->pid(), {}, **dir);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  // outer0 still goes away asynchronously; outer9 does not collide with it.
  NetNsOptions o;
  o.externals = {"veth[eth0]:outer9@br9", "mnt[x]:y"};
  auto restored = RestoreIn(img.path(), o);
  ASSERT_EQ(restored->result(), "ok");
  std::string outer = Sh("ip -d link show outer9");
  EXPECT_NE(outer.find("master br9"), std::string::npos) << outer;
  EXPECT_NE(outer.find("state UP"), std::string::npos) << outer;
  EXPECT_TRUE(WaitGone("outer0"));
}

TEST(NetNs, FailedRestoreLeavesNothingOutside) {
  HostDevices hd{{"brh", "outer0"}};
  int rc = 0;
  Sh("ip link add brh type bridge", &rc);
  ASSERT_EQ(rc, 0);
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  {
    auto orig = VethNamespace();
    ASSERT_EQ(orig->result(), "ok");
    Status st = DumpNetNamespace(orig->pid(), {}, **dir);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  ASSERT_TRUE(WaitGone("outer0"));
  // An nftables rule for a table nobody made: the kernel refuses the batch,
  // the last step, after the veth pair is made.
  {
    auto w = (*dir)->OpenWriter(images::ImageType::kNetNsNft);
    ASSERT_TRUE(w.ok());
    pb::NftMsgEntry e;
    e.set_type(6);  // NFT_MSG_NEWRULE
    e.set_family(1);
    std::string a;
    auto put = [&](uint16_t type, const std::string& v) {
      uint16_t len = uint16_t(4 + v.size() + 1);
      a.append(reinterpret_cast<const char*>(&len), 2);
      a.append(reinterpret_cast<const char*>(&type), 2);
      a += v;
      a.push_back('\0');
      a.resize((a.size() + 3) & ~size_t(3), '\0');
    };
    put(1, "nosuchtable");
    put(2, "nosuchchain");
    e.set_attrs(a);
    e.set_desc("rule in chain inet nosuchtable nosuchchain");
    ASSERT_TRUE(w->Write(e).ok());
    ASSERT_TRUE(w->Close().ok());
  }
  auto restored = RestoreIn(img.path());
  EXPECT_NE(restored->result().find("nosuchtable"), std::string::npos) << restored->result();
  // Checked while the restoring process (and its namespace) still lives:
  // the outer end was removed by the failed restore itself.
  int gone = 0;
  Sh("ip link show outer0", &gone);
  EXPECT_NE(gone, 0) << "outer0 left behind in ckpt's namespace";
}

TEST(NetNs, UnsupportedDeviceIsNamed) {
  NsChild orig([] {
    int rc = 0;
    std::string out = Sh("ip link add ifb7 type ifb", &rc);
    return rc == 0 ? std::string() : out;
  });
  ASSERT_EQ(orig.result(), "ok");
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  Status st = DumpNetNamespace(orig.pid(), {}, **dir);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "netns of pid " + std::to_string(orig.pid()) + ": device ifb7 (ifb) is not supported");
}

TEST(NetNs, CkptsOwnNamespaceIsRefused) {
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  Status st = DumpNetNamespace(getpid(), {}, **dir);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("ckpt's own network namespace"), std::string::npos);
}

// Rewrites one image of `dir` with `records` (already serialised) after a
// valid header.
template <typename M>
void Rewrite(images::ImageDir& dir, images::ImageType t, const std::vector<M>& records) {
  auto w = dir.OpenWriter(t);
  ASSERT_TRUE(w.ok());
  for (const auto& r : records) ASSERT_TRUE(w->Write(r).ok());
  ASSERT_TRUE(w->Close().ok());
}

TEST(NetNs, CorruptImagesGiveClearErrors) {
  NsChild orig([] {
    int rc = 0;
    std::string out = Sh("ip link set lo up && echo 1 > /proc/sys/net/ipv4/ip_forward", &rc);
    return rc == 0 ? std::string() : out;
  });
  ASSERT_EQ(orig.result(), "ok");
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(DumpNetNamespace(orig.pid(), {}, **dir).ok());
  std::string rtnl_path = img.path() + "/netns-rtnl.img";
  std::string saved;
  {
    int rc = 0;
    saved = Capture({"cat", rtnl_path}, &rc);
    ASSERT_EQ(rc, 0);
  }

  // Garbage after the header: a record length past the end.
  {
    std::string bad = saved.substr(0, 8) + std::string("\xff\x00\x00\x00garbage", 11);
    FILE* f = fopen(rtnl_path.c_str(), "w");
    fwrite(bad.data(), 1, bad.size(), f);
    fclose(f);
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("netns-rtnl.img"), std::string::npos) << r->result();
    EXPECT_NE(r->result(), "ok");
  }
  // A record that parses but holds a message too short for its kind.
  {
    pb::NetRtnlEntry e;
    e.set_kind(pb::NetRtnlEntry::ROUTE);
    e.set_msg("abc");
    Rewrite<pb::NetRtnlEntry>(**dir, images::ImageType::kNetNsRtnl, {e});
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("netns-rtnl.img: entry 0"), std::string::npos) << r->result();
    EXPECT_NE(r->result().find("bad message size"), std::string::npos) << r->result();
    Rewrite<pb::NetRtnlEntry>(**dir, images::ImageType::kNetNsRtnl, {});
  }
  // A sysctl path climbing out of /proc/sys/net: refused, nothing written.
  {
    pb::NetSysctlEntry e;
    e.set_path("ipv4/../../kernel/hostname");
    e.set_value("pwned");
    Rewrite<pb::NetSysctlEntry>(**dir, images::ImageType::kNetNsSysctl, {e});
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("bad path 'ipv4/../../kernel/hostname'"), std::string::npos)
        << r->result();
  }
  // A sysctl this kernel lacks: skipped if it held its default, refused if
  // the dumped namespace had changed it.
  {
    pb::NetSysctlEntry e;
    e.set_path("ipv4/no_such_sysctl");
    e.set_value("1");
    e.set_changed(false);
    Rewrite<pb::NetSysctlEntry>(**dir, images::ImageType::kNetNsSysctl, {e});
    EXPECT_EQ(RestoreIn(img.path())->result(), "ok");
    e.set_changed(true);
    Rewrite<pb::NetSysctlEntry>(**dir, images::ImageType::kNetNsSysctl, {e});
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("sysctl net.ipv4.no_such_sysctl (changed to '1') does not exist"),
              std::string::npos)
        << r->result();
  }
  // A device of a kind restore cannot make.
  {
    pb::NetLinkEntry e;
    e.set_ifindex(5);
    e.set_name("wg0");
    e.set_kind("wireguard");
    e.set_flags(0);
    Rewrite<pb::NetLinkEntry>(**dir, images::ImageType::kNetNsLinks, {e});
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("device wg0 (wireguard) is not supported"), std::string::npos)
        << r->result();
  }
  // A missing image.
  {
    unlink((img.path() + "/netns-nft.img").c_str());
    auto r = RestoreIn(img.path());
    EXPECT_NE(r->result().find("netns-nft.img"), std::string::npos) << r->result();
  }
}

TEST(NetNs, MacvlanOnADeviceOfCkptsNamespace) {
  HostDevices hd{{"hl0"}};
  int rc = 0;
  Sh("ip link add hl0 type veth peer name hl1 && ip link set hl0 up", &rc);
  ASSERT_EQ(rc, 0);
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  {
    NsChild orig([] { return std::string(); });
    ASSERT_EQ(orig.result(), "ok");
    Sh("ip link add mv0 link hl0 netns " + std::to_string(orig.pid()) + " type macvlan mode bridge",
       &rc);
    ASSERT_EQ(rc, 0);
    InNs(orig.pid(),
         "ip link set mv0 address 02:00:00:00:00:07 && ip link set mv0 up && "
         "ip addr add 10.77.0.2/24 dev mv0");
    Status st = DumpNetNamespace(orig.pid(), {}, **dir);
    ASSERT_TRUE(st.ok()) << st.error().message();
    // A dead namespace's devices go asynchronously; a macvlan with the
    // same address on the same lower device cannot come up before.
    InNs(orig.pid(), "ip link del mv0");
  }
  auto restored = RestoreIn(img.path());
  ASSERT_EQ(restored->result(), "ok");
  std::string idx = Replace(Sh("cat /sys/class/net/hl0/ifindex 2>/dev/null || "
                               "ip -o link show hl0 | cut -d: -f1"),
                            "\\s", "");
  std::string mv = InNs(restored->pid(), "ip -d addr show mv0");
  EXPECT_NE(mv.find("mv0@if" + idx), std::string::npos) << mv << " (hl0 is " << idx << ")";
  EXPECT_NE(mv.find("macvlan mode bridge"), std::string::npos) << mv;
  EXPECT_NE(mv.find("02:00:00:00:00:07"), std::string::npos) << mv;
  EXPECT_NE(mv.find("10.77.0.2/24"), std::string::npos) << mv;
}

TEST(NetNs, VethPeerInAThirdNamespaceNeedsAnExternal) {
  HostDevices hd{{"outer5"}};
  NsChild third([] { return std::string(); });
  ASSERT_EQ(third.result(), "ok");
  std::string tp = std::to_string(third.pid());
  ImageTmp img;
  auto dir = images::ImageDir::Create(img.path());
  ASSERT_TRUE(dir.ok());
  {
    NsChild orig([tp] {
      int rc = 0;
      std::string out = Sh("ip link add eth0 type veth peer name far0 netns " + tp, &rc);
      return rc == 0 ? std::string() : out;
    });
    ASSERT_EQ(orig.result(), "ok");
    Status st = DumpNetNamespace(orig.pid(), {}, **dir);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  auto r1 = RestoreIn(img.path());
  EXPECT_NE(r1->result().find("device eth0 (veth): its peer was outside both this namespace and "
                              "ckpt's at dump: give --external veth[eth0]:NAME"),
            std::string::npos)
      << r1->result();
  NetNsOptions o;
  o.externals = {"veth[eth0]:outer5"};
  auto r2 = RestoreIn(img.path(), o);
  ASSERT_EQ(r2->result(), "ok");
  int rc = 0;
  Sh("ip link show outer5", &rc);
  EXPECT_EQ(rc, 0);
}

TEST(NetNs, BadExternalIsRefused) {
  NetNsOptions o;
  o.externals = {"veth[eth0]outer"};
  auto r = ParseVethExternals(o.externals);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("veth[eth0]outer"), std::string::npos);
  auto good = ParseVethExternals({"veth[a]:b@c", "veth[x]:y", "mnt[m]:n"});
  ASSERT_TRUE(good.ok());
  ASSERT_EQ(good->size(), 2u);
  EXPECT_EQ((*good)[0].bridge, "c");
  EXPECT_EQ((*good)[1].outer, "y");
  EXPECT_EQ((*good)[1].bridge, "");
}

}  // namespace
}  // namespace ckpt::ns

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // The whole test in a network namespace of its own: devices made "in
  // ckpt's namespace" land here and go with the process.
  if (unshare(CLONE_NEWNET) != 0) {
    perror("unshare(CLONE_NEWNET) (the test needs root)");
    return 1;
  }
  return RUN_ALL_TESTS();
}
