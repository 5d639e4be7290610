#include "criu/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/io.h"
#include "base/log.h"

namespace ckpt {
namespace {

// The ceiling the kernel puts on any RLIMIT_NOFILE (fs.nr_open).
rlim_t NrOpen() {
  auto text = io::ReadFile("/proc/sys/fs/nr_open");
  if (!text.ok()) return 1024 * 1024;
  return rlim_t(strtoull(text->c_str(), nullptr, 10));
}

}  // namespace

FdNumbers FdNumbersNeeded(int max_fd, size_t nr_files, size_t nr_away) {
  size_t least = size_t(max_fd) + 1 + nr_away + 16;
  return {least, least + nr_files + 64};
}

Status RaiseFdLimitFor(FdNumbers n) {
  size_t needed = n.ample;
  struct rlimit cur;
  if (getrlimit(RLIMIT_NOFILE, &cur) < 0) return Error::Errno("getrlimit(RLIMIT_NOFILE)");
  struct rlimit want = cur;
  want.rlim_cur = cur.rlim_max;
  if (want.rlim_max < needed) {
    rlim_t ceiling = NrOpen();
    want.rlim_max = std::min<rlim_t>(ceiling, std::max<rlim_t>(needed, cur.rlim_max));
    want.rlim_cur = want.rlim_max;
  }
  if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
    int e = errno;
    // Without CAP_SYS_RESOURCE the hard limit stays; the soft one may rise.
    want.rlim_max = cur.rlim_max;
    want.rlim_cur = cur.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) < 0) return Error::Errno("setrlimit(RLIMIT_NOFILE)");
    if (want.rlim_cur < n.least)
      return Error("the restore needs fd numbers up to " + std::to_string(n.least) +
                   ", but RLIMIT_NOFILE's hard limit is " + std::to_string(cur.rlim_max) +
                   " and cannot be raised (" + strerror(e) +
                   ": raising it needs CAP_SYS_RESOURCE); raise it (ulimit -Hn) and retry");
  }
  if (want.rlim_cur < n.least)
    return Error("the restore needs fd numbers up to " + std::to_string(n.least) +
                 ", above fs.nr_open (" + std::to_string(want.rlim_max) + ")");
  if (want.rlim_max != cur.rlim_max)
    LOG_DBG("RLIMIT_NOFILE raised to " + std::to_string(want.rlim_max) + " for the restore (needs " +
            std::to_string(needed) + ")");
  return Ok();
}

}  // namespace ckpt
