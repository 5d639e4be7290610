#include "criu/predump.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/io.h"
#include "base/log.h"
#include "criu/mem_dump.h"
#include "criu/mem_track.h"
#include "criu/page_compress.h"
#include "criu/page_xfer.h"
#include "criu/proc_parse.h"
#include "criu/pstree.h"
#include "criu/security.h"
#include "criu/uffd_wp.h"
#include "images/image_dir.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
#include "proto/pagemap.pb.h"
#include "proto/pstree.pb.h"

namespace ckpt {
namespace {

using images::ImageType;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kPmPresent = 1ull << 63;
constexpr uint64_t kPmSwap = 1ull << 62;
constexpr uint64_t kPmFile = 1ull << 61;
constexpr uint64_t kPfnMask = (1ull << 55) - 1;
constexpr uint64_t kCopyChunk = 1 << 20;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

struct Run {
  uint64_t start, pages;
  bool in_parent;
};

// What one process will have in this step's images.
struct TaskPlan {
  pid_t pid = 0;
  pb::MmEntry mm;
  std::vector<Run> runs;
  UniqueFd mem;  // /proc/PID/mem, read after the tree runs again
  uint64_t saved = 0, in_parent = 0;
};

// Pages worth keeping, as a dump would choose them (criu/mem_dump.cc):
// present or swapped, anonymous copies, not the zero page; each either
// unchanged since the parent step or to be saved now.
Status PlanPages(pid_t pid, const KernelFeatures& kf, const TaskTrack* track, TaskPlan& plan) {
  std::string path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd pm(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pm) return Error::Errno("open " + path);
  std::vector<uint64_t> buf(1 << 16);
  for (const pb::VmaEntry& v : plan.mm.vmas()) {
    if (v.kind() != pb::VMA_ANON_PRIVATE && v.kind() != pb::VMA_FILE_PRIVATE) continue;
    uint64_t n = (v.end() - v.start()) / kPage;
    bool vma_first = true;
    for (uint64_t done = 0; done < n;) {
      uint64_t chunk = std::min<uint64_t>(n - done, buf.size());
      uint64_t addr = v.start() + done * kPage;
      if (pread(pm.get(), buf.data(), chunk * 8, off_t(addr / kPage * 8)) != ssize_t(chunk * 8))
        return Error::Errno(Who(pid) + ": read pagemap at " + std::to_string(addr));
      for (uint64_t i = 0; i < chunk; i++) {
        uint64_t e = buf[i];
        bool keep =
            ((e & kPmSwap) && !uffd::IsPteMarker(e)) ||
            ((e & kPmPresent) && !(e & kPmFile) && !(kf.zero_pfn && (e & kPfnMask) == kf.zero_pfn));
        if (!keep) continue;
        uint64_t a = addr + i * kPage;
        bool parent = track && track->InParent(a);
        Run* last = plan.runs.empty() ? nullptr : &plan.runs.back();
        if (!vma_first && last && last->start + last->pages * kPage == a &&
            last->in_parent == parent)
          last->pages++;
        else
          plan.runs.push_back({a, 1, parent});
        vma_first = false;
        (parent ? plan.in_parent : plan.saved)++;
      }
      done += chunk;
    }
  }
  return Ok();
}

Result<std::string> PagemapBytes(pid_t pid, uint32_t pages_id, const std::vector<Run>& runs) {
  std::string name = images::FileName(ImageType::kPagemap, uint32_t(pid));
  UniqueFd fd(memfd_create("ckpt-pagemap", MFD_CLOEXEC));
  if (!fd) return Error::Errno("memfd_create");
  UniqueFd dup_fd(dup(fd.get()));
  if (!dup_fd) return Error::Errno("dup");
  images::ImageWriter w(std::move(dup_fd), name, images::Info(ImageType::kPagemap).magic);
  pb::PagemapHead head;
  head.set_pages_id(pages_id);
  TRY(w.Write(head));
  for (const Run& r : runs) {
    pb::PagemapEntry e;
    e.set_vaddr(r.start);
    e.set_nr_pages(uint32_t(r.pages));
    if (r.in_parent) e.set_in_parent(true);
    TRY(w.Write(e));
  }
  TRY(w.Close());
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return Error::Errno("fstat memfd");
  std::string bytes(size_t(st.st_size), '\0');
  if (pread(fd.get(), bytes.data(), bytes.size(), 0) != ssize_t(bytes.size()))
    return Error::Errno("reading back " + name);
  return bytes;
}

// Copies the planned pages of a running process. A page that cannot be
// read any more was unmapped since the freeze: its VMA is a new one at the
// next step (never "in parent"), so zeros are as good as anything.
Status CopyPages(TaskPlan& p, PageTarget& target, uint32_t pages_id) {
  TRY_ASSIGN(int out, target.Begin(images::PagesFileName(pages_id)));
  std::vector<char> buf(kCopyChunk);
  for (const Run& r : p.runs) {
    if (r.in_parent) continue;
    for (uint64_t off = 0; off < r.pages * kPage; off += kCopyChunk) {
      uint64_t len = std::min<uint64_t>(kCopyChunk, r.pages * kPage - off);
      ssize_t got = pread(p.mem.get(), buf.data(), len, off_t(r.start + off));
      if (got < 0 || uint64_t(got) < len) {
        if (kill(p.pid, 0) < 0 && errno == ESRCH)
          return Error(Who(p.pid) + " exited during the pre-dump");
        uint64_t have = got > 0 ? uint64_t(got) : 0;
        LOG_DBG(Who(p.pid) + ": memory at " + std::to_string(r.start + off + have) +
                " went away after the freeze");
        memset(buf.data() + have, 0, len - have);
      }
      TRY(target.Announce(len));
      TRY(io::WriteFull(out, buf.data(), len), "writing pages");
    }
  }
  return target.End();
}

Status WriteOne(images::ImageDir& dir, ImageType type, uint32_t id,
                const google::protobuf::Message& m) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(type, id));
  TRY(w.Write(m));
  return w.Close();
}

}  // namespace

