// One request to the kernel's socket diagnostics (NETLINK_SOCK_DIAG, see
// sock_diag(7)), answers handed to a callback. The per-family parts (unix,
// inet, netlink, packet) build their request and parse their answers.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <functional>

#include "base/result.h"

namespace ckpt::net {

using SockDiagEach = std::function<Status(const nlmsghdr*)>;

// Sends `req` (the family's *_diag_req, len bytes) as a message of `type`
// (SOCK_DIAG_BY_FAMILY, SOCK_DESTROY) and calls `each` on every
// SOCK_DIAG_BY_FAMILY message of the answer. dump: NLM_F_DUMP, the answer
// runs to NLMSG_DONE; otherwise the request is acked and the answer is at
// most one message. A kernel error comes back with its errno.
Status SockDiagRequest(uint16_t type, bool dump, const void* req, size_t len,
                       const SockDiagEach& each);

inline Status SockDiagDump(const void* req, size_t len, const SockDiagEach& each) {
  return SockDiagRequest(20 /* SOCK_DIAG_BY_FAMILY */, true, req, len, each);
}

}  // namespace ckpt::net
