#include "test/fuzz/fuzz_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "base/log.h"
#include "images/image_check.h"

namespace ckpt::fuzz {
namespace {

[[noreturn]] void Die(const char* what) {
  perror(what);
  abort();
}

void WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) Die("fuzz: write");
    p += w;
    n -= size_t(w);
  }
}

bool GoodName(const std::string& n) {
  if (n.empty() || n == "." || n == "..") return false;
  for (char c : n)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

ScratchDir* g_dir;

void RemoveScratch() {
  if (!g_dir) return;
  std::string p = g_dir->path();
  DIR* d = opendir(p.c_str());
  if (d) {
    while (struct dirent* e = readdir(d))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
        unlink((p + "/" + e->d_name).c_str());
    closedir(d);
  }
  rmdir(p.c_str());
}

bool HasTrailerMark(const std::string& b) {
  if (b.size() < images::kTrailerSize) return false;
  uint32_t mark;
  memcpy(&mark, b.data() + b.size() - images::kTrailerSize, 4);
  return mark == images::kTrailerMark;
}

constexpr uint32_t kImageMagic = 0x54504b43;  // "CKPT": every record image starts so

}  // namespace

std::string SealedImage(const uint8_t* data, size_t size) {
  std::string b(reinterpret_cast<const char*>(data), size);
  return HasTrailerMark(b) ? b : images::SealImage(b);
}

void Quiet() {
  log::SetLevel(0);
  google::protobuf::SetLogHandler(nullptr);  // "Can't parse message ..." on every bad record
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null < 0) Die("fuzz: /dev/null");
  log::SetFd(null);
  dup2(null, STDOUT_FILENO);
}

MemFile::MemFile(const uint8_t* data, size_t size) {
  fd_ = memfd_create("fuzz-input", MFD_CLOEXEC);
  if (fd_ < 0) Die("fuzz: memfd_create");
  WriteAll(fd_, data, size);
}

MemFile::~MemFile() { close(fd_); }

ScratchDir& ScratchDir::Get() {
  if (!g_dir) {
    g_dir = new ScratchDir();
    atexit(RemoveScratch);
  }
  return *g_dir;
}

ScratchDir::ScratchDir() {
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/ckpt-fuzz-XXXXXX";
  if (!mkdtemp(tmpl.data())) Die("fuzz: mkdtemp");
  path_ = tmpl;
  dirfd_ = open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd_ < 0) Die("fuzz: open scratch dir");
}

void ScratchDir::Clear() {
  std::vector<std::string> names;
  DIR* d = opendir(path_.c_str());
  if (!d) Die("fuzz: opendir");
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.push_back(e->d_name);
  closedir(d);
  // The code under test never creates directories here; files only.
  for (const auto& n : names)
    if (unlinkat(dirfd_, n.c_str(), 0) < 0) Die("fuzz: unlink");
}

void ScratchDir::Seal() {
  std::vector<std::string> names;
  DIR* d = opendir(path_.c_str());
  if (!d) Die("fuzz: opendir");
  while (struct dirent* e = readdir(d))
    if (e->d_type == DT_REG) names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<images::FileSum> sums;
  bool listed = false;
  for (const auto& n : names) {
    int fd = openat(dirfd_, n.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) Die("fuzz: open");
    uint32_t magic = 0;
    bool record = pread(fd, &magic, 4, 0) == 4 && magic == kImageMagic;
    listed |= n == "checksums.img";
    if (record) {
      off_t size = lseek(fd, 0, SEEK_END);
      std::string b(size_t(size), '\0');
      if (pread(fd, b.data(), b.size(), 0) != ssize_t(b.size())) Die("fuzz: read");
      if (!HasTrailerMark(b)) {
        std::string t = images::Trailer(images::Crc32c(0, b.data(), b.size()), b.size());
        WriteAll(fd, reinterpret_cast<const uint8_t*>(t.data()), t.size());
      }
    } else {
      auto s = images::SumFile(fd, n);
      if (!s.ok()) Die("fuzz: checksum");
      sums.push_back(*s);
    }
    close(fd);
  }
  if (listed) return;
  std::string list = images::ChecksumsImage(sums);
  int fd = openat(dirfd_, "checksums.img", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) Die("fuzz: create checksums.img");
  WriteAll(fd, reinterpret_cast<const uint8_t*>(list.data()), list.size());
  close(fd);
}

void ScratchDir::UnpackInto(const uint8_t* data, size_t size) {
  Clear();
  size_t pos = 0;
  int files = 0;
  while (pos < size && files < kMaxFiles) {
    size_t nlen = data[pos] & 0x7f;
    bool hole = data[pos++] & 0x80;
    if (nlen == 0 || nlen > 64 || size - pos < nlen) break;
    std::string name(reinterpret_cast<const char*>(data + pos), nlen);
    pos += nlen;
    uint32_t dlen = 0;
    size_t have = std::min<size_t>(4, size - pos);
    memcpy(&dlen, data + pos, have);  // short at the end: the rest reads as 0
    pos += have;
    size_t n = hole ? 0 : std::min<size_t>(dlen, size - pos);
    if (GoodName(name)) {
      int fd = openat(dirfd_, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) Die("fuzz: create");
      if (hole) {
        if (ftruncate(fd, std::min(dlen, kMaxHole)) < 0) Die("fuzz: ftruncate");
      } else {
        WriteAll(fd, data + pos, n);
      }
      close(fd);
      files++;
    }
    pos += n;
  }
}

}  // namespace ckpt::fuzz
