// The configuration of a network namespace: saved at dump, made again at
// restore inside the fresh namespace the restored tree's root task lives in.
//
// What is saved (images: proto/net_ns.proto):
//   - devices: lo, dummy, veth, bridge, macvlan, ipvlan; their state (up,
//     mtu, MAC and broadcast address, flags, txqlen, group, alias, bridge
//     port). A veth whose peer is outside the namespace is re-created as a
//     pair whose outer end is in ckpt's namespace (the "external" end, as
//     CRIU's --external veth[IN]:OUT[@BRIDGE]); a macvlan/ipvlan's lower
//     device must be in the namespace or in ckpt's. Any other kind (tun,
//     wireguard, vxlan, a physical device, ...) is refused, naming it:
//     "netns of pid N: device wg0 (wireguard) is not supported".
//   - addresses (v4/v6, flags, remaining lifetimes), routes of every table
//     but those the kernel makes itself (proto kernel), policy rules: each
//     the kernel's own rtnetlink dump message, replayed as a request.
//   - the namespace's writable net.ipv4.* / net.ipv6.* sysctls (a
//     non-initial namespace only shows its own ones), written back where
//     they differ from the fresh namespace's.
//   - the nftables ruleset (tables, chains, objects, flowtables, sets and
//     elements, rules, with counters), replayed in one atomic batch. Tables
//     named ckpt-* are ckpt's network lock and are skipped.
//
// Not saved: neighbour entries, nexthop objects (a route using one is
// refused), tc qdiscs, bridge options (a bridge comes back with defaults),
// xfrm, IPVS, conntrack entries.
//
// Dump: DumpNetNamespace(pid, ...) once for the namespace pid lives in
// (other than ckpt's), while the tree is frozen. ckpt itself never enters
// the namespace: a helper thread setns()es into it.
//
// Restore: RestoreNetNamespace(...) in a process that already is the only
// process of a fresh network namespace (clone3(CLONE_NEWNET)), before it
// opens sockets or forks. Order: ns-wide sysctls, devices (down),
// per-device sysctls, bridge ports, devices up, addresses, routes, rules,
// nftables. On failure every device it made outside (the outer ends of
// veths) is removed again; what it made inside goes with the namespace.
//
// Example:
//   NetNsOptions o;  o.externals = {"veth[eth0]:veth123@br0"};
//   TRY(DumpNetNamespace(root_pid, o, dir), "network namespace");
//   ...
//   // in the restored root, after clone3(CLONE_NEWNET):
//   TRY(RestoreNetNamespace(dir, o, host_netns_fd));
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "images/image_dir.h"

namespace ckpt::ns {

struct NetNsOptions {
  // CRIU's --external veth[IFNAME]:OUTNAME[@BRIDGE]: the veth IFNAME of the
  // namespace gets its outer end named OUTNAME in ckpt's namespace (made a
  // port of BRIDGE there). Other --external forms are ignored here.
  std::vector<std::string> externals;
  bool weak_sysctls = false;  // --weak-sysctls (restore): see RestoreSysctls
};

// One parsed veth external.
struct VethExternal {
  std::string inner, outer, bridge;
};
// Parses the veth[...] entries of `externals`; a malformed veth entry is an
// error naming it.
Result<std::vector<VethExternal>> ParseVethExternals(const std::vector<std::string>& externals);

// Saves the network namespace `pid` lives in into `dir`. The tree is frozen;
// the namespace is only read. Needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
Status DumpNetNamespace(pid_t pid, const NetNsOptions& o, images::ImageDir& dir);

// In a process already inside a fresh network namespace: recreates all of
// it from `dir`. host_netns_fd: the namespace ckpt runs in (for the outer
// end of veths and the lower device of macvlans). Every image is read and
// checked before anything is changed: a corrupt image fails with its name
// and nothing made.
Status RestoreNetNamespace(const images::ImageDir& dir, const NetNsOptions& o, int host_netns_fd);

}  // namespace ckpt::ns
