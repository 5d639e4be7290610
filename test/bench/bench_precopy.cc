// See bench_precopy.h.
#include "bench_precopy.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_ckpt_run.h"
#include "bench_util.h"

namespace fs = std::filesystem;
using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing

namespace {

constexpr uint64_t kMinRoundBytes = 4ULL << 20;

struct Round {
  uint64_t bytes = 0;
  double secs = 0;
};

struct RunResult {
  double cold_dump = NAN, cold_restore = NAN;
  uint64_t cold_bytes = 0;
  std::vector<Round> rounds;
  Round final_dump;
  double final_restore = NAN, pause = NAN;
  // Post-copy (the same pre-copy, then a lazy final step): until the
  // restore returned, and until every page was in.
  std::vector<Round> lazy_rounds;
  uint64_t lazy_bytes = 0;
  double lazy_dump = NAN, lazy_restore = NAN, lazy_pause = NAN, lazy_all_in = NAN;
  std::string error;
};

class Bench {
 public:
  explicit Bench(const PrecopyBenchOptions& o) : o_(o) {}

  PrecopyBenchResult Run() {
    PrecopyBenchResult res;
    printf(
        "\nprecopy: a %llu MiB process rewriting %llu MiB/s of pages at random; pre-copy "
        "through a page server on 127.0.0.1, images on %s\n",
        (unsigned long long)o_.size_mib, (unsigned long long)o_.rate_mib, o_.image_dir.c_str());
    std::vector<RunResult> runs;
    for (int run = 1; run <= o_.runs; run++) {
      RunResult r;
      try {
        Cold(r, run);
        res.verified++;
        Precopy(r, run);
        res.verified++;
        Postcopy(r, run);
        res.verified++;
      } catch (const RunFailure& e) {
        r.error = e.what();
        res.ok = false;
        progress_clear();
        fprintf(stderr, "ckpt-bench: precopy run %d: %s\n", run, e.what());
      }
      kill_all_children();
      if (!root_.empty()) rm_rf(root_);
      root_.clear();
      Print(r, run);
      runs.push_back(std::move(r));
    }
    Summary(runs);
    return res;
  }

 private:
  std::string Victim(const std::string& tag, pid_t* pid) {
    const std::string out = o_.work_dir + "/precopy-" + tag + ".victim.out";
    *pid = spawn({o_.victim, "precopy", std::to_string(o_.size_mib), std::to_string(o_.rate_mib)},
                 {"/dev/null", out, out}, true, o_.work_dir);
    wait_ready(*pid, out, out, o_.timeout);
    sleep_ms(1000);  // writing at its steady rate
    return out;
  }

  // SIGTERM to the restored victim (our child: we are a subreaper): it
  // checks every page and must exit 0.
  void Verify(pid_t pid, const std::string& pidfile, const std::string& out) {
    pid_t restored = pid_t(std::stol(read_file(pidfile)));
    if (restored != pid) throw RunFailure(fmt("restored as pid %d, dumped as %d", restored, pid));
    kill(pid, SIGTERM);
    std::optional<int> st = wait_exit(pid, o_.timeout);
    if (!st) throw RunFailure("the restored victim did not end after SIGTERM");
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(
          with_log("the restored victim " + describe_status(*st), {{"victim output", out}}));
  }

  void WaitKilled(pid_t pid) {
    std::optional<int> st = wait_exit(pid, 30);
    if (!st) throw RunFailure(fmt("the dumped victim %d is still alive 30 s after the dump", pid));
  }

  void Cold(RunResult& r, int run) {
    root_ = make_temp_dir(o_.image_dir, "precopy");
    const std::string img = root_ + "/full",
                      pre = fmt("%s/precopy-run%d-cold-", o_.work_dir.c_str(), run);
    mkdir(img.c_str(), 0700);
    progress(fmt("precopy run %d/%d: cold full dump", run, o_.runs));
    pid_t pid;
    std::string out = Victim(fmt("run%d-cold", run), &pid);
    r.cold_dump =
        run_ckpt({o_.ckpt, "dump", "-t", std::to_string(pid), "-D", img, "-o", pre + "dump.log"},
                 pre + "dump.out", pre + "dump.log", o_.timeout, "ckpt dump");
    WaitKilled(pid);
    r.cold_bytes = PagesBytes(img);
    progress(fmt("precopy run %d/%d: cold restore", run, o_.runs));
    const std::string pidfile = pre + "restore.pid";
    r.cold_restore = run_ckpt(
        {o_.ckpt, "restore", "-D", img, "-d", "--pidfile", pidfile, "-o", pre + "restore.log"},
        pre + "restore.out", pre + "restore.log", o_.timeout, "ckpt restore");
    Verify(pid, pidfile, out);
    rm_rf(img);
  }

