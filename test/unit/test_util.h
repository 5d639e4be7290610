// Helpers shared by the unit tests: a self-removing temp directory and
// small file utilities. Tests never need root and leave nothing behind.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace ckpt::testing {

// mkdtemp under /tmp; the whole tree is removed on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ckpt-unit-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFileOrDie(const std::string& path, const std::string& data, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("open " + path);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) throw std::runtime_error("write " + path);
    off += size_t(n);
  }
  ::close(fd);
}

// Permission bits of a path, or -1 if it does not exist.
inline int ModeOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) < 0) return -1;
  return int(st.st_mode & 07777);
}

inline bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace ckpt::testing
