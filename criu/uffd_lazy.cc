#include "criu/uffd_lazy.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/unique_fd.h"

namespace ckpt::uffd {
namespace {

constexpr uint64_t kPage = 4096;

// Linux 6.6 uapi, absent from older headers.
struct UffdioPoison {
  uffdio_range range;
  uint64_t mode;
  int64_t updated;
};
constexpr unsigned long kUffdioPoison = _IOWR(UFFDIO, 0x08, UffdioPoison);

}  // namespace

uint64_t ProbeLazyFeatures(bool* api_ok) {
  *api_ok = false;
  uint64_t want = kFeatureEventFork | kFeatureEventRemap | kFeatureEventRemove |
                  kFeatureEventUnmap | kFeaturePoison;
  UniqueFd fd(int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!fd) return 0;
  uffdio_api api = {};
  api.api = UFFD_API;  // features 0: the kernel answers with what it has
  if (ioctl(fd.get(), UFFDIO_API, &api) < 0) return 0;
  *api_ok = true;
  return api.features & want;
}

void PendingPages::Add(const PageRun& r) {
  if (!r.nr_pages) return;
  runs_[r.vaddr] = r;
  pages_ += r.nr_pages;
}

bool PendingPages::Contains(uint64_t addr) const {
  auto it = runs_.upper_bound(addr);
  if (it == runs_.begin()) return false;
  --it;
  return addr < it->first + it->second.nr_pages * kPage;
}

std::vector<PageRun> PendingPages::Cut(uint64_t start, uint64_t end) {
  std::vector<PageRun> out;
  auto it = runs_.upper_bound(start);
  if (it != runs_.begin()) --it;
  while (it != runs_.end() && it->first < end) {
    PageRun r = it->second;
    uint64_t rs = r.vaddr, re = r.vaddr + r.nr_pages * kPage;
    if (re <= start) {
      ++it;
      continue;
    }
    it = runs_.erase(it);
    pages_ -= r.nr_pages;
    uint64_t cs = std::max(rs, start), ce = std::min(re, end);
    if (rs < cs) Add({rs, (cs - rs) / kPage, r.src, r.off});
    if (ce < re) Add({ce, (re - ce) / kPage, r.src, r.off + (ce - rs)});
    out.push_back({cs, (ce - cs) / kPage, r.src, r.off + (cs - rs)});
    it = runs_.upper_bound(ce - 1);
  }
  return out;
}

std::vector<PageRun> PendingPages::TakeAround(uint64_t addr, uint64_t max_pages) {
  addr &= ~(kPage - 1);
  if (!Contains(addr)) return {};
  return Cut(addr, addr + max_pages * kPage);
}

std::vector<PageRun> PendingPages::TakeFirst(uint64_t max_pages) {
  if (runs_.empty()) return {};
  uint64_t s = runs_.begin()->first;
  return Cut(s, s + max_pages * kPage);
}

void PendingPages::Move(uint64_t from, uint64_t to, uint64_t len) {
  std::vector<PageRun> moved = Cut(from, from + len);
  for (PageRun& r : moved) {
    r.vaddr = r.vaddr - from + to;
    Cut(r.vaddr, r.vaddr + r.nr_pages * kPage);  // nothing may overlap
    Add(r);
  }
}

int Copy(int uffd, uint64_t dst, const void* src, uint64_t len, uint64_t* done) {
  uffdio_copy c = {};
  c.dst = dst, c.src = uint64_t(src), c.len = len;
  int r = ioctl(uffd, UFFDIO_COPY, &c);
  *done = c.copy > 0 ? uint64_t(c.copy) : 0;
  return r < 0 ? errno : 0;
}

int ZeroPage(int uffd, uint64_t dst, uint64_t len, uint64_t* done) {
  uffdio_zeropage z = {};
  z.range.start = dst, z.range.len = len;
  int r = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
  *done = z.zeropage > 0 ? uint64_t(z.zeropage) : 0;
  return r < 0 ? errno : 0;
}

int Poison(int uffd, uint64_t dst, uint64_t len, uint64_t* done) {
  UffdioPoison p = {};
  p.range.start = dst, p.range.len = len;
  int r = ioctl(uffd, kUffdioPoison, &p);
  *done = p.updated > 0 ? uint64_t(p.updated) : 0;
  return r < 0 ? errno : 0;
}

int Wake(int uffd, uint64_t dst, uint64_t len) {
  uffdio_range w = {dst, len};
  return ioctl(uffd, UFFDIO_WAKE, &w) < 0 ? errno : 0;
}

}  // namespace ckpt::uffd
