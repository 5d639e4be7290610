// Opening the files of a dump for restore. Every file entry of the tree is
// opened once, in one process, and the tasks dup() the fds they need to
// their numbers: an open file shared by several fds or tasks is one open
// file description again, and objects behind several entries (the two ends
// of a pipe, a memfd opened twice) are created once.
#pragma once

#include <cstdint>
#include <map>

#include "base/result.h"
#include "criu/files/file_types.h"
#include "images/image_dir.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// Checks what single entries cannot (their validate() did): objects and
// epoll targets name entries that exist and are of the right kind, and
// every data image that should exist does (its records are checked as it
// is read). For the image checks before any process is created.
// In a restored task, after its fds are in place: runs each kind's
// in_task hook once per file the task holds.
Status FinishTaskFds(const std::vector<pb::FdinfoEntry>& fds,
                     const std::map<uint32_t, pb::FileEntry>& files);

Status CheckFiles(const images::ImageDir& dir, const std::map<uint32_t, pb::FileEntry>& files);

// Opens every entry of `files`, the ones an entry depends on (deps) first.
// Returns file id -> fd, close-on-exec. A file with an entry in `homes`
// (fd_install.h HomesOf: the root's own numbers) is opened at that number
// when it is free; every other is >= min_fd (which must be above every fd
// number being restored). On error nothing stays open. Must run
// single-threaded: epoll entries briefly borrow fd numbers below min_fd
// (see epoll.cc).
Result<std::map<uint32_t, int>> OpenFiles(const images::ImageDir& dir,
                                          const std::map<uint32_t, pb::FileEntry>& files,
                                          const RestoreOpts& o, int min_fd,
                                          const std::map<uint32_t, int>& homes = {});

}  // namespace ckpt::files
