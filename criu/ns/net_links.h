// Devices of a network namespace: read through libnl at dump, made again at
// restore (see net_ns.h for what is supported). Internal to criu/ns.
#pragma once

#include <netlink/socket.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/ns/net_ns.h"
#include "proto/net_ns.pb.h"

namespace ckpt::ns {

// Reads every device of the namespace `inner` is a socket of. `host`: a
// socket in ckpt's namespace and host_netns_fd that namespace (to name the
// outer end of a veth, the lower device of a macvlan). Unsupported devices
// are refused: "device wg0 (wireguard) is not supported".
Result<std::vector<pb::NetLinkEntry>> DumpLinks(nl_sock* inner, nl_sock* host, int host_netns_fd);

// Checks devices read from an image: names, unique ifindexes, kinds, that
// every peer / lower / master they name is there. Errors name the device.
Status CheckLinks(const std::vector<pb::NetLinkEntry>& links);

// The devices a restore made outside the namespace (in ckpt's); removed
// again by the destructor unless Keep() was called.
class OuterDevices {
 public:
  explicit OuterDevices(nl_sock* host) : host_(host) {}
  ~OuterDevices();
  OuterDevices(const OuterDevices&) = delete;
  OuterDevices& operator=(const OuterDevices&) = delete;
  void Add(const std::string& name) { names_.push_back(name); }
  void Keep() { names_.clear(); }

 private:
  nl_sock* host_;
  std::vector<std::string> names_;
};

struct LinkRestoreCtx {
  nl_sock* inner;      // in the new namespace (the calling thread's)
  nl_sock* host;       // in ckpt's namespace
  int inner_netns_fd;  // the new namespace
  int host_netns_fd;   // ckpt's
  std::vector<VethExternal> externals;
};

// Makes every device (down), with its addresses, mtu, flags but IFF_UP.
Status CreateLinks(const LinkRestoreCtx& c, const std::vector<pb::NetLinkEntry>& links,
                   OuterDevices& made);
// Then: bridge ports to their bridge, and up what was up (outer ends too).
Status ConnectAndRaiseLinks(const LinkRestoreCtx& c, const std::vector<pb::NetLinkEntry>& links);

}  // namespace ckpt::ns
