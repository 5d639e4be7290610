#include "criu/mem_dump.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <set>
#include <sstream>
#include <vector>

#include "base/io.h"
#include "base/fault.h"
#include "base/log.h"
#include "criu/mem_track.h"
#include "criu/page_copy.h"
#include "criu/uffd_wp.h"
#include "criu/ns/ipc_ns.h"
#include "criu/ns/namespaces.h"
#include "proto/pagemap.pb.h"

namespace ckpt {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwap = 1ull << 62;
constexpr uint64_t kPmFile = 1ull << 61;  // page cache or shared anon: not ours to save
constexpr uint64_t kPfnMask = (1ull << 55) - 1;
constexpr int kPipeSize = 1 << 20;  // fs.pipe-max-size default: no CAP_SYS_RESOURCE needed
constexpr uint64_t kVsyscall = 0xffffffffff600000ull;

std::string Hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof(b), "%" PRIx64, v);
  return b;
}

bool Private(const pb::VmaEntry& v) {
  return v.kind() == pb::VMA_ANON_PRIVATE || v.kind() == pb::VMA_FILE_PRIVATE;
}

// A run of pages to save, in address order.
struct Run {
  uint64_t start;
  uint64_t pages;
  bool readable;              // vmsplice needs readable memory; others go via /proc/PID/mem
  uint32_t src_pages_id = 0;  // != 0: the pages are in an ancestor's file
  uint64_t src_off = 0;
  bool in_parent = false;     // unchanged since the previous step: in the parent images
};

struct PageInfo {
  uint64_t pfn;  // 0 if unknown (swapped, or PFNs hidden)
};

// One segment of /proc/sysvipc/shm: "key shmid perms size cpid lpid
// nattch uid gid cuid cgid ...".
// Read as pid's IPC namespace shows it: in ckpt's own, the same id is
// another segment or none.
Result<pb::SysvShmEntry> ReadSysvShm(pid_t pid, int id) {
  TRY_ASSIGN(uint64_t mine, ns::NsId(0, ns::Kind::kIpc));
  TRY_ASSIGN(uint64_t theirs, ns::NsId(pid, ns::Kind::kIpc));
  std::string text;
  if (mine == theirs) {
    TRY_ASSIGN(text, io::ReadFile("/proc/sysvipc/shm"));
  } else {
    TRY_ASSIGN(text, ns::ReadSysvipcOf(pid, "shm"));
  }
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    long long key, shmid, perms, size, cpid, lpid, nattch, uid, gid;
    if (sscanf(line.c_str(), "%lld %lld %llo %lld %lld %lld %lld %lld %lld", &key, &shmid, &perms,
               &size, &cpid, &lpid, &nattch, &uid, &gid) != 9)
      continue;
    if (shmid != id) continue;
    pb::SysvShmEntry e;
    e.set_id(int32_t(shmid));
    e.set_key(int32_t(key));
    e.set_size(uint64_t(size));
    e.set_mode(uint32_t(perms));
    e.set_uid(uint32_t(uid));
    e.set_gid(uint32_t(gid));
    return e;
  }
  return Error("SysV shm id " + std::to_string(id) + " is not in /proc/sysvipc/shm");
}

// The per-mapping state madvise(2) and mmap(2) set, from smaps' VmFlags
// (bits of VmEntry.madv, proto/mm.proto). A MAP_DROPPABLE mapping ("dp")
// has "wf" and "dd" by its type: mapping it again brings them back.
uint32_t MadvBits(const proc::MapEntry& m) {
  uint32_t madv = 0;
  if (m.HasFlag("dc")) madv |= 1;
  if (m.HasFlag("hg")) madv |= 4;
  if (m.HasFlag("nh")) madv |= 8;
  if (m.HasFlag("dp")) return madv | 64;
  if (m.HasFlag("dd")) madv |= 2;
  if (m.HasFlag("wf")) madv |= 32;
  return madv;
}

}  // namespace

Result<PagePipe> PagePipe::Create() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
  PagePipe pp;
  pp.r.reset(p[0]);
  pp.w.reset(p[1]);
  // ckpt's end never blocks: it polls, watching the parasite meanwhile.
  if (fcntl(pp.r.get(), F_SETFL, O_NONBLOCK) < 0) return Error::Errno("fcntl page pipe");
  if (fcntl(pp.w.get(), F_SETPIPE_SZ, kPipeSize) < 0)
    LOG_DBG("F_SETPIPE_SZ failed; using the default pipe size");
  return pp;
}

