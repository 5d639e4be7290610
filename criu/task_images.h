// Everything restore needs of one task, read from the image directory and
// validated before any process is created.
#pragma once

#include <map>
#include <vector>

#include "base/result.h"
#include "compel/regs.h"
#include "images/image_dir.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/mm.pb.h"
#include "proto/pagemap.pb.h"
#include "proto/pstree.pb.h"

namespace ckpt {

struct TaskImages {
  pb::InventoryEntry inventory;
  pb::PstreeEntry pstree;
  pb::TaskCoreEntry core;
  pb::MmEntry mm;
  uint32_t pages_id = 0;
  std::vector<pb::PagemapEntry> pages;
  std::vector<pb::FdinfoEntry> fds;  // sorted by fd
  std::map<uint32_t, pb::FileEntry> files;
  pb::FsEntry fs;
  compel::Regs regs;  // of the only thread
  pid_t pid() const { return pid_t(pstree.pid()); }
};

// Reads and checks every image of the dump in `dir`. Errors name the image
// and what is wrong with it.
Result<TaskImages> LoadTaskImages(const images::ImageDir& dir);

}  // namespace ckpt
