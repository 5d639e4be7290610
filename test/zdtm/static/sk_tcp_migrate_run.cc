// sk_tcp_migrate_run: live migration of a TCP connection between two
// "hosts" (network namespaces on this machine), with the peer outside both
// keeping its connection.
//
//   sk_tcp_migrate_run --ckpt CKPT --victim TESTBIN --workdir DIR
//                      [--locks-tool NFT_TABLES] [--back]
//                      [--attach-before-restore] [--keep-images]
//
// Topology (every name carries our pid; nothing is added to the host's own
// namespace, and 10.77.0.0/24 exists only inside these namespaces):
//
//   ckptm-src-PID            ckptm-peer-PID                ckptm-dst-PID
//   eth0 10.77.0.2/24 --- vsrc -+- br0 10.77.0.1/24 -+- vdst --- eth0
//        (the victim)                (the peer)                (src's MAC)
//
// Setup: the namespaces, lo up in each, the bridge and the veth pairs
// (ip(8)); dst's eth0 gets the MAC of src's eth0, so the peer's neighbour
// entry for 10.77.0.2 stays right after the move; vdst stays down (dst is
// off the bridge). The peer is a child of ours moved into the peer
// namespace (setns), listening on 10.77.0.1:7700: it accepts one
// connection, streams numbered records both ways (sk_tcp_migrate.h) and
// reports through shared memory: counts, the longest pause in what it
// received, and its first failure (a reset or other error, a wrong record,
// a second connection). The victim TESTBIN (sk_tcp_migrate) runs in src,
// connected from 10.77.0.2, streaming until SIGTERM.
//
// A hop from host F to host T (src -> dst; with --back also dst -> src):
//  a. `ip netns exec F ckpt dump -t PID -D IMG --tcp-established`: the
//     victim is killed, its connection frozen (ckpt's lock in F drops its
//     packets; the peer retransmits into nothing).
//  b. The move: 10.77.0.2 deleted from F's eth0 and F's bridge port down
//     (the bridge forgets the MAC there); 10.77.0.2/24 added on T's eth0.
//  c. `ip netns exec T ckpt restore -D IMG --tcp-established -d`: the
//     victim comes back in T (checked: same pid, reparented to us, its
//     network namespace is T's). With --locks-tool, T must have no ckpt
//     lock table left; then `ckpt unlock -D IMG` in F removes the dump's
//     lock there, and F must have none left either.
//  d. T's bridge port up. (Only now: had T been reachable while it owned
//     10.77.0.2 but before ckpt restore had locked the connection, a
//     retransmission of the peer arriving there would have met no socket
//     and been answered with a reset. A real migration likewise announces
//     the address after the restore. --attach-before-restore does it in b,
//     to see that race.)
//  e. Streaming until the peer has received and sent kAfter records more
//     than at the dump (a bounded wait), and for at least kTalkS seconds.
// End: SIGTERM the victim; it checks its side and ends its stream; the peer
// ends its own; both check their stream to the end. Pass only if the victim
// passed, the peer saw one connection, from 10.77.0.2, with no error or
// reset, and what each counted sending the other counted receiving.
//
// The dump's lock table (ckpt-kept-*) stays in F: the restore in T cannot
// reach it. After the restore, `ckpt unlock -D IMG` in F removes it (as a
// migration would on the source host); without that, the connection could
// not come back to F (--back).
//
// On any exit, normal, failed or by SIGINT/SIGTERM/SIGHUP, every process we
// started or inherited is killed and every namespace (and with them the
// veths and the bridge) is deleted. Exit 77 (a CTest skip) without root or
// ip(8).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>
#include <string>
#include <vector>

#include "harness.h"
#include "sk_tcp_migrate.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

constexpr char kPeerAddr[] = "10.77.0.1", kServiceAddr[] = "10.77.0.2";
constexpr char kPrefix[] = "/24";
constexpr uint16_t kPort = 7700;
constexpr size_t kBurst = 256;      // records the peer offers per millisecond
constexpr size_t kReadBurst = 128;  // records it reads per millisecond at most
constexpr uint64_t kAfter = 20000;  // records each way past the dump point
constexpr double kTalkS = 2;        // at least this long after the restore
constexpr double kProgressS = 90;   // bound on waiting for kAfter
constexpr double kCkptS = 120;      // bound on each ckpt command
constexpr double kPeerLifeS = 900;  // the peer gives up after this
constexpr double kPeerEndS = 30;    // bound on the peer's end of stream

