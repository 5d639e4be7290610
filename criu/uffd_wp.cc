#include "criu/uffd_wp.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/log.h"
#include "compel/infect.h"

namespace ckpt::uffd {
namespace {

// The build host's headers may predate these (Linux 6.7 uapi values).
constexpr uint64_t kFeatureWpUnpopulated = 1ull << 13;  // UFFD_FEATURE_WP_UNPOPULATED
constexpr uint64_t kFeatureWpAsync = 1ull << 15;        // UFFD_FEATURE_WP_ASYNC
constexpr int kUserModeOnly = 1;                        // UFFD_USER_MODE_ONLY

struct PageRegion {  // struct page_region
  uint64_t start, end, categories;
};
struct PmScanArg {  // struct pm_scan_arg
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
static_assert(sizeof(PmScanArg) == 96);
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);  // PAGEMAP_SCAN
constexpr uint64_t kPmScanWpMatching = 1 << 0;                     // PM_SCAN_WP_MATCHING

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

}  // namespace

Status InitAsync(int uffd) {
  struct uffdio_api api = {};
  api.api = UFFD_API;
  api.features = kFeatureWpAsync | kFeatureWpUnpopulated;
  if (ioctl(uffd, UFFDIO_API, &api) < 0)
    return Error::Errno("userfaultfd: UFFDIO_API with WP_ASYNC|WP_UNPOPULATED");
  return Ok();
}

int Register(int uffd, uint64_t start, uint64_t end) {
  struct uffdio_register reg = {};
  reg.range.start = start;
  reg.range.len = end - start;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? errno : 0;
}

Status ScanWritten(int pagemap_fd, uint64_t start, uint64_t end, std::vector<ScanRun>& out) {
  std::vector<PageRegion> vec(512);
  for (uint64_t at = start; at < end;) {
    PmScanArg a = {};
    a.size = sizeof(a);
    a.flags = kPmScanWpMatching;
    a.start = at;
    a.end = end;
    a.vec = uint64_t(uintptr_t(vec.data()));
    a.vec_len = vec.size();
    // Written pages that are there (present or swapped). Not a hole nor an
    // empty pte: matched, they would be protected by installing uffd-wp
    // PTE markers (WP_UNPOPULATED), which fill page tables for nothing and
    // read as swap entries. An empty pte written later is written anyway.
    a.category_mask = kPageIsWritten;
    a.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
    a.return_mask = kPageIsWritten | kPageIsFile | kPageIsPresent | kPageIsSwapped | kPageIsPfnZero;
    long n = ioctl(pagemap_fd, kPagemapScan, &a);
    if (n < 0) return Error::Errno("PAGEMAP_SCAN at " + std::to_string(at));
    for (long i = 0; i < n; i++) out.push_back({vec[i].start, vec[i].end, vec[i].categories});
    // A full vector ends the walk early: go on from where it stopped.
    if (a.walk_end <= at) return Error("PAGEMAP_SCAN made no progress");
    at = a.walk_end;
  }
  return Ok();
}

Result<UniqueFd> MakeUffdIn(compel::SeizedProcess& proc) {
  pid_t pid = proc.pid();
  std::string where = Who(pid) + ": making a userfaultfd for write tracking";
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(pid), where);
  TRY_ASSIGN(long r,
             compel::RemoteSyscallRestoring(pid, proc.mem_fd(), exec, SYS_userfaultfd,
                                            O_CLOEXEC | O_NONBLOCK | kUserModeOnly),
             where);
  if (r < 0) return Error::Errno(where + ": userfaultfd() in the process", int(-r));
  int remote = int(r);
  // Whatever happens next, the process's fd goes again.
  UniqueFd pidfd(int(syscall(SYS_pidfd_open, pid, 0)));
  UniqueFd mine;
  int err = 0;
  if (!pidfd)
    err = errno;
  else
    mine.reset(int(syscall(SYS_pidfd_getfd, pidfd.get(), remote, 0)));
  if (!err && !mine) err = errno;
  auto closed = compel::RemoteSyscallRestoring(pid, proc.mem_fd(), exec, SYS_close, remote);
  if (!closed.ok())
    return std::move(closed.error().Context(where + ": closing its fd " + std::to_string(remote)));
  if (*closed < 0) return Error::Errno(where + ": close() in the process", int(-*closed));
  if (err) return Error::Errno(where + ": pidfd_getfd", err);
  // pidfd_getfd sets O_CLOEXEC on ckpt's copy.
  return mine;
}

bool ProbeWpAsync() {
  int fd = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kUserModeOnly));
  if (fd < 0) return false;
  UniqueFd uffd(fd);
  if (!InitAsync(uffd.get()).ok()) return false;
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  bool ok = false;
  UniqueFd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  uint64_t s = uint64_t(uintptr_t(p));
  if (pm && Register(uffd.get(), s, s + 4096) == 0) {
    std::vector<ScanRun> runs;
    static_cast<volatile char*>(p)[0] = 1;
    // Written, then protected by the scan: a second scan finds nothing
    // until the next write.
    ok = ScanWritten(pm.get(), s, s + 4096, runs).ok() && runs.size() == 1;
    runs.clear();
    ok = ok && ScanWritten(pm.get(), s, s + 4096, runs).ok() && runs.empty();
    static_cast<volatile char*>(p)[0] = 2;
    ok = ok && ScanWritten(pm.get(), s, s + 4096, runs).ok() && runs.size() == 1;
  }
  munmap(p, 4096);
  return ok;
}

}  // namespace ckpt::uffd
