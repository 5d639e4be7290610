#include "criu/page_copy.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/fault.h"
#include "base/io.h"
#include "images/image_check.h"
#include "parasite/abi.h"

namespace ckpt {
namespace {

// Four 1 MiB buffers: big enough that the system calls cost little per
// byte, small enough that a buffer is still in the cache when it is
// written out after its checksum.
constexpr size_t kSlot = 1 << 20;
constexpr int kSlots = 4;
constexpr uint64_t kWritebackEvery = 32ull << 20;  // sync_file_range steps

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
  bool done = false;           // the filler handed over its last slot
  bool stop = false;           // one side gave up: the other stops too
  bool writer_done = false;    // the writer thread is about to exit
  std::optional<Error> error;  // the writer's
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

  // The helper thread writes full slots out, in order.
  struct stat st_out;
  bool file = fstat(out, &st_out) == 0 && S_ISREG(st_out.st_mode);
  off_t base = file ? lseek(out, 0, SEEK_CUR) : 0;
  uint64_t written = 0;
  auto writer = [&]() {
    Status st = Ok();
    uint64_t kicked = 0;
    for (int slot = 0;;) {
      size_t len = 0;
      {
        std::unique_lock<std::mutex> l(ring.mu);
        ring.cv.wait(l, [&] { return ring.full[slot] || ring.done || ring.stop; });
        if (!ring.full[slot] || ring.stop) break;  // done and all written, or given up
        len = ring.len[slot];
      }
      st = io::WriteFull(out, bufs.get() + size_t(slot) * kSlot, len);
      if (!st.ok()) {
        st.error().Context("writing pages");
        break;
      }
      written += len;
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
    std::lock_guard<std::mutex> l(ring.mu);
    if (!st.ok()) {
      ring.error = std::move(st.error());
      ring.stop = true;
    }
    ring.writer_done = true;
    ring.cv.notify_all();
  };
  std::thread t(writer);

  // This thread fills the slots: it alone talks to the parasite (ptrace
  // and the parasite's socket belong to the tracing thread).
  int slot = 0;
  size_t fill = 0;
  uint32_t crc = 0;
  // Hands the current slot to the writer; waits for the next one.
  auto push = [&]() -> Status {
    crc = images::Crc32c(crc, bufs.get() + size_t(slot) * kSlot, fill);
    std::unique_lock<std::mutex> l(ring.mu);
    ring.len[slot] = fill;
    ring.full[slot] = true;
    ring.cv.notify_all();
    slot = (slot + 1) % kSlots;
    fill = 0;
    ring.cv.wait(l, [&] { return !ring.full[slot] || ring.stop; });
    if (ring.stop) return Error("stopped");  // the writer's error is returned below
    return Ok();
  };
  // `n` bytes from fd (the pipe, or /proc/PID/mem at `addr`) into slots.
  auto take = [&](int fd, uint64_t n, bool is_pipe, uint64_t addr) -> Status {
    while (n > 0) {
      char* to = bufs.get() + size_t(slot) * kSlot + fill;
      size_t want = size_t(std::min<uint64_t>(n, kSlot - fill));
      ssize_t r = is_pipe ? read(fd, to, want) : pread(fd, to, want, off_t(addr));
      if (r > 0) {
        fill += size_t(r), n -= uint64_t(r), addr += uint64_t(r);
        if (fill == kSlot) TRY(push());
        continue;
      }
      if (r == 0)
        return is_pipe ? Error("pipe closed early while dumping pages")
                       : Error(who + ": reading memory at " + Hex(addr) + ": nothing there");
      if (errno == EINTR) continue;
      if (!is_pipe) return Error::Errno(who + ": reading memory at " + Hex(addr));
      if (errno != EAGAIN) return Error::Errno("reading the page pipe");
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 100) == 0) TRY(inf_.CheckAlive());
    }
    return Ok();
  };
  // The parasite vmsplices a batch of runs into the pipe; this thread
  // reads it out as it fills.
  std::vector<abi::PIovec> batch;
  uint64_t batch_bytes = 0;
  bool first = true;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Ok();
    memcpy(inf_.args()->iovs, batch.data(), batch.size() * sizeof(abi::PIovec));
    TRY(inf_.Send(abi::kCmdDumpPages, uint32_t(batch.size()), pipe_w_));
    TRY(take(pipe_r_, batch_bytes, true, 0));
    TRY_ASSIGN(int64_t ret, inf_.WaitReply());
    if (ret < 0) return Error::Errno("parasite vmsplice", int(-ret));
    batch.clear();
    batch_bytes = 0;
    if (first) CKPT_FAULT("dump-pages-mid");
    first = false;
    return Ok();
  };
  auto produce = [&]() -> Status {
    for (const Span& s : spans_) {
      if (!s.readable) {
        // PROT_NONE or write-only memory: vmsplice cannot pin it, but the
        // tracer may read it through /proc/PID/mem.
        TRY(flush());
        TRY(take(mem_fd_, s.len, false, s.addr));
        continue;
      }
      batch.push_back({s.addr, s.len});
      batch_bytes += s.len;
      if (batch.size() == abi::kMaxParasiteIovs) TRY(flush());
    }
    TRY(flush());
    if (fill > 0) TRY(push());
    return Ok();
  };
  Status st = produce();
  {
    std::unique_lock<std::mutex> l(ring.mu);
    if (st.ok())
      ring.done = true;
    else
      ring.stop = true;
    ring.cv.notify_all();
    ring.cv.wait(l, [&] { return ring.writer_done; });
  }
  t.join();
  if (ring.error) return std::move(*ring.error);  // the writer's: the first cause
  if (!st.ok()) return st;
  if (written != total_)
    return Error(who + ": " + std::to_string(written) + " bytes of memory written, " +
                 std::to_string(total_) + " expected");
  crc_ = crc;
  return Ok();
}

