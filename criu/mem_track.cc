#include "criu/mem_track.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/io.h"
#include "base/log.h"
#include "criu/proc_parse.h"
#include "proto/inventory.pb.h"
#include "proto/pagemap.pb.h"

namespace ckpt {
namespace {

using images::ImageType;
using uffd::Range;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kVsyscall = 0xffffffffff600000ull;

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

bool Contains(const std::vector<Range>& v, uint64_t a) {
  auto it = std::upper_bound(v.begin(), v.end(), a,
                             [](uint64_t x, const Range& r) { return x < r.start; });
  return it != v.begin() && a < std::prev(it)->end;
}

// Sorts and merges touching ranges.
void Normalize(std::vector<Range>& v) {
  std::sort(v.begin(), v.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  std::vector<Range> out;
  for (const Range& r : v) {
    if (r.start >= r.end) continue;
    if (!out.empty() && r.start <= out.back().end)
      out.back().end = std::max(out.back().end, r.end);
    else
      out.push_back(r);
  }
  v.swap(out);
}

std::vector<Range> Intersect(const std::vector<Range>& a, const std::vector<Range>& b) {
  std::vector<Range> out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    uint64_t s = std::max(a[i].start, b[j].start), e = std::min(a[i].end, b[j].end);
    if (s < e) out.push_back({s, e});
    if (a[i].end < b[j].end)
      i++;
    else
      j++;
  }
  return out;
}

// Memory ckpt tracks: private mappings, but not the kernel's special ones.
bool Trackable(const proc::MapEntry& m) {
  return !m.shared && m.start != kVsyscall && m.path.rfind("[v", 0) != 0;
}

}  // namespace

Result<uint64_t> ReadStartTime(pid_t pid) {
  TRY_ASSIGN(std::string s, io::ReadFile("/proc/" + std::to_string(pid) + "/stat"));
  size_t paren = s.rfind(')');
  if (paren == std::string::npos) return Error(Who(pid) + ": malformed stat");
  // Fields after the comm: 3 (state) onwards; start time is field 22.
  const char* p = s.c_str() + paren + 1;
  for (int field = 3; field <= 22; field++) {
    while (*p == ' ') p++;
    if (!*p) break;
    if (field == 22) return uint64_t(strtoull(p, nullptr, 10));
    while (*p && *p != ' ') p++;
  }
  return Error(Who(pid) + ": malformed stat");
}

Result<std::string> ReadBootId() {
  TRY_ASSIGN(std::string s, io::ReadFile("/proc/sys/kernel/random/boot_id"));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool TaskTrack::InParent(uint64_t addr) const {
  return Contains(clean, addr) && !Contains(written, addr);
}

ChainStep::~ChainStep() {
  if (!committed_ && !link_.empty()) unlink(link_.c_str());
}

const TaskTrack* ChainStep::ForPid(pid_t pid) const {
  auto it = tasks_.find(pid);
  return it == tasks_.end() ? nullptr : it->second.get();
}

Status ChainStep::OpenParent(const std::string& images_dir, const std::string& prev, pid_t root) {
  std::string link = images_dir + "/parent";
  struct stat st;
  if (lstat(link.c_str(), &st) == 0) {
    if (!S_ISLNK(st.st_mode)) return Error(link + " exists and is not a link");
    if (unlink(link.c_str()) < 0) return Error::Errno("unlink " + link);
  }
  // As CRIU: the path is relative to the new images directory.
  if (symlink(prev.c_str(), link.c_str()) < 0) return Error::Errno("symlink " + link);
  link_ = link;
  std::string what = "--prev-images-dir " + prev;
  char real[PATH_MAX];
  if (!realpath(link.c_str(), real))
    return Error::Errno(what + " (relative to " + images_dir + ")");
  parent_path_ = real;
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> pdir, images::ImageDir::Open(link), what);
  if (!pdir->Exists(ImageType::kInventory))
    return Error(what + " (" + parent_path_ + ") holds no complete dump or pre-dump");
  pb::InventoryEntry inv;
  {
    TRY_ASSIGN(images::ImageReader r, pdir->OpenReader(ImageType::kInventory), what);
    TRY(r.ReadOne(inv), what);
  }
  if (inv.root_pid() != uint32_t(root))
    return Error(what + " (" + parent_path_ + ") is a dump of pid " +
                 std::to_string(inv.root_pid()) + ", not of pid " + std::to_string(root));
  if (!pdir->Exists(ImageType::kMemTrack))
    return Error(what + " (" + parent_path_ +
                 ") was made without memory tracking (use ckpt pre-dump, or dump --track-mem)");
  {
    TRY_ASSIGN(images::ImageReader r, pdir->OpenReader(ImageType::kMemTrack), what);
    TRY(r.ReadOne(parent_track_), what);
  }
  if (parent_track_.boot_id() != boot_id_)
    return Error(what + " was made before the system rebooted: its processes are gone");
  TRY_ASSIGN(uint64_t start, ReadStartTime(root));
  bool found = false;
  for (const pb::MemTrackTask& t : parent_track_.tasks())
    if (t.pid() == uint32_t(root)) {
      found = true;
      if (t.start_time() != start)
        return Error(what + " (" + parent_path_ + ") is of another process that had pid " +
                     std::to_string(root) + " (started at tick " + std::to_string(t.start_time()) +
                     ", this one at " + std::to_string(start) + ")");
    }
  if (!found)
    return Error(what + ": pid " + std::to_string(root) + " is not in its memtrack image");
  if (parent_track_.chain_depth() + 2 > kMaxChain)
    return Error(what + ": the chain already has " +
                 std::to_string(parent_track_.chain_depth() + 1) + " steps (at most " +
                 std::to_string(kMaxChain) + "): make a full dump");
  has_parent_ = true;
  return Ok();
}

Status ChainStep::TrackTask(compel::SeizedProcess& proc, std::vector<TrackedUffd>& from_tracker) {
  pid_t pid = proc.pid();
  auto t = std::make_unique<TaskTrack>();
  t->pid = pid;
  TRY_ASSIGN(t->start_time, ReadStartTime(pid));
  bool in_parent_track = false;
  for (const pb::MemTrackTask& pt : parent_track_.tasks())
    in_parent_track |= pt.pid() == uint32_t(pid) && pt.start_time() == t->start_time;
  for (TrackedUffd& u : from_tracker)
    if (u.pid == pid && u.start_time == t->start_time && u.uffd && in_parent_track) {
      t->uffd = std::move(u.uffd);
      t->continued = true;
    }
  if (!t->continued) {
    TRY_ASSIGN(t->uffd, uffd::MakeUffdIn(proc));
    TRY(uffd::InitAsync(t->uffd.get()), Who(pid));
  }
  TRY_ASSIGN(std::vector<proc::MapEntry> maps, proc::ReadSmaps(pid));

  // What the parent step saved of this process, and its mappings.
  std::vector<Range> cover;
  pb::MmEntry parent_mm;
  if (t->continued) {
    auto pdir = images::ImageDir::Open(link_);
    bool ok = pdir.ok() && (*pdir)->Exists(ImageType::kMm, uint32_t(pid)) &&
              (*pdir)->Exists(ImageType::kPagemap, uint32_t(pid));
    if (ok) {
      TRY_ASSIGN(images::ImageReader r, (*pdir)->OpenReader(ImageType::kMm, uint32_t(pid)));
      TRY(r.ReadOne(parent_mm));
      TRY_ASSIGN(images::ImageReader pm, (*pdir)->OpenReader(ImageType::kPagemap, uint32_t(pid)));
      pb::PagemapHead head;
      TRY(pm.ReadOne(head));
      for (;;) {
        pb::PagemapEntry e;
        TRY_ASSIGN(bool got, pm.Read(e));
        if (!got) break;
        cover.push_back({e.vaddr(), e.vaddr() + uint64_t(e.nr_pages()) * kPage});
      }
      Normalize(cover);
    } else {
      LOG_WARN(Who(pid) + ": the parent images hold no memory of it: all of it is saved again");
    }
  }

  std::vector<Range> continuous;
  for (const proc::MapEntry& m : maps) {
    if (!Trackable(m)) continue;
    bool had_uw = m.HasFlag("uw");
    int rc = uffd::Register(t->uffd.get(), m.start, m.end);
    if (rc == EBUSY) {
      LOG_WARN(Who(pid) + ": mapping " + std::to_string(m.start) + " " + m.path +
               " is registered with a userfaultfd of the program's own: saved whole at every "
               "step");
      continue;
    }
    if (rc != 0) {
      LOG_DBG(Who(pid) + ": mapping " + std::to_string(m.start) +
              " cannot be write-tracked: " + strerror(rc));
      continue;
    }
    t->tracked.push_back({m.start, m.end});
    if (!t->continued || !had_uw) continue;
    // The same mapping at the parent step?
    for (const pb::VmaEntry& v : parent_mm.vmas()) {
      if (v.end() <= m.start || v.start() >= m.end) continue;
      bool file = m.inode != 0;
      if (v.kind() != (file ? pb::VMA_FILE_PRIVATE : pb::VMA_ANON_PRIVATE)) continue;
      if (v.name() != m.path) continue;
      if (file && v.pgoff() - v.start() != m.pgoff - m.start) continue;
      continuous.push_back({std::max(v.start(), m.start), std::min(v.end(), m.end)});
    }
  }
  Normalize(t->tracked);
  Normalize(continuous);
  t->clean = Intersect(continuous, cover);

  std::string pm_path = "/proc/" + std::to_string(pid) + "/pagemap";
  UniqueFd pm(open(pm_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!pm) return Error::Errno("open " + pm_path);
  std::vector<uffd::ScanRun> runs;
  for (const Range& r : t->tracked)
    TRY(uffd::ScanWritten(pm.get(), r.start, r.end, runs), Who(pid));
  for (const uffd::ScanRun& r : runs) t->written.push_back({r.start, r.end});
  Normalize(t->written);
  uint64_t clean_pages = 0, written_pages = 0;
  for (const Range& r : t->clean) clean_pages += (r.end - r.start) / kPage;
  for (const Range& r : t->written) written_pages += (r.end - r.start) / kPage;
  LOG_INFO(Who(pid) + ": write tracking " + (t->continued ? "continued" : "started") + ", " +
           std::to_string(written_pages) + " pages written since, " + std::to_string(clean_pages) +
           " pages held by the parent images");
  tasks_[pid] = std::move(t);
  return Ok();
}

Result<std::unique_ptr<ChainStep>> ChainStep::Begin(const std::string& images_dir,
                                                    const std::string& prev_dir,
                                                    std::vector<TreeTask>& tree) {
  std::unique_ptr<ChainStep> s(new ChainStep());
  s->root_ = tree.at(0).pid;
  TRY_ASSIGN(s->boot_id_, ReadBootId());
  std::vector<TrackedUffd> from_tracker;
  if (!prev_dir.empty()) {
    TRY(s->OpenParent(images_dir, prev_dir, s->root_));
    auto got = CollectFromTracker(s->parent_track_.tracker_socket(), s->root_);
    if (got.ok())
      from_tracker = std::move(*got);
    else
      LOG_WARN("write tracking of " + prev_dir + " is lost (" + got.error().message() +
               "): every page is saved again");
  }
  for (TreeTask& t : tree)
    if (t.proc) TRY(s->TrackTask(*t.proc, from_tracker));
  return s;
}

Status ChainStep::StartTracker(int timeout_s) {
  std::vector<TrackedUffd> fds;
  for (auto& [pid, t] : tasks_) {
    TrackedUffd u;
    u.pid = pid;
    u.start_time = t->start_time;
    u.uffd.reset(dup(t->uffd.get()));
    if (!u.uffd) return Error::Errno("dup");
    fds.push_back(std::move(u));
  }
  TRY_ASSIGN(tracker_, Tracker::Start(root_, fds, timeout_s));
  return Ok();
}

Status ChainStep::WriteImage(images::ImageDir& dir) {
  pb::MemTrackEntry e;
  e.set_method("uffd-wp");
  e.set_boot_id(boot_id_);
  for (auto& [pid, t] : tasks_) {
    pb::MemTrackTask* pt = e.add_tasks();
    pt->set_pid(uint32_t(pid));
    pt->set_start_time(t->start_time);
  }
  if (tracker_) {
    e.set_tracker_socket(tracker_->name());
    e.set_tracker_pid(uint32_t(tracker_->pid()));
  }
  e.set_chain_depth(has_parent_ ? parent_track_.chain_depth() + 1 : 0);
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(ImageType::kMemTrack));
  TRY(w.Write(e));
  return w.Close();
}

Status ChainStep::Commit() {
  if (tracker_) TRY(tracker_->Commit());
  committed_ = true;
  return Ok();
}

}  // namespace ckpt