// ---- what the peer reports (shared memory) ----

enum Phase : int { kStarting, kListening, kConnected, kEnded, kDone, kFailed };

struct PeerStats {
  std::atomic<int> phase{kStarting};
  std::atomic<int> accepted{0};
  std::atomic<uint64_t> received{0}, sent{0};  // whole records
  std::atomic<uint64_t> longest_pause_ms{0};   // between two reads that brought data
  char remote[64] = {};
  char error[512] = {};
};

// ---- global state: what cleanup must undo ----

struct Env {
  std::string ckpt, victim, workdir, ip, locks_tool;
  std::string ns[3];  // src, dst, peer
  bool made[3] = {};
  pid_t peer = 0, victim_pid = 0;
  PeerStats* stats = nullptr;
  double t0 = 0;
  std::string img;
};
Env g;
enum { kSrc, kDst, kPeer };

// Async-signal-safe copies for the signal handler.
char g_ns_path[3][128];
volatile sig_atomic_t g_ns_made[3];

void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[%7.2fs] ", now_s() - g.t0);
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
}

std::string ns_path(int i) { return "/run/netns/" + g.ns[i]; }

// Kills every child of ours (a restored victim, a ckpt, ip) without
// allocating: /proc/self/task/PID/children read with raw calls.
void kill_children_raw() {
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/children", int(getpid()));
  for (int round = 0; round < 3; round++) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    long v = 0;
    bool in = false;
    for (ssize_t i = 0; i <= n; i++) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        v = v * 10 + (buf[i] - '0');
        in = true;
      } else if (in) {
        kill(pid_t(v), SIGKILL);
        v = 0;
        in = false;
      }
    }
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
}

// What `ip netns del` does: the namespace goes once no process is in it.
void drop_ns_raw(int i) {
  umount2(g_ns_path[i], MNT_DETACH);
  unlink(g_ns_path[i]);
}

