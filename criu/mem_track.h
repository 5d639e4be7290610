// One step of an incremental chain: which pages of each process are still
// as the previous step saved them (CRIU's parent images and
// --prev-images-dir, without soft-dirty: criu/uffd_wp.h).
//
// A step runs with the tree frozen (seized), in ckpt's own namespaces:
//   TRY_ASSIGN(auto step, ChainStep::Begin(opts, dir, tree));  // pre-dump or dump
//   for each task: step->ForPid(pid)->InParent(addr)  // unchanged, in the parent images
//   TRY(step->StartTracker(timeout));   // pre-dump, or dump -R --track-mem
//   TRY(step->WriteImage(dir));         // memtrack.img, before the inventory
//   ... inventory committed ...
//   TRY(step->Commit());                // the tracker now waits for the next step
//
// Begin, with `prev` (o.prev_images_dir, relative to -D as in CRIU) set:
// makes DIR/parent -> prev, checks the parent is a complete step of a
// chain of this very tree (same root pid, same start time, same boot, chain
// shorter than kMaxChain) — errors say which — and takes the write-tracking
// userfaultfds from the tracker the parent left. A tracker that is gone is
// not an error: a warning, and every page is saved again (a full step; the
// chain stays valid). For every process it then (re)registers its private
// VMAs for async write-protection and scans them with PAGEMAP_SCAN
// (PAGE_IS_WRITTEN, protecting again). A page is "in parent" when its VMA
// was registered with the same userfaultfd since the parent step (smaps
// "uw" before this step and our UFFDIO_REGISTER accepted), the parent's
// VMA there is the same mapping (kind, file, offset), the parent's pagemap
// holds it, and it was not written since.
//
// Without `prev` (a first pre-dump, or a dump starting tracking) Begin only
// registers and protects.
//
// Destroying a step before Commit removes DIR/parent and closes the
// userfaultfds (the kernel then drops every protection).
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/mem_tracker.h"
#include "criu/pstree.h"
#include "criu/uffd_wp.h"
#include "images/image_dir.h"
#include "proto/memtrack.pb.h"
#include "proto/mm.pb.h"

namespace ckpt {

inline constexpr uint32_t kMaxChain = 64;  // steps in one chain, the full one included

// /proc/PID/stat field 22.
Result<uint64_t> ReadStartTime(pid_t pid);
// /proc/sys/kernel/random/boot_id.
Result<std::string> ReadBootId();

// One process at this step.
class TaskTrack {
 public:
  pid_t pid = 0;
  uint64_t start_time = 0;
  UniqueFd uffd;
  bool continued = false;  // its uffd came from the previous step's tracker
  // Unchanged since the parent step and saved there.
  bool InParent(uint64_t addr) const;

  std::vector<uffd::Range> clean;    // sorted: continuous, same mapping, in parent's pagemap
  std::vector<uffd::Range> written;  // sorted, merged
  std::vector<uffd::Range> tracked;  // registered now (sorted)
};

class ChainStep {
 public:
  // `prev_dir`: "" for none. Needs the tree seized (frozen).
  static Result<std::unique_ptr<ChainStep>> Begin(const std::string& images_dir,
                                                  const std::string& prev_dir,
                                                  std::vector<TreeTask>& tree);
  ~ChainStep();

  const TaskTrack* ForPid(pid_t pid) const;
  bool has_parent() const { return has_parent_; }
  Status StartTracker(int timeout_s);
  Status WriteImage(images::ImageDir& dir);
  Status Commit();

 private:
  ChainStep() = default;
  Status OpenParent(const std::string& images_dir, const std::string& prev, pid_t root);
  Status TrackTask(compel::SeizedProcess& proc, std::vector<TrackedUffd>& from_tracker);

  std::string link_;  // DIR/parent made by Begin, removed unless committed
  bool has_parent_ = false;
  bool committed_ = false;
  pid_t root_ = 0;
  std::string boot_id_;
  pb::MemTrackEntry parent_track_;
  std::string parent_path_;
  std::map<pid_t, std::unique_ptr<TaskTrack>> tasks_;
  std::unique_ptr<Tracker> tracker_;
};

}  // namespace ckpt
