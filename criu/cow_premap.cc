#include "criu/cow_premap.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/page_chain.h"
#include "criu/page_read.h"

namespace ckpt {
namespace {

constexpr uint64_t kPage = 4096;

// What this task premapped; a child inherits the copy with the mappings
// (fork), so it knows which of its VMAs came premapped by its parent.
struct Premapped {
  pid_t owner = 0;  // the dump's pid of the task that premapped them
  std::set<std::pair<uint64_t, uint64_t>> ranges;
};
Premapped g_premapped;

bool Eligible(const pb::VmaEntry& v) {
  constexpr uint32_t kNoPremap = 1 /* DONTFORK */ | 32 /* WIPEONFORK */ | 64 /* DROPPABLE */;
  return v.kind() == pb::VMA_ANON_PRIVATE && !(v.flags() & MAP_GROWSDOWN) &&
         !(v.madv() & kNoPremap) && v.end() > v.start();
}

}  // namespace

bool IsPremapped(const pb::VmaEntry& v) {
  return g_premapped.ranges.count({v.start(), v.end()}) != 0;
}

Status PremapCow(const TaskImages& t, const images::ImageDir& dir) {
  // Inherited from the parent of the image (a helper's do not count).
  Premapped inherited = std::move(g_premapped);
  g_premapped = {};
  g_premapped.owner = t.pid();
  if (inherited.owner != pid_t(t.pstree.ppid())) inherited.ranges.clear();
  if (t.zombie()) return Ok();

  // Pages of each VMA: own (this task's pages file, in order) or shared.
  struct Run {
    uint64_t vaddr, len, off;
    int32_t src;  // -1: own pages file
  };
  std::vector<Run> runs;
  uint64_t own_off = 0;
  for (const pb::PagemapEntry& p : t.pages) {
    uint64_t len = uint64_t(p.nr_pages()) * kPage;
    if (p.has_src_pages_id()) {
      runs.push_back({p.vaddr(), len, p.src_off(), int32_t(p.src_pages_id())});
    } else {
      runs.push_back({p.vaddr(), len, own_off, -1});
      own_off += len;
    }
  }
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.vaddr < b.vaddr; });
  // The runs that may touch [s, e): from the first that ends after s.
  auto first_run = [&](uint64_t s) {
    auto it = std::upper_bound(runs.begin(), runs.end(), s,
                               [](uint64_t a, const Run& r) { return a < r.vaddr; });
    if (it != runs.begin() && std::prev(it)->vaddr + std::prev(it)->len > s) --it;
    return it;
  };
  UniqueFd own;
  std::map<int32_t, UniqueFd> srcs;
  auto fd_of = [&](int32_t src) -> Result<int> {
    if (src < 0) {
      if (!own) {
        TRY_ASSIGN(own, dir.OpenRaw(images::PagesFileName(t.pages_id)));
      }
      return own.get();
    }
    auto it = srcs.find(src);
    if (it == srcs.end()) {
      TRY_ASSIGN(UniqueFd f, dir.OpenRaw(PagesSourceName(uint32_t(src))));
      it = srcs.emplace(src, std::move(f)).first;
    }
    return it->second.get();
  };

  size_t shared_pages = 0, premapped = 0;
  // Read once every VMA is mapped (criu/page_read.h: an incremental
  // chain's thousands of runs in few preadv calls); its scratch buffer is
  // then allocated where no VMA wants to go.
  std::vector<PageRead> reads;
  for (const pb::VmaEntry& v : t.mm.vmas()) {
    if (!Eligible(v)) continue;
    uint64_t len = v.end() - v.start();
    bool from_parent = inherited.ranges.count({v.start(), v.end()}) != 0;
    auto from = first_run(v.start());
    bool has_pages = from != runs.end() && from->vaddr < v.end();
    // Nothing to share (e.g. a PROT_NONE reservation): restored as before,
    // without charging a writable mapping of its size here.
    if (!from_parent && !has_pages) continue;
    if (!from_parent) {
      void* m = mmap(reinterpret_cast<void*>(v.start()), len, PROT_READ | PROT_WRITE,
                     (v.flags() & ~uint32_t(MAP_FIXED)) | MAP_PRIVATE | MAP_ANONYMOUS |
                         MAP_FIXED_NOREPLACE,
                     -1, 0);
      if (m == MAP_FAILED) continue;  // ckpt's own mapping is there: restored later as before
      if (uint64_t(m) != v.start()) {
        munmap(m, len);
        continue;
      }
      // The dumped THP state before the pages arrive: with `hg` the reads
      // below fault 2 MiB pages at once; `nh` keeps them out under THP
      // "always". (The restorer sets both again; nothing else changes.)
      if (v.madv() & 4) madvise(m, len, MADV_HUGEPAGE);
      if (v.madv() & 8) madvise(m, len, MADV_NOHUGEPAGE);
    } else {
      // The parent's contents: keep what this task shared with it, zap
      // what it did not have, write its own pages below.
      if (mprotect(reinterpret_cast<void*>(v.start()), len, PROT_READ | PROT_WRITE) < 0)
        return Error::Errno("mprotect inherited premapped range " + std::to_string(v.start()));
      uint64_t cur = v.start();
      auto zap = [&](uint64_t to) -> Status {
        if (to > cur && madvise(reinterpret_cast<void*>(cur), to - cur, MADV_DONTNEED) < 0)
          return Error::Errno("MADV_DONTNEED " + std::to_string(cur));
        return Ok();
      };
      for (auto it = from; it != runs.end() && it->vaddr < v.end(); ++it) {
        const Run& r = *it;
        if (r.vaddr + r.len <= v.start()) continue;
        TRY(zap(std::max(cur, r.vaddr)));
        cur = std::max(cur, std::min(v.end(), r.vaddr + r.len));
      }
      TRY(zap(v.end()));
    }
    for (auto it = from; it != runs.end() && it->vaddr < v.end(); ++it) {
      const Run& r = *it;
      if (r.vaddr + r.len <= v.start()) continue;
      uint64_t s = std::max(r.vaddr, v.start()), e = std::min(r.vaddr + r.len, v.end());
      if (from_parent && r.src >= 0) {
        shared_pages += (e - s) / kPage;
        continue;  // still the parent's page
      }
      TRY_ASSIGN(int fd, fd_of(r.src));
      reads.push_back({fd, s, e - s, r.off + (s - r.vaddr)});
    }
    g_premapped.ranges.insert({v.start(), v.end()});
    premapped++;
  }
  TRY(ReadPageRuns(reads));
  LOG_DBG("pid " + std::to_string(t.pid()) + ": " + std::to_string(premapped) +
          " anonymous VMAs premapped, " + std::to_string(shared_pages) +
          " pages shared with the parent");
  return Ok();
}

}  // namespace ckpt
