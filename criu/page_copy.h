// Copies the memory of a stopped, infected process into a pages file or a
// page server's socket, checksumming the bytes as they pass: the CRC32C
// that checksums.img lists (images/image_check.h), so the file is never
// read back at commit.
//
// The parasite vmsplices the readable ranges into the page pipe (its
// pages are not copied, and pages the process still shares copy-on-write
// with a parent or child stay shared); ranges that are not readable
// (PROT_NONE, write-only) are read through /proc/PID/mem. Run: the calling
// thread (the only one that may talk to the parasite) reads the pipe into
// a ring of four 1 MiB buffers and checksums each while a helper thread
// writes the full ones out in order, so the copy uses both cores and
// ckpt's own memory stays at a few MiB whatever the size of the dump.
// Writing to a regular file, it starts the writeback of what it wrote
// every 32 MiB (`writeback`): the disk works during the copy instead of in
// the final sync. Splice: the pipe goes straight into the output (a page
// server's socket, or the compressor's pipe), no copy and no checksum here.
//
//   PageCopier copy(pid, mem_fd, inf, pipe_r, pipe_w);
//   copy.Add(addr, len, readable);   // in the order of the file
//   TRY(copy.Run(out_fd, /*writeback=*/true));
//   target.Summed(copy.total(), copy.crc());
//
// Errors name the process and the address ("pid 42: reading memory at
// 7f00...: Bad address"); the process is only read, never changed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "compel/infect.h"

namespace ckpt {

class PageCopier {
 public:
  // `inf`: the parasite in the process; pipe_r/pipe_w: the page pipe
  // (criu/mem_dump.h PagePipe), the read end O_NONBLOCK.
  PageCopier(pid_t pid, int mem_fd, compel::Infection& inf, int pipe_r, int pipe_w)
      : pid_(pid), mem_fd_(mem_fd), inf_(inf), pipe_r_(pipe_r), pipe_w_(pipe_w) {}

  // [addr, addr + len) of the process comes next in the output.
  void Add(uint64_t addr, uint64_t len, bool readable);
  uint64_t total() const { return total_; }

  // Writes every range added, in order, to `out` (a file at its offset,
  // or a socket). Call once.
  Status Run(int out, bool writeback);
  // CRC32C of the bytes written (valid after Run).
  uint32_t crc() const { return crc_; }
  // Instead of Run, for a socket whose other end checksums what it gets
  // (a page server): the pipe is spliced into `out`, no copy through
  // ckpt, no checksum here.
  Status Splice(int out);

 private:
  struct Span {
    uint64_t addr, len;
    bool readable;
  };
  pid_t pid_;
  int mem_fd_;
  compel::Infection& inf_;
  int pipe_r_, pipe_w_;
  std::vector<Span> spans_;
  uint64_t total_ = 0;
  uint32_t crc_ = 0;
};

}  // namespace ckpt
