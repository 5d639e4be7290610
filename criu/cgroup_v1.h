// cgroup v1 hierarchies as ckpt meets them on hybrid hosts (Debian 12's
// default: v1 controllers under /sys/fs/cgroup/{cpu,memory,freezer,...},
// cgroup2 at /sys/fs/cgroup/unified), where runc 1.1 puts a container in
// one v1 cgroup per controller and in a cgroup2 one.
//
// ckpt saves and restores cgroup v2 placement only (criu/cgroup.h). v1 is
// the caller's: a runtime restoring a container moves ckpt itself into the
// container's v1 cgroups before the restore (runc does, docs/runc.md), and
// the restored tasks, forked by ckpt, inherit them. What ckpt does with v1:
//   - --freeze-cgroup DIR on a v1 freezer hierarchy (criu/cgroup_freeze.h
//     uses the helpers below: freezer.state FROZEN/THAWED);
//   - --cgroup-root CONTROLLER:PATH naming a controller that has a v1
//     hierarchy here is for that hierarchy, and ignored (IsV1Controller).
// Not an API for others than those two.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::cgroupv1 {

// Whether `dir` is a directory of a cgroup v1 filesystem (statfs).
bool IsV1Dir(const std::string& dir);

// Controllers ckpt's own /proc/self/cgroup shows on v1 hierarchies (lines
// with a nonzero hierarchy id: "cpu", "cpuacct", "name=systemd", ...).
std::set<std::string> V1Controllers();
bool IsV1Controller(const std::string& ctrl);

// The ids in `file` ("tasks": thread ids, "cgroup.procs": process ids) of
// `dir` and of every cgroup below it. Errors name the file.
Result<std::vector<pid_t>> Members(const std::string& dir, const std::string& file);

}  // namespace ckpt::cgroupv1
