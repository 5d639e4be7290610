#include "images/zpages.h"

#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/io.h"

namespace ckpt::images {
namespace {

void Put32(char* p, uint32_t v) { memcpy(p, &v, 4); }
uint32_t Get32(const char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
uint64_t Get64(const char* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

ZSTD_CCtx* C(void* p) { return static_cast<ZSTD_CCtx*>(p); }
ZSTD_DCtx* D(void* p) { return static_cast<ZSTD_DCtx*>(p); }

}  // namespace

// ---- writer ----

ZWriter::ZWriter(const ZParams& p, Sink sink) : params_(p), sink_(std::move(sink)) {}

ZWriter::~ZWriter() { ZSTD_freeCCtx(C(cctx_)); }

Status ZWriter::Init() {
  if (started_) return Ok();
  if (params_.frame_size < kZMinFrameSize || params_.frame_size > kZMaxFrameSize ||
      params_.frame_size % kZMinFrameSize)
    return Error("zstd: bad frame size " + std::to_string(params_.frame_size));
  cctx_ = ZSTD_createCCtx();
  if (!cctx_) return Error("zstd: cannot create a compression context", ENOMEM);
  auto set = [&](ZSTD_cParameter k, int v, const char* what) -> Status {
    size_t r = ZSTD_CCtx_setParameter(C(cctx_), k, v);
    if (ZSTD_isError(r)) return Error(std::string("zstd: ") + what + ": " + ZSTD_getErrorName(r));
    return Ok();
  };
  TRY(set(ZSTD_c_compressionLevel, params_.level, "compression level"));
  TRY(set(ZSTD_c_checksumFlag, 1, "checksum flag"));
  TRY(set(ZSTD_c_contentSizeFlag, 1, "content size flag"));
  // A libzstd built without threads refuses workers: compress inline then.
  if (params_.workers > 0 &&
      ZSTD_isError(ZSTD_CCtx_setParameter(C(cctx_), ZSTD_c_nbWorkers, params_.workers)))
    params_.workers = 0;
  frame_.reset(new char[params_.frame_size]);
  out_cap_ = ZSTD_compressBound(params_.frame_size);
  out_buf_.reset(new char[out_cap_]);
  char h[kZHeaderSize];
  Put32(h, kZSkippableMagic);
  Put32(h + 4, 16);
  Put32(h + 8, kZHeaderMagic);
  Put32(h + 12, kZVersion);
  Put32(h + 16, params_.frame_size);
  Put32(h + 20, 0);
  started_ = true;
  return Emit(h, sizeof(h));
}

Status ZWriter::Emit(const void* p, size_t n) {
  TRY(sink_(p, n));
  out_ += n;
  return Ok();
}

Status ZWriter::FlushFrame() {
  if (fill_ == 0) return Ok();
  size_t c = ZSTD_compress2(C(cctx_), out_buf_.get(), out_cap_, frame_.get(), fill_);
  if (ZSTD_isError(c)) return Error(std::string("zstd: compressing: ") + ZSTD_getErrorName(c));
  csizes_.push_back(uint32_t(c));
  fill_ = 0;
  return Emit(out_buf_.get(), c);
}


Status ZWriter::Write(const void* data, size_t len) {
  if (finished_) return Error("zstd: written after its end");
  TRY(Init());
  auto* p = static_cast<const char*>(data);
  while (len > 0) {
    size_t k = std::min(len, size_t(params_.frame_size) - fill_);
    memcpy(frame_.get() + fill_, p, k);
    fill_ += k, raw_ += k, p += k, len -= k;
    if (fill_ == params_.frame_size) TRY(FlushFrame());
  }
  return Ok();
}

Status ZWriter::Finish() {
  if (finished_) return Ok();
  TRY(Init());
  TRY(FlushFrame());
  finished_ = true;
  std::string idx(8 + 4 * csizes_.size() + kZTailSize, '\0');
  Put32(idx.data(), kZSkippableMagic);
  Put32(idx.data() + 4, uint32_t(idx.size() - 8));
  for (size_t i = 0; i < csizes_.size(); i++) Put32(idx.data() + 8 + 4 * i, csizes_[i]);
  char* t = idx.data() + idx.size() - kZTailSize;
  memcpy(t, &raw_, 8);
  Put32(t + 8, uint32_t(csizes_.size()));
  Put32(t + 12, kZIndexMagic);
  return Emit(idx.data(), idx.size());
}

// ---- layout ----

uint64_t ZLayout::RawLen(size_t i) const {
  uint64_t start = uint64_t(i) * frame_size;
  return std::min<uint64_t>(frame_size, raw_size - start);
}

bool LooksLikeZPages(const void* bytes, size_t len) {
  if (len < kZHeaderSize) return false;
  auto* h = static_cast<const char*>(bytes);
  return Get32(h) == kZSkippableMagic && Get32(h + 4) == 16 && Get32(h + 8) == kZHeaderMagic;
}

Result<ZLayout> ParseZLayout(const ZPread& pread, uint64_t size, const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Error(name + ": damaged compressed pages: " + why);
  };
  if (size < kZHeaderSize + 8 + kZTailSize)
    return bad("too short (" + std::to_string(size) + " bytes)");
  char h[kZHeaderSize];
  TRY(pread(0, h, sizeof(h)), name);
  if (!LooksLikeZPages(h, sizeof(h))) return bad("no zpages header");
  if (Get32(h + 12) != kZVersion)
    return Error(name + ": compressed pages of version " + std::to_string(Get32(h + 12)) +
                 ", this ckpt reads version " + std::to_string(kZVersion));
  ZLayout l;
  l.frame_size = Get32(h + 16);
  if (l.frame_size < kZMinFrameSize || l.frame_size > kZMaxFrameSize ||
      l.frame_size % kZMinFrameSize)
    return bad("bad frame size " + std::to_string(l.frame_size));
  if (Get32(h + 20) != 0) return bad("unknown flags");
  char t[kZTailSize];
  TRY(pread(size - kZTailSize, t, sizeof(t)), name);
  if (Get32(t + 12) != kZIndexMagic) return bad("no index at the end (truncated?)");
  l.raw_size = Get64(t);
  uint64_t n = Get32(t + 8);
  uint64_t idx_len = 8 + 4 * n + kZTailSize;  // n < 2^32: no overflow
  if (idx_len > size - kZHeaderSize) return bad("index longer than the file");
  uint64_t idx_at = size - idx_len;
  uint64_t want_n = l.raw_size / l.frame_size + (l.raw_size % l.frame_size ? 1 : 0);
  if (n != want_n)
    return bad(std::to_string(n) + " frames for " + std::to_string(l.raw_size) + " bytes");
  std::string idx(size_t(idx_len - kZTailSize), '\0');
  TRY(pread(idx_at, idx.data(), idx.size()), name);
  if (Get32(idx.data()) != kZSkippableMagic || Get32(idx.data() + 4) != idx_len - 8)
    return bad("bad index frame");
  uint64_t max_c = ZSTD_compressBound(l.frame_size);
  l.offsets.reserve(size_t(n) + 1);
  uint64_t at = kZHeaderSize;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t c = Get32(idx.data() + 8 + 4 * i);
    if (c == 0 || c > max_c) return bad("frame " + std::to_string(i) + " has a bad length");
    l.offsets.push_back(at);
    at += c;  // at most 2^32 frames of < 2^27 bytes: no overflow
    if (at > idx_at) return bad("frame " + std::to_string(i) + " runs into the index");
  }
  l.offsets.push_back(at);
  if (at != idx_at) return bad("bytes between the frames and the index");
  return l;
}

// ---- reader ----

ZReader::ZReader(ZReader&& o) noexcept { *this = std::move(o); }

ZReader& ZReader::operator=(ZReader&& o) noexcept {
  if (this == &o) return *this;
  ZSTD_freeDCtx(D(dctx_));
  fd_ = std::move(o.fd_);
  pread_ = std::move(o.pread_);
  name_ = std::move(o.name_);
  layout_ = std::move(o.layout_);
  dctx_ = o.dctx_;
  o.dctx_ = nullptr;
  raw_ = std::move(o.raw_);
  comp_ = std::move(o.comp_);
  comp_cap_ = o.comp_cap_;
  cached_ = o.cached_;
  // pread_ of a reader over its own fd uses the fd's number, which the
  // move keeps.
  return *this;
}

ZReader::~ZReader() { ZSTD_freeDCtx(D(dctx_)); }

Result<ZReader> ZReader::Open(ZPread pread, uint64_t size, std::string name) {
  TRY_ASSIGN(ZLayout l, ParseZLayout(pread, size, name));
  ZReader r;
  r.pread_ = std::move(pread);
  r.name_ = std::move(name);
  r.layout_ = std::move(l);
  r.dctx_ = ZSTD_createDCtx();
  if (!r.dctx_) return Error("zstd: cannot create a decompression context", ENOMEM);
  return r;
}

Result<ZReader> ZReader::Open(UniqueFd fd, std::string name) {
  off_t size = lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return Error::Errno("seek " + name);
  int raw = fd.get();
  std::string n = name;
  ZPread pr = [raw, n](uint64_t off, void* buf, size_t len) -> Status {
    char* p = static_cast<char*>(buf);
    while (len > 0) {
      ssize_t r = ::pread(raw, p, len, off_t(off));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Error::Errno("reading " + n);
      if (r == 0) return Error(n + ": truncated");
      p += r, off += uint64_t(r), len -= size_t(r);
    }
    return Ok();
  };
  TRY_ASSIGN(ZReader r, Open(std::move(pr), uint64_t(size), std::move(name)));
  r.fd_ = std::move(fd);
  return r;
}

namespace {
// Frame i of a checked layout into raw (frame_size bytes), through comp
// (grown as needed).
Status DecodeFrame(ZSTD_DCtx* dctx, const ZLayout& l, const ZPread& pread,
                   const std::string& name, size_t i, std::unique_ptr<char[]>& comp,
                   size_t& comp_cap, char* raw) {
  uint64_t clen = l.offsets[i + 1] - l.offsets[i];
  uint64_t rlen = l.RawLen(i);
  if (clen > comp_cap) {
    comp.reset(new char[size_t(clen)]);
    comp_cap = size_t(clen);
  }
  TRY(pread(l.offsets[i], comp.get(), size_t(clen)), name);
  std::string where = name + ": damaged compressed pages: frame " + std::to_string(i) + " at " +
                      std::to_string(l.offsets[i]);
  size_t fl = ZSTD_findFrameCompressedSize(comp.get(), size_t(clen));
  if (ZSTD_isError(fl) || fl != clen) return Error(where + ": not one whole zstd frame");
  unsigned long long cs = ZSTD_getFrameContentSize(comp.get(), size_t(clen));
  if (cs != rlen) return Error(where + ": wrong content size");
  size_t got = ZSTD_decompressDCtx(dctx, raw, size_t(rlen), comp.get(), size_t(clen));
  if (ZSTD_isError(got)) return Error(where + ": " + ZSTD_getErrorName(got));
  if (got != rlen) return Error(where + ": short frame");
  return Ok();
}
}  // namespace

Status ZReader::Load(size_t i) {
  if (cached_ == i) return Ok();
  cached_ = SIZE_MAX;
  if (!raw_) raw_.reset(new char[layout_.frame_size]);
  TRY(DecodeFrame(D(dctx_), layout_, pread_, name_, i, comp_, comp_cap_, raw_.get()));
  cached_ = i;
  return Ok();
}

Status ZReader::ReadAt(uint64_t off, void* buf, size_t len) {
  if (off > layout_.raw_size || len > layout_.raw_size - off)
    return Error(name_ + ": read of " + std::to_string(len) + " bytes at " + std::to_string(off) +
                 " past its " + std::to_string(layout_.raw_size) + " bytes");
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    size_t i = size_t(off / layout_.frame_size);
    uint64_t in = off % layout_.frame_size;
    TRY(Load(i));
    size_t k = size_t(std::min<uint64_t>(len, layout_.RawLen(i) - in));
    memcpy(p, raw_.get() + in, k);
    p += k, off += k, len -= k;
  }
  return Ok();
}

