#include "bench_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "bench_baselines.h"
#include "bench_round_trip.h"

namespace bench {
namespace {

// ---------------------------------------------------------- baselines ----

struct Buffer {
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit Buffer(size_t bytes) : n(bytes) {
    void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail_errno(fmt("mmap %zu bytes", n));
    p = static_cast<uint8_t*>(m);
  }
  ~Buffer() {
    if (p) munmap(p, n);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void fill_pattern(Buffer& b) {
  uint64_t x = 0x243f6a8885a308d3ULL;
  auto* w = reinterpret_cast<uint64_t*>(b.p);
  for (size_t i = 0; i < b.n / 8; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = x;
  }
}

Timing bench_memcpy(const Buffer& src, int runs) {
  Buffer dst(src.n);
  memset(dst.p, 1, dst.n);  // pre-fault
  Timing t;
  for (int i = 0; i < runs; i++) {
    check_stop();
    progress(fmt("baseline memcpy run %d/%d", i + 1, runs));
    double t0 = now();
    memcpy(dst.p, src.p, src.n);
    asm volatile("" : : "r"(dst.p) : "memory");
    t.runs.push_back(now() - t0);
  }
  return t;
}

Timing bench_write(const Buffer& src, const std::string& dir, bool do_fsync, int runs,
                   const char* label) {
  constexpr size_t kChunk = 8 << 20;
  Timing t;
  std::string path = dir + "/write-baseline.dat";
  for (int i = 0; i < runs; i++) {
    check_stop();
    progress(fmt("baseline %s run %d/%d", label, i + 1, runs));
    double t0 = now();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail_errno("open " + path);
    size_t off = 0;
    while (off < src.n) {
      ssize_t r = write(fd, src.p + off, std::min(kChunk, src.n - off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        int e = errno;
        close(fd);
        unlink(path.c_str());
        errno = e;
        fail_errno("write " + path);
      }
      off += static_cast<size_t>(r);
    }
    if (do_fsync && fsync(fd) != 0) {
      int e = errno;
      close(fd);
      unlink(path.c_str());
      errno = e;
      fail_errno("fsync " + path);
    }
    close(fd);
    t.runs.push_back(now() - t0);
    unlink(path.c_str());
  }
  return t;
}

// ------------------------------------------------------------- output ----

void print_report(const MemoryBenchOptions& o, const Timing& mc, const std::vector<Medium>& media) {
  const uint64_t bytes = o.size_mib << 20;
  const double gb = static_cast<double>(bytes) / kGB;
  auto gbps = [&](const Timing& t) { return t.runs.empty() ? NAN : gb / t.best(); };
  // Columns: label, best s, GB/s, [vs memcpy, vs write], all runs.
  const char* row = "  %-24s %8.3f %8.2f";
  auto header = [](const std::string& title, bool ratios) {
    printf("\n%-26s %8s %8s", title.c_str(), "best s", "GB/s");
    if (ratios) printf(" %10s %9s", "vs memcpy", "vs write");
    printf("   %s\n", "all runs (s)");
  };

  header(fmt("baselines, %" PRIu64 " MiB", o.size_mib), false);
  printf(row, "memcpy", mc.best(), gbps(mc));
  printf("   %s\n", runs_str(mc).c_str());
  for (const Medium& m : media) {
    std::string label =
        std::string("write(2)") + (m.fsync ? "+fsync " : " ") + m.name;
    if (!m.write.error.empty()) {
      printf("  %-24s FAILED: %s\n", label.c_str(), first_line(m.write.error).c_str());
      continue;
    }
    printf(row, label.c_str(), m.write.best(), gbps(m.write));
    printf("   %s\n", runs_str(m.write).c_str());
  }

  header(fmt("ckpt, victim %" PRIu64 " MiB", o.size_mib), true);
  for (const char* op : {"dump", "restore"}) {
    for (const Medium& m : media) {
      const Timing& t = std::string(op) == "dump" ? m.dump : m.restore;
      std::string label = fmt("%-8s images on %s", op, m.name);
      if (t.runs.empty()) {
        printf("  %-24s FAILED (no verified round trip)\n", label.c_str());
        continue;
      }
      double g = gbps(t);
      printf(row, label.c_str(), t.best(), g);
      printf(" %10s %9s   %s%s\n", ratio_str(g / gbps(mc)).c_str(),
             ratio_str(g / gbps(m.write)).c_str(), runs_str(t).c_str(),
             m.error.empty() ? "" : " then FAILED");
    }
  }
  for (const Medium& m : media) {
    if (!m.lazy || m.all_in.runs.empty()) continue;
    double g = gbps(m.all_in);
    printf(row, "all pages in, lazy", m.all_in.best(), g);
    printf(" %10s %9s   %s\n", ratio_str(g / gbps(mc)).c_str(),
           ratio_str(g / gbps(m.write)).c_str(), runs_str(m.all_in).c_str());
  }
  printf(
      "  vs X = ckpt GB/s / baseline GB/s ('write' = the write(2) baseline on the same medium); GB "
      "= 1e9 B\n"
      "  lazy = images on tmpfs, `ckpt restore -d --lazy-pages` with `ckpt lazy-pages`: restore\n"
      "  until the task runs again; all pages in = from restore start until the daemon exits\n"
      "  dump = `ckpt dump` until it exits (task killed); restore = `ckpt restore -d` until it "
      "returns\n"
      "  (task running); disk restores read images the dump just wrote, mostly from the page "
      "cache\n");

  printf("\nimages vs victim memory (%" PRIu64 " MiB)\n", o.size_mib);
  for (const Medium& m : media) {
    if (!m.images) {
      printf("  %-6s no images\n", m.name);
      continue;
    }
    const Usage& u = *m.images;
    auto mib = [](uint64_t v) { return static_cast<double>(v) / (1 << 20); };
    auto rel = [&](uint64_t v) { return static_cast<double>(v) / static_cast<double>(bytes); };
    printf("  %-6s %9.1f MiB allocated (%.3fx), %9.1f MiB apparent (%.3fx), %" PRIu64 " files\n",
           m.name, mib(u.allocated), rel(u.allocated), mib(u.apparent), rel(u.apparent), u.files);
  }

  bool header_done = false;
  for (const Medium& m : media) {
    if (m.error.empty()) continue;
    if (!header_done) printf("\nfailures (details on stderr)\n");
    header_done = true;
    printf("  %-6s %s\n", m.name, first_line(m.error).c_str());
  }
}

void add_records(const MemoryBenchOptions& o, const Timing& mc, const std::vector<Medium>& media) {
  const double gb = static_cast<double>(o.size_mib << 20) / kGB;
  ReportFields b = {{"what", "memcpy"}, {"mib", double(o.size_mib)}};
  Report::AddTiming(&b, "", mc);
  b.emplace_back("gbps", gb / mc.best());
  report().Add("memory-baseline", b);
  for (const Medium& m : media) {
    if (m.same_as) continue;
    ReportFields w = {{"what", std::string(m.fsync ? "write+fsync " : "write ") + m.name},
                      {"mib", double(o.size_mib)}};
    Report::AddTiming(&w, "", m.write);
    w.emplace_back("gbps", gb / m.write.best());
    report().Add("memory-baseline", w);
  }
  for (const Medium& m : media) {
    ReportFields f = {{"medium", m.name}, {"mib", double(o.size_mib)}};
    Report::AddTiming(&f, "dump_", m.dump);
    Report::AddTiming(&f, "restore_", m.restore);
    if (m.lazy) Report::AddTiming(&f, "all_in_", m.all_in);
    f.emplace_back("dump_vs_write", (gb / m.dump.best()) / (gb / m.write.best()));
    f.emplace_back("restore_vs_write", (gb / m.restore.best()) / (gb / m.write.best()));
    if (!m.read_touch.empty())
      f.emplace_back("read_touch_best_s", *std::min_element(m.read_touch.begin(), m.read_touch.end()));
    if (!m.dump_rss.empty())
      f.emplace_back("dump_peak_rss_kib",
                     double(*std::max_element(m.dump_rss.begin(), m.dump_rss.end())));
    if (!m.restore_rss.empty())
      f.emplace_back("restore_peak_rss_kib",
                     double(*std::max_element(m.restore_rss.begin(), m.restore_rss.end())));
    if (m.images) f.emplace_back("image_bytes", double(m.images->allocated));
    f.emplace_back("verified", double(m.verified));
    if (!m.error.empty()) f.emplace_back("error", first_line(m.error));
    report().Add("memory", f);
  }
}

}  // namespace

MemoryBenchResult RunMemoryBench(const MemoryBenchOptions& o, std::vector<Medium>& media) {
  MemoryBenchResult res;
  // ---- baselines
  const size_t bytes = o.size_mib << 20;
  Timing mc;
  {
    Buffer src(bytes);
    progress("baseline: filling buffers");
    fill_pattern(src);
    mc = bench_memcpy(src, o.runs);
    for (Medium& m : media) {
      if (m.same_as) continue;
      try {
        m.write = bench_write(src, m.dir, m.fsync, o.runs,
                              m.fsync ? "write+fsync disk" : "write tmpfs");
        m.read_touch = ReadTouchBaseline(m.dir, bytes, o.runs);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        m.write.error = e.what();
        warn(std::string("baseline write on ") + m.name + ": " + e.what());
      }
    }
    for (Medium& m : media)
      if (m.same_as) m.write = m.same_as->write;
  }

  // ---- ckpt, media interleaved per run so slow drifts hit all alike
  for (int run = 1; run <= o.runs; run++) {
    for (Medium& m : media) {
      if (!m.error.empty()) continue;
      RoundTripSpec s;
      s.ckpt = o.ckpt;
      s.victim_argv = {o.victim, std::to_string(o.size_mib)};
      s.work = o.work;
      s.log_prefix = fmt("%s/%s-run%d-", o.work.c_str(), m.name, run);
      s.dir = m.dir;
      s.step = fmt("run %d/%d %s (%" PRIu64 " MiB)", run, o.runs, m.name, o.size_mib);
      s.timeout = o.timeout;
      s.page_server = m.page_server;
      s.lazy = m.lazy;
      s.exit1_means = "(memory checksum mismatch: wrong restore)";
      s.note = [](const std::string& n) { report().Note(n); };
      try {
        RoundTripResult r = RoundTrip(s);
        m.images = r.images;
        m.verified++;
        m.dump.runs.push_back(r.dump_s);
        m.restore.runs.push_back(r.restore_s);
        m.dump_rss.push_back(r.dump_rss_kib);
        m.restore_rss.push_back(r.restore_rss_kib);
        if (m.lazy) m.all_in.runs.push_back(r.all_in_s);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        progress_clear();
        m.error = fmt("run %d: ", run) + e.what();
        fprintf(stderr, "ckpt-bench: FAIL (images on %s) %s\n", m.name, m.error.c_str());
        kill_all_children();
        rm_rf(m.dir + "/images");
      }
    }
  }
  progress_clear();

  print_report(o, mc, media);
  std::vector<MemoryRow> extras;
  for (const Medium& m : media)
    extras.push_back({m.name, m.read_touch, m.restore.runs, m.dump_rss, m.restore_rss});
  PrintMemoryExtras(extras, bytes);
  add_records(o, mc, media);
  for (const Medium& m : media) {
    res.verified += m.verified;
    if (!m.error.empty() || !m.write.error.empty()) res.ok = false;
  }
  return res;
}

}  // namespace bench
