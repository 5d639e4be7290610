// The network lock: while ckpt dumps a tree that holds TCP connections (and
// on restore until every connection is repaired), the packets of exactly
// those connections are dropped, so neither side sends a reset or sees data
// the images do not hold.
//
// How: an nftables table of ckpt's own in the current network namespace,
// built through nf_tables netlink (libnftnl + libmnl; the nft command is not
// needed), family inet:
//
//   table inet ckpt-run-<pid>-<starttime>-<tag>
//     set conns4 { ipv4 saddr . sport . daddr . dport }   (both directions)
//     set conns6 { ipv6 ... }
//     chain input  { hook input  priority -300 (raw, before conntrack) }
//     chain output { hook output priority -300 }
//       each: meta nfproto ipv4 meta l4proto tcp meta mark != kLockBypassMark
//             ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop
//             (and the same for ipv6 / conns6)
//
// Each chain drops both directions, so a connection whose two ends are both
// local (loopback) is blocked wherever its packets pass. Everything else
// passes untouched; the table changes nothing but drops.
//
// Lifetime and stale locks:
//   - A lock in progress is created with NFT_TABLE_F_OWNER (Linux 5.12): the
//     kernel deletes it when the netlink socket that created it closes, i.e.
//     when ckpt dies in any way. The NetLock keeps that socket (O_CLOEXEC).
//     A child forked without exec inherits it and keeps the table alive
//     while it holds the fd: close it in such children (restore does).
//   - Where ownership is refused (probed at each Lock: EOPNOTSUPP), the table
//     is created without it; its name carries ckpt's pid and start time so
//     CleanStaleLocks() removes it once that process is gone.
//   - Persist() turns the lock into a table that outlives ckpt, named
//     `ckpt-kept-<pid>-<tag>`, which CleanStaleLocks() leaves alone: restore
//     removes it with RemoveLockTable(name from the inventory). It is done by
//     one atomic batch that creates the un-owned copy and deletes the owned
//     table: no packet passes in between. NFT_TABLE_F_PERSIST (Linux 6.9)
//     cannot do this: the kernel refuses to change that flag on an existing
//     table (EOPNOTSUPP, probed), and setting it at creation would let a
//     killed ckpt's table survive.
//
// Every function needs CAP_NET_ADMIN in the current network namespace.
// Errors name the table and the kernel's reason.
//
// Example (dump):
//   TRY(CleanStaleLocks());
//   TRY_ASSIGN(NetLock lock, NetLock::Lock("dump-" + std::to_string(root), conns));
//   ... dump ...
//   TRY_ASSIGN(std::string kept, lock.TryPersist());   // the tree is killed next
//   inventory.set_netlock_table(kept);
// Restore: TRY(RemoveLockTable(inventory.netlock_table())) once repaired.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::net {

// One TCP connection as seen from the dumped side.
struct LockedConn {
  int family = 0;  // AF_INET or AF_INET6
  // Network byte order; for AF_INET only the first 4 bytes are used.
  std::array<uint8_t, 16> local_addr = {}, remote_addr = {};
  uint16_t local_port = 0, remote_port = 0;  // host byte order
};

// A LockedConn for a socket of `family` with these 16-byte addresses (IPv4
// in the first 4): an IPv6 socket talking to an IPv4-mapped address
// (::ffff:a.b.c.d) puts IPv4 packets on the wire, so it is locked as IPv4.
LockedConn ConnOnTheWire(int family, const uint8_t* local, const uint8_t* remote,
                         uint16_t local_port, uint16_t remote_port);

// Packets with this skb mark (SO_MARK on the sending socket) pass the lock:
// ckpt's own injected packets (e.g. a peer's FIN replayed on restore through
// a raw socket). ASCII "ckpt"; chosen to be unlikely to collide with marks
// of routing policies or CNI plugins, which use low bits or small values.
inline constexpr uint32_t kLockBypassMark = 0x636b7074;

// Table name prefixes (see above). Tags given to Lock() should not repeat
// them.
inline constexpr char kRunTablePrefix[] = "ckpt-run-";
inline constexpr char kKeptTablePrefix[] = "ckpt-kept-";

