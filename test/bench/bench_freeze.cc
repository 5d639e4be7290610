// See bench_freeze.h.
#include "bench_freeze.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "bench_ckpt_run.h"
#include "bench_util.h"

using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing

namespace {

struct Row {
  std::string pages, mode;
  double wall = NAN, frozen_ms = NAN, stall_ms = NAN;
  std::string error;
};

// "... frozen for N ms ..." from ckpt's log.
double FrozenMs(const std::string& log) {
  std::string text = read_file(log);
  size_t p = text.rfind("frozen for ");
  return p == std::string::npos ? NAN : atof(text.c_str() + p + 11);
}

// The victim's last "STALL <us>" line, in ms, after asking for it.
double Stall(pid_t pid, const std::string& out) {
  kill(pid, SIGUSR2);
  for (int i = 0; i < 200; i++) {  // 2 s: it answers within a tick
    sleep_ms(10);
    std::string text = read_file(out);
    size_t p = text.rfind("STALL ");
    if (p != std::string::npos && text.find('\n', p) != std::string::npos) {
      double v = atof(text.c_str() + p + 6) / 1000;
      write_file(out, "");  // the next answer is the only one
      return v;
    }
  }
  throw RunFailure("the freeze victim does not report its stall");
}

}  // namespace

FreezeBenchResult RunFreezeBench(const FreezeBenchOptions& o) {
  FreezeBenchResult res;
  printf("\nfreeze: dump --leave-running of a %llu MiB process, images on %s; best of %d\n",
         (unsigned long long)o.size_mib, o.image_dir.c_str(), o.runs);
  std::vector<Row> rows;
  for (const char* pages : {"4k", "thp"}) {
    const std::string out = o.work_dir + "/freeze-" + pages + ".victim.out";
    pid_t pid = spawn({o.victim, "freeze", std::to_string(o.size_mib), pages},
                      {"/dev/null", out, out}, true, o.work_dir);
    try {
      wait_ready(pid, out, out, o.timeout);
      write_file(out, "");
      for (const char* mode : {"cow", "frozen"}) {
        Row row{pages, mode};
        for (int run = 1; run <= o.runs; run++) {
          progress(fmt("freeze: %s pages, %s, run %d/%d", pages, mode, run, o.runs));
          const std::string img = make_temp_dir(o.image_dir, "freeze"),
                            pre = fmt("%s/freeze-%s-%s-%d-", o.work_dir.c_str(), pages, mode, run);
          std::vector<std::string> argv = {o.ckpt, "dump", "-t", std::to_string(pid), "-D",
                                           img,    "-R",   "-o", pre + "dump.log",    "-v4"};
          if (std::string(mode) == "frozen") argv.push_back("--no-cow-snapshot");
          kill(pid, SIGUSR1);
          sleep_ms(50);
          double wall =
              run_ckpt(argv, pre + "dump.out", pre + "dump.log", o.timeout, "ckpt dump -R");
          double frozen = FrozenMs(pre + "dump.log");
          double stall = Stall(pid, out);
          rm_rf(img);
          row.wall = std::isfinite(row.wall) ? std::min(row.wall, wall) : wall;
          if (std::isfinite(frozen))
            row.frozen_ms = std::isfinite(row.frozen_ms) ? std::min(row.frozen_ms, frozen) : frozen;
          row.stall_ms = std::isfinite(row.stall_ms) ? std::min(row.stall_ms, stall) : stall;
        }
        rows.push_back(row);
      }
      kill(pid, SIGTERM);
      std::optional<int> st = wait_exit(pid, o.timeout);
      if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
        throw RunFailure("the freeze victim found its memory changed (" +
                         (st ? describe_status(*st) : std::string("no exit")) + ")");
      res.verified++;
    } catch (const RunFailure& e) {
      res.ok = false;
      progress_clear();
      fprintf(stderr, "ckpt-bench: freeze (%s pages): %s\n", pages, e.what());
      rows.push_back({pages, "error", NAN, NAN, NAN, e.what()});
    }
    kill_all_children();
  }
  progress_clear();
  printf("  %-6s %-8s %10s %12s %14s\n", "pages", "dump", "wall s", "frozen ms", "stall seen ms");
  for (const Row& r : rows) {
    if (!r.error.empty()) {
      printf("  %-6s FAILED (details on stderr)\n", r.pages.c_str());
      continue;
    }
    printf("  %-6s %-8s %10.2f %12.1f %14.1f\n", r.pages.c_str(),
           r.mode == "cow" ? "cow" : "frozen", r.wall, r.frozen_ms, r.stall_ms);
  }
  printf("  (cow: the default with -R; frozen: --no-cow-snapshot. Target: under 20 ms per GiB)\n");
  fflush(stdout);
  return res;
}