  // One step through a page server: ckpt's other images stay in src/step
  // and are copied to dst/step, the pagemaps come back to src/step (the
  // next step reads its parent's there): what scripts/ckpt-migrate does
  // between two hosts.
  Round Step(const std::vector<std::string>& cmd, const std::string& step, const std::string& pre) {
    const std::string src = root_ + "/src/" + step, dst = root_ + "/dst/" + step;
    fs::create_directories(src);
    fs::create_directories(root_ + "/dst");
    int port = 0;
    pid_t server = start_page_server(o_.ckpt, dst, pre + step + ".page-server.log", &port);
    std::vector<std::string> argv = cmd;
    argv.insert(argv.end(), {"-D", src, "-o", pre + step + ".log", "--page-server", "--address",
                             "127.0.0.1", "--port", std::to_string(port)});
    Round rd;
    rd.secs = run_ckpt(argv, pre + step + ".out", pre + step + ".log", o_.timeout,
                       "ckpt " + cmd[1] + " (" + step + ")");
    std::optional<int> st = wait_exit(server, 30);
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(with_log("the page server (" + step + ") did not end well",
                                {{"page server log", pre + step + ".page-server.log"}}));
    for (const auto& e : fs::directory_iterator(src)) {
      fs::path to = dst + "/" + e.path().filename().string();
      if (e.is_symlink()) {
        if (!fs::exists(fs::symlink_status(to))) fs::copy_symlink(e.path(), to);
      } else {
        fs::copy_file(e.path(), to, fs::copy_options::overwrite_existing);
      }
    }
    for (const auto& e : fs::directory_iterator(dst)) {
      std::string n = e.path().filename().string();
      if (n.rfind("pagemap-", 0) == 0)
        fs::copy_file(e.path(), src + "/" + n, fs::copy_options::overwrite_existing);
    }
    rd.bytes = PagesBytes(dst);
    return rd;
  }

  void Precopy(RunResult& r, int run) {
    const std::string pre = fmt("%s/precopy-run%d-", o_.work_dir.c_str(), run);
    pid_t pid;
    std::string out = Victim(fmt("run%d-precopy", run), &pid);
    std::string prev;
    for (int k = 1; k <= o_.max_rounds; k++) {
      progress(fmt("precopy run %d/%d: pre-dump %d", run, o_.runs, k));
      std::vector<std::string> cmd = {o_.ckpt, "pre-dump", "-t", std::to_string(pid)};
      if (!prev.empty()) cmd.insert(cmd.end(), {"--prev-images-dir", "../" + prev});
      std::string step = fmt("pre%d", k);
      Round rd = Step(cmd, step, pre);
      r.rounds.push_back(rd);
      prev = step;
      if (rd.bytes < kMinRoundBytes) break;
      if (r.rounds.size() > 1 && rd.bytes >= r.rounds[r.rounds.size() - 2].bytes) break;
    }
    progress(fmt("precopy run %d/%d: final dump and restore", run, o_.runs));
    double t0 = now();
    std::vector<std::string> cmd = {o_.ckpt, "dump", "-t", std::to_string(pid)};
    if (!prev.empty()) cmd.insert(cmd.end(), {"--prev-images-dir", "../" + prev, "--track-mem"});
    r.final_dump = Step(cmd, "final", pre);
    const std::string pidfile = pre + "restore.pid";
    WaitKilled(pid);  // reaped: its pid is free for the restore
    r.final_restore =
        run_ckpt({o_.ckpt, "restore", "-D", root_ + "/dst/final", "-d", "--pidfile", pidfile, "-o",
                  pre + "restore.log"},
                 pre + "restore.out", pre + "restore.log", o_.timeout, "ckpt restore (chain)");
    r.pause = now() - t0;
    Verify(pid, pidfile, out);
  }

