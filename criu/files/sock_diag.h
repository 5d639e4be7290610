// The kernel's view of unix sockets, over NETLINK_SOCK_DIAG (see
// sock_diag(7)): state, peer, pending connections and queue lengths of a
// socket by inode, none of which the socket's own fd can tell.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::files {

struct UnixDiag {
  uint32_t ino = 0;
  int type = 0;          // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  int state = 0;         // TCP_ESTABLISHED (connected), TCP_CLOSE, TCP_LISTEN
  std::string name;      // UNIX_DIAG_NAME: sun_path bytes (abstract: leading NUL)
  bool has_vfs = false;  // bound to a path: the inode of the socket file
  uint32_t vfs_ino = 0, vfs_dev = 0;
  bool has_peer = false;        // connected (UNIX_DIAG_PEER present)
  uint32_t peer = 0;            // peer inode; 0 if the peer is closed or not yet accepted
  std::vector<uint32_t> icons;  // listener: inodes of the clients waiting in its accept
                                // queue, oldest first (0: that client was closed)
  uint32_t rqueue = 0;          // listener: connections waiting; others: bytes queued
                                // (datagram: the first message only)
  uint32_t wqueue = 0;          // listener: backlog; others: bytes sent, not yet read
  uint32_t shutdown = 0;        // RCV_SHUTDOWN 1, SEND_SHUTDOWN 2
};

// The unix socket with this inode in our network namespace. Error
// (errno ENOENT) if there is none.
Result<UnixDiag> UnixDiagByIno(uint32_t ino);

// Every listening unix socket of our network namespace, with its pending
// connections.
Result<std::vector<UnixDiag>> UnixDiagListeners();

// Every unix socket of our network namespace bound to a path, with the
// inode of its socket file.
Result<std::vector<UnixDiag>> UnixDiagBound();

}  // namespace ckpt::files
