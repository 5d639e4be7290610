// Data images (fdata-<id>.img, records of pb::FileDataEntry): the unread
// bytes of a pipe or FIFO, the contents of a memfd or unlinked file.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "images/image_dir.h"

namespace ckpt::files {

// Saves the unread bytes of the pipe behind `handle` (an open file of it
// with read access, e.g. from OpenProcFd) without consuming them: tee(2)
// duplicates the pipe's buffers into a pipe of our own, which we read
// out. The task's pipe is left exactly as it was. Each record is what one
// read returned: a single buffer for packet-mode (O_DIRECT) pipes.
// Returns whether there was anything to save.
Result<bool> DumpPipeData(images::ImageDir& dir, uint32_t id, int handle);

// Writes the saved bytes into the write end of a pipe, one write(2) per
// record (packets stay packets if pipe_w has O_DIRECT). pipe_w must be
// non-blocking and big enough; at most `max` bytes are accepted.
Status RestorePipeData(const images::ImageDir& dir, uint32_t id, int pipe_w, uint64_t max);

// Saves the contents of a regular file (memfd, unlinked file) read through
// fd, without its holes (SEEK_DATA/SEEK_HOLE) and all-zero chunks. Returns
// whether anything was saved.
Result<bool> DumpFileData(images::ImageDir& dir, uint32_t id, int fd, uint64_t size);

// Writes the saved contents back into fd at their offsets; every record
// must lie within size (the file is expected to be that size already).
Status RestoreFileData(const images::ImageDir& dir, uint32_t id, int fd, uint64_t size);

}  // namespace ckpt::files
