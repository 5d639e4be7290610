// zpages: a compressed pages file that can still be read at any offset.
//
// `ckpt dump --compress zstd[:LEVEL]` writes pages-N.img in this layout
// instead of raw page contents. The file is a valid zstd stream (`zstd -d`
// gives the raw pages file back): two skippable frames hold ckpt's header
// and index, and the pages are cut into independent zstd frames of
// `frame_size` raw bytes each (the last one may be shorter), so a reader
// decompresses only the frame holding the bytes it wants (lazy restore,
// pages shared with a parent at an offset).
//
//   header  skippable frame: u32 0x184D2A5C, u32 16,
//           u32 'CKZP', u32 version (1), u32 frame_size, u32 flags (0)
//   frames  n zstd frames, each with its content size and XXH64 checksum
//   index   skippable frame: u32 0x184D2A5C, u32 4n+16,
//           u32 csize[n], u64 raw_size, u32 n, u32 'CKZI'
// All little-endian. The index is at the end so the writer streams.
// n == ceil(raw_size / frame_size); frame i starts at 24 + sum(csize[<i]).
//
// Which raw files use it is said by their entry in checksums.img
// (ChecksumEntry.encoding), never guessed from the bytes: page contents
// are the victim's and could imitate a header. ImageDir::OpenRaw gives
// a zpages file back decompressed (a memfd), ImageDir::OpenPages reads it
// by offset (images/image_dir.h).
//
// Hostile input: every length and offset is checked against the file size
// before it is used, a frame must decompress to exactly its expected size
// (its own content size field, checksum and compressed length agreeing),
// and no buffer is larger than one frame: a damaged file is an error
// naming it and the frame, never a crash or a huge allocation.
//
//   ZWriter w({.level = 1, .workers = 2}, [&](const void* p, size_t n) {
//     return io::WriteFull(fd, p, n); });
//   TRY(w.Write(buf, len)); ... TRY(w.Finish());
//
//   TRY_ASSIGN(ZReader r, ZReader::Open(std::move(fd), "pages-1.img"));
//   TRY(r.ReadAt(off, buf, 4096));  // r.raw_size() bytes in all
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt::images {

inline constexpr uint32_t kZSkippableMagic = 0x184D2A5C;  // a zstd skippable frame
inline constexpr uint32_t kZHeaderMagic = 0x505A4B43;     // "CKZP"
inline constexpr uint32_t kZIndexMagic = 0x495A4B43;      // "CKZI"
inline constexpr uint32_t kZVersion = 1;
inline constexpr size_t kZHeaderSize = 24;
inline constexpr size_t kZTailSize = 16;  // raw_size, n, magic
// 1 MiB frames: a lazy fault decompresses at most this much, and two zstd
// workers still split a frame into two jobs (their minimum is 512 KiB).
inline constexpr uint32_t kZDefaultFrameSize = 1u << 20;
// Limits a reader accepts for frame_size: a hostile header must not make
// it allocate more than this per frame.
inline constexpr uint32_t kZMinFrameSize = 4096;
inline constexpr uint32_t kZMaxFrameSize = 64u << 20;

struct ZParams {
  int level = 1;    // zstd level (negative: faster, ratio lower)
  int workers = 2;  // ZSTD_c_nbWorkers; 0 compresses in the calling thread
  uint32_t frame_size = kZDefaultFrameSize;
};

// Streams raw bytes in, compressed file bytes out through `sink`.
class ZWriter {
 public:
  using Sink = std::function<Status(const void* data, size_t len)>;
  ZWriter(const ZParams& p, Sink sink);
  ~ZWriter();
  ZWriter(const ZWriter&) = delete;
  ZWriter& operator=(const ZWriter&) = delete;

  Status Write(const void* data, size_t len);
  // Compresses the last frame and writes the index. No Write after.
  Status Finish();
  uint64_t raw_bytes() const { return raw_; }
  uint64_t out_bytes() const { return out_; }

 private:
  Status Init();
  Status Emit(const void* p, size_t n);
  Status FlushFrame();
  ZParams params_;
  Sink sink_;
  void* cctx_ = nullptr;
  std::unique_ptr<char[]> frame_, out_buf_;
  size_t out_cap_ = 0;
  size_t fill_ = 0;
  uint64_t raw_ = 0, out_ = 0;
  std::vector<uint32_t> csizes_;
  bool started_ = false, finished_ = false;
};

// The parsed header and index of a zpages file.
struct ZLayout {
  uint32_t frame_size = 0;
  uint64_t raw_size = 0;
  std::vector<uint64_t> offsets;  // n + 1: frame i is [offsets[i], offsets[i+1])
  size_t frames() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  uint64_t RawLen(size_t i) const;  // raw bytes of frame i
};

// Reads `len` bytes at `off` of the file, exactly (a short file is an error).
using ZPread = std::function<Status(uint64_t off, void* buf, size_t len)>;
// Checks and parses the header and index of a zpages file `size` bytes long.
Result<ZLayout> ParseZLayout(const ZPread& pread, uint64_t size, const std::string& name);
// Whether `bytes` (the first kZHeaderSize or more of a file) start like a
// zpages file. For display only (`ckpt show`): never for trusting a file.
bool LooksLikeZPages(const void* bytes, size_t len);

// Random access to a zpages file. Keeps the last frame decompressed.
class ZReader {
 public:
  static Result<ZReader> Open(UniqueFd fd, std::string name);
  // Over any byte source (unit tests, a file read by other means).
  static Result<ZReader> Open(ZPread pread, uint64_t size, std::string name);
  ZReader(ZReader&&) noexcept;
  ZReader& operator=(ZReader&&) noexcept;
  ~ZReader();

  uint64_t raw_size() const { return layout_.raw_size; }
  const ZLayout& layout() const { return layout_; }
  Status ReadAt(uint64_t off, void* buf, size_t len);
  // Every raw byte to `out` at its offset (pwrite: a memfd or file being
  // filled), decoded by `threads` threads. The reader's pread must be
  // safe to call from several threads (a file's is).
  Status CopyTo(int out_fd, int threads = 1);

 private:
  ZReader() = default;
  Status Load(size_t frame);
  UniqueFd fd_;
  ZPread pread_;
  std::string name_;
  ZLayout layout_;
  void* dctx_ = nullptr;
  std::unique_ptr<char[]> raw_, comp_;
  size_t comp_cap_ = 0;
  size_t cached_ = SIZE_MAX;
};

// "zstd 1.5.4 (2 workers)" or why not: for `ckpt check`.
std::string ZstdDescribe();

}  // namespace ckpt::images
