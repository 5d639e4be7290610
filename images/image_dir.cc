#include "images/image_dir.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/io.h"
#include "base/log.h"
#include "images/image_check.h"
#include "images/zpages.h"
#include "proto/checksums.pb.h"

namespace ckpt::images {
namespace {
constexpr size_t kFlushAt = 1 << 20;
}  // namespace

ImageWriter::ImageWriter(UniqueFd fd, std::string name, uint32_t magic)
    : fd_(std::move(fd)), name_(std::move(name)) {
  uint32_t hdr[2] = {kImageMagic, magic};
  buf_.append(reinterpret_cast<const char*>(hdr), sizeof(hdr));
}

Status ImageWriter::Write(const google::protobuf::Message& m) {
  // Serializing a proto2 message with unset required fields throws in
  // libprotobuf; make it an error value instead.
  if (sealed_) return Error(name_ + ": written after its end");
  if (!m.IsInitialized())
    return Error(name_ + ": " + m.GetTypeName() + " is missing " + m.InitializationErrorString());
  size_t len = m.ByteSizeLong();
  if (len > kMaxRecordSize) return Error(name_ + ": record too large");
  uint32_t l32 = static_cast<uint32_t>(len);
  buf_.append(reinterpret_cast<const char*>(&l32), sizeof(l32));
  size_t off = buf_.size();
  buf_.resize(off + len);
  if (!m.SerializeToArray(buf_.data() + off, static_cast<int>(len)))
    return Error(name_ + ": cannot serialize " + m.GetTypeName());
  if (buf_.size() >= kFlushAt) return Flush();
  return Ok();
}

Status ImageWriter::Flush() {
  if (buf_.empty()) return Ok();
  TRY(io::WriteFull(fd_.get(), buf_.data(), buf_.size()), "writing " + name_);
  crc_ = Crc32c(crc_, buf_.data(), buf_.size());
  written_ += buf_.size();
  buf_.clear();
  return Ok();
}

Status ImageWriter::Seal() {
  if (sealed_) return Ok();
  TRY(Flush());
  std::string t = Trailer(crc_, written_);
  TRY(io::WriteFull(fd_.get(), t.data(), t.size()), "writing " + name_);
  sealed_ = true;
  return Ok();
}

Status ImageWriter::Sync() {
  TRY(Seal());
  if (::fsync(fd_.get()) < 0) return Error::Errno("fsync " + name_);
  return Ok();
}

Status ImageWriter::Close() {
  TRY(Seal());
  if (::close(fd_.release()) < 0) return Error::Errno("close " + name_);
  return Ok();
}

Result<size_t> ImageReader::Fill(size_t want) {
  if (buf_.size() - pos_ >= want || eof_) return buf_.size() - pos_;
  buf_.erase(0, pos_);
  pos_ = 0;
  // Never past the records: the trailer is not a record.
  size_t need = size_t(std::min<uint64_t>(std::max(want, size_t(1) << 16), left_));
  size_t old = buf_.size();
  buf_.resize(old + need);
  auto got = io::ReadUpTo(fd_.get(), buf_.data() + old, need);
  if (!got.ok()) return std::move(got.error().Context(name_));
  buf_.resize(old + *got);
  left_ -= *got;
  if (*got < need || left_ == 0) eof_ = true;
  return buf_.size();
}

Result<bool> ImageReader::Read(google::protobuf::Message& m) {
  TRY_ASSIGN(size_t have, Fill(4));
  if (have == 0) return false;
  if (have < 4) return Error(name_ + ": truncated record header");
  uint32_t len;
  memcpy(&len, buf_.data() + pos_, 4);
  if (len > kMaxRecordSize) return Error(name_ + ": corrupt record length " + std::to_string(len));
  TRY_ASSIGN(have, Fill(4 + size_t(len)));
  if (have < 4 + size_t(len)) return Error(name_ + ": truncated record");
  if (!m.ParseFromArray(buf_.data() + pos_ + 4, static_cast<int>(len)))
    return Error(name_ + ": corrupt " + m.GetTypeName() + " record");
  pos_ += 4 + len;
  return true;
}

Status ImageReader::ReadOne(google::protobuf::Message& m) {
  TRY_ASSIGN(bool got, Read(m));
  if (!got) return Error(name_ + ": no " + m.GetTypeName() + " record");
  return Ok();
}

static Result<const ImageTypeInfo*> CheckHeader(int fd, const std::string& name) {
  uint32_t hdr[2];
  TRY(io::ReadFull(fd, hdr, sizeof(hdr), name));
  if (hdr[0] != kImageMagic) return Error(name + ": not a ckpt image (bad magic)");
  const ImageTypeInfo* info = FindByMagic(hdr[1]);
  if (!info) return Error(name + ": unknown image type magic");
  return info;
}

Result<ImageReader> OpenAnyImage(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  TRY_ASSIGN(const ImageTypeInfo* info, CheckHeader(fd.get(), path));
  TRY_ASSIGN(uint64_t left, CheckTrailer(fd.get(), path));
  return ImageReader(std::move(fd), path, info, left);
}

Result<std::unique_ptr<ImageDir>> ImageDir::Create(const std::string& path) {
  bool created = false;
  if (::mkdir(path.c_str(), 0700) == 0) {
    created = true;
  } else if (errno != EEXIST) {
    return Error::Errno("mkdir " + path);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  if (::fchmod(fd.get(), 0700) < 0) return Error::Errno("chmod " + path);
  // An old inventory would make a half-written dump look complete.
  if (::unlinkat(fd.get(), Info(ImageType::kInventory).pattern, 0) < 0 && errno != ENOENT)
    return Error::Errno("removing old inventory in " + path);
  return std::unique_ptr<ImageDir>(new ImageDir(path, std::move(fd), created, true));
}

Result<std::unique_ptr<ImageDir>> ImageDir::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::Errno("open image directory " + path);
  return std::unique_ptr<ImageDir>(new ImageDir(path, std::move(fd), false, false));
}

ImageDir::~ImageDir() {
  if (!writing_ || committed_) return;
  for (const auto& n : created_) ::unlinkat(dirfd_.get(), n.c_str(), 0);
  if (created_dir_) ::rmdir(path_.c_str());
}

Result<UniqueFd> ImageDir::CreateFile(const std::string& name) {
  // O_NOFOLLOW: a symlink planted in the directory must not redirect the
  // write (ckpt may run as root in a directory another user can write to).
  UniqueFd fd(::openat(dirfd_.get(), name.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return Error::Errno("create " + path_ + "/" + name);
  if (::fchmod(fd.get(), 0600) < 0) return Error::Errno("chmod " + name);
  created_.push_back(name);
  return fd;
}

Status ImageDir::LoadSums() const {
  if (!sums_loaded_) {
    for (uint32_t id : {0u, 1u}) {  // ours, and a page server's
      if (!Exists(ImageType::kChecksums, id)) continue;
      TRY_ASSIGN(ImageReader r, OpenReader(ImageType::kChecksums, id));
      pb::ChecksumEntry e;
      for (;;) {
        TRY_ASSIGN(bool got, r.Read(e));
        if (!got) break;
        sums_[e.name()] = {e.size(), e.crc32c(), e.encoding() == pb::ChecksumEntry::ZPAGES};
      }
    }
    sums_loaded_ = true;
  }
  return Ok();
}

Result<const ImageDir::Sum*> ImageDir::Listed(const std::string& name) const {
  TRY(LoadSums());
  auto it = sums_.find(name);
  if (it == sums_.end())
    return Error(path_ + "/" + name + ": not listed in checksums.img (damaged or foreign image "
                 "directory)");
  return &it->second;
}

Result<bool> ImageDir::CheckRaw(int fd, const std::string& name) const {
  auto done = verified_.find(name);
  if (done != verified_.end()) return done->second;
  TRY_ASSIGN(const Sum* listed, Listed(name));
  TRY_ASSIGN(FileSum s, SumFile(fd, name, SumThreads()));
  if (s.size != listed->size)
    return Error(path_ + "/" + name + ": damaged: " + std::to_string(s.size) + " bytes, " +
                 std::to_string(listed->size) + " when dumped (truncated, or bytes appended)");
  if (s.crc != listed->crc)
    return Error(path_ + "/" + name + ": damaged: checksum mismatch (bytes changed)");
  verified_[name] = listed->zpages;
  return listed->zpages;
}

Result<ImageWriter> ImageDir::OpenWriter(ImageType t, uint32_t id) {
  std::string name = FileName(t, id);
  TRY_ASSIGN(UniqueFd fd, CreateFile(name));
  return ImageWriter(std::move(fd), name, Info(t).magic);
}

Result<ImageReader> ImageDir::OpenReader(ImageType t, uint32_t id) const {
  std::string name = FileName(t, id);
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  TRY_ASSIGN(const ImageTypeInfo* info, CheckHeader(fd.get(), name));
  if (info->type != t)
    return Error(name + ": holds a " + info->name + " image, not " + Info(t).name);
  TRY_ASSIGN(uint64_t left, CheckTrailer(fd.get(), name));
  return ImageReader(std::move(fd), name, info, left);
}

bool ImageDir::Exists(ImageType t, uint32_t id) const {
  return ::faccessat(dirfd_.get(), FileName(t, id).c_str(), F_OK, 0) == 0;
}

Result<UniqueFd> ImageDir::CreateRaw(const std::string& name) {
  TRY_ASSIGN(UniqueFd fd, CreateFile(name));
  raw_.push_back(name);
  return fd;
}

Result<UniqueFd> ImageDir::OpenPlain(const std::string& name) const {
  // Images are plain files of this directory: never read through a symlink
  // (core-1.img -> /etc/shadow) nor from a fifo or device planted here.
  // O_NONBLOCK keeps a planted fifo from blocking the open; cleared below.
  UniqueFd fd(::openat(dirfd_.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ELOOP)
      return Error(path_ + "/" + name + ": is a symbolic link; images are never read through one",
                   ELOOP);
    return Error::Errno(path_ + "/" + name);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Errno("fstat " + path_ + "/" + name);
  if (!S_ISREG(st.st_mode))
    return Error(path_ + "/" + name + ": not a regular file; refused as an image", EINVAL);
  if (::fcntl(fd.get(), F_SETFL, 0) < 0) return Error::Errno("fcntl " + path_ + "/" + name);
  return fd;
}

Result<bool> ImageDir::Check(int fd, const std::string& name) const {
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) return CheckRaw(fd, name);
  // A file of a parent dump ("parent/parent/pages-1.img"): checked against
  // that directory's own list.
  auto done = verified_.find(name);
  if (done != verified_.end()) return done->second;
  std::string sub = name.substr(0, slash);
  UniqueFd sfd(::openat(dirfd_.get(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!sfd) return Error::Errno(path_ + "/" + sub);
  ImageDir parent(path_ + "/" + sub, std::move(sfd), false, false);
  parent.owner_ = owner_;  // a forked task stays a forked task
  TRY_ASSIGN(bool z, parent.CheckRaw(fd, name.substr(slash + 1)));
  verified_[name] = z;
  return z;
}

Result<bool> ImageDir::IsZPages(const std::string& name) const {
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  return Check(fd.get(), name);
}

Result<uint64_t> ImageDir::ListedRawSize(const std::string& name) const {
  TRY_ASSIGN(const Sum* listed, Listed(name));
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Errno("fstat " + path_ + "/" + name);
  if (uint64_t(st.st_size) != listed->size)
    return Error(path_ + "/" + name + ": damaged: " + std::to_string(st.st_size) + " bytes, " +
                 std::to_string(listed->size) + " when dumped (truncated, or bytes appended)");
  if (!listed->zpages) return uint64_t(st.st_size);
  TRY_ASSIGN(ZReader r, ZReader::Open(std::move(fd), path_ + "/" + name));
  return r.raw_size();
}

Result<uint64_t> ImageDir::RawSize(const std::string& name) const {
  auto have = unpacked_.find(name);
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  TRY_ASSIGN(bool z, Check(fd.get(), name));
  if (z && have == unpacked_.end()) {
    TRY_ASSIGN(ZReader r, ZReader::Open(std::move(fd), path_ + "/" + name));
    return r.raw_size();
  }
  struct stat st;
  if (::fstat(have != unpacked_.end() ? have->second.get() : fd.get(), &st) < 0)
    return Error::Errno("fstat " + path_ + "/" + name);
  return uint64_t(st.st_size);
}

Result<UniqueFd> ImageDir::OpenRaw(const std::string& name) const {
  auto have = unpacked_.find(name);
  if (have != unpacked_.end()) {
    UniqueFd fd(::fcntl(have->second.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return Error::Errno("dup " + name);
    return fd;
  }
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  TRY_ASSIGN(bool z, Check(fd.get(), name));
  if (!z) return fd;
  // Every reader of a raw file (the restorer blob included) reads it by
  // offset: a compressed one is decompressed once into a memfd.
  std::string what = path_ + "/" + name;
  TRY_ASSIGN(ZReader r, ZReader::Open(std::move(fd), what));
  UniqueFd mem(::memfd_create("ckpt-pages", MFD_CLOEXEC));
  if (!mem) return Error::Errno("memfd_create for " + what);
  // 2 threads (this machine kind's cores), but none in a process forked
  // from the one that opened the directory: a restoring task is traced by
  // ckpt, and its new thread would be a clone event ckpt does not expect
  // (criu/page_compress.h UnpackPages decompresses before the tasks exist).
  TRY(r.CopyTo(mem.get(), SumThreads()));
  LOG_DBG(what + ": decompressed, " + std::to_string(r.raw_size()) + " bytes");
  UniqueFd out(::fcntl(mem.get(), F_DUPFD_CLOEXEC, 0));
  if (!out) return Error::Errno("dup " + name);
  unpacked_[name] = std::move(mem);
  return out;
}

namespace {
class PlainPages : public PagesFile {
 public:
  PlainPages(UniqueFd fd, std::string name, uint64_t size)
      : fd_(std::move(fd)), name_(std::move(name)), size_(size) {}
  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t off, void* buf, size_t len) override {
    if (off > size_ || len > size_ - off) return Error(name_ + ": read past its end");
    char* p = static_cast<char*>(buf);
    while (len > 0) {
      ssize_t n = ::pread(fd_.get(), p, len, off_t(off));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::Errno("read " + name_);
      if (n == 0) return Error(name_ + " is truncated");
      p += n, off += uint64_t(n), len -= size_t(n);
    }
    return Ok();
  }

 private:
  UniqueFd fd_;
  std::string name_;
  uint64_t size_;
};

class ZPages : public PagesFile {
 public:
  explicit ZPages(ZReader r) : r_(std::move(r)) {}
  uint64_t size() const override { return r_.raw_size(); }
  Status ReadAt(uint64_t off, void* buf, size_t len) override { return r_.ReadAt(off, buf, len); }

 private:
  ZReader r_;
};
}  // namespace

Result<std::unique_ptr<PagesFile>> ImageDir::OpenPages(const std::string& name) const {
  TRY_ASSIGN(UniqueFd fd, OpenPlain(name));
  TRY_ASSIGN(bool z, Check(fd.get(), name));
  std::string what = path_ + "/" + name;
  if (z) {
    TRY_ASSIGN(ZReader r, ZReader::Open(std::move(fd), what));
    return std::unique_ptr<PagesFile>(new ZPages(std::move(r)));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Error::Errno("fstat " + what);
  return std::unique_ptr<PagesFile>(new PlainPages(std::move(fd), what, uint64_t(st.st_size)));
}

Status ImageDir::Reseal(const std::vector<std::string>& names) {
  std::vector<pb::ChecksumEntry> list;
  {
    TRY_ASSIGN(ImageReader r, OpenReader(ImageType::kChecksums));
    pb::ChecksumEntry e;
    for (;;) {
      TRY_ASSIGN(bool got, r.Read(e));
      if (!got) break;
      list.push_back(e);
    }
  }
  for (const std::string& n : names) {
    auto it = std::find_if(list.begin(), list.end(),
                           [&](const pb::ChecksumEntry& e) { return e.name() == n; });
    if (it == list.end()) return Error(path_ + "/" + n + ": not listed in checksums.img");
    UniqueFd fd(::openat(dirfd_.get(), n.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::Errno("reading back " + path_ + "/" + n);
    TRY_ASSIGN(FileSum s, SumFile(fd.get(), n));
    it->set_size(s.size);
    it->set_crc32c(s.crc);
    verified_.erase(n);
    unpacked_.erase(n);
  }
  sums_loaded_ = false;
  sums_.clear();
  const char* tmp = ".checksums.tmp";
  UniqueFd fd(::openat(dirfd_.get(), tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::Errno("create " + path_ + "/" + tmp);
  ImageWriter w(std::move(fd), tmp, Info(ImageType::kChecksums).magic);
  for (const pb::ChecksumEntry& e : list) TRY(w.Write(e));
  TRY(w.Sync());
  TRY(w.Close());
  if (::renameat(dirfd_.get(), tmp, dirfd_.get(), FileName(ImageType::kChecksums, 0).c_str()) < 0)
    return Error::Errno("rename " + path_ + "/" + tmp);
  return Ok();
}

void ImageDir::SetRawSum(const std::string& name, uint64_t size, uint32_t crc) {
  raw_sums_[name] = {size, crc};
}

Status ImageDir::Commit(const google::protobuf::Message& inventory) {
  // Raw files have no trailer: their sizes and checksums go into
  // checksums.img, as computed while they were written or read back from
  // the page cache.
  if (!raw_.empty()) {
    TRY_ASSIGN(ImageWriter sums, OpenWriter(ImageType::kChecksums));
    for (const std::string& n : raw_) {
      FileSum s;
      UniqueFd fd(::openat(dirfd_.get(), n.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) return Error::Errno("reading back " + path_ + "/" + n);
      auto known = raw_sums_.find(n);
      if (known != raw_sums_.end()) {
        // Cheap insurance that the file is what was summed: its size.
        struct stat st;
        if (::fstat(fd.get(), &st) < 0) return Error::Errno("stat " + path_ + "/" + n);
        if (uint64_t(st.st_size) != known->second.first)
          return Error(path_ + "/" + n + ": " + std::to_string(st.st_size) + " bytes, " +
                       std::to_string(known->second.first) + " written");
        s.size = known->second.first;
        s.crc = known->second.second;
      } else {
        TRY_ASSIGN(s, SumFile(fd.get(), n, SumThreads()));
      }
      pb::ChecksumEntry e;
      e.set_name(n);
      e.set_size(s.size);
      e.set_crc32c(s.crc);
      if (zraw_.count(n)) e.set_encoding(pb::ChecksumEntry::ZPAGES);
      TRY(sums.Write(e));
    }
    TRY(sums.Close());
  }
  // Everything else reaches the disk before the inventory says "complete";
  // the inventory itself appears atomically by rename.
  if (sync_ && ::syncfs(dirfd_.get()) < 0) return Error::Errno("syncfs " + path_);
  const char* tmp = ".inventory.tmp";
  TRY_ASSIGN(UniqueFd fd, CreateFile(tmp));
  ImageWriter w(std::move(fd), tmp, Info(ImageType::kInventory).magic);
  TRY(w.Write(inventory));
  if (sync_) TRY(w.Sync());
  TRY(w.Close());
  if (::renameat(dirfd_.get(), tmp, dirfd_.get(), Info(ImageType::kInventory).pattern) < 0)
    return Error::Errno("rename inventory");
  if (sync_ && ::fsync(dirfd_.get()) < 0) return Error::Errno("fsync " + path_);
  committed_ = true;
  return Ok();
}

}  // namespace ckpt::images
