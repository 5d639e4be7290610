#include "criu/page_read.h"

#include <sys/mman.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <memory>
#include <string>

namespace ckpt {
namespace {

// One preadv(2) batch: iovecs over [start, start + total) of the file.
class Batch {
 public:
  explicit Batch(char* scratch) : scratch_(scratch) {}

  bool empty() const { return iov_.empty(); }
  uint64_t end() const { return start_ + total_; }

  // Whether `r` can follow what is in the batch: same file, after it,
  // close enough. (Flush splits a batch into calls of IOV_MAX iovecs.)
  bool Fits(const PageRead& r) const {
    if (iov_.empty()) return true;
    return r.fd == fd_ && r.off >= end() && r.off - end() <= kMaxGap;
  }

  void Add(const PageRead& r) {
    if (iov_.empty()) {
      fd_ = r.fd;
      start_ = r.off;
      total_ = 0;
      first_ = r.vaddr;
    }
    if (r.off > end()) Push(scratch_, r.off - end());
    Push(reinterpret_cast<char*>(r.vaddr), r.len);
  }

  Status Flush() {
    size_t i = 0;
    uint64_t at = start_;
    while (i < iov_.size()) {
      int n = int(std::min<size_t>(iov_.size() - i, IOV_MAX));
      ssize_t got = preadv(fd_, &iov_[i], n, off_t(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Error::Errno("reading pages into " + std::to_string(first_));
      if (got == 0) return Error("pages image is truncated at " + std::to_string(first_));
      at += uint64_t(got);
      // Skip what was read; a partly read iovec is adjusted in place.
      for (uint64_t left = uint64_t(got); left > 0;) {
        if (left >= iov_[i].iov_len) {
          left -= iov_[i].iov_len;
          i++;
        } else {
          iov_[i].iov_base = static_cast<char*>(iov_[i].iov_base) + left;
          iov_[i].iov_len -= left;
          left = 0;
        }
      }
    }
    iov_.clear();
    return Ok();
  }

 private:
  void Push(char* base, uint64_t len) {
    iov_.push_back({base, size_t(len)});
    total_ += len;
  }

  char* scratch_;
  std::vector<iovec> iov_;
  int fd_ = -1;
  uint64_t start_ = 0, total_ = 0, first_ = 0;
};

}  // namespace

Status ReadPageRuns(std::vector<PageRead>& reads) {
  // Fault the destination in first, range by range: one page-table walk
  // instead of a page fault per page inside the copy. Best effort (the
  // reads fault in whatever this leaves).
  std::sort(reads.begin(), reads.end(),
            [](const PageRead& a, const PageRead& b) { return a.vaddr < b.vaddr; });
  for (size_t i = 0; i < reads.size();) {
    uint64_t s = reads[i].vaddr, e = s + reads[i].len;
    for (i++; i < reads.size() && reads[i].vaddr == e; i++) e += reads[i].len;
    if (e > s) madvise(reinterpret_cast<void*>(s), e - s, MADV_POPULATE_WRITE);
  }
  std::sort(reads.begin(), reads.end(), [](const PageRead& a, const PageRead& b) {
    return a.fd != b.fd ? a.fd < b.fd : a.off < b.off;
  });
  std::unique_ptr<char[]> scratch(new char[kMaxGap]);
  Batch b(scratch.get());
  for (const PageRead& r : reads) {
    if (r.len == 0) continue;
    if (!b.Fits(r)) TRY(b.Flush());
    b.Add(r);
  }
  if (!b.empty()) TRY(b.Flush());
  return Ok();
}

}  // namespace ckpt
