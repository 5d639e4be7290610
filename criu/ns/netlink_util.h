// Small helpers the network-namespace code shares: running code in another
// network namespace from a helper thread, and rtnetlink requests through
// libnl with the kernel's own errno in errors.
#pragma once

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::ns {

struct NlSockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
using NlSock = std::unique_ptr<nl_sock, NlSockFree>;

// Runs fn in a new thread that first setns()es into the network namespace
// `nsfd`; the calling thread never changes namespace. Sockets fn opens stay
// in that namespace wherever they are used afterwards.
Status RunInNetns(int nsfd, const std::function<Status()>& fn);

// Runs fn in a new thread that first unshare()s a network namespace of its
// own (gone when the thread ends).
Status RunInNewNetns(const std::function<Status()>& fn);

// An rtnetlink socket (libnl) in the calling thread's network namespace.
Result<NlSock> OpenRtnl();

// A libnl error code (negative NLE_*) as an Error "what: reason".
Error NlError(const std::string& what, int nlerr);

// Sends one rtnetlink request (nlmsghdr of `type`, `flags` | NLM_F_REQUEST |
// NLM_F_ACK, then `payload`) and waits for the kernel's answer. A refusal
// comes back with the kernel's errno and extended-ack text.
Status RtnlRequest(nl_sock* sk, int type, int flags, const void* payload, size_t len,
                   const std::string& what);
// The same for a message libnl built (consumed). `each`, if given, sees
// every answer before the ack (a GET request's reply).
Status RtnlSend(nl_sock* sk, nl_msg* msg, const std::string& what,
                const std::function<Status(nlmsghdr*)>* each = nullptr);

// Dumps `type` (RTM_GETADDR, ...) for `family`, calling each on every answer.
Status RtnlDump(nl_sock* sk, int type, int family, const std::function<Status(nlmsghdr*)>& each);

// The network namespace of the calling thread, opened.
Result<UniqueFd> OpenOwnNetns();

}  // namespace ckpt::ns
