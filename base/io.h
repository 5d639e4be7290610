// Full-length I/O helpers: retry EINTR, loop on short reads/writes.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"

namespace ckpt::io {

// Writes all n bytes or fails (ENOSPC included).
Status WriteFull(int fd, const void* buf, size_t n);
// Reads exactly n bytes; a short read (EOF) is an error naming `what`.
Status ReadFull(int fd, void* buf, size_t n, const std::string& what = "file");
// Reads up to n bytes, stopping only at EOF. Returns the byte count.
Result<size_t> ReadUpTo(int fd, void* buf, size_t n);
// Whole small file (e.g. /proc) into a string.
Result<std::string> ReadFile(const std::string& path);
// readlink(2) into a string.
Result<std::string> ReadLink(const std::string& path);

}  // namespace ckpt::io