  // `ckpt ARGV... --status-fd 3` in the background; returns once it wrote
  // its status byte (listening, or holding the pages).
  pid_t SpawnReady(std::vector<std::string> argv, const std::string& log, const std::string& what) {
    int st[2];
    if (pipe2(st, O_CLOEXEC) < 0) throw RunFailure("pipe failed");
    argv.insert(argv.end(), {"--status-fd", "3"});
    pid_t p = fork();
    if (p < 0) throw RunFailure("fork failed");
    if (p == 0) {
      if (dup2(st[1], 3) < 0) _exit(127);
      std::vector<char*> av;
      for (std::string& a : argv) av.push_back(a.data());
      av.push_back(nullptr);
      execv(av[0], av.data());
      _exit(127);
    }
    close(st[1]);
    struct pollfd pfd = {st[0], POLLIN, 0};
    char ch;
    bool up = poll(&pfd, 1, int(o_.timeout * 1000)) == 1 && read(st[0], &ch, 1) == 1;
    close(st[0]);
    if (!up) throw RunFailure(with_log(what + " did not get ready", {{what + " log", log}}));
    return p;
  }

  void ExpectExit0(pid_t p, const std::string& what, const std::string& log) {
    std::optional<int> st = wait_exit(p, o_.timeout);
    if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(with_log(what + " did not end well", {{what + " log", log}}));
  }

  // Pre-copy as above, then post-copy: the final dump keeps its pages
  // (`dump --lazy-pages`, serving on 127.0.0.1), its other images are
  // copied over, `ckpt lazy-pages --page-server` pulls the pages while the
  // restored process runs. The pause ends when `restore --lazy-pages`
  // returned; "all in" when the daemon had every page.
  void Postcopy(RunResult& r, int run) {
    const std::string pre = fmt("%s/precopy-run%d-lazy-", o_.work_dir.c_str(), run);
    pid_t pid;
    std::string out = Victim(fmt("run%d-lazy", run), &pid);
    rm_rf(root_ + "/src");
    rm_rf(root_ + "/dst");
    std::string prev;
    for (int k = 1; k <= o_.max_rounds; k++) {
      progress(fmt("precopy run %d/%d: post-copy: pre-dump %d", run, o_.runs, k));
      std::vector<std::string> cmd = {o_.ckpt, "pre-dump", "-t", std::to_string(pid)};
      if (!prev.empty()) cmd.insert(cmd.end(), {"--prev-images-dir", "../" + prev});
      std::string step = fmt("pre%d", k);
      Round rd = Step(cmd, step, pre);
      r.lazy_rounds.push_back(rd);
      prev = step;
      if (rd.bytes < kMinRoundBytes) break;
      if (r.lazy_rounds.size() > 1 && rd.bytes >= r.lazy_rounds[r.lazy_rounds.size() - 2].bytes)
        break;
    }
    progress(fmt("precopy run %d/%d: post-copy: lazy final dump and restore", run, o_.runs));
    const std::string src = root_ + "/src/final", dst = root_ + "/dst/final";
    fs::create_directories(src);
    fs::create_directories(dst);
    int port = FreePort();
    double t0 = now();
    std::vector<std::string> dump = {o_.ckpt, "dump", "-t", std::to_string(pid), "-D", src,
                                     "-o", pre + "dump.log", "--lazy-pages", "--address",
                                     "127.0.0.1", "--port", std::to_string(port)};
    if (!prev.empty()) dump.insert(dump.end(), {"--prev-images-dir", "../" + prev, "--track-mem"});
    pid_t lazy_dump = SpawnReady(dump, pre + "dump.log", "the lazy dump");
    r.lazy_dump = now() - t0;
    for (const auto& e : fs::directory_iterator(src)) {
      fs::path to = dst + "/" + e.path().filename().string();
      if (e.is_symlink())
        fs::copy_symlink(e.path(), to);
      else
        fs::copy_file(e.path(), to, fs::copy_options::overwrite_existing);
      std::string n = e.path().filename().string();
      if (n.rfind("pages-", 0) == 0) r.lazy_bytes += e.file_size();
    }
    pid_t daemon = SpawnReady({o_.ckpt, "lazy-pages", "-D", dst, "-o", pre + "lazy-pages.log",
                               "--page-server", "--address", "127.0.0.1", "--port",
                               std::to_string(port)},
                              pre + "lazy-pages.log", "the lazy-pages daemon");
    WaitKilled(pid);
    const std::string pidfile = pre + "restore.pid";
    r.lazy_restore = run_ckpt({o_.ckpt, "restore", "-D", dst, "-d", "--lazy-pages", "--pidfile",
                               pidfile, "-o", pre + "restore.log"},
                              pre + "restore.out", pre + "restore.log", o_.timeout,
                              "ckpt restore --lazy-pages");
    r.lazy_pause = now() - t0;
    ExpectExit0(daemon, "the lazy-pages daemon", pre + "lazy-pages.log");
    r.lazy_all_in = now() - t0;
    ExpectExit0(lazy_dump, "the lazy dump", pre + "dump.log");
    Verify(pid, pidfile, out);
  }

