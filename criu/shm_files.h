// Files of in-memory filesystems that the tree maps MAP_SHARED under their
// names: POSIX shared memory (shm_open(3) makes /dev/shm/NAME, a tmpfs
// file) and any tmpfs file mapped shared. Their pages are the program's
// state as much as its private memory is (MPI libraries keep their
// message queues there: Open MPI's vader segments), but unlike a disk
// file nothing keeps them: the contents change after a --leave-running
// dump, and a reboot or the job's own cleanup removes them. A shared
// mapping of a file on disk is the file's business (not saved); a deleted
// tmpfs file is shared memory of its own (criu/shmem.h).
//
// Dump: each such file once (by device and inode), read through
// /proc/PID/map_files while the tree is frozen: shm-files.img (path, size,
// mode, owner) and its bytes in shm-file-<id>.img (holes kept). Only for
// tasks in ckpt's own mount namespace: a tree with a mount namespace of
// its own has its tmpfs mounts saved whole (criu/ns/mnt_ns.h).
//
// Restore: before any task exists, each file gets its dumped contents
// back: an existing file at the path is emptied and refilled (it must be a
// regular file on a tmpfs, reached without symlinks); a missing one is
// made with its mode and owner (and missing directories above it inside
// the tmpfs, 0700, with its owner). Every task then maps the file by path, as
// before.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "images/image_dir.h"

namespace ckpt {

// Saves the tmpfs files the live tasks `pids` map shared (see the top).
// Call once the tasks' memory is dumped, tree still frozen. Writes nothing
// when there is none.
Status DumpShmFiles(const std::vector<pid_t>& pids, images::ImageDir& dir);

// Puts every file of shm-files.img back (see the top). Call in ckpt's own
// mount namespace before the tree is created. Absent image: nothing to do.
Status RestoreShmFiles(const images::ImageDir& dir);

}  // namespace ckpt
