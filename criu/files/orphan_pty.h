// --orphan-pts-master: a pty slave whose master was held outside the
// dumped tree (a container's console: runc keeps the master, or hands it
// to containerd-shim or conmon) comes back as the slave of a new pair
// made in the tree's devpts (the root opens /dev/ptmx after its mount
// namespace is in place: tty.cc). The master goes to whoever restored the
// tree: the root sends it to ckpt over a socket made before the root, and
// ckpt, once every task is restored and before any runs, runs the
// orphan-pts-master action with it (criu/action_hooks.h: an RPC client gets
// it over SCM_RIGHTS, as runc expects; action scripts only hear of it).
// ckpt holds each master until it exits: without a listener that keeps a
// copy, the terminal hangs up then (SIGHUP to its session).
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {
struct Options;
}

namespace ckpt::files {

class OrphanPtys {
 public:
  OrphanPtys() = default;
  OrphanPtys(OrphanPtys&&) = default;
  OrphanPtys& operator=(OrphanPtys&&) = default;

  // In ckpt, before the root is created: the socket pair, its task end at
  // or above `base` (above every restored fd number), close-on-exec.
  static Result<OrphanPtys> Create(int base);
  // The end the root inherits (RestoreOpts::orphan_pty_sk).
  int task_end() const { return task_.get(); }
  // ckpt's copy of the task end, once the root has its own.
  void CloseTaskEnd() { task_.reset(); }
  // In ckpt, every task restored and stopped, before any is resumed: takes
  // the masters the root sent and runs the orphan-pts-master action for
  // each (pid: the root's real pid). Masters stay open here until this
  // object goes.
  Status HandOut(const Options& o, pid_t root);
  size_t count() const { return masters_.size(); }

 private:
  UniqueFd ours_, task_;
  std::vector<UniqueFd> masters_;
};

// In the restoring root: sends a new master to ckpt.
Status SendOrphanMaster(int sk, int master);

}  // namespace ckpt::files
