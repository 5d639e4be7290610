// userfaultfd in MISSING mode for lazy restore (criu/lazy_pages.h): the
// pages still owed to one address space, and the ioctls that fill them.
//
// Kernel facts this rests on (Documentation/admin-guide/mm/userfaultfd.rst,
// measured on Linux 6.18):
//  - A MISSING-mode fault of a registered anonymous VMA waits until the fd's
//    reader resolves it: UFFDIO_COPY (bytes), UFFDIO_ZEROPAGE, or
//    UFFDIO_POISON (Linux 6.6, UFFD_FEATURE_POISON: the page raises SIGBUS
//    on access). COPY/ZEROPAGE/POISON on a page that is present fail with
//    EEXIST after the pages before it (`copy`/`zeropage`/`updated`); EAGAIN
//    while a non-cooperative event (fork, mremap, munmap, MADV_DONTNEED)
//    is not yet read.
//  - When the last reference of the fd goes, every VMA is unregistered
//    and waiting faults retry: a missing page then becomes a ZERO page.
//    A daemon that dies would hand the program silent zeros; the guard
//    (criu/lazy_guard.h) holds a reference and poisons what was owed.
//  - Events (features EVENT_FORK/REMAP/REMOVE/UNMAP): fork gives a new fd
//    for the child's mm in the reader's fd table, carrying the parent's
//    registrations and its missing pages.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "base/result.h"
#include "criu/lazy_plan.h"

namespace ckpt::uffd {

inline constexpr uint64_t kFeatureEventFork = 1 << 1;
inline constexpr uint64_t kFeatureEventRemap = 1 << 2;
inline constexpr uint64_t kFeatureEventRemove = 1 << 3;
inline constexpr uint64_t kFeatureEventUnmap = 1 << 6;
inline constexpr uint64_t kFeaturePoison = 1 << 14;

// The features a lazy restore asks for that this kernel offers (probed on
// a userfaultfd of ckpt's own); *api_ok false if userfaultfd is refused.
uint64_t ProbeLazyFeatures(bool* api_ok);

// The pages owed to one mm: non-overlapping runs keyed by address.
class PendingPages {
 public:
  void Add(const PageRun& r);
  bool empty() const { return runs_.empty(); }
  uint64_t pages() const { return pages_; }
  bool Contains(uint64_t addr) const;
  // Takes out whatever lies in [start, end), cut at the edges.
  std::vector<PageRun> Cut(uint64_t start, uint64_t end);
  // The owed run holding `addr`, at most `max_pages` from addr on.
  std::vector<PageRun> TakeAround(uint64_t addr, uint64_t max_pages);
  // The first `max_pages` owed pages of the first run.
  std::vector<PageRun> TakeFirst(uint64_t max_pages);
  // mremap moved [from, from+len) to `to`.
  void Move(uint64_t from, uint64_t to, uint64_t len);
  const std::map<uint64_t, PageRun>& runs() const { return runs_; }

 private:
  std::map<uint64_t, PageRun> runs_;
  uint64_t pages_ = 0;
};

// The ioctls. Each returns 0, or the errno (EEXIST, EAGAIN, ENOENT, ESRCH,
// ...) with *done the bytes handled before it.
int Copy(int uffd, uint64_t dst, const void* src, uint64_t len, uint64_t* done);
int ZeroPage(int uffd, uint64_t dst, uint64_t len, uint64_t* done);
int Poison(int uffd, uint64_t dst, uint64_t len, uint64_t* done);
int Wake(int uffd, uint64_t dst, uint64_t len);

}  // namespace ckpt::uffd
