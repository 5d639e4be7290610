// TCP connections through the kernel's repair mode (TCP_REPAIR, see
// tcp(7) and include/uapi/linux/tcp.h): a socket in repair mode sends
// nothing, closes without a FIN or RST, lets its sequence numbers and
// queues be read and set, and connect()s without a handshake. ckpt uses it
// on its own copy of the task's socket (pidfd_getfd: the same socket).
//
// Dump:    EnterRepair -> ReadTcpStream -> LeaveRepair (no probe); just
//          before the tree is killed EnterRepair again, so the socket
//          closes silently (the peer notices nothing; the network lock
//          drops its retransmissions until the restore).
// Restore: a fresh socket, EnterRepair, options, bind -> RestoreTcpStream
//          (sequence numbers, connect, TCP options, the queues as they were,
//          the window, FINs already sent or received) -> ... once the whole
//          tree is restored: FinishTcpStream (repair off, the bytes the
//          program wrote that were never sent go out as new data).
#pragma once

#include <sys/socket.h>

#include <string>

#include "base/result.h"
#include "proto/sk_inet.pb.h"

namespace ckpt::net {

// TCP_REPAIR on. Repair mode forces address reuse for bind() and
// overwrites SO_REUSEADDR: read it first if the socket will leave repair.
Status EnterRepair(int fd, const std::string& what);
// TCP_REPAIR off, then SO_REUSEADDR as the program had it (leaving repair
// mode clears it). probe: TCP_REPAIR_OFF, the kernel sends a window probe,
// which wakes a peer that waited for our window to open; otherwise
// TCP_REPAIR_OFF_NO_WP (nothing is sent).
Status LeaveRepair(int fd, bool reuseaddr, bool probe, const std::string& what);

// Reads a connection (ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, CLOSING,
// LAST_ACK) of a socket already in repair mode: sequence numbers, TCP
// options, window, and both queues, peeked (nothing is consumed).
Result<pb::TcpStreamEntry> ReadTcpStream(int fd, int state, const std::string& what);

// Rebuilds a dumped connection in `fd`: a new socket in repair mode, bound
// to the local address, with its socket options set. Connects it to `dst`
// with the dumped sequence numbers, sets the TCP options, refills the
// receive queue and the part of the send queue the peer may have seen,
// sets the window, and replays FINs sent or received (a received FIN is a
// packet ckpt injects, marked to pass the network lock). The socket stays
// in repair mode.
Status RestoreTcpStream(int fd, int family, const sockaddr* dst, socklen_t dst_len,
                        const pb::TcpStreamEntry& e, const std::string& what);

// Takes `fd` (restored by RestoreTcpStream) out of repair mode (SO_REUSEADDR
// back to `reuseaddr`) and sends the bytes of the send queue that had never
// been sent.
Status FinishTcpStream(int fd, const pb::TcpStreamEntry& e, bool reuseaddr,
                       const std::string& what);

// True for the TCP states whose connection repair mode can save.
bool IsRepairableState(int state);

}  // namespace ckpt::net
