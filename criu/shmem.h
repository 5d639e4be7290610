// Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, memfd and deleted files
// mapped shared): one object may be mapped by several processes of the
// tree. Its contents are saved once, as a sparse raw file
// shmem-<shmid>.img (shmid = the object's inode); restore recreates each
// object as a memfd before the tree is forked, so every task inherits it
// and maps it again: writes by one stay visible to the others.
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_dir.h"
#include "proto/mm.pb.h"

namespace ckpt {

class ShmemDumper {
 public:
  // Notes the shared VMAs of a seized task (the first mapper is read).
  Status Add(pid_t pid, const pb::MmEntry& mm);
  // Saves every object's contents (the tree is still frozen).
  Status Write(images::ImageDir& dir);
  // The SysV segment ids the tree attaches (for ns::DumpIpcNamespace).
  std::set<int> SysvIds() const {
    std::set<int> ids;
    for (const auto& kv : sysv_) ids.insert(kv.first);
    return ids;
  }

 private:
  struct Object {
    pid_t pid;
    uint64_t start, end;  // one mapping of it, for /proc/PID/map_files
    std::string file;     // image it goes to
  };
  std::map<uint64_t, Object> objects_;
  std::map<int, Object> sysv_;  // SysV segments by id
};

std::string SysvShmFileName(int id);

// Recreates every SysV segment the tree had attached, with its id, key,
// mode, owner and contents (ids are chosen with kernel.shm_next_id).
// A keyed segment still present (same id, key, size) is reused. `created`
// gets the ids this call made (to remove if the restore fails). Returns the
// ids of segments that were marked for removal: remove them again once the
// tree has attached them.
Result<std::vector<int>> RestoreSysvShm(const images::ImageDir& dir,
                                        const std::vector<const pb::MmEntry*>& mms,
                                        std::vector<int>* created);

// The ids of the attached segments of `mms` that were marked for removal.
std::vector<int> DoomedSysvShm(const std::vector<const pb::MmEntry*>& mms);

std::string ShmemFileName(uint64_t shmid);

// Recreates every shared object of `mms` holding its saved contents: a
// memfd, or a deleted file made again at its path and unlinked (so an fd
// of it reads the same link: criu/files/ghost.cc). `own_paths`: the tree
// sees ckpt's paths (no mount namespace of its own), so a deleted file is
// made again on any filesystem; otherwise only on a tmpfs. Returns
// shmid -> fd.
Result<std::map<uint64_t, int>> RestoreShmem(const images::ImageDir& dir,
                                             const std::vector<const pb::MmEntry*>& mms,
                                             bool own_paths = true);

}  // namespace ckpt
