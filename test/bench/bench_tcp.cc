// ckpt-bench's tcp section. Per row N and per run: a fresh
// `ckpt-bench-victim tcp N` (N connections with both ends in the victim,
// so 2N connected sockets plus a listener, 64 bytes unread each way on
// every connection), READY; then timed, each as the wall time of the ckpt
// process:
//   ckpt dump -t PID -D IMG --tcp-established -o dump.log
//   ckpt restore -D IMG --tcp-established -d --pidfile F -o restore.log
// The restored victim must have the dumped pid and be our child (we are a
// child subreaper); SIGTERMed, it checks every connection (addresses, the
// unread bytes, a new message each way) and must exit 0.
#include "bench_tcp.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_report.h"

namespace fs = std::filesystem;

namespace {

struct Stopped : std::runtime_error {
  Stopped() : std::runtime_error("interrupted") {}
};

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last n lines of path, each prefixed "  | ".
std::string tail(const std::string& path, size_t n) {
  std::istringstream in(read_file(path));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::string r;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); i++)
    r += "  | " + lines[i] + "\n";
  return r;
}

std::string describe(int st) {
  char buf[64];
  if (WIFEXITED(st))
    snprintf(buf, sizeof(buf), "exited with status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, sizeof(buf), "was killed by signal %d", WTERMSIG(st));
  else
    snprintf(buf, sizeof(buf), "wait status %#x", st);
  return buf;
}

// fork+exec argv, stdin /dev/null, stdout+stderr to out; a new session if
// asked (the victim).
pid_t spawn(const std::vector<std::string>& argv, const std::string& out, bool session) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
  if (pid > 0) return pid;
  int in = open("/dev/null", O_RDONLY);
  int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in < 0 || o < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0) _exit(127);
  close_range(3, ~0U, 0);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (session) setsid();
  execv(args[0], args.data());
  _exit(127);
}

class Bench {
 public:
  explicit Bench(const TcpBenchOptions& o) : o_(o) {}

  void check_stop() const {
    if (o_.stop && *o_.stop) throw Stopped();
  }

  // Waits for our child pid; nullopt after timeout_s (pid left running).
  std::optional<int> wait_exit(pid_t pid, double timeout_s, double* t_exit = nullptr) const {
    int pfd = int(syscall(SYS_pidfd_open, pid, 0));
    if (pfd < 0)
      throw std::runtime_error("pidfd_open " + std::to_string(pid) + ": " + strerror(errno));
    double deadline = now() + timeout_s;
    bool done = false;
    while (!done) {
      pollfd p = {pfd, POLLIN, 0};
      double left = deadline - now();
      if (left <= 0) break;
      done = poll(&p, 1, int(std::min(left, 0.2) * 1000) + 1) > 0;
      if (!done && o_.stop && *o_.stop) {
        close(pfd);
        throw Stopped();
      }
    }
    if (t_exit) *t_exit = now();
    close(pfd);
    if (!done) return std::nullopt;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
  }

  // Kills pid and reaps it (if it is ours), ignoring errors.
  void kill_and_reap(pid_t pid) const {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
  }

  // One round trip of a fresh N-connection victim: {dump s, restore s}.
  std::pair<double, double> round_trip(long n, int run, uint64_t* image_bytes) {
    const std::string img = o_.image_dir + "/tcp-images";
    const std::string pre =
        o_.work_dir + "/tcp-" + std::to_string(n) + "-run" + std::to_string(run) + "-";
    const std::string v_out = pre + "victim.out", d_out = pre + "dump.out",
                      r_out = pre + "restore.out", pidfile = pre + "restore.pid";
    fs::remove_all(img);
    fs::create_directory(img);
    fs::permissions(img, fs::perms::owner_all, fs::perm_options::replace);

    pid_t v = spawn({o_.victim, "tcp", std::to_string(n)}, v_out, true);
    victim_ = v;
    double deadline = now() + o_.timeout;
    while (read_file(v_out).find("READY") == std::string::npos) {
      check_stop();
      int st;
      if (waitpid(v, &st, WNOHANG) == v) {
        victim_ = 0;
        throw std::runtime_error("victim " + describe(st) + " before READY:\n" + tail(v_out, 10));
      }
      if (now() > deadline) throw std::runtime_error("victim not READY in time");
      usleep(2000);
    }

    double t0 = now(), t1 = 0;
    pid_t d = spawn({o_.ckpt, "dump", "-t", std::to_string(v), "-D", img, "--tcp-established", "-o",
                     "dump.log"},
                    d_out, false);
    std::optional<int> st = wait_exit(d, o_.timeout, &t1);
    if (!st) {
      kill_and_reap(d);
      throw std::runtime_error("ckpt dump did not finish in time:\n" + tail(img + "/dump.log", 20));
    }
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw std::runtime_error("ckpt dump " + describe(*st) + ":\n" + tail(d_out, 10) +
                               tail(img + "/dump.log", 20));
    const double dump_s = t1 - t0;
    std::optional<int> vst = wait_exit(v, 30);
    if (!vst) throw std::runtime_error("ckpt dump exited 0 but the victim still runs");
    victim_ = 0;
    *image_bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(img))
      if (e.is_regular_file() && e.path().filename() != "dump.log") *image_bytes += e.file_size();

