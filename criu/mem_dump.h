// The address space of a seized task: VMAs from /proc, page contents via
// the parasite (vmsplice into a pipe, read out by ckpt into pages-N.img,
// checksummed as they pass: criu/page_copy.h).
#pragma once

#include <sys/types.h>

#include <unordered_map>

#include "base/result.h"
#include "compel/infect.h"
#include "criu/kerndat.h"
#include "criu/page_xfer.h"
#include "criu/proc_parse.h"
#include "images/image_dir.h"
#include "proto/mm.pb.h"

namespace ckpt {

class TaskTrack;  // criu/mem_track.h

// Fills mm->vmas from smaps, refusing mappings ckpt cannot restore yet
// with "pid N: <what> at ADDR is not supported".
Status CollectVmas(pid_t pid, const std::vector<proc::MapEntry>& maps, pb::MmEntry* mm);

struct PageDumpStats {
  uint64_t pages_scanned = 0;
  uint64_t pages_written = 0;
  uint64_t zero_pages_skipped = 0;
  uint64_t pages_in_parent = 0;  // shared COW with an ancestor: not written again
  uint64_t pages_in_prev = 0;    // unchanged since the previous step of a chain
};

// Where each saved page of a dumped task lives, by physical page: a child
// whose page has the same PFN at the same address (not written since the
// fork) refers to it instead of saving a copy.
struct PageIndex {
  struct Page {
    uint64_t pfn;
    uint32_t pages_id;
    uint64_t off;  // byte offset in pages-<pages_id>.img
  };
  std::unordered_map<uint64_t, Page> by_vaddr;
};

// Writes pagemap-PID.img and pages-ID.img (to `target`: the image
// directory or a page server, criu/page_xfer.h) for every private VMA: only
// pages that are present (or swapped) and not the shared zero page, and for
// file mappings only pages that were written (anonymous copies).
// The pipe pages travel through. It must outlive the infection: closing
// it while the parasite is in vmsplice would raise SIGPIPE in the victim.
struct PagePipe {
  UniqueFd r, w;
  static Result<PagePipe> Create();
};

// `parent` (may be null) is the index of the parent's pages; `index`
// receives this task's, for its children (null: it has none). `prev` (may be null): the write
// tracking of an incremental dump; pages it says are unchanged since the
// previous step get an `in_parent` entry instead of being saved.
Result<PageDumpStats> DumpPages(pid_t pid, int mem_fd, compel::Infection& inf,
                                const pb::MmEntry& mm, PageTarget& target,
                                const KernelFeatures& kf, uint32_t pages_id,
                                const PageIndex* parent, PageIndex* index, PagePipe& pipe,
                                const TaskTrack* prev = nullptr);

// Where DumpPagesFrom reads memory instead of the parasite: another
// process holding the same pages (the snapshot child, criu/mem_snapshot.h).
class PageReader {
 public:
  virtual ~PageReader() = default;
  // The process whose /proc/PID/pagemap is scanned.
  virtual pid_t pagemap_pid() const = 0;
  // Appends `len` bytes of memory at `addr` to `out` (announcing them to
  // `target`); may batch until Flush.
  virtual Status Copy(uint64_t addr, uint64_t len, bool readable, int out,
                      PageTarget& target) = 0;
  virtual Status Flush(int out, PageTarget& target) = 0;
};

// DumpPages of task `pid` (its image names) with the pages found and read
// through `reader`.
Result<PageDumpStats> DumpPagesFrom(pid_t pid, PageReader& reader, const pb::MmEntry& mm,
                                    PageTarget& target, const KernelFeatures& kf,
                                    uint32_t pages_id, const PageIndex* parent, PageIndex* index);

}  // namespace ckpt
