// What one dump keeps of the network while it runs: the inet_diag answers,
// ckpt's copies of the tree's TCP sockets, and the network lock.
//
// A socket is in repair mode only while it is read, and again just before
// the tree is killed; in between it is a normal socket that sends nothing
// the peer can see (the tree is frozen and the lock drops every packet of
// its connection). So if ckpt dies anywhere in the dump, the parasite cures
// itself, the kernel drops the lock's table (owned by ckpt's netlink
// socket), and every connection goes on as if nothing happened.
//
// Life, driven by Dump():
//   NetDump net;
//   net.LockConnections(pids);      // seized, before any socket is touched
//   ... the inet handler: net.ReadConnection(copy, state, what) ...
//   inventory.netlock_table = net.KeptLockName();   // a dump that kills
//   ... inventory written ...
//   net.BeforeKill(); kill the tree; net.Finish(true);   // or Finish(false)
// The lock is made to outlive ckpt only once the tree is dead: if ckpt
// dies before, no live program is left behind a lock. A failed dump: the
// destructor takes the sockets out of repair mode and unlocks.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/net/inet_diag.h"
#include "proto/sk_inet.pb.h"

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

  // Reads a connection through `sk`, ckpt's own copy of a task's TCP socket
  // (pidfd_getfd): repair mode on, ReadTcpStream, repair mode off without a
  // window probe, SO_REUSEADDR as it was. Keeps the copy for BeforeKill.
  Result<pb::TcpStreamEntry> ReadConnection(UniqueFd sk, int state, const std::string& what);

  // The name the lock will keep after Finish(true), for the inventory; ""
  // if nothing is locked.
  std::string KeptLockName() const;

  // Right before the tree is killed: every connection back into repair
  // mode, so closing it sends no FIN and no RST.
  Status BeforeKill();

  // The dump is committed. killed: the tree was killed; the lock is made
  // to outlive ckpt (the peers' packets stay blocked until the restore
  // removes it) and our copies close in repair mode. Otherwise
  // (leave-running) the lock goes and the connections go on.
  Status Finish(bool killed);

 private:
  struct Conn {
    UniqueFd fd;
    std::string what;
    bool reuseaddr;  // SO_REUSEADDR as the program has it
    bool in_repair;  // ours to take out of repair mode if the dump fails
  };
  InetDiagCache diag_;
  std::vector<Conn> conns_;
  std::unique_ptr<NetLock> lock_;
};

}  // namespace ckpt::net
