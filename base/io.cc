#include "base/io.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace ckpt::io {

Status WriteFull(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("write");
    }
    p += r;
    n -= r;
  }
  return Ok();
}

Result<size_t> ReadUpTo(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("read");
    }
    if (r == 0) break;
    got += r;
  }
  return got;
}

Status ReadFull(int fd, void* buf, size_t n, const std::string& what) {
  TRY_ASSIGN(size_t got, ReadUpTo(fd, buf, n));
  if (got != n)
    return Error(what + " is truncated (wanted " + std::to_string(n) + " bytes, got " +
                 std::to_string(got) + ")");
  return Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd.get(), buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("read " + path);
    }
    if (r == 0) break;
    out.append(buf, r);
  }
  return out;
}

Result<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0) return Error::Errno("readlink " + path);
  return std::string(buf, n);
}

}  // namespace ckpt::io
