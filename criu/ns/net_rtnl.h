// Addresses, routes and policy rules of a network namespace, kept as the
// kernel's own rtnetlink dump messages (so every attribute the kernel
// reports comes back, libnl or not) with what only describes the present
// removed: cache info of routes, flags the kernel sets itself. Internal to
// criu/ns.
#pragma once

#include <netlink/socket.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "proto/net_ns.pb.h"

namespace ckpt::ns {

// ifindex -> device name, for descriptions.
using IfNames = std::map<uint32_t, std::string>;

// Reads addresses, routes (every table; not those the kernel makes from
// addresses, proto kernel, nor cached ones) and rules, v4 and v6, in that
// order. A route using a nexthop object is refused, naming it.
Result<std::vector<pb::NetRtnlEntry>> DumpRtnl(nl_sock* inner, const IfNames& names);

// Checks entries read from an image (sizes, families, well-formed
// attributes); errors name the entry.
Status CheckRtnl(const std::vector<pb::NetRtnlEntry>& entries);

// In the new namespace, devices made and up: addresses, then routes
// (retried while some succeed: one may need another), then the rules
// (the fresh namespace's default rules are replaced by the image's).
Status RestoreRtnl(nl_sock* inner, const std::vector<pb::NetRtnlEntry>& entries);

}  // namespace ckpt::ns
