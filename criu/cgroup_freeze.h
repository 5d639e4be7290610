// --freeze-cgroup: freeze a cgroup v2 directory (cgroup.freeze) while the
// tree is seized, so no task of it can fork, exit or change while ckpt
// walks it; a big tree is caught at once instead of task by task.
//
// In dump (ckpt's process), around SeizeTree:
//   std::vector<TreeTask> tree;               // declared first: destroyed last
//   std::unique_ptr<CgroupFreezer> frozen;
//   if (!o.freeze_cgroup.empty())
//     TRY_ASSIGN(frozen, CgroupFreezer::Freeze(o.freeze_cgroup));
//   TRY_ASSIGN(tree, SeizeTree(root));        // PTRACE_SEIZE + INTERRUPT work on
//   if (frozen) {                             // frozen tasks: each reports its
//     TRY(frozen->CheckTasks(live_pids));     // PTRACE_EVENT_STOP and stays in
//     TRY(frozen->Thaw());                    // it once thawed (ptrace-stopped)
//   }
//   ... dump ...
//   frozen.reset();                           // before detaching or killing
// Thaw before anything runs code in the tasks (parasite, remote syscalls):
// a frozen task resumed by ptrace goes back into the freezer; Thaw thaws a
// cgroup that was frozen before the dump too. Destroying the freezer puts
// the cgroup back as it was found (frozen again, or thawed if the dump
// failed before Thaw): done while the tasks are still held, a detached task
// never runs when it should not, and on any failure the victim runs on as
// it was.
//
// cgroup v1 (a directory of a v1 freezer hierarchy, as runc gives on hybrid
// hosts): FROZEN is written into freezer.state and read back until it says
// FROZEN. A v1-frozen task reports no ptrace stop until thawed, so Freeze
// itself takes every thread of the cgroup (its `tasks` files) with
// PTRACE_SEIZE + PTRACE_INTERRUPT while frozen, thaws, and waits for each
// stop: the tasks are held from the same instant, and SeizeTree takes
// threads ckpt already holds as they are (compel/seize.h). CheckTasks lets
// go of the cgroup's threads that are not the tree's; Thaw is a no-op.
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
  // ckpt), or of a cgroup v1 freezer hierarchy (not holding ckpt; see
  // above). Writes 1 into its cgroup.freeze (unless it is frozen already)
  // and waits until its cgroup.events says "frozen 1", at most
  // `timeout_ms` (tasks in uninterruptible sleep delay it): then it puts
  // the cgroup back and fails.
  static Result<std::unique_ptr<CgroupFreezer>> Freeze(const std::string& fs_dir,
                                                       int timeout_ms = 10000);
  ~CgroupFreezer();
  CgroupFreezer(const CgroupFreezer&) = delete;

  // Every pid must be in the frozen cgroup or below it. (v1: threads of
  // other processes, held since Freeze, are let go here.)
  Status CheckTasks(const std::vector<pid_t>& pids);
  // Writes 0 into cgroup.freeze (the tasks are seized by now). Once is
  // enough; the destructor freezes it again if it was frozen before.
  Status Thaw();

  const std::string& cgroup() const { return cgroup_; }

 private:
  CgroupFreezer(std::string dir, std::string cgroup)
      : dir_(std::move(dir)), cgroup_(std::move(cgroup)) {}
  static Result<std::unique_ptr<CgroupFreezer>> FreezeV1(const std::string& fs_dir, int timeout_ms);
  Status WriteV1(const char* state);
  void ReleaseHeld(const std::vector<pid_t>& keep_tids);
  std::string dir_, cgroup_;
  bool v1_ = false;
  std::vector<pid_t> held_;  // v1: threads seized in Freeze, not yet handed over
  size_t waited_ = 0;        // v1: held_[0, waited_) have reported their stop
  bool was_frozen_ = false;  // cgroup.freeze was 1 before Freeze
  bool frozen_ = false;      // cgroup.freeze is 1 now
};

}  // namespace ckpt
