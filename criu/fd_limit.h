// The open-file limit a restore needs. The restoring root holds every file
// of the tree at once, the ones it does not hold itself above the highest
// fd number being restored, and RLIMIT_NOFILE bounds fd numbers, not
// counts. ckpt raises its own limit (soft, and hard where it has
// CAP_SYS_RESOURCE, up to fs.nr_open) for the restore; every restored task
// gets its own limits back in its restorer.
#pragma once

#include <cstddef>

#include "base/result.h"

namespace ckpt {

// The fd numbers a restore needs where `nr_away` of its `nr_files` files
// are not held by the root (they sit above `max_fd`; the root's own sit at
// their numbers, criu/files/fd_install.h).
struct FdNumbers {
  size_t least;  // max_fd + 1 and one per file away: below this it cannot work
  size_t ample;  // with room for what it keeps open besides (other ends of
                 // pipes and socket pairs until they are taken, service fds)
};
FdNumbers FdNumbersNeeded(int max_fd, size_t nr_files, size_t nr_away);

// Raises RLIMIT_NOFILE (soft to hard; hard too where allowed, up to
// fs.nr_open) towards `n.ample`. Fails, naming the numbers and what to do,
// only if the limit cannot even reach `n.least`.
Status RaiseFdLimitFor(FdNumbers n);

}  // namespace ckpt