  static int FreePort() {
    int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = 0;
    if (sk >= 0 && bind(sk, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
        getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
    if (sk >= 0) close(sk);
    if (port == 0) throw RunFailure("finding a free port failed");
    return port;
  }

  static uint64_t PagesBytes(const std::string& dir) {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string name = e.path().filename().string();
      if (name.rfind("pages-", 0) == 0 && e.is_regular_file()) n += e.file_size();
    }
    return n;
  }

  static double Mib(uint64_t b) { return double(b) / (1 << 20); }

  void Print(const RunResult& r, int run) {
    progress_clear();
    if (std::isnan(r.cold_dump)) {
      printf("  run %d: failed: %s\n", run, first_line(r.error).c_str());
      return;
    }
    double cold = r.cold_dump + r.cold_restore;
    printf("  run %d: cold: full dump %.1f MiB in %.3f s, restore %.3f s: pause %.3f s\n", run,
           Mib(r.cold_bytes), r.cold_dump, r.cold_restore, cold);
    for (size_t i = 0; i < r.rounds.size(); i++)
      printf("         pre-dump %zu: %8.1f MiB in %.3f s (the process runs)\n", i + 1,
             Mib(r.rounds[i].bytes), r.rounds[i].secs);
    if (std::isnan(r.pause)) {
      printf("         failed: %s\n", first_line(r.error).c_str());
      return;
    }
    printf(
        "         final dump: %6.1f MiB in %.3f s, restore %.3f s: pause %.3f s (%.0f%% of "
        "the cold pause)\n",
        Mib(r.final_dump.bytes), r.final_dump.secs, r.final_restore, r.pause, 100 * r.pause / cold);
    if (std::isnan(r.lazy_pause)) {
      if (!r.error.empty()) printf("         post-copy failed: %s\n", first_line(r.error).c_str());
      return;
    }
    for (size_t i = 0; i < r.lazy_rounds.size(); i++)
      printf("         post-copy pre-dump %zu: %8.1f MiB in %.3f s (the process runs)\n", i + 1,
             Mib(r.lazy_rounds[i].bytes), r.lazy_rounds[i].secs);
    printf(
        "         post-copy final: lazy dump %.1f MiB held in %.3f s, restore --lazy-pages %.3f s: "
        "pause %.3f s (%.0f%% of the cold full dump); every page in after %.3f s\n",
        Mib(r.lazy_bytes), r.lazy_dump, r.lazy_restore, r.lazy_pause,
        100 * r.lazy_pause / r.cold_dump, r.lazy_all_in);
  }

  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  void Summary(const std::vector<RunResult>& runs) {
    double cold = NAN, pause = NAN, full = NAN, lazy = NAN;
    for (const RunResult& r : runs) {
      if (!std::isnan(r.lazy_pause)) lazy = std::isnan(lazy) ? r.lazy_pause : std::min(lazy, r.lazy_pause);
      if (!std::isnan(r.cold_dump)) {
        cold = std::isnan(cold) ? r.cold_dump + r.cold_restore
                                : std::min(cold, r.cold_dump + r.cold_restore);
        full = std::isnan(full) ? r.cold_dump : std::min(full, r.cold_dump);
      }
      if (!std::isnan(r.pause)) pause = std::isnan(pause) ? r.pause : std::min(pause, r.pause);
    }
    if (std::isnan(cold) || std::isnan(pause)) return;
    printf(
        "  best: cold full dump %.3f s, cold pause %.3f s; pre-copy pause %.3f s = %.0f%% of the "
        "cold full dump, %.0f%% of the cold pause (issue 10's target: under 10%% of a cold "
        "full dump)\n",
        full, cold, pause, 100 * pause / full, 100 * pause / cold);
    if (!std::isnan(lazy))
      printf("  best post-copy pause %.3f s = %.0f%% of the cold full dump\n", lazy,
             100 * lazy / full);
  }

  const PrecopyBenchOptions& o_;
  std::string root_;
};

}  // namespace

PrecopyBenchResult RunPrecopyBench(const PrecopyBenchOptions& o) { return Bench(o).Run(); }
