// Logging for host-side code. Levels follow CRIU's -v0..-v4:
// 0 = errors only printed by the caller, 1 = errors, 2 = warnings,
// 3 = info, 4 = debug. Messages go to the log fd (stderr by default, or the
// -o file); errors and warnings also go to stderr when logging to a file.
#pragma once

#include <string>

namespace ckpt::log {

enum Level { kError = 1, kWarn = 2, kInfo = 3, kDebug = 4 };

void SetLevel(int level);
int GetLevel();
// Log to this fd (not owned). -1 means stderr.
void SetFd(int fd);
int Fd();

void Write(Level lvl, const std::string& msg);

}  // namespace ckpt::log

#define LOG_ERR(msg) ::ckpt::log::Write(::ckpt::log::kError, (msg))
#define LOG_WARN(msg) ::ckpt::log::Write(::ckpt::log::kWarn, (msg))
#define LOG_INFO(msg)                                  \
  do {                                                 \
    if (::ckpt::log::GetLevel() >= ::ckpt::log::kInfo) \
      ::ckpt::log::Write(::ckpt::log::kInfo, (msg));   \
  } while (0)
#define LOG_DBG(msg)                                    \
  do {                                                  \
    if (::ckpt::log::GetLevel() >= ::ckpt::log::kDebug) \
      ::ckpt::log::Write(::ckpt::log::kDebug, (msg));   \
  } while (0)
