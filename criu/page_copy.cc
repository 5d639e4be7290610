#include "criu/page_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/fault.h"
#include "base/io.h"
#include "images/image_check.h"

namespace ckpt {
namespace {

// Four 1 MiB buffers: big enough that the system calls cost little per
// byte, small enough that a buffer is still in the cache when it is
// written out after its checksum.
constexpr size_t kSlot = 1 << 20;
constexpr int kSlots = 4;
constexpr int kMaxIov = 1024;                       // UIO_MAXIOV
constexpr uint64_t kWritebackEvery = 32ull << 20;   // sync_file_range steps

std::string Hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof(b), "%" PRIx64, v);
  return b;
}

// The ring between the reading thread and the writing one; slots are
// filled and written in order.
struct Ring {
  std::mutex mu;
  std::condition_variable cv;
  size_t len[kSlots] = {};
  bool full[kSlots] = {};
  bool done = false;  // the reader filled its last slot
  bool stop = false;  // the writer gave up: the reader stops too
  std::optional<Error> error;  // the reader's
  uint32_t crc = 0;            // the reader's, once done
};

}  // namespace

void PageCopier::Add(uint64_t addr, uint64_t len, bool readable) {
  if (len == 0) return;
  Span* last = spans_.empty() ? nullptr : &spans_.back();
  if (last && last->readable == readable && last->addr + last->len == addr)
    last->len += len;
  else
    spans_.push_back({addr, len, readable});
  total_ += len;
}

Status PageCopier::Run(int out, bool writeback) {
  std::unique_ptr<char[]> bufs(new char[kSlot * kSlots]);
  Ring ring;
  const std::string who = "pid " + std::to_string(pid_);

  // /proc/PID/mem: what process_vm_readv cannot read (no PROT_READ).
  auto read_mem = [&](char* to, uint64_t n, uint64_t addr) -> Status {
    while (n > 0) {
      ssize_t r = pread(mem_fd_, to, n, off_t(addr));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error::Errno(who + ": reading memory at " + Hex(addr));
      if (r == 0) return Error(who + ": reading memory at " + Hex(addr) + ": nothing there");
      to += r, addr += uint64_t(r), n -= uint64_t(r);
    }
    return Ok();
  };

  auto reader = [&]() {
    Status st = Ok();
    uint32_t crc = 0;
    size_t si = 0;
    uint64_t soff = 0;  // into spans_[si]
    int slot = 0;
    while (si < spans_.size()) {
      {
        std::unique_lock<std::mutex> l(ring.mu);
        ring.cv.wait(l, [&] { return !ring.full[slot] || ring.stop; });
        if (ring.stop) return;
      }
      char* buf = bufs.get() + size_t(slot) * kSlot;
      size_t fill = 0;
      while (st.ok() && fill < kSlot && si < spans_.size()) {
        if (!spans_[si].readable) {
          uint64_t n = std::min<uint64_t>(kSlot - fill, spans_[si].len - soff);
          st = read_mem(buf + fill, n, spans_[si].addr + soff);
          fill += n, soff += n;
          if (soff == spans_[si].len) si++, soff = 0;
          continue;
        }
        // Readable ranges up to the end of the buffer, in one call.
        struct iovec remote[kMaxIov];
        int nr = 0;
        size_t want = 0;
        while (nr < kMaxIov && fill + want < kSlot && si < spans_.size() &&
               spans_[si].readable) {
          uint64_t n = std::min<uint64_t>(kSlot - fill - want, spans_[si].len - soff);
          remote[nr++] = {reinterpret_cast<void*>(spans_[si].addr + soff), n};
          want += n, soff += n;
          if (soff == spans_[si].len) si++, soff = 0;
        }
        struct iovec local = {buf + fill, want};
        ssize_t got = process_vm_readv(pid_, &local, 1, remote, unsigned(nr), 0);
        if (got < 0) got = 0;
        // Short: a range pinned pages cannot reach (e.g. a device mapping
        // turned private); the tracer's view through /proc/PID/mem has the
        // last word, and names the address if it fails too.
        size_t skip = size_t(got);
        for (int i = 0; st.ok() && i < nr && size_t(got) < want; i++) {
          if (skip >= remote[i].iov_len) {
            skip -= remote[i].iov_len;
            continue;
          }
          size_t at = 0;
          for (int k = 0; k < i; k++) at += remote[k].iov_len;
          st = read_mem(buf + fill + at + skip, remote[i].iov_len - skip,
                        uint64_t(remote[i].iov_base) + skip);
          skip = 0;
        }
        fill += want;
      }
      if (!st.ok()) break;
      crc = images::Crc32c(crc, buf, fill);
      std::lock_guard<std::mutex> l(ring.mu);
      ring.len[slot] = fill;
      ring.full[slot] = true;
      ring.cv.notify_all();
      slot = (slot + 1) % kSlots;
    }
    std::lock_guard<std::mutex> l(ring.mu);
    if (!st.ok()) ring.error = std::move(st.error());
    ring.crc = crc;
    ring.done = true;
    ring.cv.notify_all();
  };

  struct stat st_out;
  bool file = fstat(out, &st_out) == 0 && S_ISREG(st_out.st_mode);
  off_t base = file ? lseek(out, 0, SEEK_CUR) : 0;
  uint64_t written = 0, kicked = 0;

  std::thread t(reader);
  Status st = Ok();
  for (int slot = 0;;) {
    size_t len = 0;
    {
      std::unique_lock<std::mutex> l(ring.mu);
      ring.cv.wait(l, [&] { return ring.full[slot] || ring.done; });
      if (!ring.full[slot]) break;  // done, and every slot written
      len = ring.len[slot];
    }
    st = io::WriteFull(out, bufs.get() + size_t(slot) * kSlot, len);
    if (!st.ok()) {
      st.error().Context("writing pages");
      break;
    }
    written += len;
    if (fault::At("dump-pages-mid")) {
      st = fault::Injected("dump-pages-mid");
      break;
    }
    if (writeback && file && written - kicked >= kWritebackEvery) {
      // A hint: the disk starts on it now; errors show at the final sync.
      sync_file_range(out, base + off_t(kicked), off_t(written - kicked), SYNC_FILE_RANGE_WRITE);
      kicked = written;
    }
    std::lock_guard<std::mutex> l(ring.mu);
    ring.full[slot] = false;
    ring.cv.notify_all();
    slot = (slot + 1) % kSlots;
  }
  {
    std::lock_guard<std::mutex> l(ring.mu);
    ring.stop = true;
    ring.cv.notify_all();
  }
  t.join();
  if (!st.ok()) return st;
  if (ring.error) return std::move(*ring.error);
  if (written != total_)
    return Error(who + ": " + std::to_string(written) + " bytes of memory written, " +
                 std::to_string(total_) + " expected");
  crc_ = ring.crc;
  return Ok();
}

}  // namespace ckpt
