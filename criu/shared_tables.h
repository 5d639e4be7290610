// Fd tables and fs structs (cwd, root, umask) shared between tasks
// (issue 14 item 8), found with kcmp(2) KCMP_FILES / KCMP_FS.
//
// What restores:
//   - the threads of one process share both, as clone(2) of a thread
//     (CLONE_FILES | CLONE_FS) made them; the restorer creates threads
//     that way;
//   - processes sharing one fs struct along parent links (a child cloned
//     with CLONE_FS, its own CLONE_FS children, ...): each such child is
//     recreated by its parent with CLONE_FS (TaskCoreEntry.
//     fs_shared_with_parent), so a chdir, chroot or umask in one is seen
//     by the others again;
//   - processes sharing one fd table along parent links (clone with
//     CLONE_FILES but not CLONE_VM): each such child is recreated by its
//     parent with CLONE_FILES (TaskCoreEntry.files_shared_with_parent), so
//     an fd opened or closed by one is opened or closed in the others. The
//     topmost process of such a group (the table's owner) puts the dumped
//     fds in the table, once; the others (sharers) never close or move an
//     fd of it (FdTableSync below says in which order they act).
// What is refused at dump, before anything is touched, instead of being
// restored apart silently:
//   - a thread that unshared its fd table or fs struct (unshare(2));
//   - processes sharing an fd table or an fs struct other than along
//     parent links (e.g. siblings whose parent does not share it);
// and at restore, before any task exists: a sharing child whose creator
// there would be a helper task (for an exited session or group leader)
// rather than its parent, and a sharer whose fdinfo is not its parent's
// (a damaged image).
//
// Dump: TRY_ASSIGN(TreeSharing s, CheckSharedTables(tree)) after the
// seize, before the parasite; core.set_fs_shared_with_parent(true) and
// core.set_files_shared_with_parent(true) for the pids in
// s.fs_with_parent and s.files_with_parent.
// Restore: RawClone (restore_tree.cc) adds FsCloneFlag(tree, idx) and
// FilesCloneFlag(tree, idx) to the clone flags of task idx, in its creator;
// ckpt plans an FdTableSync before the tree is created, and each task's
// EnterRestorer (restore_task.cc) follows its role in it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "base/result.h"
#include "criu/pstree.h"
#include "criu/task_images.h"

namespace ckpt {

struct TreeSharing {
  std::set<pid_t> fs_with_parent;     // processes sharing their parent's fs struct
  std::set<pid_t> files_with_parent;  // processes sharing their parent's fd table
};

Result<TreeSharing> CheckSharedTables(const std::vector<TreeTask>& tree);

// CLONE_FS if task idx shared its parent's fs struct, else 0. An error if
// its creator in this restore is not that parent (a helper task standing
// in for an exited session or group leader).
Result<uint64_t> FsCloneFlag(const TreeImages& tree, int idx);

// CLONE_FILES if task idx shared its parent's fd table, else 0. An error
// if its creator would not be that parent, or if its fdinfo differs from
// its parent's. Call it for every task while checking the images, before
// any task exists, as well as in RawClone.
Result<uint64_t> FilesCloneFlag(const TreeImages& tree, int idx);

// The order in which the processes of one shared fd table act while they
// still run ckpt's code (EnterRestorer), all in that one table:
//   1. each sharer arrives (SharerArrive) and waits;
//   2. the owner, once every sharer has arrived, notes the fd numbers open
//      now: ckpt's own, the tree's open files and what the tasks inherited
//      (OwnerStart), and lets the sharers go on;
//   3. each sharer opens its own service fds (pages, exe, mapped files),
//      takes its own copies above every dumped number of the inherited ones
//      it needs (log, error pipe, shared memory), closes its temporary
//      numbers and touches nothing else (SharerPlaced), then waits;
//   4. the owner, once all are placed, lays out its service fds and the
//      dumped fds as a process alone does, closing only what step 2 noted
//      (never a sharer's), finishes its fds (epoll, O_ASYNC, locks) and
//      says so (OwnerInstalled);
//   5. each sharer (SharerWaitInstalled returned) takes the POSIX locks it
//      held itself and moves on to its restorer; its restorer closes only
//      its own service fds.
// A process that shares no table is kAlone and does none of this.
class FdTableSync {
 public:
  enum class Role { kAlone, kOwner, kSharer };

  // In ckpt, right after PlanHelpers, before anything is created: checks
  // every sharer (FilesCloneFlag) and maps the counters every task
  // shares; nothing if no table is shared.
  static Result<FdTableSync> Plan(const TreeImages& tree);
  // The tree's failure flag (TreeSync::failed): a wait gives up when it is
  // set. Before the tree is created.
  void set_failed_flag(const uint32_t* failed) { failed_ = failed; }
  FdTableSync() = default;
  FdTableSync(FdTableSync&& o) noexcept { *this = std::move(o); }
  FdTableSync& operator=(FdTableSync&& o) noexcept;
  FdTableSync(const FdTableSync&) = delete;
  FdTableSync& operator=(const FdTableSync&) = delete;
  ~FdTableSync();

  Role RoleOf(pid_t pid) const;
  // Sharer: step 1, then waits for step 2.
  Status SharerArrive(pid_t pid) const;
  // Owner: step 2. Returns the fd numbers open in the table now.
  Result<std::set<int>> OwnerStart(pid_t pid) const;
  // Owner: waits for step 3 of every sharer.
  Status OwnerWaitPlaced(pid_t pid) const;
  // Sharer: step 3 done.
  void SharerPlaced(pid_t pid) const;
  // Owner: step 4 done.
  void OwnerInstalled(pid_t pid) const;
  // Sharer: waits for step 4.
  Status SharerWaitInstalled(pid_t pid) const;

 private:
  struct Counters {  // per owner, in shared memory
    uint32_t arrived, started, placed, installed;
  };
  struct Member {
    Role role;
    int slot;          // its owner's Counters
    uint32_t sharers;  // for an owner: how many share its table
  };
  Status Wait(const uint32_t* v, uint32_t want, const char* what) const;
  std::map<pid_t, Member> members_;
  Counters* counters_ = nullptr;
  size_t len_ = 0;
  const uint32_t* failed_ = nullptr;
};

// A sharer's service fds (step 3): each *fd is replaced by a copy at a
// number >= base that no one else holds. Those in `own` (numbers this task
// opened itself) are closed once copied; the others are the table's and
// stay (their holder closes them).
Status PlaceSharerServiceFds(const std::vector<int*>& slots, const std::set<int>& own, int base);

// The POSIX locks this process (getpid()) held on the files of `fds`,
// taken again once the table is installed (step 5): its owner's
// FinishTaskFds takes only the owner's own.
Status TakeOwnPosixLocks(const std::vector<pb::FdinfoEntry>& fds,
                         const std::map<uint32_t, pb::FileEntry>& files);

}  // namespace ckpt
