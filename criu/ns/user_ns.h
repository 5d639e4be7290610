// A tree living in a user namespace of its own (the usual container:
// `unshare --user --map-root-user`, runc with a uid map).
//
// What is supported: the root's user namespace is a child of ckpt's
// (ckpt runs in its parent: deeper nesting is refused, since the maps of
// the levels in between cannot be read without a process in them), every
// task lives in it, its uid and gid maps are written. The tree's other own
// namespaces are each owned either by it (made inside it) or by ckpt's;
// a pid namespace of the tree's own must be owned by it (tasks inside the
// user namespace must choose their pids with clone3 set_tid, which needs
// CAP_SYS_ADMIN over the pid namespace's owner), and so must its IPC and
// mount namespaces (made by the same clone); without a pid namespace
// the tree must be a single task with one thread.
//
// Dump. Maps are read by ckpt from /proc/ROOT/{uid,gid}_map: the lower ids
// are ckpt's (the parent's). Credentials in /proc/PID/status are ckpt's
// ids too; core images store them as the namespace's (what the task sees
// with getuid()), translated with the maps. A uid or gid not mapped is
// refused. A supplementary group not mapped can only have been inherited
// from the namespace's creator: it is stored as the overflow gid and only
// accepted when the task's groups are exactly the root's (saved in ckpt's
// ids as host_groups); the same holds for every group when setgroups is
// denied.
//
// Restore. A pid namespace owned by the tree's user namespace can only be
// made by a process inside it, and only a process with CAP_SYS_ADMIN over
// ckpt's pid namespace can choose the root's pid there (clone3 set_tid;
// and a pid namespace with no init yet cannot be opened to setns into):
// so the root is born with its user namespace, in one clone3 by ckpt
// (CLONE_NEWUSER with the kinds the namespace owns: pid, ipc, mnt, uts,
// net, cgroup), and waits for ckpt's go. Meanwhile ckpt (NsRestore,
// namespaces.h):
//  1. around the clone, takes the root's groups in its own ids
//     (host_groups; BeforeRootClone) so the root inherits them, and stands
//     in the cgroup namespace's root cgroup; then takes its own back;
//  2. writes setgroups, uid_map and gid_map of the root (WriteUserNsMaps);
//     a failure kills the root: nothing stays;
//  3. joins the root's uts namespace to set its names, and its network
//     namespace to fill it (ckpt keeps its own user namespace and powers:
//     it has every capability over a child user namespace);
//  4. fills the root's IPC namespace from a child of its own that joins it
//     (restore_tree.h FillIpcNamespaceOf): objects made as their creators
//     in ckpt's ids, limits written as the namespace's root uid (the
//     kernel asks for that euid), shm_rmid_forced once the tree has its
//     segments attached (a segment no task attaches is refused at dump
//     when it is on: its creator would be gone).
// The root makes a time namespace the user namespace owns itself
// (EnterOwnedTimeNs, namespaces.h), sets the values of semaphores it used
// last, restores its mount namespace (uid=/gid= options and tmpfs owners
// in the namespace's ids; files made by a helper with mapped fs ids,
// WithMappedFsIds), opens the tree's files with the namespace's powers
// (what the tree could do) and forks the others inside it, keeping ckpt's
// ids until the restorer, so it can read the images. A task inside cannot
// choose its pid in ckpt's pid namespace (owned by ckpt's user namespace):
// the kernel picks that outer pid for every task but the root, and for
// every thread (TidsSettableInside). The restorer sets each task's
// credentials and capabilities as the namespace's ids; the inherited
// groups are kept when they are the dumped ones (KeepInheritedGroups).
//
// Files the root makes for the tree on the way (deleted files, unix
// socket files, a tmpfs's files) are made with their owners' fs ids
// (WithFsIds), their uid=/gid= and owners given in the namespace's ids
// (UidInside, GidInside, MountOptionInside).
//
// Not kept: the user namespace's identity (a new one, child of restore's);
// the credentials of objects the root makes for the tree (sockets' peer
// credentials) are the root's at that moment (ckpt's uid, unmapped); a
// zombie's uid (not saved: it exits with the root's).
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "proto/core.pb.h"
#include "proto/ns.pb.h"

