#include "bench_scale.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "bench_report.h"
#include "bench_round_trip.h"
#include "bench_util.h"

namespace bench {
namespace {

enum class Kind { Tree, Threads, Fds };

struct ScaleRow {
  long n = 0;
  Timing dump, restore;
  std::optional<Usage> images;
  std::string error;  // first failure, if any; the row is not run again
  int verified = 0;
};

struct Section {
  Kind kind;
  const char* key;   // --only name
  const char* unit;  // "proc", "thread", "fd"
  const char* per;   // per-unit column label, e.g. "ms/proc"
  double per_scale;  // seconds -> that column's unit
  std::vector<ScaleRow> rows;
};

// What /proc shows of a victim: id -> parent id. Tree: pid -> ppid of
// every process from the root down. Threads: tid -> pid. Fds: fd -> 0.
using Snapshot = std::map<long, long>;

std::vector<long> list_dir_numbers(const std::string& path) {
  std::vector<long> r;
  DIR* d = opendir(path.c_str());
  if (!d) return r;
  while (struct dirent* e = readdir(d))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') r.push_back(atol(e->d_name));
  closedir(d);
  return r;
}

Snapshot snapshot(Kind k, pid_t root) {
  Snapshot s;
  if (k == Kind::Threads) {
    for (long t : list_dir_numbers(fmt("/proc/%d/task", root))) s[t] = root;
  } else if (k == Kind::Fds) {
    for (long fd : list_dir_numbers(fmt("/proc/%d/fd", root))) s[fd] = 0;
  } else {
    char state;
    pid_t ppid;
    if (!proc_stat(root, &state, &ppid)) return s;
    s[root] = ppid;
    std::vector<pid_t> todo{root};
    while (!todo.empty()) {
      pid_t p = todo.back();
      todo.pop_back();
      std::istringstream kids(read_file(fmt("/proc/%d/task/%d/children", p, p)));
      for (pid_t c; kids >> c;) {
        if (s.count(c)) continue;
        s[c] = p;
        todo.push_back(c);
      }
    }
  }
  return s;
}

// "" if equal, else what differs, with a few examples.
std::string diff_snapshots(Kind k, const Snapshot& before, const Snapshot& after) {
  const char* what = k == Kind::Tree ? "pid" : k == Kind::Threads ? "tid" : "fd";
  std::vector<long> missing, extra;
  std::vector<std::string> moved;
  for (const auto& [id, parent] : before) {
    auto it = after.find(id);
    if (it == after.end())
      missing.push_back(id);
    else if (it->second != parent)
      moved.push_back(fmt("%s %ld has parent %ld, had %ld", what, id, it->second, parent));
  }
  for (const auto& [id, parent] : after)
    if (!before.count(id)) extra.push_back(id);
  if (missing.empty() && extra.empty() && moved.empty()) return "";
  auto some = [](const std::vector<long>& v) {
    std::string r;
    for (size_t i = 0; i < v.size() && i < 5; i++) r += fmt("%s%ld", i ? ", " : "", v[i]);
    return r + (v.size() > 5 ? ", ..." : "");
  };
  std::string r = fmt("after restore /proc shows %zu %ss, before the dump %zu", after.size(), what,
                      before.size());
  if (!missing.empty()) r += fmt("; %zu missing (%s)", missing.size(), some(missing).c_str());
  if (!extra.empty()) r += fmt("; %zu unexpected (%s)", extra.size(), some(extra).c_str());
  if (!moved.empty())
    r += fmt("; %zu with another parent (%s%s)", moved.size(), moved[0].c_str(),
             moved.size() > 1 ? ", ..." : "");
  return r;
}

std::vector<std::string> victim_argv(const ScaleBenchOptions& o, Kind k, long n, const std::string& fd_dir) {
  switch (k) {
    case Kind::Tree:
      return {o.victim, "tree", std::to_string(n), std::to_string(o.tree_fanout)};
    case Kind::Threads:
      return {o.victim, "threads", std::to_string(n)};
    case Kind::Fds:
      return {o.victim, "fds", std::to_string(n), fd_dir, std::to_string(o.fd_files)};
  }
  return {};
}

// How many entries the snapshot of a ready victim of size n must have.
size_t expected_entries(Kind k, long n) { return static_cast<size_t>(k == Kind::Fds ? n + 3 : n); }

// One dump+restore round trip of a fresh size-n victim.
void scale_round_trip(const ScaleBenchOptions& o, Section& sec, ScaleRow& row, int run) {
  const long n = row.n;
  const std::string fd_dir = o.work + "/fd-files";
  if (sec.kind == Kind::Fds) {
    rm_rf(fd_dir);
    if (mkdir(fd_dir.c_str(), 0700) != 0) fail_errno("mkdir " + fd_dir);
  }
  Snapshot before;
  RoundTripSpec s;
  s.ckpt = o.ckpt;
  s.victim_argv = victim_argv(o, sec.kind, n, fd_dir);
  s.work = o.work;
  s.log_prefix = fmt("%s/%s-%ld-run%d-", o.work.c_str(), sec.key, n, run);
  s.dir = o.tmpfs_dir;
  s.step = fmt("run %d/%d %s N=%ld", run, o.runs, sec.key, n);
  s.timeout = o.timeout;
  s.exit1_means = "(the victim found its restored state wrong)";
  s.note = [](const std::string& t) { report().Note(t); };
  s.after_ready = [&](pid_t root) {
    before = snapshot(sec.kind, root);
    if (before.size() != expected_entries(sec.kind, n))
      throw RunFailure(fmt("the READY victim shows %zu entries in /proc, expected %zu",
                           before.size(), expected_entries(sec.kind, n)));
    std::vector<pid_t> pids{root};
    if (sec.kind == Kind::Tree) {
      pids.clear();
      for (const auto& e : before) pids.push_back(static_cast<pid_t>(e.first));
    }
    return pids;
  };
  s.after_restore = [&](pid_t root) {
    std::string diff = diff_snapshots(sec.kind, before, snapshot(sec.kind, root));
    if (!diff.empty()) throw RunFailure(diff);
  };
  RoundTripResult r = RoundTrip(s);
  row.images = r.images;
  row.verified++;
  row.dump.runs.push_back(r.dump_s);
  row.restore.runs.push_back(r.restore_s);
  if (sec.kind == Kind::Fds) rm_rf(fd_dir);
}

void run_section(const ScaleBenchOptions& o, Section& sec) {
  // The fds victim inherits our RLIMIT_NOFILE; say up front if the hard
  // limit cannot hold a row (the victim would exit 3 anyway).
  if (sec.kind == Kind::Fds) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    for (ScaleRow& row : sec.rows) {
      rlim_t need = static_cast<rlim_t>(row.n) + 3 + 8;
      if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        row.error =
            fmt("RLIMIT_NOFILE hard limit %llu is too low for %ld fds (needs %llu; raise it, e.g. "
                "ulimit -Hn %llu)",
                static_cast<unsigned long long>(rl.rlim_max), row.n,
                static_cast<unsigned long long>(need), static_cast<unsigned long long>(need));
    }
  }
  // Sizes interleaved per run, so slow drifts hit all sizes alike.
  for (int run = 1; run <= o.runs; run++) {
    for (ScaleRow& row : sec.rows) {
      if (!row.error.empty()) continue;
      try {
        scale_round_trip(o, sec, row, run);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        row.error = fmt("run %d: ", run) + e.what();
        progress_clear();
        fprintf(stderr, "ckpt-bench: FAIL (%s, N=%ld) %s\n", sec.key, row.n, row.error.c_str());
        kill_all_children();
        rm_rf(o.tmpfs_dir + "/images");
        rm_rf(o.work + "/fd-files");
      }
    }
  }
  progress_clear();
}

// Least-squares line t = a + b*n through the rows' best times; false if
// fewer than two distinct sizes succeeded.
bool fit_line(const std::vector<std::pair<double, double>>& pts, double* a, double* b, double* r2) {
  if (pts.size() < 2) return false;
  double sx = 0, sy = 0;
  for (auto [x, y] : pts) sx += x, sy += y;
  const double k = static_cast<double>(pts.size()), mx = sx / k, my = sy / k;
  double sxx = 0, sxy = 0, syy = 0;
  for (auto [x, y] : pts)
    sxx += (x - mx) * (x - mx), sxy += (x - mx) * (y - my), syy += (y - my) * (y - my);
  if (sxx <= 0) return false;
  *b = sxy / sxx;
  *a = my - *b * mx;
  *r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1;
  return true;
}

void print_section(const ScaleBenchOptions& o, const Section& sec) {
  const char* per_time = sec.per_scale >= 1e6 ? "us" : "ms";
  switch (sec.kind) {
    case Kind::Tree:
      printf(
          "\nprocess tree of N processes (each forks up to %ld children, all sleep in pause()), "
          "images on tmpfs\n",
          o.tree_fanout);
      break;
    case Kind::Threads:
      printf(
          "\nthreads: one process with N threads (N-1 workers in FUTEX_WAIT), images on tmpfs\n");
      break;
    case Kind::Fds:
      printf(
          "\nfds: one process with N fds besides stdio (%ld distinct regular files, the rest dups "
          "of one), images on tmpfs\n",
          o.fd_files);
      break;
  }
  const ScaleRow* base = nullptr;
  for (const ScaleRow& r : sec.rows)
    if (!r.dump.runs.empty() && !r.restore.runs.empty()) {
      base = &r;
      break;
    }
  const std::string vs = base ? fmt("vs N=%ld", base->n) : std::string("vs N=?");
  const std::string added = fmt("%s/added", per_time);
  // Rows: "  " N(6) " " img(8), then per op "   " + 8+1+8+1+8+1+10 = 37 columns.
  auto banner = [](const char* w) {
    std::string s = fmt(" %s ", w);
    size_t left = (37 - s.size()) / 2;
    return std::string(left, '-') + s + std::string(37 - left - s.size(), '-');
  };
  printf("  %6s %8s   %s   %s\n", "", "", banner("dump").c_str(), banner("restore").c_str());
  printf("  %6s %8s   %8s %8s %8s %10s   %8s %8s %8s %10s\n", "N", "img MiB", "best s", sec.per,
         vs.c_str(), added.c_str(), "best s", sec.per, vs.c_str(), added.c_str());
  const ScaleRow* prev = nullptr;
  std::vector<std::pair<double, double>> pd, pr;
  for (const ScaleRow& r : sec.rows) {
    if (r.dump.runs.empty() || r.restore.runs.empty()) {
      printf("  %6ld  FAILED: %s\n", r.n,
             r.error.empty() ? "no verified round trip" : first_line(r.error).c_str());
      continue;
    }
    double img = r.images ? static_cast<double>(r.images->allocated) / (1 << 20) : NAN;
    printf("  %6ld %8.1f", r.n, img);
    for (int op = 0; op < 2; op++) {
      const Timing& t = op == 0 ? r.dump : r.restore;
      const Timing* tb = base ? (op == 0 ? &base->dump : &base->restore) : nullptr;
      const Timing* tp = prev ? (op == 0 ? &prev->dump : &prev->restore) : nullptr;
      std::string per =
          r.n > 0 ? fmt("%.2f", t.best() / static_cast<double>(r.n) * sec.per_scale) : "-";
      std::string add = tp && r.n != prev->n
                            ? fmt("%.2f", (t.best() - tp->best()) /
                                              static_cast<double>(r.n - prev->n) * sec.per_scale)
                            : "-";
      printf("   %8.3f %8s %8s %10s", t.best(), per.c_str(),
             ratio_str(tb ? t.best() / tb->best() : NAN).c_str(), add.c_str());
    }
    printf("%s\n", r.error.empty() ? "" : "   then FAILED");
    pd.emplace_back(static_cast<double>(r.n), r.dump.best());
    pr.emplace_back(static_cast<double>(r.n), r.restore.best());
    prev = &r;
  }
  double a, b, r2;
  std::string fit;
  if (fit_line(pd, &a, &b, &r2))
    fit += fmt("dump %.1f ms + %.3f %s/%s (r^2 %.3f)", a * 1e3, b * sec.per_scale, per_time,
               sec.unit, r2);
  if (fit_line(pr, &a, &b, &r2))
    fit += fmt("%srestore %.1f ms + %.3f %s/%s (r^2 %.3f)", fit.empty() ? "" : "; ", a * 1e3,
               b * sec.per_scale, per_time, sec.unit, r2);
  if (!fit.empty()) printf("  least-squares line over the best times: %s\n", fit.c_str());
  // Local growth exponent k (time ~ N^k) between the two largest sizes: 1 is
  // linear, above 1 each added object costs more than the ones before it.
  if (pd.size() >= 2 && pd[pd.size() - 2].first > 0) {
    auto k = [](const std::vector<std::pair<double, double>>& v) {
      auto [n1, t1] = v[v.size() - 2];
      auto [n2, t2] = v.back();
      return std::log(t2 / t1) / std::log(n2 / n1);
    };
    printf(
        "  growth from N=%.0f to N=%.0f: dump ~ N^%.2f, restore ~ N^%.2f (time ~ N^k; k = 1 is "
        "linear)\n",
        pd[pd.size() - 2].first, pd.back().first, k(pd), k(pr));
  }
  printf("  all runs (s):\n");
  for (const ScaleRow& r : sec.rows)
    if (!r.dump.runs.empty())
      printf("  %6ld   dump %s   restore %s\n", r.n, runs_str(r.dump).c_str(),
             runs_str(r.restore).c_str());
  printf(
      "  %s = best s / N; %s = best(N) / best(%ld); %s = (best(N) - best(N above)) / (N - N "
      "above)\n",
      sec.per, vs.c_str(), base ? base->n : 0L, added.c_str());
}

void add_records(const Section& sec) {
  for (const ScaleRow& r : sec.rows) {
    ReportFields f = {{"kind", sec.key}, {"n", double(r.n)}};
    Report::AddTiming(&f, "dump_", r.dump);
    Report::AddTiming(&f, "restore_", r.restore);
    if (r.images) f.emplace_back("image_bytes", double(r.images->allocated));
    f.emplace_back("verified", double(r.verified));
    if (!r.error.empty()) f.emplace_back("error", first_line(r.error));
    report().Add("scale", f);
  }
}

}  // namespace

