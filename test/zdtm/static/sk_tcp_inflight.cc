// sk_tcp_inflight: TCP listeners with connections waiting in their accept
// queue (connected, not yet accept()ed). Not a round trip: ckpt must
// refuse them unless --skip-in-flight, which drops them.
//
//   sk_tcp_inflight --ckpt PATH --workdir DIR
//   sk_tcp_inflight --victim        (the zdtm-contract program checked)
//
// The victim listens on 127.0.0.1:0 and [::1]:0 (backlog 5), prints
// "INFO: port4 N" and "INFO: port6 M", READY; after SIGTERM it reads how
// many waiting connections each listener must hold from the file
// "expect-queued" in its directory ("Q4 Q6"; none: "0 0"), checks the
// queue length and backlog (sock_diag), accepts exactly that many, then
// accepts a new connection of its own and exchanges data over it.
// The clients that wait in the queues are this driver's sockets: outside
// the dumped tree, so no established connection is dumped.
//
// Sub-checks (each prints "[ OK ] name" or "[FAIL] name: reason"):
//   queued-visible   no ckpt: the victim sees the 2 + 1 waiting
//                    connections (its checks can fail)
//   refused          one connection waits on the IPv4 listener: ckpt dump
//                    fails naming pid, fd and 127.0.0.1:PORT and pointing
//                    at --skip-in-flight; the victim runs on unharmed
//   skip-in-flight   then (same victim, a connection waiting on each
//                    listener): dump --skip-in-flight succeeds, restore
//                    brings back both listeners with empty queues that
//                    accept new connections
// Also used by zdtm-errors (restore-port-taken) as a plain listener.
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <vector>

#include "errors_lib.h"
#include "harness.h"
#include "sk_inet.h"

namespace fs = std::filesystem;

namespace {

constexpr int kBacklog = 5;

// ---- the victim ----

[[noreturn]] void victim() {
  const uint64_t seed = zdtm_seed();
  int l[2];
  inet::Addr name[2];
  const int fams[2] = {AF_INET, AF_INET6};
  for (int i = 0; i < 2; i++) {
    l[i] = inet::new_socket(fams[i], SOCK_STREAM);
    if (fams[i] == AF_INET6) inet::setopt_int(l[i], IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
    inet::bind_to(l[i], inet::loopback(fams[i]));
    if (listen(l[i], kBacklog)) fail("listen: %s", strerror(errno));
    name[i] = inet::name_of(l[i]);
  }
  test_msg("port4 %u", name[0].port());
  test_msg("port6 %u", name[1].port());
  test_ready();
  test_wait();

  unsigned want[2] = {0, 0};
  if (FILE* f = fopen("expect-queued", "r")) {
    if (fscanf(f, "%u %u", &want[0], &want[1]) != 2) fail("bad expect-queued file");
    fclose(f);
  }
  for (int i = 0; i < 2; i++) {
    const std::string what = std::string(inet::family_name(fams[i])) + " listener";
    inet::expect_tcp_state(l[i], TCP_LISTEN, what.c_str());
    inet::expect_name(l[i], false, name[i], what.c_str());
    inet::expect_listener_queue(name[i], want[i], kBacklog, what.c_str());
    for (unsigned k = 0; k < want[i]; k++) close(inet::accept_one(l[i], what.c_str()));
    int fl = fcntl(l[i], F_GETFL);
    fcntl(l[i], F_SETFL, fl | O_NONBLOCK);
    int extra = accept(l[i], nullptr, nullptr);
    if (extra >= 0 || errno != EAGAIN)
      fail("%s: accept after %u waiting connection(s): %s", what.c_str(), want[i],
           extra >= 0 ? "one more" : strerror(errno));
    fcntl(l[i], F_SETFL, fl);
    int c = inet::new_socket(fams[i], SOCK_STREAM);
    inet::connect_to(c, name[i]);
    int a = inet::accept_one(l[i], what.c_str());
    inet::Stream ca{zdtm_mix(seed, uint64_t(2 * i))}, ac{zdtm_mix(seed, uint64_t(2 * i + 1))};
    inet::exchange(c, &ca, a, &ac, 64 * 1024, (what + ", new connection").c_str());
    inet::close_rst(c);
    inet::close_rst(a);
  }
  pass();
}

// ---- the driver ----

using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

constexpr double kCkptTimeout = 120;

std::string g_self;  // this binary: the victims are its --victim modes

struct Run {
  CmdResult r;
  std::string text;  // output and log
};
Run ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
         const std::string& log) {
  args.insert(args.begin(), g_ckpt);
  Run out;
  out.r = run_cmd(args, dir + "/ckpt-" + name + ".out", kCkptTimeout);
  out.text = out.r.output + read_text(log);
  return out;
}
void expect(bool cond, const std::string& what, const Run& r) {
  if (!cond) throw Fail(what + "\n" + indent(r.text));
}

struct Victim {
  pid_t pid = 0;
  std::string dir, out;
  uint16_t port4 = 0, port6 = 0;
};

uint16_t printed(const Victim& v, const std::string& key) {
  std::string t = read_text(v.out);
  size_t p = t.find("INFO: " + key + " ");
  if (p == std::string::npos) throw Fail("victim did not print '" + key + "'\n" + indent(t));
  return uint16_t(atol(t.c_str() + p + 7 + key.size()));
}

Victim start_victim(const std::string& dir) {
  fs::create_directories(dir);
  Victim v;
  v.dir = dir;
  v.out = dir + "/out.txt";
  v.pid = start_test({g_self, "--victim"}, dir, v.out);
  if (v.pid < 0) throw Fail("fork failed");
  std::string err = wait_ready(v.pid, v.out, 60);
  if (!err.empty()) throw Fail("victim: " + err + "\n" + indent(read_text(v.out)));
  v.port4 = printed(v, "port4");
  v.port6 = printed(v, "port6");
  return v;
}

// SIGTERM after telling the victim how many connections must wait.
void finish(const Victim& v, unsigned q4, unsigned q6) {
  std::ofstream(v.dir + "/expect-queued") << q4 << " " << q6 << "\n";
  kill(v.pid, SIGTERM);
  int st;
  if (!wait_exit(v.pid, 60, &st)) throw Fail("victim did not exit: " + describe_pid(v.pid));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || count_lines(v.out, "PASS") != 1)
    throw Fail("victim failed (" + describe_status(st) + ")\n" + indent(read_text(v.out)));
}

