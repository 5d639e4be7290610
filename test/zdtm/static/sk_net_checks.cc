// sk_net_checks: what ckpt must refuse of netlink and packet sockets,
// leaving the process untouched (it verifies its sockets afterwards), and
// a restore whose netlink port is taken.
//
//   sk_net_checks --ckpt PATH --workdir DIR
//
// Sub-checks (each prints "[ OK ] name" or "[FAIL] name: reason"):
//   netlink-queued  fd 10, a NETLINK_USERSOCK socket holding two unread
//                   messages: "pid N fd 10: netlink socket
//                   (NETLINK_USERSOCK, port P) has unread messages queued
//                   (B bytes of its receive buffer)"; they are still there after.
//   packet-ring     fd 11, a packet socket with an mmap'ed PACKET_RX_RING:
//                   "pid N fd 11: packet socket (...) with an mmap'ed ring
//                   (PACKET_RX_RING) is not supported".
//   other-netns     fd 12, a netlink socket made in a network namespace of
//                   its own, the process back in ckpt's: "pid N fd 12:
//                   netlink socket belongs to another network namespace".
//   netlink-port-taken  a socket bound to a chosen port is dumped, another
//                   socket takes the port: restore fails naming it ("port
//                   id P is held by another NETLINK_USERSOCK socket") and
//                   leaves nothing; once the port is free, restore works.
//
// The victims are this program run as "sk_net_checks --victim MODE" (zdtm
// contract: READY, SIGTERM, verify, PASS).
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors_lib.h"
#include "harness.h"
#include "zdtm.h"

namespace fs = std::filesystem;