    t0 = now();
    pid_t r = spawn({o_.ckpt, "restore", "-D", img, "--tcp-established", "-d", "--pidfile", pidfile,
                     "-o", "restore.log"},
                    r_out, false);
    st = wait_exit(r, o_.timeout, &t1);
    if (!st) {
      kill_and_reap(r);
      throw std::runtime_error("ckpt restore did not finish in time:\n" +
                               tail(img + "/restore.log", 20));
    }
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw std::runtime_error("ckpt restore " + describe(*st) + ":\n" + tail(r_out, 10) +
                               tail(img + "/restore.log", 20));
    const double restore_s = t1 - t0;
    if (atoi(read_file(pidfile).c_str()) != v)
      throw std::runtime_error("ckpt restore --pidfile says '" + read_file(pidfile) +
                               "', the victim was " + std::to_string(v));
    victim_ = v;  // ours again (child subreaper)

    if (kill(v, SIGTERM) != 0)
      throw std::runtime_error("the restored victim " + std::to_string(v) + " is gone");
    vst = wait_exit(v, o_.timeout);
    if (!vst) throw std::runtime_error("the restored victim did not exit after SIGTERM");
    victim_ = 0;
    if (!WIFEXITED(*vst) || WEXITSTATUS(*vst) != 0)
      throw std::runtime_error("the restored victim " + describe(*vst) +
                               (WIFEXITED(*vst) && WEXITSTATUS(*vst) == 1
                                    ? " (a connection did not come back right)"
                                    : "") +
                               ":\n" + tail(v_out, 10));
    fs::remove_all(img);
    for (const auto& f : {v_out, d_out, r_out, pidfile}) unlink(f.c_str());
    return {dump_s, restore_s};
  }

  void cleanup() {
    kill_and_reap(victim_);
    victim_ = 0;
    fs::remove_all(o_.image_dir + "/tcp-images");
  }

 private:
  const TcpBenchOptions& o_;
  pid_t victim_ = 0;  // a victim of ours that may still run
};

struct Row {
  long n = 0;
  std::vector<double> dump, restore;
  uint64_t image_bytes = 0;
  std::string error;
  double best_dump() const {
    return dump.empty() ? NAN : *std::min_element(dump.begin(), dump.end());
  }
  double best_restore() const {
    return restore.empty() ? NAN : *std::min_element(restore.begin(), restore.end());
  }
};

}  // namespace

TcpBenchResult RunTcpBench(const TcpBenchOptions& o) {
  TcpBenchResult res;
  std::vector<Row> rows;
  for (long n : o.counts) rows.push_back(Row{n, {}, {}, 0, ""});
  Bench b(o);
  try {
    for (int run = 1; run <= o.runs; run++) {
      for (Row& row : rows) {
        if (!row.error.empty()) continue;
        try {
          auto [d, r] = b.round_trip(row.n, run, &row.image_bytes);
          row.dump.push_back(d);
          row.restore.push_back(r);
          res.verified++;
        } catch (const Stopped&) {
          throw;
        } catch (const std::exception& e) {
          row.error = "run " + std::to_string(run) + ": " + e.what();
          fprintf(stderr, "ckpt-bench: FAIL (tcp, N=%ld) %s\n", row.n, row.error.c_str());
          res.ok = false;
          b.cleanup();
        }
      }
    }
  } catch (const Stopped&) {
    b.cleanup();
    res.ok = false;
    return res;
  }
  b.cleanup();

  printf(
      "\ntcp: N established loopback TCP connections in one process (both ends: 2N sockets and a "
      "listener),\n     64 B unread each way; --tcp-established; images on tmpfs; best of %d; "
      "us/conn = ms * 1000 / N\n",
      o.runs);
  printf("  %7s  %10s  %9s  %11s  %9s  %10s\n", "conns", "dump ms", "us/conn", "restore ms",
         "us/conn", "images KiB");
  const Row* prev = nullptr;
  for (const Row& r : rows) {
    if (!r.error.empty()) {
      printf("  %7ld  FAILED: %s\n", r.n, r.error.substr(0, r.error.find('\n')).c_str());
      continue;
    }
    double d = r.best_dump(), s = r.best_restore();
    printf("  %7ld  %10.1f  %9.1f  %11.1f  %9.1f  %10.1f\n", r.n, d * 1e3, d * 1e6 / double(r.n),
           s * 1e3, s * 1e6 / double(r.n), double(r.image_bytes) / 1024);
    bench::report().Add("tcp", {{"conns", double(r.n)},
                         {"dump_best_s", d},
                         {"restore_best_s", s},
                         {"image_bytes", double(r.image_bytes)}});
    if (prev)
      printf("  %7s  marginal between N=%ld and N=%ld: dump %.1f us/conn, restore %.1f us/conn\n",
             "", prev->n, r.n, (d - prev->best_dump()) * 1e6 / double(r.n - prev->n),
             (s - prev->best_restore()) * 1e6 / double(r.n - prev->n));
    prev = &r;
  }
  fflush(stdout);
  return res;
}
