// Everything restore needs of one task, read from the image directory and
// validated before any process is created.
#pragma once

#include <map>
#include <vector>

#include "base/result.h"
#include "compel/regs.h"
#include "criu/lsm.h"
#include "criu/seccomp.h"
#include "images/image_dir.h"
#include "proto/ns.pb.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
#include "proto/pagemap.pb.h"
#include "proto/pstree.pb.h"

namespace ckpt {

// One process of the tree. Zombies have only `pstree`.
struct TaskImages {
  pb::PstreeEntry pstree;
  pb::TaskCoreEntry core;
  pb::MmEntry mm;
  uint32_t pages_id = 0;
  std::vector<pb::PagemapEntry> pages;
  std::vector<pb::FdinfoEntry> fds;  // sorted by fd
  pb::FsEntry fs;
  std::vector<compel::Regs> regs;  // per thread, as core.threads
  std::vector<int> children;       // indexes into TreeImages::tasks
  TaskSeccomp seccomp;             // seccomp.img's part for this process
  TaskLsm lsm;                     // LSM labels to set (lsm.img)
  // Not in the dump: a stand-in for a session or group leader that had
  // exited, so its members can be born into its session or group. It exits
  // once they are in place and its parent reaps it.
  bool helper = false;
  // The id of the task in the images: its pid in ckpt's pid namespace at
  // dump. The v* ids are what the task itself sees (its own namespace).
  pid_t pid() const { return pid_t(pstree.pid()); }
  pid_t vpid() const { return Inner(pstree.ns_pid(), pstree.pid()); }
  pid_t vpgid() const { return Inner(pstree.ns_pgid(), pstree.pgid()); }
  pid_t vsid() const { return Inner(pstree.ns_sid(), pstree.sid()); }
  // The thread's tid as the task sees it.
  pid_t vtid(int i) const {
    return pstree.thread_ns_tids_size() ? Inner(pstree.thread_ns_tids(i).id(), 0)
                                        : pid_t(pstree.threads(i));
  }
  bool zombie() const { return pstree.zombie(); }

 private:
  static pid_t Inner(const google::protobuf::RepeatedField<uint32_t>& chain, uint32_t flat) {
    return pid_t(chain.empty() ? flat : chain[chain.size() - 1]);
  }
};

struct TreeImages {
  pb::InventoryEntry inventory;
  pb::NamespacesEntry namespaces;  // the tree's own namespaces
  std::vector<TaskImages> tasks;  // tasks[0] is the root; parents before children
  std::map<uint32_t, pb::FileEntry> files;
  int max_fd = 2;         // highest fd number any task uses
  size_t nr_threads = 0;  // of live tasks, all together
};

// Reads and checks every image of the dump in `dir`. Errors name the image
// and what is wrong with it.
// `lsm_profile`: --lsm-profile (criu/lsm.h LoadLsm).
// `own_pages_only`: pagemap entries held by parent images (in_parent) are
// dropped instead of resolved through the chain (criu/page_chain.h): for a
// lazy dump's holder, which serves only this dump's pages files and whose
// parent images' pages may live elsewhere (a page server).
Result<TreeImages> LoadTreeImages(const images::ImageDir& dir, const std::string& lsm_profile = "",
                                  bool own_pages_only = false);

}  // namespace ckpt
