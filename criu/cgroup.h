// cgroup v2 placement of the tree: saved at dump, recreated at restore.
//
// Dump (ckpt's process, tree seized):
//   TRY_ASSIGN(pb::CgroupEntry cg, CollectCgroups(live_pids, o));  // root task first
//   TRY(WriteCgroups(cg, *dir));                                   // cgroup.img
// Every task's cgroup is saved (the "0::" line of /proc/PID/cgroup, relative
// to the top of the dumped subtree; a root task in a cgroup namespace of its
// own widens the top to the namespace's root, recorded as ns_root). With --manage-cgroups the
// directories from that top down to every task's cgroup are saved too, each with the settings that
// can be written back (see kProps in cgroup.cc). Threads of one process in different cgroups
// (threaded subtrees) are refused with
// --manage-cgroups; without it they are restored in their process's cgroup
// (a warning).
// --manage-cgroups=ignore saves nothing (no cgroup.img).
//
// Restore (ckpt's process, after the images are loaded, before any task or
// other kernel object exists; the object must outlive the tasks it placed,
// i.e. be declared before whatever kills and reaps them on failure):
//   TRY_ASSIGN(std::unique_ptr<CgroupRestore> cg, CgroupRestore::Prepare(*dir, o));
//   ... every restored task, right after it is created and before it runs
//   (ckpt traces it: the root before its go byte, the others at their first
//   PTRACE_EVENT_STOP), from ckpt:
//   TRY(cg->Place(real_pid, image_pid));
//   ... once every task exists and is placed (before they are let go):
//   TRY(cg->ApplyLimits());
//   ... once the whole tree runs:
//   cg->Commit();
// Prepare checks everything first (controllers this system offers, which
// cgroups must or must not exist for the --manage-cgroups mode) and only
// then creates the missing cgroups (under --cgroup-root or where they were)
// and writes the settings. Without Commit the destructor undoes it all:
// settings written into cgroups that existed get their old values back and
// the cgroups it created are removed, children first.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/options.h"
#include "images/image_dir.h"
#include "proto/cgroup.pb.h"

namespace ckpt {

// `tasks`: the live tasks of the tree, root first.
Result<pb::CgroupEntry> CollectCgroups(const std::vector<pid_t>& tasks, const Options& o);
Status WriteCgroups(const pb::CgroupEntry& cg, images::ImageDir& dir);

// Reads cgroup.img and checks it (relative clean paths, known settings,
// unique pids, parents before children). No cgroup.img is not an error
// (dumped with --manage-cgroups=ignore): `found` is false then.
Status ReadCgroups(const images::ImageDir& dir, pb::CgroupEntry* cg, bool* found);

struct CgroupPlan;  // cgroup.cc

class CgroupRestore {
 public:
  static Result<std::unique_ptr<CgroupRestore>> Prepare(const images::ImageDir& dir,
                                                        const Options& o);
  // Same, from an entry already read (tests, RPC).
  static Result<std::unique_ptr<CgroupRestore>> Prepare(const pb::CgroupEntry& cg,
                                                        const Options& o);
  ~CgroupRestore();
  CgroupRestore(const CgroupRestore&) = delete;

  // Moves task `pid` (as ckpt sees it) into the cgroup the images give
  // `image_pid`. A pid the images do not name (helpers, threads) and a
  // cgroup that is ckpt's own (tasks are born there) are no-ops. Call it
  // while the task is stopped before running any of its own code, so its
  // children are born in its cgroup.
  Status Place(pid_t pid, uint32_t image_pid) const;
  // Writes the limits (pids.max, memory.max/high/swap.max/zswap.max,
  // hugetlb.*.max) Prepare left out: the restore itself must not run into
  // them (tasks forked in their parent's cgroup before they move, helper
  // tasks, ckpt's pages in every restoring task). Errors name the cgroup.
  Status ApplyLimits();
  // The restore succeeded: keep every cgroup and setting.
  void Commit() { armed_ = false; }

  // Where image_pid goes, as a path of the cgroup2 filesystem ("" if nowhere).
  std::string TargetDir(uint32_t image_pid) const;
  // Cgroup directories this restore made (filesystem paths, parents first).
  const std::vector<std::string>& created() const { return created_; }
  // The root task had a cgroup namespace of its own: the cgroup (filesystem
  // path) the task that unshares CLONE_NEWCGROUP again must be in when it
  // does, "" otherwise. Not wired yet: whoever restores namespaces moves
  // the task there (cgroup.procs) before the unshare and Place()s it after.
  const std::string& NsRootDir() const { return ns_root_dir_; }

 private:
  CgroupRestore() = default;
  struct Undo {
    std::string dir, file, value;  // write `value` back into dir/file
  };
  Status Execute(const CgroupPlan& plan);
  Status WriteSetting(const std::string& dir, const std::string& name, const std::string& value,
                      bool keep_old);

  std::map<uint32_t, int> procs_of_;  // image pid -> index in procs_
  std::vector<UniqueFd> procs_;       // cgroup.procs of each target cgroup
  std::vector<std::string> procs_dir_;
  std::vector<std::string> created_;
  struct Limit {
    std::string dir, name, value;
    bool keep_old;
    std::string cgroup;
  };
  std::vector<Undo> undo_;
  std::vector<Limit> limits_;  // for ApplyLimits
  std::string ns_root_dir_;
  bool armed_ = true;
};

}  // namespace ckpt
