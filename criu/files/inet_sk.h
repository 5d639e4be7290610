// Inet sockets: TCP, UDP, UDP-Lite, ping and raw sockets, IPv4 and IPv6.
//
// Dump (inet_sk_dump.cc). check() refuses, before the task is infected,
// what cannot come back: an established connection without
// --tcp-established (naming it: "TCP 127.0.0.1:41234 -> 127.0.0.1:6379"),
// a listener with connections not yet accepted without --skip-in-flight, a
// socket of another network namespace. dump() reads addresses and options
// from ckpt's own copy of the socket (pidfd_getfd), state and shutdown
// from inet_diag, and a live connection through TCP repair mode
// (criu/net/tcp_repair.h) into tcp-stream-<id>.img. The socket stays in
// repair mode until the dump ends (criu/net/net_dump.h).
//
// Restore (inet_sk_restore.cc). Each socket is made anew in the process
// that opens the tree's files: bound where it was (in repair mode, which
// lets a port still held by a TIME_WAIT twin be taken again), options
// set, then listening, connected with its sequence numbers and queues in
// repair mode, or connect()ing again (SYN_SENT). Connections leave repair
// mode only once the whole tree is restored (criu/net/net_restore.h).
//
// Multicast memberships (with source filters) are found per socket among
// the groups the kernel lists per device (inet_sk_mcast.cc).
//
// Not kept: datagrams queued on UDP and raw sockets (dropped, with a
// warning: a datagram network may lose them anyway).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "proto/sk_inet.pb.h"

namespace ckpt::files {

extern const FileHandler kInetSkHandler;

// "TCP", "UDP", "UDP-Lite", "ping", "raw" (by type and protocol).
std::string InetProtoName(int type, int protocol);
// A sockaddr for (family, addr bytes, port); addr may be empty (any).
sockaddr_storage MakeInetAddr(int family, const std::string& addr, uint32_t port, uint32_t scope,
                              socklen_t* len);
// "TCP 127.0.0.1:41234 -> 127.0.0.1:6379", "UDP [::1]:53", for messages.
std::string DescribeInetSk(const pb::InetSkEntry& e);

// inet_sk_dump.cc
Status CheckInetSk(const FdContext& c, const std::vector<FdContext>& all);
Status DumpInetSk(const FdContext& c, DumpContext& ctx, pb::FileEntry* e);

// inet_sk_opts.cc: the options in pb::InetSkOpts, read from a socket and
// set back. Only options whose value differs from a new socket's of the
// same kind are saved; InetOptDefaults reads a new socket once per kind
// per dump (a tree with thousands of sockets makes a handful).
// SetInetOptsBeforeBind sets what changes how bind() and the port's
// sharing work (IPV6_V6ONLY, SO_REUSEPORT, SO_BINDTODEVICE, IP_FREEBIND,
// IP_TRANSPARENT); SetInetOpts the rest.
class InetOptDefaults {
 public:
  // The options of a new socket of this kind; nullptr if none can be made
  // here (then every option is saved).
  const pb::InetSkOpts* For(int family, int type, int protocol);

 private:
  std::map<std::tuple<int, int, int>, std::optional<pb::InetSkOpts>> cache_;
};
Status ReadInetOpts(int fd, int family, int type, int protocol, InetOptDefaults& defaults,
                    pb::InetSkOpts* o);
Status SetInetOptsBeforeBind(int fd, const pb::InetSkEntry& e);
Status SetInetOpts(int fd, const pb::InetSkEntry& e);

// inet_sk_mcast.cc: multicast memberships with their source filters.
Status ReadMcGroups(int fd, int family, pb::InetSkEntry* e);
Status JoinMcGroups(int fd, const pb::InetSkEntry& e);

// inet_sk_restore.cc
Result<int> OpenInetSk(const pb::FileEntry& e, const RestoreOpts& o);

}  // namespace ckpt::files
