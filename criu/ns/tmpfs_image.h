// The files of a tmpfs, saved into and made again from tmpfs-<id>.img
// (proto/mnt_ns.proto, TmpfsRecord): directories, regular files with their
// contents (holes stay holes), symlinks, hard links, device nodes, FIFOs
// and socket inodes; mode, owner, access and modification times; xattrs
// of regular files and directories. Change times and inode numbers are not
// kept (no interface sets them).
#pragma once

#include <string>

#include "base/result.h"
#include "images/image_dir.h"
#include "proto/ns.pb.h"

namespace ckpt::ns {

// Saves the tree below directory `dirfd` (a clone of the mount with no
// mounts under it: nothing of other filesystems is crossed). Reads with
// O_NOATIME: the files' times do not move. `what` prefixes errors.
Status DumpTmpfs(int dirfd, images::ImageWriter& w, const std::string& what);

// Makes the saved files again below directory `dirfd` (empty but for the
// directory itself). Every path is checked: it stays below dirfd and
// follows no symlink. A bad or truncated image is an error naming it.
// user_ns: the caller lives in the tree's own user namespace; owners are
// given in its ids (criu/ns/user_ns.h).
Status RestoreTmpfs(int dirfd, images::ImageReader& r, const std::string& what,
                    const pb::UserNsEntry* user_ns = nullptr);

}  // namespace ckpt::ns
