// The network side of one restore: the lock that keeps the restored
// connections' packets away until they are whole, and the last step that
// lets them go.
//
//   NetRestore net;
//   TRY(net.Lock(tree, o));      // before any socket is made
//   ... build the tree (sockets come back in repair mode) ...
//   TRY(net.Finish(tree, dir));  // every task restored and stopped
//
// If the restore fails, the destructor drops our lock; the table a dump
// left (inventory.netlock_table) stays, so the restore can be retried.
#pragma once

#include <memory>

#include "base/result.h"
#include "criu/options.h"
#include "criu/task_images.h"
#include "images/image_dir.h"

namespace ckpt::net {

class NetLock;  // netlock.h

class NetRestore {
 public:
  NetRestore();
  ~NetRestore();
  NetRestore(const NetRestore&) = delete;
  NetRestore& operator=(const NetRestore&) = delete;

  // Blocks the packets of every live TCP connection in the images
  // (unless --network-lock skip, or they come back closed).
  Status Lock(const TreeImages& tree, const Options& o);
  // Removes our lock and the dump's, then takes each restored connection
  // out of repair mode (through ckpt's copy of one task's fd) and sends the
  // bytes the program had written that were never sent.
  // real_pids: each task's pid here (tree.tasks order).
  Status Finish(const TreeImages& tree, const std::vector<pid_t>& real_pids,
                const images::ImageDir& dir, const Options& o);

 private:
  std::unique_ptr<NetLock> lock_;
};

}  // namespace ckpt::net