void on_signal(int sig) {
  kill_children_raw();
  for (int i = 0; i < 3; i++)
    if (g_ns_made[i]) drop_ns_raw(i);
  const char msg[] = "sk_tcp_migrate_run: interrupted; killed our processes, deleted namespaces\n";
  (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
  _exit(128 + sig);
}

// Kills what we started, deletes the namespaces; says if any is left.
void cleanup() {
  if (g.peer > 0) kill(g.peer, SIGKILL);
  for (const std::string& k : kill_all_children())
    if (g.peer <= 0 || k.find("pid " + std::to_string(g.peer) + " ") == std::string::npos)
      log("cleanup: killed %s", k.c_str());
  g.peer = 0;
  for (int i = 0; i < 3; i++) {
    if (!g.made[i]) continue;
    CmdResult r = run_cmd({g.ip, "netns", "del", g.ns[i]}, g.workdir + "/ip.out", 30);
    if (!r.ok()) {
      log("cleanup: ip netns del %s: %s; unmounting it ourselves", g.ns[i].c_str(),
          r.describe().c_str());
      drop_ns_raw(i);
    }
    g.made[i] = false;
    g_ns_made[i] = 0;
  }
  for (int i = 0; i < 3; i++)
    if (!g.ns[i].empty() && fs::exists(ns_path(i)))
      fprintf(stderr, "sk_tcp_migrate_run: namespace %s is still there\n", g.ns[i].c_str());
}

[[noreturn]] void die(const std::string& why) {
  printf("\nsk_tcp_migrate_run: FAIL: %s\n", why.c_str());
  if (!g.img.empty()) {
    for (const char* f : {"dump.log", "restore.log"}) {
      std::string p = g.img + "/" + f;
      if (fs::exists(p)) printf("--- last lines of %s ---\n%s", p.c_str(), tail(p, 40).c_str());
    }
  }
  std::string vout = g.workdir + "/victim.out";
  if (fs::exists(vout))
    printf("--- last lines of %s ---\n%s", vout.c_str(), tail(vout, 10).c_str());
  if (g.stats && g.stats->error[0]) printf("--- the peer says ---\n  | %s\n", g.stats->error);
  if (!g.locks_tool.empty()) {  // ckpt's lock tables are a usual suspect
    for (int i : {kSrc, kDst}) {
      if (!g.made[i]) continue;
      CmdResult r =
          run_cmd({g.ip, "netns", "exec", g.ns[i], g.locks_tool}, g.workdir + "/tables.out", 30);
      printf("--- nftables inet tables in %s ---\n%s", g.ns[i].c_str(),
             r.ok() ? (r.output.empty() ? "  (none)\n" : r.output.c_str()) : "  (cannot list)\n");
    }
  }
  fflush(stdout);
  cleanup();
  exit(1);
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Runs ip(8) with args; dies with its output if it fails.
std::string ip(const std::vector<std::string>& args, bool quiet = false) {
  std::vector<std::string> argv = {g.ip};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!quiet) log("  ip %s", join(args).c_str());
  CmdResult r = run_cmd(argv, g.workdir + "/ip.out", 30);
  if (!r.ok()) die("ip " + join(args) + ": " + r.describe() + ":\n" + r.output);
  return r.output;
}

// ---- the peer (a forked child in the peer namespace) ----

[[noreturn]] void peer_fail(PeerStats* st, const std::string& why) {
  snprintf(st->error, sizeof(st->error), "%s (received %llu, sent %llu)", why.c_str(),
           (unsigned long long)st->received.load(), (unsigned long long)st->sent.load());
  st->phase.store(kFailed);
  _exit(1);
}

int tcp_state(int fd) {
  tcp_info ti = {};
  socklen_t len = sizeof(ti);
  return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -1;
}

[[noreturn]] void peer_main(PeerStats* st, const std::string& netns) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  int nsfd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
    peer_fail(st, "cannot enter " + netns + ": " + strerror(errno));
  close(nsfd);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(kPort);
  inet_pton(AF_INET, kPeerAddr, &a.sin_addr);
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 || listen(l, 4) < 0)
    peer_fail(st, std::string("listen on 10.77.0.1:7700: ") + strerror(errno));
  st->phase.store(kListening);

  const double deadline = now_s() + kPeerLifeS;
  double ended_at = 0, last_in = 0;
  int c = -1;
  tcpm::Sender tx(tcpm::kPeerTag);
  tcpm::Receiver rx(tcpm::kVictimTag);
  for (;;) {
    if (now_s() > deadline) peer_fail(st, "still running after the peer's time limit");
    usleep(1000);  // the pace: kBurst records out, kReadBurst in, per millisecond
    sockaddr_in from = {};
    socklen_t flen = sizeof(from);
    int n = accept4(l, reinterpret_cast<sockaddr*>(&from), &flen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (n >= 0) {
      char addr[INET_ADDRSTRLEN] = "?";
      inet_ntop(AF_INET, &from.sin_addr, addr, sizeof(addr));
      std::string who = std::string(addr) + ":" + std::to_string(ntohs(from.sin_port));
      st->accepted++;
      if (c >= 0)
        peer_fail(st, "a second connection, from " + who + ": the first one (from " + st->remote +
                          ") was given up");
      if (strcmp(addr, kServiceAddr))
        peer_fail(st, "a connection from " + who + ", not from " + kServiceAddr);
      snprintf(st->remote, sizeof(st->remote), "%s", who.c_str());
      c = n;
      last_in = now_s();
      st->phase.store(kConnected);
    }
    if (c < 0) continue;
    if (st->phase.load() == kConnected) {
      uint64_t before = rx.received();
      tcpm::Receiver::Result r = rx.Pump(c, kReadBurst * 8);
      if (r == tcpm::Receiver::kError) peer_fail(st, rx.error());
      if (rx.received() != before) {
        uint64_t pause = uint64_t((now_s() - last_in) * 1000);
        if (pause > st->longest_pause_ms.load()) st->longest_pause_ms.store(pause);
        last_in = now_s();
      }
      st->received.store(rx.received());
      if (r == tcpm::Receiver::kEof) {
        if (!rx.error().empty()) peer_fail(st, rx.error());
        // The victim ended its stream: finish ours.
        double flush_deadline = now_s() + kPeerEndS;
        while (!tx.Flushed()) {
          if (now_s() > flush_deadline) peer_fail(st, "cannot finish our last record");
          if (int e = tx.Pump(c, 0)) peer_fail(st, std::string("send: ") + strerror(e));
          pollfd q = {c, POLLOUT, 0};
          poll(&q, 1, 10);
        }
        st->sent.store(tx.sent());
        if (shutdown(c, SHUT_WR) < 0) peer_fail(st, std::string("shutdown: ") + strerror(errno));
        ended_at = now_s();
        st->phase.store(kEnded);
        continue;
      }
      if (int e = tx.Pump(c, kBurst)) peer_fail(st, std::string("send: ") + strerror(e));
      st->sent.store(tx.sent());
      continue;
    }
    // kEnded: wait for the victim to take the end of our stream and close.
    char x;
    ssize_t r = recv(c, &x, 1, MSG_DONTWAIT);
    if (r > 0) peer_fail(st, "data after the end of the victim's stream");
    if (r < 0 && errno != EAGAIN && errno != EINTR)
      peer_fail(st, std::string("after the end: recv: ") + strerror(errno));
    if (tcp_state(c) == TCP_CLOSE) {
      int err = 0;
      socklen_t elen = sizeof(err);
      getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &elen);
      if (err) peer_fail(st, std::string("closed with error: ") + strerror(err));
      st->phase.store(kDone);
      _exit(0);
    }
    if (now_s() > ended_at + kPeerEndS)
      peer_fail(st, "the victim did not close its end within 30 s of ours (state " +
                        std::to_string(tcp_state(c)) + ")");
  }
}

