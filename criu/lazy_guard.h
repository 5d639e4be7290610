// The lazy-pages daemon's guard: what keeps a restored program from
// reading silent zeros when the daemon dies (criu/uffd_lazy.h: closing the
// last userfaultfd reference turns every missing page into a zero page).
//
// A child process of the daemon, forked once the images are loaded. It
// holds a dup of every userfaultfd the daemon serves and mirrors which
// pages each mm is owed (the lazy plan, minus what munmap/MADV_DONTNEED
// removed, moved by mremap, copied at fork: the daemon forwards those
// events). It never reads the fds. When the daemon's end of their socket
// closes without Finish() (SIGKILL, crash, an error), the guard
// UFFDIO_POISONs every owed page that is still missing (pages present
// answer EEXIST and are skipped) and closes the fds: each such page raises
// SIGBUS when touched, the others read what they hold. Needs
// UFFD_FEATURE_POISON (Linux 6.6); without it the guard warns that a dying
// daemon leaves zeros.
//
//   TRY_ASSIGN(LazyGuard g, LazyGuard::Start(tree));   // after loading
//   TRY(g.Add(key, image_pid, uffd));  ... g.Drop / g.Move / g.Fork ...
//   TRY(g.Finish());                   // every page in: the guard goes
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/task_images.h"

namespace ckpt {

class LazyGuard {
 public:
  static Result<LazyGuard> Start(const TreeImages& tree);
  LazyGuard() = default;
  LazyGuard(LazyGuard&&) = default;
  LazyGuard& operator=(LazyGuard&&) = default;

  Status Add(uint32_t key, pid_t image_pid, int uffd);
  Status Fork(uint32_t parent_key, uint32_t child_key, int uffd);
  Status Drop(uint32_t key, uint64_t start, uint64_t end);
  Status Move(uint32_t key, uint64_t from, uint64_t to, uint64_t len);
  // Every page is in: the guard closes its fds and exits; waits for it.
  Status Finish();
  pid_t pid() const { return pid_; }

 private:
  UniqueFd sk_;
  pid_t pid_ = -1;
};

}  // namespace ckpt