Status CollectVmas(pid_t pid, const std::vector<proc::MapEntry>& maps, pb::MmEntry* mm) {
  std::string who = "pid " + std::to_string(pid);
  std::set<uint64_t> sysv_attached;  // SysV ids whose first page is mapped
  for (const proc::MapEntry& m : maps) {
    if (m.start == kVsyscall) continue;  // the same fixed page in every process
    pb::VmaEntry* v = mm->add_vmas();
    v->set_start(m.start);
    v->set_end(m.end);
    v->set_prot((m.r ? PROT_READ : 0) | (m.w ? PROT_WRITE : 0) | (m.x ? PROT_EXEC : 0));
    uint32_t flags = m.shared ? MAP_SHARED : MAP_PRIVATE;
    if (m.HasFlag("gd")) flags |= MAP_GROWSDOWN;
    v->set_flags(flags);
    v->set_madv(MadvBits(m));
    if (!m.path.empty()) v->set_name(m.path);
    std::string where = who + ": mapping " + Hex(m.start) + "-" + Hex(m.end) + " " + m.path;
    if (m.path == "[vdso]") {
      v->set_kind(pb::VMA_VDSO);
    } else if (m.path == "[vvar]") {
      v->set_kind(pb::VMA_VVAR);
    } else if (m.path == "[vvar_vclock]") {
      v->set_kind(pb::VMA_VVAR_VCLOCK);
    } else if (m.inode != 0 || (m.shared && m.path.rfind("/SYSV", 0) == 0)) {
      // (SysV segment 0, the first of an IPC namespace, has inode 0.)
      // The file behind the mapping: map_files names it even when the
      // process has no fd for it.
      std::string link =
          "/proc/" + std::to_string(pid) + "/map_files/" + Hex(m.start) + "-" + Hex(m.end);
      TRY_ASSIGN(std::string path, io::ReadLink(link), where);
      struct stat st;
      if (stat(link.c_str(), &st) < 0) return Error::Errno(where + ": stat");
      if (m.shared && m.dev_major == 0 && path.rfind("/SYSV", 0) == 0) {
        // The inode of an attached SysV segment is its shm id.
        TRY_ASSIGN(pb::SysvShmEntry seg, ReadSysvShm(pid, int(m.inode)), where);
        if (m.pgoff == 0 && m.end - m.start > ((seg.size() + 4095) & ~uint64_t(4095)))
          return Error(where + ": SysV segment larger than its mapping");
        if (m.pgoff == 0) sysv_attached.insert(m.inode);
        if (m.pgoff != 0 && !sysv_attached.count(m.inode))
          return Error(where + ": partly detached SysV segments are not supported");
        v->set_kind(pb::VMA_SYSV_SHM);
        v->set_pgoff(m.pgoff);
        v->set_path(path);
        *v->mutable_sysv() = seg;
        continue;
      }
      if (m.shared && (path.size() > 10 && path.compare(path.size() - 10, 10, " (deleted)") == 0)) {
        // Shared anonymous memory, memfd or a deleted file mapped shared:
        // its contents go to shmem-<inode>.img, once for all its users.
        v->set_kind(pb::VMA_ANON_SHARED);
        v->set_shmid(st.st_ino);
        v->set_pgoff(m.pgoff);
        v->set_path(path);
        continue;
      }
      if (path.size() > 10 && path.compare(path.size() - 10, 10, " (deleted)") == 0) {
        // A deleted file or memfd mapped private: the file is saved as a
        // shared memory object (shmem.h, by inode) and mapped privately
        // again; the pages the task changed are its own, saved below.
        v->set_kind(pb::VMA_FILE_PRIVATE);
        v->set_shmid(st.st_ino);
        v->set_pgoff(m.pgoff);
        v->set_path(path);
        v->set_file_size(uint64_t(st.st_size));
        continue;
      }
      if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return Error(where + ": mapping of a non-regular file is not supported");
      v->set_kind(m.shared ? pb::VMA_FILE_SHARED : pb::VMA_FILE_PRIVATE);
      v->set_path(path);
      v->set_pgoff(m.pgoff);
      v->set_file_size(uint64_t(st.st_size));
      // VM_MAYWRITE ("mw") of a shared file mapping: its file was open for
      // writing, so a read-only mapping may be mprotect'ed writable later.
      v->set_open_rw(m.shared && (m.w || m.HasFlag("mw")));
    } else if (m.shared) {
      return Error(where + ": shared anonymous memory is not supported yet");
    } else if (m.path.empty() || m.path == "[heap]" || m.path == "[stack]" ||
               m.path.rfind("[anon:", 0) == 0) {
      v->set_kind(pb::VMA_ANON_PRIVATE);
    } else {
      return Error(where + ": special mapping is not supported");
    }
  }
  return Ok();
}

