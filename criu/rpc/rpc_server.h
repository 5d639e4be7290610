// CRIU's RPC transport: `ckpt swrk FD` and `ckpt service --address PATH`.
//
// Runtimes (runc, podman through runc, go-criu, pycriu) do not run ckpt's
// command line: they send criu_req messages (proto/rpc.proto) and read
// criu_resp answers, one protobuf message per SOCK_SEQPACKET packet.
//
//   swrk:    the client made a socketpair and started `ckpt swrk FD` with
//            one end as FD (runc: `criu swrk 3`, stdio passed through).
//            ckpt serves requests on it until the client closes its end.
//   service: ckpt listens on a unix SOCK_SEQPACKET socket (created 0600,
//            owned by ckpt's user); every connection is served by a child
//            of its own, so a dump that crashes or exits takes nothing
//            else down. --daemon detaches once the socket listens;
//            --pidfile names the serving process.
//
// A packet is sized with MSG_PEEK|MSG_TRUNC before it is read: a packet
// over kMaxMessageSize is discarded and answered with an error, as is one
// that does not parse; neither ends the session. A client that closes
// ends it. The requests themselves are in rpc_session.h.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "base/result.h"
#include "criu/options.h"
#include "criu/rpc/rpc_request.h"
#include "proto/rpc.pb.h"

namespace ckpt::rpc {

// Larger requests are refused. The biggest real ones (runc with many
// ext_mnt and inherit_fd entries) are a few KiB; the kernel itself cannot
// carry a SOCK_SEQPACKET message much over 4 MiB (one linear buffer).
constexpr size_t kMaxMessageSize = 1u << 20;

// The credentials of the process at the other end (SO_PEERCRED).
Result<Peer> PeerOf(int sk);

// One request. Returns false when the client closed the connection; an
// Error for a packet that is too big, empty or does not parse (consumed:
// the next call reads the next packet). Unknown request types parse: the
// number is in `*unknown_type` (and req has no type).
Result<bool> RecvRequest(int sk, criu_req* req, int* unknown_type);

// One response; `pass_fd` >= 0 goes along with SCM_RIGHTS.
Status SendResponse(int sk, const criu_resp& resp, int pass_fd = -1);

// `ckpt swrk FD` and `ckpt service`: return ckpt's exit code.
int RunSwrk(const Options& o);
int RunService(const Options& o);

}  // namespace ckpt::rpc