ScaleBenchResult RunScaleBench(const ScaleBenchOptions& o) {
  ScaleBenchResult res;
  std::vector<Section> secs;
  auto add = [&](Kind k, const char* key, const char* unit, const char* per, double scale,
                 const std::vector<long>& sizes) {
    if (sizes.empty()) return;
    Section sec{k, key, unit, per, scale, {}};
    for (long n : sizes) sec.rows.push_back(ScaleRow{n, {}, {}, {}, {}, 0});
    secs.push_back(std::move(sec));
  };
  add(Kind::Tree, "tree", "proc", "ms/proc", 1e3, o.tree_sizes);
  add(Kind::Threads, "threads", "thread", "ms/thr", 1e3, o.thread_counts);
  add(Kind::Fds, "fds", "fd", "us/fd", 1e6, o.fd_counts);
  for (Section& sec : secs) {
    run_section(o, sec);
    print_section(o, sec);
    add_records(sec);
    int verified = 0;
    for (const ScaleRow& r : sec.rows) {
      verified += r.verified;
      if (!r.error.empty()) res.ok = false;
    }
    res.verified += fmt("%s%s %d", res.verified.empty() ? "" : ", ", sec.key, verified);
  }
  bool header_done = false;
  for (const Section& sec : secs) {
    for (const ScaleRow& r : sec.rows) {
      if (r.error.empty()) continue;
      if (!header_done) printf("\nfailures in the scaling sections (details on stderr)\n");
      header_done = true;
      printf("  %-7s N=%-6ld %s\n", sec.key, r.n, first_line(r.error).c_str());
    }
  }
  return res;
}

}  // namespace bench
