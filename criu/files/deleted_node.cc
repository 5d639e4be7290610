#include "criu/files/deleted_node.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ckpt::files {
namespace {
constexpr char kDeleted[] = " (deleted)";
constexpr size_t kDeletedLen = sizeof(kDeleted) - 1;
}  // namespace

bool IsDeletedLink(const std::string& link) {
  return link.size() > kDeletedLen &&
         link.compare(link.size() - kDeletedLen, kDeletedLen, kDeleted) == 0;
}

std::string StripDeleted(const std::string& link) {
  return IsDeletedLink(link) ? link.substr(0, link.size() - kDeletedLen) : link;
}

Result<int> OpenDeletedNode(const std::string& path, mode_t mode, dev_t rdev, int flags) {
  mode_t kind = mode & S_IFMT, perm = mode & 07777;
  const char* what = kind == S_IFDIR ? "deleted directory " : kind == S_IFIFO ? "deleted FIFO "
                                                                              : "deleted device node ";
  int r = kind == S_IFDIR ? mkdir(path.c_str(), perm) : mknod(path.c_str(), kind | perm, rdev);
  if (r < 0)
    return Error::Errno(what + path + ": making it again" +
                        (errno == EEXIST ? " (the name exists again)" : ""));
  // Made with the umask applied: the permissions as they were.
  (void)chmod(path.c_str(), perm);
  int fd = open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
  int err = errno;
  if ((kind == S_IFDIR ? rmdir(path.c_str()) : unlink(path.c_str())) < 0 && fd >= 0) {
    err = errno;
    close(fd);
    fd = -1;
  }
  if (fd < 0) {
    errno = err;
    return Error::Errno(what + path + ": open");
  }
  return fd;
}

Status EnterDeletedDir(const std::string& path, mode_t mode) {
  // Tasks restored side by side may share it: an existing directory is
  // used, and one removed under us is made again (a bounded number of times).
  for (int attempt = 0;; attempt++) {
    if (mkdir(path.c_str(), mode & 07777) < 0 && errno != EEXIST)
      return Error::Errno("deleted working directory " + path + ": mkdir");
    (void)chmod(path.c_str(), mode & 07777);
    if (chdir(path.c_str()) == 0) break;
    if (errno != ENOENT || attempt == 3)
      return Error::Errno("deleted working directory " + path + ": chdir");
  }
  if (rmdir(path.c_str()) < 0 && errno != ENOENT)
    return Error::Errno("deleted working directory " + path + ": rmdir");
  return Ok();
}

}  // namespace ckpt::files
