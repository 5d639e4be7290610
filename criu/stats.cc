#include "criu/stats.h"

#include <time.h>

namespace ckpt {

int64_t NowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

namespace {
std::string Line(const char* name, uint64_t v, const char* unit = "") {
  return std::string(name) + ": " + std::to_string(v) + unit + "\n";
}
}  // namespace

std::string FormatDumpStats(const DumpStats& s) {
  return "Displaying dump stats:\n" + Line("Freezing time", uint64_t(s.freezing_us), " us") +
         Line("Frozen time", uint64_t(s.frozen_us), " us") +
         Line("Memory dump time", uint64_t(s.memdump_us), " us") +
         Line("Memory pages scanned", s.pages_scanned) +
         Line("Memory pages skipped from parent", s.pages_in_parent + s.pages_in_prev) +
         Line("Memory pages written", s.pages_written) +
         Line("Zero pages skipped", s.pages_zero) + Line("Processes", s.tasks);
}

std::string FormatRestoreStats(const RestoreStats& s) {
  return "Displaying restore stats:\n" + Line("Forking time", uint64_t(s.forking_us), " us") +
         Line("Restore time", uint64_t(s.restore_us), " us") + Line("Processes", s.tasks);
}

}  // namespace ckpt