Status ZReader::CopyTo(int out_fd, int threads) {
  // Frames are independent: each thread decodes every threads-th one and
  // writes it at its place (pwrite), with its own context and buffers.
  size_t n = layout_.frames();
  if (threads < 1) threads = 1;
  if (size_t(threads) > n) threads = int(std::max<size_t>(n, 1));
  std::vector<Status> st(size_t(threads), Ok());
  auto work = [&](int t) {
    ZSTD_DCtx* d = ZSTD_createDCtx();
    if (!d) {
      st[size_t(t)] = Error("zstd: cannot create a decompression context", ENOMEM);
      return;
    }
    std::unique_ptr<char[]> comp, raw(new char[layout_.frame_size]);
    size_t cap = 0;
    for (size_t i = size_t(t); i < n; i += size_t(threads)) {
      Status s = DecodeFrame(d, layout_, pread_, name_, i, comp, cap, raw.get());
      if (s.ok()) {
        uint64_t off = uint64_t(i) * layout_.frame_size;
        size_t len = size_t(layout_.RawLen(i)), done = 0;
        while (done < len) {
          ssize_t w = pwrite(out_fd, raw.get() + done, len - done, off_t(off + done));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) {
            s = Error::Errno("writing " + name_ + " decompressed");
            break;
          }
          done += size_t(w);
        }
      }
      if (!s.ok()) {
        st[size_t(t)] = std::move(s);
        break;
      }
    }
    ZSTD_freeDCtx(d);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
  work(0);
  for (std::thread& th : pool) th.join();
  for (Status& s : st)
    if (!s.ok()) return std::move(s);
  return Ok();
}

std::string ZstdDescribe() {
  std::string s = std::string("zstd ") + ZSTD_versionString();
  ZSTD_bounds b = ZSTD_cParam_getBounds(ZSTD_c_nbWorkers);
  if (ZSTD_isError(b.error) || b.upperBound == 0)
    s += " (no worker threads: compresses in one thread)";
  else
    s += " (multithreaded)";
  return s;
}

}  // namespace ckpt::images