// Connects to a victim's listener; the connection waits in its queue.
struct Client {
  int fd = -1;
  Client(int family, uint16_t port) {
    fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    inet::Addr a = inet::loopback(family, port);
    if (fd < 0 || connect(fd, a.sa(), a.len))
      throw Fail("connect to " + a.str() + ": " + strerror(errno));
  }
  ~Client() {
    linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
};

void check_visible(const std::string& dir) {
  Victim v = start_victim(dir + "/run");
  Client a(AF_INET, v.port4), b(AF_INET, v.port4), c(AF_INET6, v.port6);
  finish(v, 2, 1);
}

// refused, then skip-in-flight on the same victim: reported as two checks.
std::string g_skip_error;
void check_refused(const std::string& dir) {
  g_skip_error = "not run: the refused check failed first";
  Victim v = start_victim(dir + "/run");
  Client waiting4(AF_INET, v.port4);
  const std::string img = dir + "/img-refused";
  fs::create_directories(img);
  Run r = ckpt(dir, "dump-refused",
               {"dump", "-t", std::to_string(v.pid), "-D", img, "-o", "dump.log", "-v4"},
               img + "/dump.log");
  expect(!r.r.ok() && !r.r.crashed(), "the dump did not fail cleanly (" + r.r.describe() + ")", r);
  const std::string where = "127.0.0.1:" + std::to_string(v.port4);
  expect(r.r.output.find(where) != std::string::npos &&
             r.r.output.find("--skip-in-flight") != std::string::npos &&
             mentions_number(r.r.output, v.pid),
         "the error does not name pid " + std::to_string(v.pid) + ", the listener " + where +
             " and --skip-in-flight",
         r);
  char st = proc_state(v.pid);
  if (st != 'S' && st != 'R')
    throw Fail("victim not running after the refused dump: " + describe_pid(v.pid));
  if (read_text("/proc/" + std::to_string(v.pid) + "/status").find("TracerPid:\t0\n") ==
      std::string::npos)
    throw Fail("victim still traced after the refused dump");
  printf("       refused as expected:\n%s", indent(r.r.output).c_str());

  // skip-in-flight, same victim, one more connection waiting on [::1].
  g_skip_error.clear();
  try {
    Client waiting6(AF_INET6, v.port6);
    const std::string img2 = dir + "/img";
    fs::create_directories(img2);
    r = ckpt(dir, "dump",
             {"dump", "-t", std::to_string(v.pid), "-D", img2, "-o", "dump.log", "-v4",
              "--skip-in-flight"},
             img2 + "/dump.log");
    expect(r.r.ok(), "dump --skip-in-flight failed (" + r.r.describe() + ")", r);
    int status;
    if (!wait_exit(v.pid, 10, &status)) throw Fail("the dump did not kill the victim");
    const std::string pidfile = dir + "/pidfile";
    r = ckpt(dir, "restore",
             {"restore", "-D", img2, "-d", "-o", "restore.log", "-v4", "--pidfile", pidfile},
             img2 + "/restore.log");
    expect(r.r.ok(), "restore failed (" + r.r.describe() + ")", r);
    track_pid(v.pid);
    if (atol(read_text(pidfile).c_str()) != v.pid) throw Fail("restore wrote a wrong pidfile");
    finish(v, 0, 0);
  } catch (const std::exception& e) {
    g_skip_error = e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !strcmp(argv[1], "--victim")) {
    test_init(argc, argv);
    victim();
  }
  if (!ParseArgs(argc, argv, "sk_tcp_inflight")) return 2;
  harness_init();
  g_self = fs::canonical("/proc/self/exe").string();
  std::error_code ec;
  check("queued-visible", check_visible);
  check("refused", check_refused);
  check("skip-in-flight", [](const std::string&) {
    if (!g_skip_error.empty()) throw Fail(g_skip_error);
  });
  if (g_failed) return 1;
  fs::remove_all(g_workdir, ec);
  return 0;
}
