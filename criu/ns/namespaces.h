// The namespaces a dumped tree lives in (criu/ns/).
//
// A tree's namespace of each kind is either ckpt's own (nothing to save:
// the restored tree lives in restore's namespace of that kind, as any
// restored process does) or the tree's own, created when its root was
// made. Every task of the tree must share the root's namespaces, except
// pid namespaces, which nest (criu/ns/pid_ns.h).
//
// Supported as the tree's own: pid (the root is its init), uts (host and
// domain names), ipc, net, time (clock offsets) and user (a child of
// ckpt's, criu/ns/user_ns.h, which says what is refused); a cgroup
// namespace is restored rooted where it was (with the cgroups of
// criu/cgroup.h). Mount namespaces are built by
// criu/ns/mnt_ns.h when namespaces.img says `mnt` (the root is then cloned
// with CLONE_NEWNS); CollectNamespaces sets it for a tree with a root
// directory of its own (a container: pivot_root or chroot); a mount
// namespace sharing ckpt's root (ip netns exec, unshare -m) only warns: the
// tree comes back in restore's, opening its files by the same paths.
// Tasks in a namespace other than the root's are refused (pid excepted).
//
// Restore: ckpt itself unshares the tree's own uts, net and time
// namespaces and fills them (NsRestore::Enter, then the network
// namespace's configuration) before it creates the root, which inherits
// them. The root is cloned with CLONE_NEWPID and CLONE_NEWIPC for its own
// pid and IPC namespaces, and fills the IPC one itself (semaphores name
// pids of the tree's pid namespace). ckpt goes back to its own namespaces
// when the NsRestore ends: if the restore failed, nothing else holds the
// new namespaces and the kernel frees them.
// With a user namespace of the tree's own (criu/ns/user_ns.h) the root is
// born with it, and with the namespaces it owns: ckpt does not unshare
// those; it writes the maps once the root exists and joins the root's uts
// and network namespaces to fill them (AfterRootClone); the root makes a
// time namespace the user namespace owns itself (EnterOwnedTimeNs).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/options.h"
#include "base/unique_fd.h"
#include "criu/ns/user_ns.h"
#include "images/image_dir.h"
#include "proto/ns.pb.h"

namespace ckpt {
struct TreeTask;  // criu/pstree.h
}

namespace ckpt::ns {

enum class Kind { kPid, kNet, kIpc, kUts, kMnt, kUser, kCgroup, kTime };

// "pid", "net", ... as in /proc/PID/ns/.
const char* KindName(Kind k);

// The identity (inode number) of pid's namespace of kind k;
// `for_children` reads pid_for_children / time_for_children.
Result<uint64_t> NsId(pid_t pid, Kind k, bool for_children = false);

// Runs fn on a thread of ckpt that joined pid's namespace of kind k (uts,
// ipc, net, time: kinds a thread may enter alone), and returns its result.
// ckpt's other threads stay where they are.
Status InNamespaceOf(pid_t pid, Kind k, const std::function<Status()>& fn);

// Checks the namespaces of every task of the (seized) tree and reads what
// namespaces.img holds: which kinds are the tree's own, its host and
// domain names, its clock offsets. Errors name the task and the kind.
// cgroups_saved: cgroup.img records the tasks' cgroups (and so the root
// of a cgroup namespace of the tree's own, which is then supported).
Result<pb::NamespacesEntry> CollectNamespaces(const std::vector<TreeTask>& tree,
                                             bool cgroups_saved);

// ckpt's thread joins pid's network namespace for the rest of the dump
// (the tree's sockets, sock_diag, the network lock and the parasite's
// abstract command socket are all there). No-op if it is ours already.
Status JoinNetNamespaceOf(pid_t pid);

// Reads namespaces.img; an old dump without it has none of its own.
Result<pb::NamespacesEntry> ReadNamespaces(const images::ImageDir& dir);

// ckpt inside the restored tree's own namespaces, for as long as it lives.
class NsRestore {
 public:
  // Unshares the uts, net and time namespaces `e` says are the tree's own
  // and sets up uts names and clock offsets. Call before any task of the
  // tree exists. `join` (--join-ns, criu_opts.join_ns): existing uts or
  // net namespaces to enter instead of making new ones; their contents
  // are whoever made them's (see joined()).
  static Result<std::unique_ptr<NsRestore>> Enter(const pb::NamespacesEntry& e,
                                                  const std::vector<JoinNs>& join = {});
  // CLONE_NEWUTS / CLONE_NEWNET bits of the namespaces joined, not made.
  int joined() const { return joined_; }
  // The tree's own cgroup namespace, rooted at the cgroup directory
  // ns_root_dir (criu/cgroup.h CgroupRestore::NsRootDir): ckpt moves into
  // it, unshares, and moves back. Call before the root task exists.
  Status EnterCgroupNamespace(const std::string& ns_root_dir);
  ~NsRestore();  // back to ckpt's own namespaces
  NsRestore(const NsRestore&) = delete;
  NsRestore& operator=(const NsRestore&) = delete;

  // ckpt's network namespace from before Enter (for devices whose other
  // end stays outside the tree's namespace); -1 if ckpt did not leave it.
  int host_netns() const { return saved_net_.get(); }

  // user namespaces (user_ns.h), around the root's clone in ckpt:
  // Before gives ckpt the root's groups (in ckpt's ids) for the root to
  // inherit; After gives ckpt its own back and, if the clone succeeded
  // (root > 0), writes the root's maps, then joins its uts namespace (and
  // sets the names) and its network namespace when the tree's user
  // namespace owns them. Call After whenever Before was called. No-ops
  // without a user namespace of the tree's own.
  Status BeforeRootClone();
  Status AfterRootClone(pid_t root);
  // Whether the network namespace is the root's (filled after its clone,
  // by AfterRootClone's caller), not made by Enter.
  bool net_with_root() const { return net_with_root_; }

 private:
  NsRestore() = default;
  UniqueFd saved_uts_, saved_net_, saved_time_, saved_cgroup_;
  pb::NamespacesEntry e_;
  bool net_with_root_ = false;
  int joined_ = 0;
  std::vector<gid_t> saved_groups_;  // ckpt's, while BeforeRootClone holds
  bool groups_changed_ = false;
  // A cgroup namespace the tree's user namespace owns: its root, and where
  // ckpt goes back to after standing there for the root's clone.
  std::string cgroup_ns_root_, cgroup_own_dir_;
  bool cgroup_moved_ = false;
};

// In the root, first thing: a time namespace owned by the tree's user
// namespace is made by a process inside it: unshare, offsets, setns.
Status EnterOwnedTimeNs(const pb::NamespacesEntry& e);

}  // namespace ckpt::ns
