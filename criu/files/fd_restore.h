// Restoring a task's file descriptors in the task itself (before the
// restorer runs): each file entry is opened once by its handler and put at
// every fd number that shared it.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "base/result.h"
#include "criu/files/file_types.h"
#include "images/image_dir.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// fds must be sorted by fd number; every file_id must be in files. Fd
// numbers in use by ckpt must already be above every dumped fd.
Status RestoreFds(const images::ImageDir& dir, const std::vector<pb::FdinfoEntry>& fds,
                  const std::map<uint32_t, pb::FileEntry>& files, const RestoreOpts& o);

}  // namespace ckpt::files
