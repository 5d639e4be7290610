#include "criu/files/fd_restore.h"

#include <fcntl.h>
#include <unistd.h>

namespace ckpt::files {

Status RestoreFds(const images::ImageDir& dir, const std::vector<pb::FdinfoEntry>& fds,
                  const std::map<uint32_t, pb::FileEntry>& files, const RestoreOpts& o) {
  std::map<uint32_t, int> opened;  // file id -> the fd that holds it
  for (const pb::FdinfoEntry& f : fds) {
    int target = int(f.fd());
    int cloexec = f.cloexec() ? O_CLOEXEC : 0;
    auto shared = opened.find(f.file_id());
    if (shared != opened.end()) {
      // One open file description behind several fds: share it.
      if (dup3(shared->second, target, cloexec) < 0)
        return Error::Errno("dup to fd " + std::to_string(target));
      continue;
    }
    const pb::FileEntry& fe = files.at(f.file_id());
    const FileHandler* h = HandlerFor(fe.kind());
    if (!h) return Error("fd " + std::to_string(target) + ": unknown file kind");
    TRY_ASSIGN(int fd, h->open(fe, o), "fd " + std::to_string(target));
    // open() returns the lowest free fd, never above a free target.
    if (fd != target) {
      if (dup3(fd, target, cloexec) < 0) {
        close(fd);
        return Error::Errno("dup to fd " + std::to_string(target));
      }
      close(fd);
    } else if (cloexec) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    opened[f.file_id()] = target;
  }
  return Ok();
}

}  // namespace ckpt::files
