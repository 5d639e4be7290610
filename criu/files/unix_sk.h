// Unix sockets (AF_UNIX stream, datagram, seqpacket): the handler's parts.
//
// Dump (unix_sk_dump.cc). sock_diag tells, by inode, what the socket's fd
// cannot: its peer, the clients waiting in a listener's accept queue, the
// shutdown state. A duplicate of the task's fd (pidfd_getfd) gives the
// name, options and unread data, read with MSG_PEEK while stepping
// SO_PEEK_OFF, so nothing is consumed; the task's own peek offset is put
// back. Files in flight with a message (SCM_RIGHTS) come to ckpt with the
// peek (the kernel installs copies): each is dumped like a file of the tree
// (DumpContext::DumpHeldFile; shared with the tree's fd to the same open
// file) and the message names their file ids. A socket whose peer is outside the dumped tree is refused, unless
// --ext-unix-sk and it is a datagram socket whose peer has a name: it is
// connected again by that name at restore.
//
// Restore (unix_sk_restore.cc). The first unix socket entry opened builds
// every unix socket of the dump at once, in the one process that opens the
// tree's files: listeners, then connections that carry a name through
// accept() (connected to the real listener or a temporary one bound to the
// name), then the clients waiting in accept queues, socketpairs for the
// rest; then unread data is sent again from each socket's peer (or from a
// temporary socket), with its files in flight attached again (SCM_RIGHTS:
// opened early through RestoreContext::OpenNow, or the socket made here),
// then shutdowns, path file mode and owner, options.
// Each entry then gets its socket from the restore context.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

extern const FileHandler kUnixSkHandler;

// Socket addresses as sun_path bytes: "" unnamed, "\0..." abstract,
// otherwise a path (stored without its terminating NUL).
struct UnixAddr {
  sockaddr_un sa;
  socklen_t len;
};
UnixAddr MakeUnixAddr(const std::string& name);
// The name in an address the kernel returned (getsockname, recvmsg).
std::string UnixNameOf(const sockaddr_un& sa, socklen_t len);
inline bool IsPathName(const std::string& n) { return !n.empty() && n[0] != '\0'; }
// For messages: "/run/x.sock", "@abstract", "(unnamed)".
std::string PrintableName(const std::string& n);
const char* UnixTypeName(int type);

// unix_sk_dump.cc
// One message (datagram, packet, or chunk of a stream) of a receive queue,
// with ckpt's own copies of the files in flight with it.
struct QueuedMessage {
  std::string data, from;
  std::vector<UniqueFd> fds;
};
// Reads the receive queue of fd (a socket of `type`, shut down for reading
// if rcv_shut) without consuming it; the peek offset is left as it was.
Result<std::vector<QueuedMessage>> PeekUnixQueue(int fd, int type, bool rcv_shut);
// unix_sk_inflight.cc: whether a unix socket queue of the seized tree holds
// pipe `ino` in flight, on its write side or its read side.
bool PipeSideInFlight(uint64_t ino, bool write_side);
// ... holds unix socket `ino` in flight.
bool SocketInFlight(uint64_t ino);
// The handler of a file in flight (c: ckpt's own copy), or why it is
// refused: only regular files, pipes, unix sockets, eventfds and memfds
// are dumped in flight. `what` names it in errors.
Result<const FileHandler*> ClassifyInFlight(const FdContext& c, const std::string& what);
// Refuses early (before infection) a unix socket queue (ckpt's copy fd)
// carrying files in flight of other kinds.
Status CheckQueueInFlight(int fd, int type, bool rcv_shut);
Status CheckUnixSk(const FdContext& c, const std::vector<FdContext>& all);
Status DumpUnixSk(const FdContext& c, DumpContext& ctx, pb::FileEntry* e);

// unix_sk_restore.cc
Result<int> OpenUnixSk(const pb::FileEntry& e, const RestoreOpts& o);

}  // namespace ckpt::files
