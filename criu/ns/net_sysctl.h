// The per-namespace sysctls of a network namespace: net.ipv4.*, net.ipv6.*,
// net.core.*, net.unix.* as /proc/sys/net shows them to a thread inside it
// (a namespace other than the initial one shows only its own). Internal to
// criu/ns.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "proto/net_ns.pb.h"

namespace ckpt::ns {

// Reads every readable and writable sysctl below /proc/sys/net/{ipv4,ipv6,
// core,unix} of the calling thread's network namespace.
Result<std::vector<pb::NetSysctlEntry>> DumpSysctls();

// Marks the entries whose value differs from `fresh`'s (a namespace made
// at dump time) or that `fresh` lacks as changed.
void MarkChanged(std::vector<pb::NetSysctlEntry>& entries,
                 const std::vector<pb::NetSysctlEntry>& fresh);

// Checks paths read from an image: relative, below one of those folders,
// no "." or ".." component, no odd characters. Errors name the entry.
Status CheckSysctls(const std::vector<pb::NetSysctlEntry>& entries);

// Per-device entries: ipv4|ipv6 / conf|neigh / <device> / ...
bool IsDeviceSysctl(const std::string& path);

// Writes the entries selected by `devices` (per-device ones, or the others)
// whose value differs from the calling thread's namespace's. Namespace-wide
// ones go first, then conf/all, then conf/default (the kernel copies "all"
// into every device and "default" into new ones). A write the kernel
// refuses is retried after the others (limits that depend on each other,
// e.g. ipfrag low/high thresholds); what is still refused fails, naming it.
// A sysctl this kernel lacks fails if the dumped namespace had changed it,
// and is skipped (LOG_WARN) if it held a fresh namespace's value.
// `weak` (--weak-sysctls): a changed sysctl this kernel lacks is skipped
// with a warning instead of failing the restore.
Status RestoreSysctls(const std::vector<pb::NetSysctlEntry>& entries, bool devices,
                      bool weak = false);

}  // namespace ckpt::ns
