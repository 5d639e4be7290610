// libFuzzer target: the CRIU RPC request decoder. The input is one packet
// on a SOCK_SEQPACKET socket, as a client sends it: RecvRequest (size
// limit, criu_req parse, required fields, unknown types), then for DUMP and
// RESTORE the mapping of criu_opts onto ckpt's Options (MapRequestOptions,
// as swrk: the peer is this process, whose fds the request may name).
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "criu/rpc/rpc_request.h"
#include "criu/rpc/rpc_server.h"
#include "test/fuzz/fuzz_util.h"

namespace {
int g_sk[2] = {-1, -1};
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::fuzz::Quiet();
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, g_sk) < 0) abort();
  int big = 4 << 20;
  setsockopt(g_sk[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
  setsockopt(g_sk[1], SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 20)) return 0;
  if (send(g_sk[0], data, size, MSG_DONTWAIT) != ssize_t(size)) abort();
  criu_req req;
  int unknown = -1;
  auto got = ckpt::rpc::RecvRequest(g_sk[1], &req, &unknown);
  // Whatever RecvRequest did with the packet, none may stay queued.
  char c;
  while (recv(g_sk[1], &c, 1, MSG_DONTWAIT | MSG_TRUNC) >= 0) {
  }
  if (!got.ok() || !*got || unknown >= 0) return 0;
  (void)ckpt::rpc::RequestTypeName(req.type());
  if ((req.type() != DUMP && req.type() != RESTORE) || !req.has_opts()) return 0;
  ckpt::rpc::RequestContext ctx;
  ctx.peer = {getpid(), getuid(), getgid()};
  ctx.swrk = true;
  (void)ckpt::rpc::MapRequestOptions(req.opts(), req.type(), ctx);
  return 0;
}
