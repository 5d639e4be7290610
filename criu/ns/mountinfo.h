// /proc/PID/mountinfo, parsed (man 5 proc_pid_mountinfo).
//
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   id parent dev root mountpoint per-mount-options [optional fields] - fstype source fs-options
//
// Paths are unescaped (the kernel writes space, tab, newline and backslash
// as \ooo; fs options escape commas too). The mount point is relative to
// the root of the process whose file it is; mounts outside that root are
// not listed, and the parent of the topmost one may be missing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::ns {

struct MountInfo {
  uint32_t id = 0, parent_id = 0;
  std::string dev;  // "major:minor" of the filesystem
  std::string root, mountpoint;
  uint64_t attrs = 0;  // per-mount options as MOUNT_ATTR_* bits (ParseMountOptions)
  uint32_t shared = 0, master = 0, propagate_from = 0;  // peer groups; 0: none
  bool unbindable = false;
  std::string fstype, source;
  std::vector<std::string> fs_opts;  // filesystem options, split at commas, unescaped
};

// Undoes mountinfo's \ooo escapes.
std::string UnescapeMountField(const std::string& s);

// Per-mount options ("rw,nosuid,relatime") as MOUNT_ATTR_* bits: RDONLY,
// NOSUID, NODEV, NOEXEC, NODIRATIME, NOSYMFOLLOW, and one of RELATIME (0),
// NOATIME or STRICTATIME (neither word). Unknown words are errors naming
// them (an idmapped mount, for one, cannot be recreated from this).
Result<uint64_t> ParseMountOptions(const std::string& opts);
// The reverse, in the kernel's order ("ro,nosuid,noatime").
std::string MountOptionsString(uint64_t attrs);

// Parses the whole file. A malformed line is an error quoting it.
Result<std::vector<MountInfo>> ParseMountInfo(const std::string& text);

// Reads and parses /proc/PID/mountinfo (pid 0: ckpt's own).
Result<std::vector<MountInfo>> ReadMountInfo(pid_t pid);

// Whether `path` is `dir` or below it (component-wise: /a/bc is not below /a/b).
bool PathIsUnder(const std::string& path, const std::string& dir);
// `path` relative to `dir` ("" when equal); `path` must be under `dir`.
std::string PathRelativeTo(const std::string& path, const std::string& dir);

}  // namespace ckpt::ns
