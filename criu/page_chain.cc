#include "criu/page_chain.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>

#include "base/log.h"
#include "criu/mem_track.h"
#include "proto/memtrack.pb.h"

namespace ckpt {
namespace {

using images::ImageType;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;
constexpr uint32_t kIdMask = (1u << kChainDepthShift) - 1;

// A run of pages and where its bytes are.
struct Seg {
  uint64_t start, pages;
  uint32_t src;  // depth << kChainDepthShift | pages id
  uint64_t off;
};

struct Level {
  std::string rel;  // "parent/parent/"
  std::string path;
  std::unique_ptr<images::ImageDir> dir;
  pb::MemTrackEntry track;
  std::map<uint32_t, uint64_t> sizes;  // pages id -> bytes
};

class Chain {
 public:
  Chain(const images::ImageDir& top, const pb::InventoryEntry& inv) : top_(top), inv_(inv) {}

  Status Init() {
    char real[PATH_MAX];
    if (!realpath(top_.path().c_str(), real)) return Error::Errno(top_.path());
    seen_.insert(real);
    if (!top_.Exists(ImageType::kMemTrack))
      return Error(top_.path() + " has pages in parent images but no memtrack image");
    TRY_ASSIGN(images::ImageReader r, top_.OpenReader(ImageType::kMemTrack));
    TRY(r.ReadOne(top_track_));
    return Ok();
  }

  uint64_t StartTime(const pb::MemTrackEntry& t, pid_t pid, bool* found) const {
    for (const pb::MemTrackTask& e : t.tasks())
      if (e.pid() == uint32_t(pid)) {
        *found = true;
        return e.start_time();
      }
    *found = false;
    return 0;
  }

  Result<Level*> At(uint32_t depth) {
    if (depth == 0 || depth >= kMaxChain)
      return Error("the chain of parent images is longer than " + std::to_string(kMaxChain) +
                   " steps");
    while (levels_.size() < depth) {
      auto l = std::make_unique<Level>();
      l->rel = (levels_.empty() ? "" : levels_.back()->rel) + "parent/";
      std::string link = top_.path() + "/" + l->rel;
      char real[PATH_MAX];
      if (!realpath(link.c_str(), real)) {
        int err = errno;
        char to[PATH_MAX] = {};
        ssize_t n = readlink((top_.path() + "/" + l->rel.substr(0, l->rel.size() - 1)).c_str(), to,
                             sizeof(to) - 1);
        return Error::Errno(top_.path() + ": the parent images " + l->rel + " (link to " +
                                (n > 0 ? std::string(to, size_t(n)) : std::string("?")) +
                                ") of this incremental dump are missing",
                            err);
      }
      l->path = real;
      if (!seen_.insert(l->path).second)
        return Error(top_.path() + ": the chain of parent images loops at " + l->path);
      TRY_ASSIGN(l->dir, images::ImageDir::Open(link), "parent images");
      if (!l->dir->Exists(ImageType::kInventory))
        return Error("parent images " + l->path + " hold no complete pre-dump (no inventory)");
      pb::InventoryEntry inv;
      {
        TRY_ASSIGN(images::ImageReader r, l->dir->OpenReader(ImageType::kInventory),
                   "parent images " + l->path);
        TRY(r.ReadOne(inv), "parent images " + l->path);
      }
      if (inv.root_pid() != inv_.root_pid())
        return Error("parent images " + l->path + " are of pid " + std::to_string(inv.root_pid()) +
                     ", this dump of pid " + std::to_string(inv_.root_pid()) +
                     ": a chain of another process");
      if (!l->dir->Exists(ImageType::kMemTrack))
        return Error("parent images " + l->path + " have no memtrack image");
      {
        TRY_ASSIGN(images::ImageReader r, l->dir->OpenReader(ImageType::kMemTrack),
                   "parent images " + l->path);
        TRY(r.ReadOne(l->track), "parent images " + l->path);
      }
      if (l->track.boot_id() != top_track_.boot_id())
        return Error("parent images " + l->path + " are from another boot");
      levels_.push_back(std::move(l));
    }
    return levels_[depth - 1].get();
  }

  // The size only: the contents are checked (images/image_check.h) where
  // they are read, by the top directory's OpenRaw of "parent/.../pages-N"
  // (the restorer, the premap, the lazy-pages daemon). Checking them here
  // too read every pages file of the chain twice.
  Result<uint64_t> SizeOf(Level& l, uint32_t id) {
    auto it = l.sizes.find(id);
    if (it != l.sizes.end()) return it->second;
    // Listed size and index only: the contents are checked where they are
    // read (the chain's files would otherwise be checksummed twice).
    TRY_ASSIGN(uint64_t size, l.dir->ListedRawSize(images::PagesFileName(id)));
    l.sizes[id] = size;
    return size;
  }

