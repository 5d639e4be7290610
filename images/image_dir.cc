#include "images/image_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/io.h"
#include "base/log.h"

namespace ckpt::images {
namespace {
constexpr size_t kFlushAt = 1 << 20;
}

Status ImageWriter::Write(const google::protobuf::Message& m) {
  // Serializing a proto2 message with unset required fields throws in
  // libprotobuf; make it an error value instead.
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
  buf_.clear();
  return Ok();
}

Status ImageWriter::Sync() {
  TRY(Flush());
  if (::fsync(fd_.get()) < 0) return Error::Errno("fsync " + name_);
  return Ok();
}

Status ImageWriter::Close() {
  TRY(Flush());
  if (::close(fd_.release()) < 0) return Error::Errno("close " + name_);
  return Ok();
}

Result<size_t> ImageReader::Fill(size_t want) {
  if (buf_.size() - pos_ >= want || eof_) return buf_.size() - pos_;
  buf_.erase(0, pos_);
  pos_ = 0;
  size_t need = std::max(want, size_t(1) << 16);
  size_t old = buf_.size();
  buf_.resize(old + need);
  auto got = io::ReadUpTo(fd_.get(), buf_.data() + old, need);
  if (!got.ok()) return std::move(got.error().Context(name_));
  buf_.resize(old + *got);
  if (*got < need) eof_ = true;
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
  return ImageReader(std::move(fd), path, info);
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

Result<ImageWriter> ImageDir::OpenWriter(ImageType t, uint32_t id) {
  std::string name = FileName(t, id);
  TRY_ASSIGN(UniqueFd fd, CreateFile(name));
  uint32_t hdr[2] = {kImageMagic, Info(t).magic};
  TRY(io::WriteFull(fd.get(), hdr, sizeof(hdr)), "writing " + name);
  return ImageWriter(std::move(fd), name);
}

Result<ImageReader> ImageDir::OpenReader(ImageType t, uint32_t id) const {
  std::string name = FileName(t, id);
  TRY_ASSIGN(UniqueFd fd, OpenRaw(name));
  TRY_ASSIGN(const ImageTypeInfo* info, CheckHeader(fd.get(), name));
  if (info->type != t)
    return Error(name + ": holds a " + info->name + " image, not " + Info(t).name);
  return ImageReader(std::move(fd), name, info);
}

bool ImageDir::Exists(ImageType t, uint32_t id) const {
  return ::faccessat(dirfd_.get(), FileName(t, id).c_str(), F_OK, 0) == 0;
}

Result<UniqueFd> ImageDir::CreateRaw(const std::string& name) { return CreateFile(name); }

Result<UniqueFd> ImageDir::OpenRaw(const std::string& name) const {
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

Status ImageDir::Commit(const google::protobuf::Message& inventory) {
  // Everything else reaches the disk before the inventory says "complete";
  // the inventory itself appears atomically by rename.
  if (::syncfs(dirfd_.get()) < 0) return Error::Errno("syncfs " + path_);
  const char* tmp = ".inventory.tmp";
  TRY_ASSIGN(UniqueFd fd, CreateFile(tmp));
  uint32_t hdr[2] = {kImageMagic, Info(ImageType::kInventory).magic};
  TRY(io::WriteFull(fd.get(), hdr, sizeof(hdr)), "writing inventory");
  ImageWriter w(std::move(fd), tmp);
  TRY(w.Write(inventory));
  TRY(w.Sync());
  TRY(w.Close());
  if (::renameat(dirfd_.get(), tmp, dirfd_.get(), Info(ImageType::kInventory).pattern) < 0)
    return Error::Errno("rename inventory");
  if (::fsync(dirfd_.get()) < 0) return Error::Errno("fsync " + path_);
  committed_ = true;
  return Ok();
}

}  // namespace ckpt::images