class NetLock;
namespace internal {
// Lock() with table ownership chosen: `owned` false locks as on a kernel
// without NFT_TABLE_F_OWNER. For Lock() and tests only.
Result<NetLock> LockWithOwnership(const std::string& tag, const std::vector<LockedConn>& conns,
                                  bool owned);
}  // namespace internal

class NetLock {
 public:
  // An inactive lock (locks nothing).
  NetLock() = default;
  NetLock(NetLock&&) noexcept = default;
  NetLock& operator=(NetLock&& o) noexcept;
  NetLock(const NetLock&) = delete;
  NetLock& operator=(const NetLock&) = delete;
  // Unlock() unless persisted; a failure is logged (LOG_WARN), never thrown.
  ~NetLock();

  // Creates the table `inet ckpt-run-<pid>-<starttime>-<tag>` dropping every
  // packet of `conns` in both directions, in one atomic netlink batch.
  // `tag`: 1..64 characters of [A-Za-z0-9_.-], e.g. "dump-<root pid>".
  // Duplicates in `conns` are fine. Empty `conns` -> an inactive lock and no
  // table. Errors: a bad tag or family (EINVAL), the table existing
  // (EEXIST; EPERM if another socket owns it), no nf_tables or no inet
  // family (EPROTONOSUPPORT / EAFNOSUPPORT), no CAP_NET_ADMIN (EPERM).
  static Result<NetLock> Lock(const std::string& tag, const std::vector<LockedConn>& conns);

  // Removes the table now, through the socket that owns it. Idempotent; a
  // table already gone (removed by someone else) is not an error. After a
  // failure the lock stays active (the destructor tries again).
  Status Unlock();

  // Leaves the lock in place after this object (and ckpt) goes away, as the
  // table `ckpt-kept-<pid>-<tag>` (see above); returns its name. Afterwards
  // this object is inactive and removes nothing. On an inactive lock returns
  // "" and does nothing. On failure the lock is still held by this object,
  // as before (it goes when ckpt goes).
  Result<std::string> TryPersist();
  // The name TryPersist() will give the kept table ("" if inactive), for a
  // caller that must write it down before persisting.
  std::string KeptName() const;
  // TryPersist() for callers that cannot take a Result: "" on failure, the
  // error logged (LOG_ERR) and the lock still active (check active()).
  std::string Persist();

  // Whether this object holds a table it will remove.
  bool active() const { return sock_.get() >= 0; }
  // The current table name ("" if inactive).
  const std::string& table() const { return table_; }
  // The netlink socket owning the table (-1 if inactive), for a child that
  // must close it after fork.
  int owner_fd() const { return sock_.get(); }

 private:
  std::string tag_;
  std::string table_;
  std::vector<LockedConn> conns_;
  UniqueFd sock_;     // NETLINK_NETFILTER; owns table_ when owned_
  uint32_t seq_ = 0;  // next netlink sequence number on sock_
  bool owned_ = false;

  friend Result<NetLock> internal::LockWithOwnership(const std::string&,
                                                     const std::vector<LockedConn>&, bool);
};

// Removes `inet <name>` (restore calls this with the table a dump
// persisted). A missing table is not an error. A table owned by another live
// process's socket cannot be removed (EPERM).
Status RemoveLockTable(const std::string& name);

// Removes tables left in progress by a ckpt that is gone: un-owned
// `ckpt-run-<pid>-<starttime>-*` tables whose process no longer exists (or
// whose pid now has another start time). Owned tables are the kernel's
// business (they go with their socket); `ckpt-kept-*` tables are left for
// restore. Pids are read from this process's /proc, so ckpts sharing a
// network namespace should share the pid namespace too; where ownership is
// supported this never matters (owned tables are skipped, and a table owned
// by a live socket cannot be removed anyway).
Status CleanStaleLocks();

// Whether the lock can be used here: a real probe (locks one connection
// between documentation addresses, 192.0.2.1 and 2001:db8::1, in a throwaway
// table and removes it), for `ckpt check`.
bool NftablesUsable();

// Every inet table name in the current network namespace (tests,
// diagnostics).
Result<std::vector<std::string>> ListInetTables();

}  // namespace ckpt::net
