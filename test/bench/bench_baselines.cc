#include "bench_baselines.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>

#include "bench_util.h"

namespace bench {
namespace {

double Best(const std::vector<double>& v) {
  return v.empty() ? NAN : *std::min_element(v.begin(), v.end());
}

// Writes `bytes` of non-zero data to path (not timed).
void MakeFile(const std::string& path, size_t bytes) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) fail_errno("open " + path);
  std::vector<uint64_t> chunk((8 << 20) / 8);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t off = 0; off < bytes;) {
    for (uint64_t& w : chunk) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      w = x;
    }
    size_t n = std::min(bytes - off, chunk.size() * 8);
    if (write(fd, chunk.data(), n) != ssize_t(n)) {
      close(fd);
      unlink(path.c_str());
      fail_errno("write " + path);
    }
    off += n;
  }
  close(fd);
}

}  // namespace

std::vector<double> ReadTouchBaseline(const std::string& dir, size_t bytes, int runs) {
  const std::string path = dir + "/read-baseline.dat";
  progress("baseline read+touch: writing the file");
  MakeFile(path, bytes);
  std::vector<double> out;
  try {
    for (int i = 0; i < runs; i++) {
      check_stop();
      progress(fmt("baseline read+touch %s run %d/%d", dir.c_str(), i + 1, runs));
      double t0 = now(), t1 = 0;
      pid_t cat = spawn({"/bin/cat", path}, {"/dev/null", "/dev/null", "/dev/null"}, false);
      std::optional<int> st = wait_exit(cat, 600, &t1);
      if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
        throw std::runtime_error("cat " + path + " failed");
      double read_s = t1 - t0;
      void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) fail_errno(fmt("mmap %zu bytes", bytes));
      auto* p = static_cast<volatile char*>(m);
      t0 = now();
      for (size_t off = 0; off < bytes; off += 4096) p[off] = 1;
      double touch_s = now() - t0;
      munmap(m, bytes);
      out.push_back(read_s + touch_s);
    }
  } catch (...) {
    unlink(path.c_str());
    throw;
  }
  unlink(path.c_str());
  return out;
}

void PrintMemoryExtras(const std::vector<MemoryRow>& rows, size_t bytes) {
  auto gbps = [&](double s) { return double(bytes) / s / 1e9; };
  printf("\nrestore vs its baseline (cat IMAGE > /dev/null + first touch of the memory)\n");
  printf("  %-24s %8s %8s %10s   %s\n", "", "best s", "GB/s", "x baseline", "all runs (s)");
  for (const MemoryRow& r : rows) {
    if (r.read_touch.empty()) continue;
    std::string runs;
    for (double v : r.read_touch) runs += fmt("%.3f ", v);
    printf("  %-24s %8.3f %8.2f %10s   %s\n", ("cat+touch " + r.medium).c_str(), Best(r.read_touch),
           gbps(Best(r.read_touch)), "", runs.c_str());
    if (r.restore.empty()) continue;
    runs.clear();
    for (double v : r.restore) runs += fmt("%.3f ", v);
    printf("  %-24s %8.3f %8.2f %9.2fx   %s\n", ("restore " + r.medium).c_str(), Best(r.restore),
           gbps(Best(r.restore)), Best(r.restore) / Best(r.read_touch), runs.c_str());
  }
  printf("  x baseline = restore time / baseline time (target: under 1.5)\n");

  printf(
      "\nckpt's peak memory (ru_maxrss of the ckpt process, MiB; the restored tree not counted)\n");
  printf("  %-10s %10s %10s\n", "images on", "dump", "restore");
  for (const MemoryRow& r : rows) {
    if (r.dump_rss_kib.empty() && r.restore_rss_kib.empty()) continue;
    auto peak = [](const std::vector<long>& v) {
      return v.empty() ? std::string("-")
                       : fmt("%.1f", double(*std::max_element(v.begin(), v.end())) / 1024);
    };
    printf("  %-10s %10s %10s\n", r.medium.c_str(), peak(r.dump_rss_kib).c_str(),
           peak(r.restore_rss_kib).c_str());
  }
  printf("  the highest of all runs (target: under 64 MiB)\n");
}

}  // namespace bench