namespace ckpt {
struct TreeTask;  // criu/pstree.h
}

namespace ckpt::ns {

// ---- dump ----

// Reads the root's user namespace (not ckpt's): its maps and setgroups,
// the root's groups, and who owns each of the tree's own namespaces that
// `e` names (pid, uts, ipc, net, time, cgroup). Refuses what restore could not
// recreate, naming the process and the reason.
Result<pb::UserNsEntry> CollectUserNs(const std::vector<TreeTask>& tree,
                                      const pb::NamespacesEntry& e);

// Rewrites creds read from /proc/PID/status (ckpt's ids) into the
// namespace's ids. Errors name the task and the id.
Status CredsIntoUserNs(const pb::UserNsEntry& u, pid_t pid, pb::CredsEntry* creds);

// ---- restore ----

// Checks a loaded user namespace entry (extents well formed, at most the
// kernel's 340 lines). Overlaps are left to the kernel, which refuses the
// map when it is written.
Status CheckUserNsImage(const pb::UserNsEntry& u);

// Flags the root's clone3 needs on top of those for its pid and IPC
// namespaces (and CLONE_NEWNS for a mount namespace, which then come owned
// by it): CLONE_NEWUSER, and CLONE_NEWUTS / CLONE_NEWNET / CLONE_NEWCGROUP
// for those the user namespace owns (a cgroup one is rooted where ckpt
// stands for the clone: NsRestore::BeforeRootClone).
// 0 without a user namespace of the tree's own.
uint64_t RootUserNsCloneFlags(const pb::NamespacesEntry& e);

// Writes setgroups ("deny" if so), uid_map and gid_map of the user
// namespace `pid` was born with. Errors name the file, the map and why.
Status WriteUserNsMaps(pid_t pid, const pb::UserNsEntry& u);

// Ids as the dump saw them (ckpt's) as the tree's user namespace names
// them, for code running inside it (the root restoring its mounts and
// their files). Without a user namespace (u null) unchanged; an unmapped
// id gives the overflow id (the kernel refuses it there).
uint32_t UidInside(const pb::UserNsEntry* u, uint32_t uid);
uint32_t GidInside(const pb::UserNsEntry* u, uint32_t gid);
// "uid=N" / "gid=N" mount options (tmpfs, devpts: /proc shows them in the
// initial user namespace's ids) likewise; any other option unchanged.
std::string MountOptionInside(const pb::UserNsEntry* u, const std::string& opt);

// Runs fn in a helper sharing the caller's memory and fds (clone with
// CLONE_VM | CLONE_FILES | CLONE_VFORK: the caller waits; a tracer asking
// for fork and clone events but not vfork ones, as ckpt restore's, never
// sees it) whose fs uid and gid are `uid` and `gid` (the namespace's ids):
// a file it creates is owned by them. Inside the tree's user namespace the
// restoring root's own are ckpt's, unmapped there, which it must keep to
// read the images: a filesystem made inside the namespace takes no new
// file from them (EOVERFLOW), and a file they own cannot be given away
// (EPERM). fds fn opens stay the caller's. Returns fn's status.
Status WithFsIds(uint32_t uid, uint32_t gid, const std::function<Status()>& fn);
// WithFsIds with the first ids u maps.
Status WithMappedFsIds(const pb::UserNsEntry& u, const std::function<Status()>& fn);

// clone3 set_tid from inside the tree's user namespace: the pids a task
// may choose are those of its innermost levels, not ckpt's (outermost)
// level. Returns how many of `levels` (innermost first) it may pass.
size_t TidsSettableInside(size_t levels);

// Whether the calling task's supplementary groups are `groups` (the
// namespace's ids, as getgroups(2) sees them): then the restorer keeps
// them rather than calling setgroups (denied, or unable to name an
// unmapped group).
bool KeepInheritedGroups(const google::protobuf::RepeatedField<uint32_t>& groups);

}  // namespace ckpt::ns