Status PageCopier::Splice(int out) {
  const std::string who = "pid " + std::to_string(pid_);
  const char* out_what = "the page server or the compressor";
  auto drain = [&](uint64_t total) -> Status {
    while (total > 0) {
      ssize_t r = splice(pipe_r_, nullptr, out, nullptr, std::min<uint64_t>(total, kSlot),
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (r > 0) {
        total -= uint64_t(r);
        CKPT_FAULT("dump-pages-mid");
        continue;
      }
      if (r == 0) return Error("pipe closed early while dumping pages");
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return Error::Errno("splice pages to " + std::string(out_what));
      // EAGAIN from a full output pipe (--compress, criu/page_compress.h)
      // too: wait for the side that is not ready.
      struct pollfd p[2] = {{pipe_r_, POLLIN, 0}, {out, POLLOUT, 0}};
      if (poll(p, 2, 0) > 0 && (p[0].revents & POLLIN) && !(p[1].revents & POLLOUT)) {
        poll(&p[1], 1, 100);
        continue;
      }
      if (poll(&p[0], 1, 100) == 0) TRY(inf_.CheckAlive());
    }
    return Ok();
  };
  std::vector<abi::PIovec> batch;
  uint64_t batch_bytes = 0;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Ok();
    memcpy(inf_.args()->iovs, batch.data(), batch.size() * sizeof(abi::PIovec));
    TRY(inf_.Send(abi::kCmdDumpPages, uint32_t(batch.size()), pipe_w_));
    TRY(drain(batch_bytes));
    TRY_ASSIGN(int64_t ret, inf_.WaitReply());
    if (ret < 0) return Error::Errno("parasite vmsplice", int(-ret));
    batch.clear();
    batch_bytes = 0;
    return Ok();
  };
  std::unique_ptr<char[]> buf;
  for (const Span& s : spans_) {
    if (s.readable) {
      batch.push_back({s.addr, s.len});
      batch_bytes += s.len;
      if (batch.size() == abi::kMaxParasiteIovs) TRY(flush());
      continue;
    }
    TRY(flush());
    if (!buf) buf.reset(new char[kSlot]);
    for (uint64_t off = 0; off < s.len;) {
      size_t n = size_t(std::min<uint64_t>(kSlot, s.len - off));
      ssize_t r = pread(mem_fd_, buf.get(), n, off_t(s.addr + off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Error::Errno(who + ": reading memory at " + Hex(s.addr + off));
      TRY(io::WriteFull(out, buf.get(), size_t(r)), "writing pages");
      off += uint64_t(r);
    }
  }
  return flush();
}

}  // namespace ckpt