namespace {

// ---- victims ----

int at(int fd, int want) {
  if (fd < 0) fail("socket: %s", strerror(errno));
  if (dup2(fd, want) != want) fail("dup2: %s", strerror(errno));
  close(fd);
  return want;
}

[[noreturn]] void victim_netlink_queued() {
  int a = at(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), 10);
  int b = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
  if (b < 0) fail("socket: %s", strerror(errno));
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  sa.nl_pid = 0x50000000u | uint32_t(getpid());
  if (bind(a, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) fail("bind: %s", strerror(errno));
  test_msg("port %u", sa.nl_pid);
  const char* msgs[] = {"first message", "second"};
  for (const char* m : msgs)
    if (sendto(b, m, strlen(m), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
      fail("sendto: %s", strerror(errno));
  test_ready();
  test_wait();
  for (const char* m : msgs) {
    char buf[64];
    ssize_t n = recv(a, buf, sizeof(buf), MSG_DONTWAIT);
    if (n != ssize_t(strlen(m)) || memcmp(buf, m, size_t(n))) fail("queued message lost");
  }
  pass();
}

[[noreturn]] void victim_packet_ring() {
  int s = at(socket(AF_PACKET, SOCK_RAW, 0), 11);
  int v = TPACKET_V2;
  if (setsockopt(s, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0)
    fail("PACKET_VERSION: %s", strerror(errno));
  tpacket_req req = {4096, 4, 2048, 8};
  if (setsockopt(s, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0)
    fail("PACKET_RX_RING: %s", strerror(errno));
  void* ring = mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
  if (ring == MAP_FAILED) fail("mmap ring: %s", strerror(errno));
  test_ready();
  test_wait();
  if (static_cast<tpacket2_hdr*>(ring)->tp_status != TP_STATUS_KERNEL)
    fail("the ring's first frame changed");
  pass();
}

[[noreturn]] void victim_other_netns() {
  int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) fail("open ns: %s", strerror(errno));
  if (unshare(CLONE_NEWNET) < 0) fail("unshare(CLONE_NEWNET): %s", strerror(errno));
  int s = at(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE), 12);
  if (setns(home, CLONE_NEWNET) < 0) fail("setns: %s", strerror(errno));
  close(home);
  test_ready();
  test_wait();
  sockaddr_nl sa = {};
  socklen_t len = sizeof(sa);
  if (getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len) < 0)
    fail("getsockname: %s", strerror(errno));
  pass();
}

// fd 10: a NETLINK_USERSOCK socket bound to a chosen port; it must have
// that port after restore and still receive on it.
[[noreturn]] void victim_netlink_port() {
  int a = at(socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK), 10);
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  sa.nl_pid = 0x50000000u | uint32_t(getpid());
  if (bind(a, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) fail("bind: %s", strerror(errno));
  test_ready();
  test_wait();
  sockaddr_nl got = {};
  socklen_t len = sizeof(got);
  if (getsockname(a, reinterpret_cast<sockaddr*>(&got), &len) < 0 || got.nl_pid != sa.nl_pid)
    fail("port %u, want %u", got.nl_pid, sa.nl_pid);
  int b = socket(AF_NETLINK, SOCK_RAW, NETLINK_USERSOCK);
  if (b < 0 || sendto(b, "x", 1, 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 1)
    fail("sendto: %s", strerror(errno));
  char c;
  if (recv(a, &c, 1, MSG_DONTWAIT) != 1) fail("nothing received on the port");
  pass();
}

// ---- the driver ----

using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

constexpr double kCkptTimeout = 120;
std::string g_self;  // this binary: the victims are its --victim modes

struct Victim {
  pid_t pid;
  std::string out;
};
Victim start_victim(const std::string& mode, const std::string& dir) {
  fs::create_directories(dir);
  Victim v{0, dir + "/out.txt"};
  v.pid = start_test({g_self, "--victim", mode}, dir, v.out);
  if (v.pid < 0) throw Fail("fork failed");
  std::string err = wait_ready(v.pid, v.out, 60);
  if (!err.empty()) throw Fail("victim " + mode + ": " + err + "\n" + tail(v.out));
  return v;
}

// Dumps v (leave-running) expecting a clean failure whose output has
// every one of `want`; then the victim must still pass its own checks.
void expect_refused(const Victim& v, const std::string& dir, const std::vector<std::string>& want) {
  std::string img = dir + "/img";
  fs::create_directories(img);
  CmdResult r = run_cmd({g_ckpt, "dump", "-t", std::to_string(v.pid), "-D", img, "-o", "dump.log",
                         "-v4", "--leave-running"},
                        dir + "/ckpt-dump.out", kCkptTimeout);
  if (r.ok() || r.crashed()) throw Fail("the dump did not fail cleanly (" + r.describe() + ")");
  for (const std::string& w : want)
    if (r.output.find(w) == std::string::npos)
      throw Fail("the error does not say '" + w + "':\n" + r.output);
  kill(v.pid, SIGTERM);
  int st;
  if (!wait_exit(v.pid, 60, &st)) throw Fail("victim did not exit: " + describe_pid(v.pid));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(v.out, "PASS") != 1)
    throw Fail("victim failed after the refused dump (" + describe_status(st) + ")\n" +
               tail(v.out));
}

std::string where(const Victim& v, int fd) {
  return "pid " + std::to_string(v.pid) + " fd " + std::to_string(fd) + ": ";
}

// Dump (the victim dies), take its port, restore: it fails naming the
// port and leaves nothing; free the port: the restore works.
void check_port_taken(const std::string& dir) {
  Victim v = start_victim("netlink-port", dir + "/run");
  uint32_t port = 0x50000000u | uint32_t(v.pid);
  std::string img = dir + "/img";
  fs::create_directories(img);
  CmdResult r =
      run_cmd({g_ckpt, "dump", "-t", std::to_string(v.pid), "-D", img, "-o", "dump.log", "-v4"},
              dir + "/ckpt-dump.out", kCkptTimeout);
  if (!r.ok()) throw Fail("dump failed (" + r.describe() + "):\n" + r.output);
  int st;
  if (!wait_exit(v.pid, 10, &st)) throw Fail("the dump did not kill the victim");
  int thief = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_USERSOCK);
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  sa.nl_pid = port;
  if (thief < 0 || bind(thief, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    throw Fail(std::string("cannot take the port: ") + strerror(errno));
  std::string pidfile = dir + "/pidfile";
  std::vector<std::string> restore = {g_ckpt, "restore",     "-D",  img,         "-d",
                                      "-o",   "restore.log", "-v4", "--pidfile", pidfile};
  r = run_cmd(restore, dir + "/ckpt-restore-taken.out", kCkptTimeout);
  close(thief);
  if (r.ok() || r.crashed()) throw Fail("restore did not fail cleanly (" + r.describe() + ")");
  std::string want = "port id " + std::to_string(port) + " is held by another NETLINK_USERSOCK";
  if (r.output.find(want) == std::string::npos)
    throw Fail("the error does not say '" + want + "':\n" + r.output);
  if (proc_state(v.pid)) throw Fail("the failed restore left pid " + std::to_string(v.pid));
  r = run_cmd(restore, dir + "/ckpt-restore.out", kCkptTimeout);
  if (!r.ok()) throw Fail("restore failed (" + r.describe() + "):\n" + r.output);
  track_pid(v.pid);
  kill(v.pid, SIGTERM);
  if (!wait_exit(v.pid, 60, &st)) throw Fail("restored victim did not exit");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(v.out, "PASS") != 1)
    throw Fail("restored victim failed (" + describe_status(st) + ")\n" + tail(v.out));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "--victim")) {
    test_init(argc, argv);
    std::string mode = argv[2];
    if (mode == "netlink-queued") victim_netlink_queued();
    if (mode == "packet-ring") victim_packet_ring();
    if (mode == "other-netns") victim_other_netns();
    if (mode == "netlink-port") victim_netlink_port();
    fail("unknown victim %s", argv[2]);
  }
  if (!ParseArgs(argc, argv, "sk_net_checks")) return 2;
  harness_init();
  g_self = fs::canonical("/proc/self/exe").string();
  std::error_code ec;
  check("netlink-queued", [](const std::string& dir) {
    Victim v = start_victim("netlink-queued", dir + "/run");
    std::string port = std::to_string(0x50000000u | uint32_t(v.pid));
    expect_refused(v, dir,
                   {where(v, 10) + "netlink socket (NETLINK_USERSOCK, port " + port +
                        ") has unread messages queued (",
                    " bytes of its receive buffer)"});
  });
  check("packet-ring", [](const std::string& dir) {
    Victim v = start_victim("packet-ring", dir + "/run");
    expect_refused(v, dir,
                   {where(v, 11) + "packet socket (raw, protocol 0x0000) with an mmap'ed ring "
                                   "(PACKET_RX_RING) is not supported"});
  });
  check("other-netns", [](const std::string& dir) {
    Victim v = start_victim("other-netns", dir + "/run");
    expect_refused(v, dir, {where(v, 12) + "netlink socket belongs to another network namespace"});
  });
  check("netlink-port-taken", check_port_taken);
  if (g_failed) return 1;
  fs::remove_all(g_workdir, ec);
  return 0;
}