namespace {

// Reads pagemap for one VMA and appends runs of pages worth saving.
Status ScanVma(int pagemap_fd, const pb::VmaEntry& v, const KernelFeatures& kf,
               const PageIndex* parent, const TaskTrack* prev, std::vector<Run>& runs,
               std::vector<uint64_t>& pfns, PageDumpStats& st) {
  uint64_t n = (v.end() - v.start()) / kPage;
  std::vector<uint64_t> pm(std::min<uint64_t>(n, 1 << 16));
  bool readable = v.prot() & PROT_READ;
  for (uint64_t done = 0; done < n;) {
    uint64_t chunk = std::min<uint64_t>(n - done, pm.size());
    uint64_t addr = v.start() + done * kPage;
    TRY_ASSIGN(size_t got, [&]() -> Result<size_t> {
      ssize_t r = pread(pagemap_fd, pm.data(), chunk * 8, off_t(addr / kPage * 8));
      if (r < 0) return Error::Errno("read pagemap at " + Hex(addr));
      return size_t(r);
    }());
    if (got != chunk * 8) return Error("short pagemap read at " + Hex(addr));
    for (uint64_t i = 0; i < chunk; i++) {
      uint64_t e = pm[i];
      bool save = false;
      if (uffd::IsPteMarker(e)) {
        // A uffd-wp marker or guard region: no page of its own.
      } else if (e & kPmSwap) {
        save = true;
      } else if ((e & kPmPresent) && !(e & kPmFile)) {
        if (kf.zero_pfn && (e & kPfnMask) == kf.zero_pfn)
          st.zero_pages_skipped++;
        else
          save = true;
      }
      st.pages_scanned++;
      if (!save) continue;
      uint64_t a = addr + i * kPage;
      uint64_t pfn = (e & kPmPresent) ? (e & kPfnMask) : 0;
      uint32_t src = 0;
      uint64_t src_off = 0;
      if (parent && pfn) {
        auto it = parent->by_vaddr.find(a);
        if (it != parent->by_vaddr.end() && it->second.pfn == pfn) {
          src = it->second.pages_id;
          src_off = it->second.off;
        }
      }
      bool in_prev = !src && prev && prev->InParent(a);  // incremental (criu/mem_track.h)
      // Runs never cross VMAs (restore checks each lies in one) and keep
      // one source, contiguous in it.
      Run* last = runs.empty() ? nullptr : &runs.back();
      if (last && last->start >= v.start() && last->start + last->pages * kPage == a &&
          last->src_pages_id == src && (!src || last->src_off + last->pages * kPage == src_off) &&
          last->in_parent == in_prev)
        last->pages++;
      else
        runs.push_back({a, 1, readable, src, src_off, in_prev});
      pfns.push_back(pfn);
      if (in_prev)
        st.pages_in_prev++;
      else if (src)
        st.pages_in_parent++;
      else
        st.pages_written++;
    }
    done += chunk;
  }
  return Ok();
}

}  // namespace

