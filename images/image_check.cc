#include "images/image_check.h"

#include <nmmintrin.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <thread>

#include "images/image_types.h"
#include "proto/checksums.pb.h"

namespace ckpt::images {
namespace {

constexpr uint32_t kPoly = 0x82f63b78;  // CRC32C, reflected

struct Table {
  uint32_t t[256];
  Table() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[i] = c;
    }
  }
};

uint32_t SoftCrc(uint32_t c, const uint8_t* p, size_t n) {
  static const Table table;
  while (n--) c = table.t[(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

__attribute__((target("sse4.2"))) uint64_t HardCrcWords(uint64_t c, const uint8_t* p, size_t words) {
  for (size_t i = 0; i < words; i++) {
    uint64_t w;
    memcpy(&w, p + 8 * i, 8);
    c = _mm_crc32_u64(c, w);
  }
  return c;
}

// The crc32 instruction has a latency of 3 cycles and a throughput of 1:
// three independent streams over three consecutive blocks keep it busy
// (about 3x one stream: a restore checks every pages file of a chain).
// The streams are joined by linearity: the register after A then B is
// Shift|B|(register after A) ^ (register after B alone, from 0), where
// Shift_L runs the register over L zero bytes; Shift_kBlock is linear in
// the 32 register bits, so it is four 256-entry tables.
constexpr size_t kBlock = 4096;  // bytes per stream and round

struct ShiftTable {
  uint32_t t[4][256];
  __attribute__((target("sse4.2"))) ShiftTable() {
    static const uint8_t zeros[kBlock] = {};
    uint32_t basis[32];
    for (int b = 0; b < 32; b++) basis[b] = uint32_t(HardCrcWords(1ull << b, zeros, kBlock / 8));
    for (int k = 0; k < 4; k++)
      for (uint32_t v = 0; v < 256; v++) {
        uint32_t r = 0;
        for (int b = 0; b < 8; b++)
          if (v >> b & 1) r ^= basis[8 * k + b];
        t[k][v] = r;
      }
  }
  uint32_t Shift(uint32_t c) const {
    return t[0][c & 0xff] ^ t[1][c >> 8 & 0xff] ^ t[2][c >> 16 & 0xff] ^ t[3][c >> 24];
  }
};

__attribute__((target("sse4.2"))) uint32_t HardCrc(uint32_t c, const uint8_t* p, size_t n) {
  if (n >= 3 * kBlock) {
    static const ShiftTable shift;
    while (n >= 3 * kBlock) {
      uint64_t a = c, b = 0, d = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        uint64_t wa, wb, wd;
        memcpy(&wa, p + i, 8);
        memcpy(&wb, p + kBlock + i, 8);
        memcpy(&wd, p + 2 * kBlock + i, 8);
        a = _mm_crc32_u64(a, wa);
        b = _mm_crc32_u64(b, wb);
        d = _mm_crc32_u64(d, wd);
      }
      c = shift.Shift(shift.Shift(uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(d);
      p += 3 * kBlock;
      n -= 3 * kBlock;
    }
  }
  c = uint32_t(HardCrcWords(c, p, n / 8));
  p += n / 8 * 8;
  n %= 8;
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");

// a * b mod P, polynomials over GF(2) in the reflected order of the CRC
// (bit 31 is x^0).
uint32_t MulModP(uint32_t a, uint32_t b) {
  uint32_t p = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) p ^= b;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;  // b * x
  }
  return p;
}

// x^(8 * n) mod P: what n zero bytes do to the CRC register.
uint32_t XPow8n(uint64_t n) {
  uint32_t result = 1u << 31;  // x^0
  uint32_t sq = 1u << 23;      // x^8
  for (; n != 0; n >>= 1) {
    if (n & 1) result = MulModP(result, sq);
    sq = MulModP(sq, sq);
  }
  return result;
}

constexpr size_t kChunk = 1 << 20;

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t len) {
  auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  c = kHaveSse42 ? HardCrc(c, p, len) : SoftCrc(c, p, len);
  return ~c;
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  // The register is linear in its start value: feeding B after A leaves
  // crc_a * x^(8 len_b) plus what B alone leaves; the pre and post
  // inversions of the two single CRCs cancel out.
  return MulModP(XPow8n(len_b), crc_a) ^ crc_b;
}

std::string Trailer(uint32_t crc, uint64_t body_len) {
  std::string t(kTrailerSize, '\0');
  uint32_t mark = kTrailerMark;
  uint64_t total = body_len + kTrailerSize;
  memcpy(t.data(), &mark, 4);
  memcpy(t.data() + 4, &crc, 4);
  memcpy(t.data() + 8, &total, 8);
  return t;
}

std::string SealImage(const std::string& bytes) {
  return bytes + Trailer(Crc32c(0, bytes.data(), bytes.size()), bytes.size());
}

namespace {

// CRC32C of bytes [off, end) of fd.
Result<uint32_t> SumRange(int fd, const std::string& name, uint64_t off, uint64_t end) {
  // Small enough to stay in the cache between read and checksum.
  constexpr size_t kBuf = 256 << 10;
  std::unique_ptr<char[]> buf(new char[kBuf]);
  uint32_t crc = 0;
  while (off < end) {
    ssize_t n = pread(fd, buf.get(), size_t(std::min<uint64_t>(kBuf, end - off)), off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::Errno("reading " + name);
    if (n == 0) return Error(name + ": shrank while being read");
    crc = Crc32c(crc, buf.get(), size_t(n));
    off += uint64_t(n);
  }
  return crc;
}

}  // namespace

Result<FileSum> SumFile(int fd, const std::string& name, int threads) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("stat " + name);
  FileSum s;
  s.name = name;
  s.size = uint64_t(st.st_size);
  // Below this a second thread costs more than it saves.
  constexpr uint64_t kSplitAt = 16 << 20;
  if (threads < 2 || s.size < kSplitAt) {
    TRY_ASSIGN(s.crc, SumRange(fd, name, 0, s.size));
    return s;
  }
  uint64_t half = s.size / 2;
  Result<uint32_t> second = Error("not run");
  std::thread t([&] { second = SumRange(fd, name, half, s.size); });
  Result<uint32_t> first = SumRange(fd, name, 0, half);
  t.join();
  if (!first.ok()) return std::move(first.error());
  if (!second.ok()) return std::move(second.error());
  s.crc = Crc32cCombine(*first, *second, s.size - half);
  return s;
}

Result<uint64_t> CheckTrailer(int fd, const std::string& name) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("stat " + name);
  uint64_t size = uint64_t(st.st_size);
  if (size < 8 + kTrailerSize)
    return Error(name + ": damaged: truncated (" + std::to_string(size) +
                 " bytes, no checksum trailer)");
  char t[kTrailerSize];
  if (pread(fd, t, kTrailerSize, off_t(size - kTrailerSize)) != ssize_t(kTrailerSize))
    return Error::Errno("reading " + name);
  uint32_t mark, crc;
  uint64_t total;
  memcpy(&mark, t, 4);
  memcpy(&crc, t + 4, 4);
  memcpy(&total, t + 8, 8);
  if (mark != kTrailerMark)
    return Error(name + ": damaged: it does not end with its checksum trailer (truncated, or "
                 "bytes appended)");
  if (total != size)
    return Error(name + ": damaged: " + std::to_string(size) + " bytes, its trailer says " +
                 std::to_string(total) + " (truncated, or bytes appended)");
  std::unique_ptr<char[]> buf(new char[kChunk]);
  uint64_t off = 0, body = size - kTrailerSize;
  uint32_t c = 0;
  while (off < body) {
    ssize_t n = pread(fd, buf.get(), size_t(std::min<uint64_t>(kChunk, body - off)), off_t(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error::Errno("reading " + name);
    c = Crc32c(c, buf.get(), size_t(n));
    off += uint64_t(n);
  }
  if (c != crc) return Error(name + ": damaged: checksum mismatch (bytes changed)");
  return body - 8;
}

std::string ChecksumsImage(const std::vector<FileSum>& sums) {
  uint32_t hdr[2] = {kImageMagic, Info(ImageType::kChecksums).magic};
  std::string out(reinterpret_cast<const char*>(hdr), sizeof(hdr));
  for (const FileSum& s : sums) {
    pb::ChecksumEntry e;
    e.set_name(s.name);
    e.set_size(s.size);
    e.set_crc32c(s.crc);
    if (s.zpages) e.set_encoding(pb::ChecksumEntry::ZPAGES);
    std::string b = e.SerializeAsString();
    uint32_t len = uint32_t(b.size());
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += b;
  }
  return SealImage(out);
}

}  // namespace ckpt::images
