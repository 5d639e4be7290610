// Shared by the libFuzzer targets in test/fuzz (one target per file).
//
// MemFile: the input as a memfd, reachable by path (/proc/self/fd/N), for
// readers that open a path. ScratchDir: a private directory under $TMPDIR
// (default /tmp; mkdtemp), emptied and refilled with the files of one input, removed when
// the fuzzer exits. Quiet(): logs off, stdout to /dev/null, so a run prints
// only libFuzzer's own lines.
//
// The input format of a directory (UnpackInto, scripts/fuzz-corpus packs
// real dumps this way): records of
//   u8 name length (1..64), plus 0x80 for a hole file,
//   name ([A-Za-z0-9._-], not "." or ".."),
//   u32 little-endian length, then that many bytes of data (clipped to what
//   is left); a hole file has no data: it is `length` zero bytes (sparse,
//   at most kMaxHole), as pages files are packed (only their size matters
//   before restore).
// A record with a bad name is skipped; at most kMaxFiles files.
//
// Checksums (images/image_check.h): a CRC32C over every byte would stop
// almost every mutated input at the first check, so the targets seal what
// the fuzzer made: SealedImage() appends the trailer to a record image
// that has none (one whose bytes 16 before the end are not the trailer
// mark; one that has it is passed as is, so the check itself is fuzzed
// too), and ScratchDir::Seal() does so for every record image unpacked
// and lists the other (raw) files in a checksums.img, unless the input
// brought one. The seeds are bodies without trailers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ckpt::fuzz {

constexpr int kMaxFiles = 64;
constexpr uint32_t kMaxHole = 256u << 20;

void Quiet();

// data as a record image with a trailer (see above).
std::string SealedImage(const uint8_t* data, size_t size);

class MemFile {
 public:
  MemFile(const uint8_t* data, size_t size);
  explicit MemFile(const std::string& bytes)
      : MemFile(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) {}
  ~MemFile();
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  int fd() const { return fd_; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

class ScratchDir {
 public:
  // The process's one scratch directory, made on first use.
  static ScratchDir& Get();
  const std::string& path() const { return path_; }
  // Empties the directory, then writes the files packed in data.
  void UnpackInto(const uint8_t* data, size_t size);
  // Seals the record images written and lists the raw files (see above).
  void Seal();

 private:
  ScratchDir();
  void Clear();
  std::string path_;
  int dirfd_ = -1;
};

}  // namespace ckpt::fuzz
