#include "criu/net/net_dump.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "criu/net/netlock.h"
#include "criu/net/tcp_repair.h"
#include "criu/proc_parse.h"

namespace ckpt::net {

NetDump::NetDump() = default;

NetDump::~NetDump() {
  // A dump that failed after BeforeKill: the connections go on.
  if (in_repair_)
    for (Conn& c : conns_) {
      Status s = LeaveRepair(c.fd.get(), c.reuseaddr, false, c.what);
      if (!s.ok()) LOG_WARN(s.error().message());
    }
  // lock_ unlocks as it goes.
}

Status NetDump::LockConnections(const std::vector<pid_t>& pids) {
  std::vector<LockedConn> conns;
  for (pid_t pid : pids) {
    TRY_ASSIGN(std::vector<int> fds, proc::ListFds(pid));
    for (int fd : fds) {
      std::string p = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
      struct stat st;
      if (stat(p.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode)) continue;
      for (int family : {AF_INET, AF_INET6}) {
        TRY_ASSIGN(const InetDiag* d, diag_.Find(family, IPPROTO_TCP, uint32_t(st.st_ino)));
        if (!d || !IsRepairableState(d->state)) continue;
        conns.push_back(ConnOnTheWire(family, d->src, d->dst, d->sport, d->dport));
      }
    }
  }
  if (conns.empty()) return Ok();
  TRY(CleanStaleLocks());
  TRY_ASSIGN(NetLock lock, NetLock::Lock("dump-" + std::to_string(pids.front()), conns));
  lock_ = std::make_unique<NetLock>(std::move(lock));
  LOG_INFO("Network locked: " + std::to_string(conns.size()) + " TCP connection(s), table inet " +
           lock_->table());
  return Ok();
}

Result<pb::TcpStreamEntry> NetDump::ReadConnection(UniqueFd sk, int state,
                                                   const std::string& what) {
  int reuse = 0;
  socklen_t len = sizeof(reuse);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_REUSEADDR, &reuse, &len) < 0)
    return Error::Errno(what + ": SO_REUSEADDR");
  TRY(EnterRepair(sk.get(), what));
  auto stream = ReadTcpStream(sk.get(), state, what);
  // Out again whatever happened: the connection must not stay stuck.
  TRY(LeaveRepair(sk.get(), reuse != 0, false, what));
  if (!stream.ok()) return std::move(stream.error());
  conns_.push_back({std::move(sk), what, reuse != 0});
  return stream;
}

std::string NetDump::KeptLockName() const { return lock_ ? lock_->KeptName() : ""; }

Status NetDump::BeforeKill() {
  in_repair_ = true;
  for (Conn& c : conns_) TRY(EnterRepair(c.fd.get(), c.what));
  return Ok();
}

Status NetDump::Finish(bool killed) {
  in_repair_ = false;
  if (killed) {
    // Closing a socket in repair mode sends nothing: the peer keeps waiting,
    // its retransmissions dropped by the lock until the restore.
    conns_.clear();
    if (lock_ && lock_->active()) TRY(lock_->TryPersist(), "the tree is dumped and killed, but");
    return Ok();
  }
  conns_.clear();
  if (lock_) TRY(lock_->Unlock());
  return Ok();
}

}  // namespace ckpt::net
