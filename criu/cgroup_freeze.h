// --freeze-cgroup: freeze a cgroup v2 directory (cgroup.freeze) while the
// tree is seized, so no task of it can fork, exit or change while ckpt
// walks it; a big tree is caught at once instead of task by task.
//
// In dump (ckpt's process), around SeizeTree:
//   std::unique_ptr<CgroupFreezer> frozen;
//   if (!o.freeze_cgroup.empty())
//     TRY_ASSIGN(frozen, CgroupFreezer::Freeze(o.freeze_cgroup));
//   TRY_ASSIGN(tree, SeizeTree(root));        // PTRACE_SEIZE + INTERRUPT work on
//   if (frozen) {                             // frozen tasks: each reports its
//     TRY(frozen->CheckTasks(live_pids));     // PTRACE_EVENT_STOP and stays in
//     TRY(frozen->Thaw());                    // it once thawed (ptrace-stopped)
//   }
// Thaw before anything runs code in the tasks (parasite, remote syscalls):
// a frozen task resumed by ptrace goes back into the freezer. Declared before
// `tree`, the freezer is destroyed after it: on any failure the tasks are
// detached, then thawed, as they were. A cgroup that was frozen before the
// dump is left frozen.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt {

class CgroupFreezer {
 public:
  // `fs_dir`: a directory of a cgroup2 mount (not its root, and not holding
  // ckpt). Writes 1 into its cgroup.freeze and waits until its
  // cgroup.events says "frozen 1", at most `timeout_ms` (tasks in
  // uninterruptible sleep delay it): then it thaws and fails.
  static Result<std::unique_ptr<CgroupFreezer>> Freeze(const std::string& fs_dir,
                                                       int timeout_ms = 10000);
  ~CgroupFreezer();
  CgroupFreezer(const CgroupFreezer&) = delete;

  // Every pid must be in the frozen cgroup or below it.
  Status CheckTasks(const std::vector<pid_t>& pids) const;
  // Writes 0 into cgroup.freeze if Freeze wrote the 1. Once is enough.
  Status Thaw();

  const std::string& cgroup() const { return cgroup_; }

 private:
  CgroupFreezer(std::string dir, std::string cgroup)
      : dir_(std::move(dir)), cgroup_(std::move(cgroup)) {}
  std::string dir_, cgroup_;
  bool ours_ = false;  // we wrote the 1 and have not written the 0 yet
};

}  // namespace ckpt