  // Where every page the step at `depth` holds for `pid` is.
  Result<const std::vector<Seg>*> Resolve(uint32_t depth, pid_t pid) {
    auto key = std::make_pair(depth, pid);
    auto done = memo_.find(key);
    if (done != memo_.end()) return &done->second;
    TRY_ASSIGN(Level * l, At(depth));
    std::string w = "parent images " + l->path + ", pid " + std::to_string(pid);
    bool f_top = false, f_here = false;
    uint64_t want = StartTime(top_track_, pid, &f_top);
    uint64_t have = StartTime(l->track, pid, &f_here);
    if (!f_top || !f_here || want != have)
      return Error(w + ": another process than the dumped one (pid reused, or another chain)");
    TRY_ASSIGN(images::ImageReader r, l->dir->OpenReader(ImageType::kPagemap, uint32_t(pid)), w);
    pb::PagemapHead head;
    TRY(r.ReadOne(head), w);
    if (head.pages_id() > kIdMask) return Error(w + ": bad pages id");
    uint32_t enc = depth << kChainDepthShift;
    std::vector<Seg> out;
    uint64_t own = 0, prev_end = 0;
    for (;;) {
      pb::PagemapEntry e;
      TRY_ASSIGN(bool got, r.Read(e), w);
      if (!got) break;
      uint64_t s = e.vaddr(), n = e.nr_pages();
      if (s % kPage || n == 0 || n > kTaskSize / kPage || s + n * kPage > kTaskSize || s < prev_end)
        return Error(w + ": bad pagemap entry at " + std::to_string(s));
      prev_end = s + n * kPage;
      if (e.in_parent()) {
        TRY_ASSIGN(const std::vector<Seg>* up, Resolve(depth + 1, pid));
        TRY(Cut(*up, s, n, out, w));
      } else if (e.has_src_pages_id()) {
        if (e.src_pages_id() > kIdMask || e.src_off() % kPage) return Error(w + ": bad source");
        TRY_ASSIGN(uint64_t size, SizeOf(*l, e.src_pages_id()), w);
        if (e.src_off() > size || n * kPage > size - e.src_off())
          return Error(w + ": shared pages outside their source file");
        out.push_back({s, n, enc | e.src_pages_id(), e.src_off()});
      } else {
        out.push_back({s, n, enc | head.pages_id(), own});
        own += n * kPage;
      }
    }
    TRY_ASSIGN(uint64_t size, SizeOf(*l, head.pages_id()), w);
    if (size != own)
      return Error(w + ": pages image holds " + std::to_string(size) + " bytes, pagemap says " +
                   std::to_string(own) + " (truncated or corrupt)");
    return &(memo_[key] = std::move(out));
  }

  // The segments of `up` covering [s, s + n pages): all of it, or an error.
  static Status Cut(const std::vector<Seg>& up, uint64_t s, uint64_t n, std::vector<Seg>& out,
                    const std::string& w) {
    uint64_t at = s, end = s + n * kPage;
    auto it = std::upper_bound(up.begin(), up.end(), at,
                               [](uint64_t a, const Seg& g) { return a < g.start; });
    if (it != up.begin()) --it;
    for (; at < end && it != up.end(); ++it) {
      uint64_t gs = it->start, ge = it->start + it->pages * kPage;
      if (ge <= at) continue;
      if (gs > at) break;
      uint64_t e = std::min(end, ge);
      out.push_back({at, (e - at) / kPage, it->src, it->off + (at - gs)});
      at = e;
    }
    if (at < end)
      return Error(w + ": pages at " + std::to_string(at) +
                   " are said to be in the parent images, which do not hold them");
    return Ok();
  }

 private:
  const images::ImageDir& top_;
  const pb::InventoryEntry& inv_;
  pb::MemTrackEntry top_track_;
  std::set<std::string> seen_;
  std::vector<std::unique_ptr<Level>> levels_;
  std::map<std::pair<uint32_t, pid_t>, std::vector<Seg>> memo_;
};

}  // namespace

std::string PagesSourceName(uint32_t src_pages_id) {
  std::string rel;
  for (uint32_t d = src_pages_id >> kChainDepthShift; d > 0; d--) rel += "parent/";
  return rel + images::PagesFileName(src_pages_id & kIdMask);
}

Status ResolveParentPages(const images::ImageDir& dir, TreeImages* tree) {
  bool any = false;
  for (const TaskImages& t : tree->tasks) {
    if (t.zombie()) continue;
    if (t.pages_id > kIdMask) return Error("pagemap image: bad pages id");
    for (const pb::PagemapEntry& p : t.pages) any |= p.in_parent();
  }
  if (!any) return Ok();
  Chain chain(dir, tree->inventory);
  TRY(chain.Init());
  for (TaskImages& t : tree->tasks) {
    if (t.zombie()) continue;
    bool has = false;
    for (const pb::PagemapEntry& p : t.pages) has |= p.in_parent();
    if (!has) continue;
    std::string w = "pid " + std::to_string(t.pid());
    TRY_ASSIGN(const std::vector<Seg>* up, chain.Resolve(1, t.pid()));
    std::vector<pb::PagemapEntry> out;
    for (const pb::PagemapEntry& p : t.pages) {
      if (!p.in_parent()) {
        out.push_back(p);
        continue;
      }
      std::vector<Seg> segs;
      TRY(Chain::Cut(*up, p.vaddr(), p.nr_pages(), segs, w));
      for (const Seg& g : segs) {
        pb::PagemapEntry e;
        e.set_vaddr(g.start);
        e.set_nr_pages(uint32_t(g.pages));
        e.set_src_pages_id(g.src);
        e.set_src_off(g.off);
        if (out.size() < 4)
          LOG_DBG(w + ": pages at " + std::to_string(g.start) + " from " + PagesSourceName(g.src) +
                  " at " + std::to_string(g.off));
        out.push_back(std::move(e));
      }
    }
    LOG_DBG(w + ": " + std::to_string(out.size()) + " page runs after resolving the chain");
    t.pages = std::move(out);
  }
  return Ok();
}

}  // namespace ckpt
