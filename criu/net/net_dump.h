// What one dump keeps of the network while it runs: the inet_diag answers,
// the TCP sockets it put into repair mode, and the network lock.
//
// Life: Dump() makes one NetDump after seizing the tree and calls
// LockConnections (before any socket is touched); the inet socket handler
// enters repair mode through EnterRepair(); before the inventory is
// written, PersistLock() (unless --leave-running); after it, Finish(killed)
// either closes the repaired sockets silently (the tree was killed; the
// lock stays until restore) or takes them out of repair mode
// (--leave-running). If the dump fails, the destructor takes every socket
// out of repair mode and drops the lock: the connections go on.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/net/inet_diag.h"

namespace ckpt::net {

class NetLock;  // netlock.h

class NetDump {
 public:
  NetDump();
  ~NetDump();
  NetDump(const NetDump&) = delete;
  NetDump& operator=(const NetDump&) = delete;

  InetDiagCache& diag() { return diag_; }

  // Blocks the packets of every repairable TCP connection held by `pids`
  // (all of them frozen) with an nftables table of our own.
  Status LockConnections(const std::vector<pid_t>& pids);

  // Puts `sk`, ckpt's own copy of a task's TCP socket (pidfd_getfd), into
  // repair mode and keeps it, in repair mode, until Finish or the
  // destructor. Returns its fd number.
  Result<int> EnterRepair(UniqueFd sk, const std::string& what);

  // Makes the lock outlive ckpt (a dump that kills the tree: the peers'
  // packets stay blocked until the restore removes the table). Returns the
  // table name for the inventory, "" if nothing is locked. Until Finish,
  // a failure still removes it.
  Result<std::string> PersistLock();

  // The dump is committed. killed: the tree was killed; close our copies
  // still in repair mode (no FIN, no RST) and keep the persisted lock.
  // Otherwise the connections go on: repair off, lock removed.
  Status Finish(bool killed);

 private:
  struct Repaired {
    UniqueFd fd;
    std::string what;
    bool reuseaddr;  // SO_REUSEADDR before repair mode overwrote it
  };
  void LeaveRepair();
  InetDiagCache diag_;
  std::vector<Repaired> repaired_;
  std::unique_ptr<NetLock> lock_;
  std::string persisted_;  // a persisted table to remove if the dump fails
};

}  // namespace ckpt::net