void start_peer() {
  void* m =
      mmap(nullptr, sizeof(PeerStats), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) die(std::string("mmap: ") + strerror(errno));
  g.stats = new (m) PeerStats;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die(std::string("fork: ") + strerror(errno));
  if (pid == 0) peer_main(g.stats, ns_path(kPeer));
  g.peer = pid;
  track_pid(pid);
  double deadline = now_s() + 10;
  while (g.stats->phase.load() == kStarting && now_s() < deadline) usleep(10 * 1000);
  if (g.stats->phase.load() != kListening) die("the peer did not start listening");
}

// Dies if the peer has failed (its error says why).
void check_peer(const char* when) {
  if (g.stats->phase.load() == kFailed) die(std::string("the peer failed ") + when);
}

// ---- steps ----

std::string find_ip() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

void setup_network() {
  const std::string& src = g.ns[kSrc];
  const std::string& dst = g.ns[kDst];
  const std::string& peer = g.ns[kPeer];
  for (int i = 0; i < 3; i++) {
    snprintf(g_ns_path[i], sizeof(g_ns_path[i]), "%s", ns_path(i).c_str());
    g_ns_made[i] = 1;  // before creating: a signal in between still removes it
    g.made[i] = true;
    ip({"netns", "add", g.ns[i]});
    ip({"-n", g.ns[i], "link", "set", "lo", "up"});
  }
  ip({"-n", peer, "link", "add", "br0", "type", "bridge"});
  ip({"-n", peer, "link", "set", "br0", "up"});
  ip({"-n", peer, "addr", "add", std::string(kPeerAddr) + kPrefix, "dev", "br0"});
  ip({"-n", src, "link", "add", "eth0", "type", "veth", "peer", "name", "vsrc", "netns", peer});
  ip({"-n", dst, "link", "add", "eth0", "type", "veth", "peer", "name", "vdst", "netns", peer});
  ip({"-n", peer, "link", "set", "vsrc", "master", "br0", "up"});
  ip({"-n", peer, "link", "set", "vdst", "master", "br0"});  // down until the switch
  ip({"-n", src, "link", "set", "eth0", "up"});
  ip({"-n", src, "addr", "add", std::string(kServiceAddr) + kPrefix, "dev", "eth0"});
  std::string link = ip({"-n", src, "-o", "link", "show", "dev", "eth0"}, true);
  size_t at = link.find("link/ether ");
  if (at == std::string::npos || link.size() < at + 11 + 17)
    die("no MAC address in `ip -o link show` of src's eth0:\n" + link);
  std::string mac = link.substr(at + 11, 17);
  log("  src eth0 has MAC %s; dst eth0 gets the same", mac.c_str());
  ip({"-n", dst, "link", "set", "eth0", "address", mac});
  ip({"-n", dst, "link", "set", "eth0", "up"});
}

