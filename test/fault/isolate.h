// The fault matrix and the soak run in a world of their own: new mount,
// network and IPC namespaces, loopback up, and fresh tmpfs on /dev/shm and
// /tmp, so what they find there (or in SysV, nftables) after a failure is
// their own doing and not another test's.
//
// `keep`: paths the run still needs (ckpt, the victim, the work
// directory). One under /tmp (a build tree in /tmp, as a CI clone may be)
// stays reachable at the same path: its top directory is bind-mounted from
// the old /tmp into the new one (one that does not exist yet is simply made
// in the new /tmp).
#pragma once

#include <string>
#include <vector>

namespace faulttest {

// "" on success, else what failed.
std::string Isolate(const std::string& tag, const std::vector<std::string>& keep);

}  // namespace faulttest
