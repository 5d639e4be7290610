// The kernel's view of TCP and UDP sockets, over NETLINK_SOCK_DIAG with
// inet_diag (see sock_diag(7)): state, addresses, queue lengths and
// shutdown state of every socket of one (family, protocol), keyed by
// inode — what a dump needs to know about a socket without touching it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::net {

struct InetDiag {
  uint32_t ino = 0;
  int family = 0;    // AF_INET, AF_INET6
  int protocol = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE
  int state = 0;     // TCP_ESTABLISHED ... (UDP: TCP_CLOSE, or TCP_ESTABLISHED if connected)
  uint8_t src[16] = {}, dst[16] = {};  // AF_INET: first 4 bytes
  uint16_t sport = 0, dport = 0;       // host byte order
  uint32_t ifindex = 0;                // bound device (idiag_if)
  uint32_t rqueue = 0;      // listener: connections waiting to be accepted; else bytes unread
  uint32_t wqueue = 0;      // listener: backlog; else bytes not yet acknowledged
  int shutdown = 0;         // RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2
  uint32_t cookie[2] = {};  // the kernel's id of the socket (SOCK_DESTROY needs it)
};

// Every socket of this family and protocol in our network namespace,
// including those no file holds (TIME_WAIT, orphans still closing: inode
// 0, so there may be many of them).
Result<std::vector<InetDiag>> InetDiagList(int family, int protocol);
// The same, keyed by inode: sockets with a file only.
Result<std::map<uint32_t, InetDiag>> InetDiagDump(int family, int protocol);

// Caches one dump per (family, protocol) for the life of one ckpt dump:
// a tree with thousands of sockets asks the kernel four times, not once
// per socket. The tree is frozen, so the answers stay true.
class InetDiagCache {
 public:
  // The socket with this inode, or nullptr (errors of the query are
  // returned, "not found" is nullptr).
  Result<const InetDiag*> Find(int family, int protocol, uint32_t ino);

 private:
  std::map<std::pair<int, int>, std::map<uint32_t, InetDiag>> dumps_;
};

// For an error message: who holds local `port` of this family and
// protocol here ("by pid 42 (nginx), in state LISTEN", "by 2 connections
// in TIME_WAIT, which expire within a minute"); "" if nobody visible.
// The socket with inode self_ino (the one that failed) is not counted.
std::string DescribePortHolders(int family, int protocol, uint16_t port, uint32_t self_ino);

// Ends (SOCK_DESTROY) the remnants of TCP connections whose local end is
// addr:port (addr all zeros: any) and that no process holds any more:
// TIME_WAIT, and orphans still closing (FIN_WAIT1/2, CLOSING, LAST_ACK)
// after their process was killed. They keep a restored listener from
// taking its port back. Returns how many were ended.
Result<int> EndTimeWait(int family, const std::string& addr, uint16_t port);

// Whether a 16-byte address is an IPv4-mapped one (::ffff:a.b.c.d): an
// IPv6 socket talking IPv4 on the wire.
inline bool IsV4Mapped(const uint8_t* a) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (int i = 0; i < 12; i++)
    if (a[i] != kPrefix[i]) return false;
  return true;
}

// "127.0.0.1:41234", "[::1]:6379".
std::string FormatEndpoint(int family, const uint8_t* addr, uint16_t port);
// Human name of a TCP state: "ESTABLISHED", "LISTEN", ...
const char* TcpStateName(int state);

}  // namespace ckpt::net
