// The cgroup v2 filesystem as ckpt sees it: where it is mounted, which
// cgroup a task is in, and small helpers on cgroup paths and files. Shared
// by criu/cgroup.cc (dump/restore of the placement) and
// criu/cgroup_freeze.cc (--freeze-cgroup); not an API for others.
//
// A "cgroup path" is what /proc/PID/cgroup shows on its "0::" line: "/" is
// the root of the hierarchy (of ckpt's cgroup namespace), "/a/b" below it.
// A "relative path" is one below some top: "" (the top itself) or "a/b".
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::cgroupfs {

// A cgroup2 mount of ckpt's mount namespace.
struct Mount {
  std::string root;        // the cgroup path mounted there ("/" usually)
  std::string mountpoint;  // "/sys/fs/cgroup" or "/sys/fs/cgroup/unified"
};

// The first cgroup2 mount whose root is an ancestor of (or is) `cgroup`.
// An error names what was looked for when there is none.
Result<Mount> FindMount(const std::string& cgroup = "/");
// Filesystem path of a cgroup under that mount.
std::string FsPath(const Mount& m, const std::string& cgroup);
// Cgroup path of a filesystem directory on a cgroup2 mount (which must be
// one: checked with statfs).
Result<std::string> CgroupOfDir(const std::string& fs_dir);

// The cgroup of a task (tid or pid), from the "0::" line of
// /proc/TID/cgroup (/proc/PID/task/TID/cgroup for a thread of pid).
Result<std::string> TaskCgroup(pid_t pid, pid_t tid = 0);

// Parent, join and ancestry of cgroup paths ("/" has no parent).
std::string Parent(const std::string& cgroup);
std::string Join(const std::string& top, const std::string& rel);
bool IsAncestorOrSelf(const std::string& anc, const std::string& cgroup);
// `cgroup` below `top` as a relative path ("" for top itself).
std::string RelativeTo(const std::string& top, const std::string& cgroup);
// A clean relative path: components without '/', ".", "..", NUL, not empty.
bool IsCleanRelative(const std::string& rel);

// A cgroup file's content without its trailing newline.
Result<std::string> ReadSetting(const std::string& dir, const std::string& name);
// Writes `value` into dir/name in one write(2), as the kernel wants it.
Status WriteSetting(const std::string& dir, const std::string& name, const std::string& value);
// Whitespace-separated words (cgroup.controllers, cgroup.subtree_control).
std::vector<std::string> Words(const std::string& s);

}  // namespace ckpt::cgroupfs
