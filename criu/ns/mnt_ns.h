// A mount namespace of the tree's own: its mount tree, saved at dump and
// built again at restore for the restored tree's root task.
//
// What is saved (images: proto/mnt_ns.proto; mnt-ns.img, tmpfs-<id>.img):
//   - every mount the root task sees (/proc/PID/mountinfo): mount point,
//     root inside its filesystem, per-mount flags (ro, nosuid, nodev,
//     noexec, atime, nodiratime, nosymfollow), propagation (peer groups,
//     masters, unbindable) as relations among the tree's mounts.
//   - filesystems the tree has of its own (no mount of the same superblock
//     in ckpt's namespace) are made again with their options: proc (for the
//     restored pid namespace), sysfs, devpts (a new instance; its ptys come
//     back through the tty files), mqueue, cgroup2, tmpfs (every file, with
//     contents, modes, owners, times, device numbers, hard links, xattrs)
//     and overlay (its layers are paths of ckpt's namespace); cgroup v1
//     hierarchies mounted in the tree's own cgroup namespace (roots saved
//     as that namespace shows them, made again inside the restored one).
//   - any other mount (the container's root filesystem, volumes, a tmpfs
//     or proc shared with ckpt's namespace, devtmpfs, ...) is a "host" bind
//     mount: by default of the path ckpt's own namespace shows the same
//     directory at (found through /proc/self/mountinfo: same device, root
//     below, the same inode checked); with CRIU's `--external
//     mnt[MOUNTPOINT]:KEY` at dump it is saved by KEY and restore needs
//     `--external mnt[KEY]:PATH`. `--root DIR` at restore is the source of
//     the tree's root mount (and of host mounts of the same filesystem
//     below it).
//
// Refused at dump, naming the mount point: a mount hidden by another
// (stacked or covered: its files cannot be reached), a host mount ckpt's
// namespace does not show (no --external for it), tmpfs mounts of one
// filesystem whose roots are not nested, idmapped mounts, unknown mount
// flags, a root that is not a mount point (a chroot inside the
// namespace), peer groups shared with mounts outside the tree.
// A master outside the tree is kept for host mounts whose source is
// shared in the restoring namespace (the mount comes back as its slave),
// otherwise dropped with a warning.
//
// Files the tree's tasks have open. /proc/PID/fd/N, cwd, root and exe links
// print a path relative to the reader's root when the file is reachable
// from it, and otherwise relative to the root of the mount tree holding it:
// for a task in a mount namespace of its own whose root is its
// namespace's root (after pivot_root), that is the path the task sees. A
// task chrooted inside its namespace, or a file on a mount of another
// namespace (an fd passed in over a socket, opened before the unshare) or
// on a detached mount, gives a path the task does not see. TaskPaths
// below answers exactly: a child joins the task's mount namespace and
// root and reads the links there; it also says whether the file's mount
// (mnt_id in /proc/PID/fdinfo) is one of the task's namespace. At restore
// the root task opens the tree's files after RestoreMountNamespace, in
// the restored tree: the file handlers must save the paths TaskPaths gives
// (and refuse a file whose mount is not in the namespace).
//
// Restore: RestoreMountNamespace runs in the tree's root task right after
// clone3(CLONE_NEWNS | CLONE_NEWPID | ...), alone in its new mount
// namespace (a copy of ckpt's), before it opens files or forks, and after
// anything else that needs ckpt's view of the filesystem (the IPC
// namespace's sysctls under /proc/sys). Everything in the copy is made a
// slave first (nothing propagates back to ckpt's namespace). The tree is
// built detached (fsopen/fsmount for filesystems, open_tree clones for
// binds, move_mount onto the detached tree), flags are set with
// mount_setattr, then the root is attached over the image directory,
// peer groups and masters are set (MOVE_MOUNT_SET_GROUP from helper
// clones), and the task pivot_roots into it and detaches the old root.
// Afterwards the task's root and cwd are the restored "/"; the image
// directory (and any other fd) stays usable through its fd, but paths of
// ckpt's namespace no longer resolve: /proc is only there if the tree had
// it. Any failure leaves the task in an unusable namespace: the caller
// fails the restore (the namespace dies with the task).
//
// Example:
//   MntNsOptions o{.externals = opts.external, .root = opts.root};
//   TRY(DumpMountNamespace(root_pid, o, dir), "mount namespace");
//   ...   // in the root task, after clone3(CLONE_NEWNS|...):
//   TRY(RestoreMountNamespace(dir, o), "mount namespace");
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/image_dir.h"
#include "proto/mnt_ns.pb.h"
#include "proto/ns.pb.h"

namespace ckpt::ns {

struct MntNsOptions {
  // CRIU's --external entries; mnt[MOUNTPOINT]:KEY (dump) and
  // mnt[KEY]:PATH (restore) are used here, others ignored.
  std::vector<std::string> externals;
  // --root DIR (restore): the source of the tree's root mount.
  std::string root;
  // (restore) The tree's own user namespace, which the restoring root is
  // in: owners and uid=/gid= options are given in its ids (user_ns.h).
  const pb::UserNsEntry* user_ns = nullptr;
  // --skip-mnt PATH (dump): the mount at PATH, and every mount below it,
  // is left out of the image (the restored tree sees the directory under
  // it); a file the tree holds open on it is reopened by its path there.
  std::vector<std::string> skip;
};

// Saves the mount namespace `pid` lives in (not ckpt's): mnt-ns.img and a
// tmpfs-<id>.img per tmpfs of the tree's own. The tree is frozen; nothing
// of it is changed (files are read with O_NOATIME). Forks helpers that
// join the namespace: call while ckpt is single-threaded. Errors name the
// mount point: "mount namespace of pid 42: /vol (ext4 /dev/sda1): ...".
Status DumpMountNamespace(pid_t pid, const MntNsOptions& o, images::ImageDir& dir);

// Reads and checks mnt-ns.img and the sources the mounts need here
// (host paths and externals exist; --root is a directory), creating
// nothing. RestoreMountNamespace calls it first; call it also with the
// other image checks, before any process exists.
Result<std::vector<pb::MountEntry>> CheckMountNamespaceImage(const images::ImageDir& dir,
                                                             const MntNsOptions& o);

// In the tree's root task, alone in a new mount namespace (see the top):
// builds the saved mount tree and pivot_roots into it.
Status RestoreMountNamespace(const images::ImageDir& dir, const MntNsOptions& o);

// Paths of files of task `pid` as the task sees them. `links` name entries
// of /proc/PID: "fd/3", "cwd", "root", "exe". Read by a forked child that
// joins the task's mount namespace and root (ckpt itself never moves).
struct TaskPath {
  std::string path;  // readlink as the task would see it
  int mnt_id = -1;   // the mount the file is on (fd/N: fdinfo; others: statx)
  bool in_ns = false;  // that mount is one of the task's namespace (else the path is not its own)
};
Result<std::vector<TaskPath>> TaskPaths(pid_t pid, const std::vector<std::string>& links);
// The same for a file ckpt itself holds as `fd` (one in flight in a unix
// socket queue of the tree), as task `pid` would see it; `what` names it
// in errors.
Result<TaskPath> HeldFilePath(pid_t pid, int fd, const std::string& what);

// Parses the mnt[...]:... entries of `externals`: for dump, mount point ->
// key; for restore, key -> path. A malformed mnt entry is an error.
struct MntExternal {
  std::string inside, outside;  // mnt[inside]:outside
};
Result<std::vector<MntExternal>> ParseMntExternals(const std::vector<std::string>& externals);

}  // namespace ckpt::ns