Status PreDump(const Options& o, const KernelFeatures& kf) {
  pid_t root = o.pid;
  if (kill(root, 0) < 0 && errno == ESRCH) return Error(Who(root) + ": no such process");
  if (root == getpid()) return Error("ckpt cannot dump itself");
  if (!kf.pagemap_scan || !uffd::ProbeWpAsync())
    return Error(
        "pre-dump needs userfaultfd write-protection in async mode and PAGEMAP_SCAN "
        "(Linux 6.7+), which this kernel lacks (see ckpt check)");
  {  // criu/security.h: a tree the caller could not trace is refused untouched
    TRY_ASSIGN(security::Caller caller, security::Caller::Current());
    TRY(security::CheckMayDump(caller, root, false));
  }
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Create(o.images_dir));

  LOG_INFO("Pre-dump: freezing the tree of " + Who(root));
  std::vector<TaskPlan> plans;
  std::unique_ptr<ChainStep> step;
  std::vector<pb::PstreeEntry> pstree;
  {
    TRY_ASSIGN(std::vector<TreeTask> tree, SeizeTree(root));
    // On error `tree` resumes the tasks, then `step` removes the parent
    // link and closes the userfaultfds (the tracking goes with them).
    TRY_ASSIGN(step, ChainStep::Begin(o.images_dir, o.prev_images_dir, tree));
    for (TreeTask& t : tree) {
      if (!t.proc) continue;  // zombies have no memory
      pb::PstreeEntry ps;
      ps.set_pid(uint32_t(t.pid));
      ps.set_ppid(uint32_t(t.ppid));
      ps.set_pgid(uint32_t(t.pgid));
      ps.set_sid(uint32_t(t.sid));
      for (pid_t tid : t.proc->threads()) ps.add_threads(uint32_t(tid));
      pstree.push_back(ps);
      TaskPlan p;
      p.pid = t.pid;
      TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ReadSmaps(t.pid));
      TRY(CollectVmas(t.pid, maps, &p.mm));
      TRY_ASSIGN(std::string exe, io::ReadLink("/proc/" + std::to_string(t.pid) + "/exe"));
      p.mm.set_exe_path(exe);
      // The mm fields, for `ckpt show` only: restore takes them from the dump.
      TRY_ASSIGN(proc::Stat st, proc::ReadStat(t.pid));
      p.mm.set_start_code(st.start_code);
      p.mm.set_end_code(st.end_code);
      p.mm.set_start_data(st.start_data);
      p.mm.set_end_data(st.end_data);
      p.mm.set_start_brk(st.start_brk);
      p.mm.set_brk(st.start_brk);
      for (const proc::MapEntry& m : maps)
        if (m.path == "[heap]") p.mm.set_brk(m.end);
      p.mm.set_start_stack(st.start_stack);
      p.mm.set_arg_start(st.arg_start);
      p.mm.set_arg_end(st.arg_end);
      p.mm.set_env_start(st.env_start);
      p.mm.set_env_end(st.env_end);
      TRY(PlanPages(t.pid, kf, step->ForPid(t.pid), p), Who(t.pid));
      std::string mem = "/proc/" + std::to_string(t.pid) + "/mem";
      p.mem.reset(open(mem.c_str(), O_RDONLY | O_CLOEXEC));
      if (!p.mem) return Error::Errno("open " + mem);
      plans.push_back(std::move(p));
    }
    // The tracker takes copies of the userfaultfds before the tree runs:
    // from here the tracking no longer depends on this ckpt (which keeps
    // it alive only until Commit).
    TRY(step->StartTracker(o.track_mem_timeout));
  }  // the tree runs again
  LOG_INFO("Pre-dump: the tree runs again; copying its pages");

  std::unique_ptr<PageTarget> pages_to;
  if (o.page_server) {
    TRY_ASSIGN(pages_to, PageTarget::Remote(o.address, o.port));
  } else {
    TRY_ASSIGN(pages_to, PageTarget::Local(*dir));
  }
  if (o.compress) {
    TRY_ASSIGN(pages_to, CompressPages(std::move(pages_to), o.compress_level));
  }
  uint32_t pages_id = 1;
  uint64_t saved = 0, in_parent = 0;
  for (TaskPlan& p : plans) {
    TRY_ASSIGN(std::string pm, PagemapBytes(p.pid, pages_id, p.runs));
    TRY(pages_to->WriteFile(images::FileName(ImageType::kPagemap, uint32_t(p.pid)), pm));
    TRY(CopyPages(p, *pages_to, pages_id), Who(p.pid));
    TRY(WriteOne(*dir, ImageType::kMm, uint32_t(p.pid), p.mm));
    LOG_INFO(Who(p.pid) + ": " + std::to_string(p.saved) + " pages saved, " +
             std::to_string(p.in_parent) + " in the parent images");
    saved += p.saved;
    in_parent += p.in_parent;
    pages_id++;
  }
  {
    TRY_ASSIGN(images::ImageWriter w, dir->OpenWriter(ImageType::kPstree));
    for (const pb::PstreeEntry& e : pstree) TRY(w.Write(e));
    TRY(w.Close());
  }
  TRY(step->WriteImage(*dir));
  TRY(pages_to->Commit());

  pb::InventoryEntry inv;
  inv.set_format_version(images::kFormatVersion);
  struct utsname u;
  uname(&u);
  inv.set_kernel(u.release);
  inv.set_arch(u.machine);
  inv.set_root_pid(uint32_t(root));
  inv.set_page_size(uint32_t(sysconf(_SC_PAGESIZE)));
  inv.set_tool_version("ckpt 0.1");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  inv.set_dump_time_ns(uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec));
  inv.set_pre_dump(true);
  TRY(dir->Commit(inv));
  // The images are complete; without the tracker the next step saves everything.
  if (Status s = step->Commit(); !s.ok())
    LOG_WARN("pre-dump saved, but the write tracking ended (" + s.error().message() +
             "): the next step saves every page again");
  LOG_INFO("Pre-dump of the tree of " + Who(root) + " complete: " + std::to_string(saved) +
           " pages saved, " + std::to_string(in_parent) + " in the parent images");
  return Ok();
}

}  // namespace ckpt
