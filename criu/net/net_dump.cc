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
  // A dump that failed with sockets in repair mode: the connections go on.
  for (Conn& c : conns_) {
    if (!c.in_repair) continue;
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
  conns_.push_back({std::move(sk), what, reuse != 0, true});
  Conn& c = conns_.back();
  auto stream = ReadTcpStream(c.fd.get(), state, what);
  // Out again whatever happened: the connection must not stay stuck (if
  // this fails, the destructor tries again).
  TRY(LeaveRepair(c.fd.get(), c.reuseaddr, false, what));
  c.in_repair = false;
  return stream;
}

std::string NetDump::KeptLockName() const { return lock_ ? lock_->KeptName() : ""; }

Status NetDump::BeforeKill() {
  for (Conn& c : conns_) {
    TRY(EnterRepair(c.fd.get(), c.what));
    c.in_repair = true;
  }
  return Ok();
}

Status NetDump::Finish(bool killed) {
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
