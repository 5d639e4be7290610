// The restoring task's side of restore: runs in the child ckpt cloned with
// the dumped pid. Puts fds, session and fs context in place, lays out the
// restorer region (blob + POD plan), and jumps into the restorer blob.
#pragma once

#include "base/result.h"
#include "criu/options.h"
#include "criu/task_images.h"
#include "images/image_dir.h"

namespace ckpt {

// Never returns on success. On failure returns the error; the caller
// reports it to the parent and exits.
Status EnterRestorer(const TaskImages& t, const images::ImageDir& dir, const Options& o,
                     int& err_fd);

}  // namespace ckpt
