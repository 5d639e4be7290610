// See bench_compress.h.
#include "bench_compress.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bench_ckpt_run.h"
#include "bench_util.h"

namespace fs = std::filesystem;
using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

struct Row {
  long level = 0;  // 0: uncompressed
  double dump = NAN, restore = NAN;
  uint64_t pages_bytes = 0;
  std::string error;
};

uint64_t PagesBytes(const std::string& img) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(img))
    if (e.path().filename().string().rfind("pages-", 0) == 0) n += fs::file_size(e.path());
  return n;
}

// One dump + restore at `level`; returns the times and the pages bytes.
Row RoundTrip(const CompressBenchOptions& o, long level, int run) {
  Row r;
  r.level = level;
  const std::string tag = fmt("compress-run%d-l%ld-", run, level);
  const std::string pre = o.work_dir + "/" + tag;
  const std::string root = make_temp_dir(o.image_dir, "compress");
  const std::string img = root + "/img";
  mkdir(img.c_str(), 0700);
  try {
    const std::string out = pre + "victim.out";
    pid_t pid = spawn({o.victim, "compress", std::to_string(o.size_mib)}, {"/dev/null", out, out},
                      true, o.work_dir);
    wait_ready(pid, out, out, o.timeout);
    std::vector<std::string> dump = {o.ckpt, "dump", "-t", std::to_string(pid), "-D", img,
                                     "-o",   pre + "dump.log"};
    if (level) dump.insert(dump.end(), {"--compress", "zstd:" + std::to_string(level)});
    progress(fmt("compress run %d/%d: dump, level %ld", run, o.runs, level));
    r.dump = run_ckpt(dump, pre + "dump.out", pre + "dump.log", o.timeout, "ckpt dump");
    if (!wait_exit(pid, 30)) throw RunFailure("the dumped victim is alive 30 s after the dump");
    r.pages_bytes = PagesBytes(img);
    progress(fmt("compress run %d/%d: restore, level %ld", run, o.runs, level));
    const std::string pidfile = pre + "restore.pid";
    r.restore = run_ckpt(
        {o.ckpt, "restore", "-D", img, "-d", "--pidfile", pidfile, "-o", pre + "restore.log"},
        pre + "restore.out", pre + "restore.log", o.timeout, "ckpt restore");
    pid_t restored = pid_t(std::stol(read_file(pidfile)));
    kill(restored, SIGTERM);
    std::optional<int> st = wait_exit(restored, o.timeout);
    if (!st) throw RunFailure("the restored victim did not end after SIGTERM");
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw RunFailure(
          with_log("the restored victim " + describe_status(*st), {{"victim output", out}}));
  } catch (const RunFailure& e) {
    r.error = e.what();
  }
  kill_all_children();
  rm_rf(root);
  return r;
}

}  // namespace

CompressBenchResult RunCompressBench(const CompressBenchOptions& o) {
  CompressBenchResult res;
  printf("\ncompress: a %llu MiB process, half text-like, half random; images on %s\n",
         (unsigned long long)o.size_mib, o.image_dir.c_str());
  std::vector<long> levels = {0};
  for (long l : o.levels)
    if (l != 0) levels.push_back(l);
  std::vector<Row> best(levels.size());
  for (size_t i = 0; i < levels.size(); i++) best[i].level = levels[i];
  for (int run = 1; run <= o.runs; run++) {
    for (size_t i = 0; i < levels.size(); i++) {
      check_stop();
      Row r = RoundTrip(o, levels[i], run);
      progress_clear();
      if (!r.error.empty()) {
        res.ok = false;
        fprintf(stderr, "ckpt-bench: compress level %ld run %d: %s\n", levels[i], run,
                r.error.c_str());
        if (best[i].error.empty()) best[i].error = r.error;
        continue;
      }
      res.verified++;
      Row& b = best[i];
      if (std::isnan(b.dump) || r.dump < b.dump) b.dump = r.dump;
      if (std::isnan(b.restore) || r.restore < b.restore) b.restore = r.restore;
      b.pages_bytes = r.pages_bytes;
    }
  }
  const double mib = double(o.size_mib);
  const uint64_t raw = best[0].pages_bytes;
  printf("  %-10s %9s %10s %12s %7s %10s %10s\n", "level", "dump s", "MiB/s", "pages MiB",
         "ratio", "restore s", "MiB/s");
  for (const Row& b : best) {
    std::string name = b.level ? fmt("zstd:%ld", b.level) : "none";
    if (std::isnan(b.dump)) {
      printf("  %-10s failed: %s\n", name.c_str(), first_line(b.error).c_str());
      continue;
    }
    double ratio = b.pages_bytes ? double(raw) / double(b.pages_bytes) : NAN;
    printf("  %-10s %9.3f %10.0f %12.1f %7.2f %10.3f %10.0f\n", name.c_str(), b.dump,
           mib / b.dump, double(b.pages_bytes) / (1 << 20), ratio, b.restore, mib / b.restore);
  }
  printf("  (best of %d; ratio = uncompressed pages bytes / these pages bytes; MiB/s of the "
         "victim's memory)\n",
         o.runs);
  return res;
}
