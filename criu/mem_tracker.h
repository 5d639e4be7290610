// The tracker: a small daemon that holds the write-tracking userfaultfds of
// a dumped tree between two steps of an incremental chain (criu/uffd_wp.h:
// whoever holds a userfaultfd holds the tracking; its last close undoes
// it). ckpt exits after a pre-dump; the tracker does not.
//
//   // pre-dump, tree frozen, uffds made:
//   TRY_ASSIGN(auto t, Tracker::Start(root, tasks, timeout_s));
//   ... write images; memtrack.img names t->name() ...
//   TRY(t->Commit());   // after the inventory: now it waits for the next step
//   // the next step (another ckpt):
//   TRY_ASSIGN(auto got, CollectFromTracker(name, root));
//
// Lifetime: a forked, double-forked child of ckpt in a session of its own,
// holding nothing but the uffds, a pidfd of the root, its listening socket
// (an abstract unix socket, only ckpt's uid may connect) and a control
// socket to the ckpt that made it. It exits, closing the uffds (which
// removes every write-protection from the tree), when:
//  - the ckpt that made it goes away before Commit (a failed or killed
//    pre-dump leaves nothing),
//  - a next step collected the uffds (it then owns them),
//  - the tree's root exits, or the timeout passes (an abandoned chain).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {

struct TrackedUffd {
  pid_t pid = 0;
  uint64_t start_time = 0;  // /proc/PID/stat field 22
  UniqueFd uffd;
};

class Tracker {
 public:
  // Forks the tracker with copies of `tasks`' uffds (ckpt keeps its own).
  // Must be called while ckpt has no other threads.
  static Result<std::unique_ptr<Tracker>> Start(pid_t root, const std::vector<TrackedUffd>& tasks,
                                                int timeout_s);
  // Without Commit the tracker exits (and the tracking with it).
  ~Tracker();
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  Status Commit();

 private:
  Tracker() = default;
  std::string name_;
  pid_t pid_ = 0;
  UniqueFd ctl_;
};

// Connects to the tracker `name`, takes every uffd it holds for the tree of
// `root` and lets it exit. An error when it is gone (the caller decides).
Result<std::vector<TrackedUffd>> CollectFromTracker(const std::string& name, pid_t root);

}  // namespace ckpt