namespace {

// DumpPages, with the bytes from the parasite (`inf`, `pipe`) or `reader`.
Result<PageDumpStats> DumpPagesImpl(pid_t pid, int mem_fd, compel::Infection* inf_p,
                                    const pb::MmEntry& mm, PageTarget& target,
                                    const KernelFeatures& kf, uint32_t pages_id,
                                    const PageIndex* parent, PageIndex* index, PagePipe* pipe_p,
                                    const TaskTrack* prev, PageReader* reader) {
  PageDumpStats st;
  std::string pm_path =
      "/proc/" + std::to_string(reader ? reader->pagemap_pid() : pid) + "/pagemap";
  UniqueFd pagemap(open(pm_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pagemap) return Error::Errno("open " + pm_path);

  std::vector<Run> runs;
  std::vector<uint64_t> pfns;  // per saved page, in run order
  for (const pb::VmaEntry& v : mm.vmas())
    if (Private(v)) TRY(ScanVma(pagemap.get(), v, kf, parent, prev, runs, pfns, st));

  // Index this task's pages for its children (none: no index, a map
  // entry per page costs time and ckpt's memory).
  uint64_t own_off = 0;
  size_t pi = 0;
  for (const Run& r : runs) {
    if (!index) break;
    for (uint64_t k = 0; k < r.pages; k++, pi++) {
      uint64_t a = r.start + k * kPage;
      if (r.in_parent) continue;  // in no pages file of this dump: not for children
      if (r.src_pages_id) {
        if (pfns[pi]) index->by_vaddr[a] = {pfns[pi], r.src_pages_id, r.src_off + k * kPage};
      } else {
        if (pfns[pi]) index->by_vaddr[a] = {pfns[pi], pages_id, own_off};
        own_off += kPage;
      }
    }
  }

  // pagemap-PID.img: built in a memfd, handed to the target whole.
  std::string pm_name = images::FileName(images::ImageType::kPagemap, uint32_t(pid));
  UniqueFd pm_fd(memfd_create("ckpt-pagemap", MFD_CLOEXEC));
  if (!pm_fd) return Error::Errno("memfd_create");
  UniqueFd pm_dup(dup(pm_fd.get()));
  if (!pm_dup) return Error::Errno("dup");
  images::ImageWriter pmw(std::move(pm_dup), pm_name,
                          images::Info(images::ImageType::kPagemap).magic);
  pb::PagemapHead head;
  head.set_pages_id(pages_id);
  TRY(pmw.Write(head));
  for (const Run& r : runs) {
    pb::PagemapEntry e;
    e.set_vaddr(r.start);
    e.set_nr_pages(uint32_t(r.pages));
    if (r.src_pages_id) {
      e.set_src_pages_id(r.src_pages_id);
      e.set_src_off(r.src_off);
    }
    if (r.in_parent) e.set_in_parent(true);
    TRY(pmw.Write(e));
  }
  TRY(pmw.Close());
  {
    struct stat st_pm;
    if (fstat(pm_fd.get(), &st_pm) < 0) return Error::Errno("fstat memfd");
    std::string bytes(size_t(st_pm.st_size), '\0');
    if (pread(pm_fd.get(), bytes.data(), bytes.size(), 0) != ssize_t(bytes.size()))
      return Error::Errno("reading back " + pm_name);
    TRY(target.WriteFile(pm_name, bytes));
  }

  // The pages themselves: vmsplice'd by the parasite, read out of the pipe
  // and checksummed by ckpt on the way (criu/page_copy.h).
  TRY_ASSIGN(int out, target.Begin(images::PagesFileName(pages_id)));
  if (reader) {  // a copy-on-write snapshot (criu/mem_snapshot.h)
    for (const Run& r : runs)
      if (!r.src_pages_id && !r.in_parent)
        TRY(reader->Copy(r.start, r.pages * kPage, r.readable, out, target));
    TRY(reader->Flush(out, target));
    TRY(target.End());
    return st;
  }
  PageCopier copy(pid, mem_fd, *inf_p, pipe_p->r.get(), pipe_p->w.get());
  for (const Run& r : runs) {
    if (r.src_pages_id || r.in_parent) continue;  // an ancestor or the parent images hold these
    copy.Add(r.start, r.pages * kPage, r.readable);
  }
  if (copy.total() > 0) {
    TRY(target.Announce(copy.total()));
    if (target.WantsSum())
      TRY(copy.Run(out, target.Durable()));
    else
      TRY(copy.Splice(out));
  }
  if (target.WantsSum()) target.Summed(copy.total(), copy.crc());
  TRY(target.End());
  return st;
}

}  // namespace

Result<PageDumpStats> DumpPages(pid_t pid, int mem_fd, compel::Infection& inf,
                                const pb::MmEntry& mm, PageTarget& target,
                                const KernelFeatures& kf, uint32_t pages_id,
                                const PageIndex* parent, PageIndex* index, PagePipe& pipe,
                                const TaskTrack* prev) {
  return DumpPagesImpl(pid, mem_fd, &inf, mm, target, kf, pages_id, parent, index, &pipe, prev,
                       nullptr);
}

Result<PageDumpStats> DumpPagesFrom(pid_t pid, PageReader& reader, const pb::MmEntry& mm,
                                    PageTarget& target, const KernelFeatures& kf,
                                    uint32_t pages_id, const PageIndex* parent, PageIndex* index) {
  return DumpPagesImpl(pid, -1, nullptr, mm, target, kf, pages_id, parent, index, nullptr, nullptr,
                       &reader);
}

}  // namespace ckpt