ino_t inode_of(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// "totals sent=S received=R" from the victim's output.
bool victim_totals(uint64_t* sent, uint64_t* received) {
  std::string out = read_text(g.workdir + "/victim.out");
  size_t at = out.rfind("INFO: totals sent=");
  unsigned long long s, r;
  if (at == std::string::npos ||
      sscanf(out.c_str() + at, "INFO: totals sent=%llu received=%llu", &s, &r) != 2)
    return false;
  *sent = s;
  *received = r;
  return true;
}

// Inet tables in namespace ns (needs --locks-tool), one per line.
std::string lock_tables(int ns) {
  CmdResult r =
      run_cmd({g.ip, "netns", "exec", g.ns[ns], g.locks_tool}, g.workdir + "/tables.out", 30);
  if (!r.ok()) die("listing nftables tables in " + g.ns[ns] + ": " + r.describe());
  return r.output;
}

// Names in `tables` (one per line) that start with "ckpt-", comma-separated.
std::string ckpt_tables(const std::string& tables) {
  std::string out;
  size_t at = 0;
  while ((at = tables.find("ckpt-", at)) != std::string::npos) {
    size_t end = tables.find('\n', at);
    out += (out.empty() ? "" : ", ") + tables.substr(at, end - at);
    at = end == std::string::npos ? tables.size() : end;
  }
  return out;
}

struct Point {
  uint64_t received = 0, sent = 0;  // the peer's counts at a dump point
};

// One hop: dump the victim in `from`, move the service address, restore it
// in `to`, attach `to` to the bridge, and stream past the dump point.
Point migrate(int from, int to, int hop, bool attach_early) {
  const std::string& f = g.ns[from];
  const std::string& t = g.ns[to];
  const std::string& peer = g.ns[kPeer];
  const std::string fport = from == kSrc ? "vsrc" : "vdst";
  const std::string tport = to == kSrc ? "vsrc" : "vdst";
  const std::string svc = std::string(kServiceAddr) + kPrefix;
  const pid_t v = g.victim_pid;
  g.img = g.workdir + "/img" + std::to_string(hop);
  fs::create_directories(g.img);
  fs::permissions(g.img, fs::perms::owner_all, fs::perm_options::replace);

  log("hop %d, step a: ckpt dump of pid %d in %s", hop, v, f.c_str());
  CmdResult r = run_cmd({g.ip, "netns", "exec", f, g.ckpt, "dump", "-t", std::to_string(v), "-D",
                         g.img, "--tcp-established", "-o", "dump.log", "-v4"},
                        g.workdir + "/dump.out", kCkptS);
  if (!r.ok()) die("ckpt dump " + r.describe() + ":\n" + r.output);
  int st = 0;
  if (!wait_exit(v, 30, &st)) die("ckpt dump exited 0 but the victim is still running");
  if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
    die("after the dump the victim " + describe_status(st) + " (expected: killed by ckpt)");
  usleep(300 * 1000);  // what was already in the peer's receive queue
  check_peer("during the dump");
  Point p{g.stats->received.load(), g.stats->sent.load()};
  log("  dumped; the victim is gone; at the dump point the peer had received %llu, sent %llu",
      (unsigned long long)p.received, (unsigned long long)p.sent);
  std::string conn = grep(g.img + "/dump.log", "TCP " + std::string(kServiceAddr), 3);
  if (!conn.empty()) printf("%s", conn.c_str());

  log("hop %d, step b: move %s from %s to %s", hop, kServiceAddr, f.c_str(), t.c_str());
  ip({"-n", f, "addr", "del", svc, "dev", "eth0"});
  ip({"-n", peer, "link", "set", fport, "down"});
  ip({"-n", t, "addr", "add", svc, "dev", "eth0"});
  if (attach_early) {
    log("  (--attach-before-restore) %s joins the bridge before the restore", t.c_str());
    ip({"-n", peer, "link", "set", tport, "up"});
  }

  log("hop %d, step c: ckpt restore in %s", hop, t.c_str());
  const std::string pidfile = g.workdir + "/restore.pid";
  fs::remove(pidfile);
  r = run_cmd({g.ip, "netns", "exec", t, g.ckpt, "restore", "-D", g.img, "--tcp-established", "-d",
               "--pidfile", pidfile, "-o", "restore.log", "-v4"},
              g.workdir + "/restore.out", kCkptS);
  if (!r.ok()) die("ckpt restore " + r.describe() + ":\n" + r.output);
  if (atoi(read_text(pidfile).c_str()) != v)
    die("ckpt restore --pidfile says '" + read_text(pidfile) + "', the victim was " +
        std::to_string(v));
  char state = proc_state(v);
  if (state == 0 || state == 'Z') die("the restored victim is gone: " + describe_pid(v));
  if (proc_ppid(v) != getpid())
    die("the restored victim's parent is " + std::to_string(proc_ppid(v)) + ", not us");
  if (inode_of("/proc/" + std::to_string(v) + "/ns/net") != inode_of(ns_path(to)))
    die("the restored victim is not in " + t + "'s network namespace");
  check_peer("during the restore");
  log("  restored: pid %d runs in %s", v, t.c_str());
  // The dump's lock is in F's namespace: the source host drops it once the
  // connection lives on elsewhere (restore in T cannot reach it).
  r = run_cmd({g.ip, "netns", "exec", f, g.ckpt, "unlock", "-D", g.img},
              g.workdir + "/unlock.out", kCkptS);
  if (!r.ok()) die("ckpt unlock in " + f + " " + r.describe() + ":\n" + r.output);
  if (!g.locks_tool.empty()) {
    std::string here = ckpt_tables(lock_tables(to)), there = ckpt_tables(lock_tables(from));
    if (!here.empty()) die("after the restore " + t + " still has the lock table(s) " + here);
    if (!there.empty()) die("after ckpt unlock " + f + " still has the lock table(s) " + there);
    log("  no ckpt lock table left in %s or %s", t.c_str(), f.c_str());
  }

  if (!attach_early) {
    log("hop %d, step d: %s joins the bridge", hop, t.c_str());
    ip({"-n", peer, "link", "set", tport, "up"});
  }

  log("hop %d, step e: streaming after the move (%llu records each way past the dump point)", hop,
      (unsigned long long)kAfter);
  const double t_restored = now_s();
  for (;;) {
    check_peer("after the restore");
    state = proc_state(v);
    if (state == 0 || state == 'Z') die("the restored victim ended early: " + describe_pid(v));
    bool moved =
        g.stats->received.load() >= p.received + kAfter && g.stats->sent.load() >= p.sent + kAfter;
    if (moved && now_s() - t_restored >= kTalkS) break;
    if (now_s() - t_restored > kProgressS)
      die("no progress: " + std::to_string(int(kProgressS)) + " s after the restore the peer has " +
          "received " + std::to_string(g.stats->received.load()) + " and sent " +
          std::to_string(g.stats->sent.load()) + " records (" + std::to_string(p.received) +
          " and " + std::to_string(p.sent) + " at the dump)");
    usleep(50 * 1000);
  }
  log("  the peer has received %llu and sent %llu records; longest pause so far %llu ms",
      (unsigned long long)g.stats->received.load(), (unsigned long long)g.stats->sent.load(),
      (unsigned long long)g.stats->longest_pause_ms.load());
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  bool attach_early = false, keep_images = false, back = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--attach-before-restore") {
      attach_early = true;
    } else if (a == "--keep-images") {
      keep_images = true;
    } else if (a == "--back") {
      back = true;
    } else if (i + 1 < argc && a == "--ckpt") {
      g.ckpt = argv[++i];
    } else if (i + 1 < argc && a == "--victim") {
      g.victim = argv[++i];
    } else if (i + 1 < argc && a == "--workdir") {
      g.workdir = argv[++i];
    } else if (i + 1 < argc && a == "--locks-tool") {
      g.locks_tool = argv[++i];
    } else {
      g.ckpt.clear();
      break;
    }
  }
  if (g.ckpt.empty() || g.victim.empty() || g.workdir.empty()) {
    fprintf(stderr,
            "usage: sk_tcp_migrate_run --ckpt CKPT --victim TESTBIN --workdir DIR\n"
            "                          [--locks-tool NFT_TABLES] [--back]\n"
            "                          [--attach-before-restore] [--keep-images]\n");
    return 2;
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  g.ip = find_ip();
  if (geteuid() != 0 || g.ip.empty()) {
    printf("sk_tcp_migrate_run: SKIP: needs root and ip(8) (iproute2)\n");
    return 77;
  }
  harness_init();
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  g.t0 = now_s();
  g.ckpt = fs::absolute(g.ckpt).string();
  g.victim = fs::absolute(g.victim).string();
  g.workdir = fs::absolute(g.workdir).string();
  if (!g.locks_tool.empty()) g.locks_tool = fs::absolute(g.locks_tool).string();
  fs::remove_all(g.workdir);
  fs::create_directories(g.workdir);
  const std::string pid = std::to_string(getpid());
  g.ns[kSrc] = "ckptm-src-" + pid;
  g.ns[kDst] = "ckptm-dst-" + pid;
  g.ns[kPeer] = "ckptm-peer-" + pid;

  log("setup: network namespaces %s, %s, %s", g.ns[kSrc].c_str(), g.ns[kDst].c_str(),
      g.ns[kPeer].c_str());
  setup_network();

  log("setup: the peer listens on %s:%u in %s", kPeerAddr, kPort, g.ns[kPeer].c_str());
  start_peer();

  log("setup: the victim in %s connects from %s", g.ns[kSrc].c_str(), kServiceAddr);
  const std::string vout = g.workdir + "/victim.out";
  pid_t v = start_test({g.ip, "netns", "exec", g.ns[kSrc], g.victim, "--local", kServiceAddr,
                        "--peer", kPeerAddr, "--port", std::to_string(kPort)},
                       g.workdir, vout);
  if (v < 0) die("cannot start the victim");
  g.victim_pid = v;
  std::string err = wait_ready(v, vout, 60);
  if (!err.empty()) die("the victim: " + err);
  usleep(1000 * 1000);  // let them stream a while
  check_peer("before the dump");
  log("  streaming: the peer received %llu and sent %llu records from/to %s",
      (unsigned long long)g.stats->received.load(), (unsigned long long)g.stats->sent.load(),
      g.stats->remote);

  const Point first = migrate(kSrc, kDst, 1, attach_early);
  if (back) migrate(kDst, kSrc, 2, attach_early);

  log("end: SIGTERM the victim; both ends check their streams to the end");
  kill(v, SIGTERM);
  int st = 0;
  if (!wait_exit(v, 90, &st)) die("the restored victim did not exit within 90 s of SIGTERM");
  std::string out = read_text(vout);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || out.find("PASS") == std::string::npos)
    die("the victim " + describe_status(st) + ":\n" + tail(vout, 10));
  double deadline = now_s() + kPeerEndS + 5;
  while (g.stats->phase.load() != kDone && g.stats->phase.load() != kFailed && now_s() < deadline)
    usleep(10 * 1000);
  check_peer("at the end");
  if (g.stats->phase.load() != kDone)
    die("the peer did not see the end of the connection (phase " +
        std::to_string(g.stats->phase.load()) + ")");
  int pst = 0;
  if (wait_exit(g.peer, 10, &pst)) g.peer = 0;
  uint64_t vs = 0, vr = 0;
  if (!victim_totals(&vs, &vr)) die("the victim printed no totals:\n" + tail(vout, 10));
  const uint64_t pr = g.stats->received.load(), ps = g.stats->sent.load();
  if (vs != pr || vr != ps)
    die("the victim sent " + std::to_string(vs) + " and received " + std::to_string(vr) +
        " records; the peer received " + std::to_string(pr) + " and sent " + std::to_string(ps));
  if (g.stats->accepted.load() != 1)
    die("the peer accepted " + std::to_string(g.stats->accepted.load()) + " connections");
  log("  one connection from %s, unbroken: victim->peer %llu records (%llu after the first dump "
      "point), peer->victim %llu (%llu after); longest pause %llu ms",
      g.stats->remote, (unsigned long long)pr, (unsigned long long)(pr - first.received),
      (unsigned long long)ps, (unsigned long long)(ps - first.sent),
      (unsigned long long)g.stats->longest_pause_ms.load());

  cleanup();
  if (!keep_images) {
    fs::remove_all(g.workdir + "/img1");
    fs::remove_all(g.workdir + "/img2");
  }
  for (int i = 0; i < 3; i++)
    if (fs::exists(ns_path(i))) {
      printf("sk_tcp_migrate_run: FAIL: namespace %s was not removed\n", g.ns[i].c_str());
      return 1;
    }
  printf("sk_tcp_migrate_run: PASS\n");
  return 0;
}
