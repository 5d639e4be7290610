#include "base/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>

namespace ckpt::log {
namespace {
int g_level = 2;
int g_fd = -1;
}  // namespace

void SetLevel(int level) { g_level = level; }
int GetLevel() { return g_level; }
void SetFd(int fd) { g_fd = fd; }
int Fd() { return g_fd < 0 ? 2 : g_fd; }

void Write(Level lvl, const std::string& msg) {
  static const char* const kTag[] = {"", "Error", "Warn", "Info", "Debug"};
  if (lvl > g_level && lvl > kWarn) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char head[64];
  int n = snprintf(head, sizeof(head), "(%5ld.%06ld) %s: ", (long)ts.tv_sec, ts.tv_nsec / 1000,
                   kTag[lvl]);
  std::string line = std::string(head, n) + msg + "\n";
  if (lvl <= g_level) (void)!::write(Fd(), line.data(), line.size());
  if (g_fd >= 0 && g_fd != 2 && lvl <= kWarn) {
    std::string s = std::string(kTag[lvl]) + ": " + msg + "\n";
    (void)!::write(2, s.data(), s.size());
  }
}

}  // namespace ckpt::log
