// The restoring task's side of restore: runs in the child ckpt cloned with
// the dumped pid. Puts fds, session and fs context in place, lays out the
// restorer region (blob + POD plan), and jumps into the restorer blob.
#pragma once

#include <map>

#include "base/result.h"
#include "criu/options.h"
#include "criu/task_images.h"
#include "images/image_dir.h"
#include "proto/fdinfo.pb.h"

namespace ckpt {

namespace files {
class InheritedFds;  // criu/files/inherit_fd.h
}
class FdTableSync;  // criu/shared_tables.h

// Fds every task of the tree inherits from the root (or from ckpt).
struct TreeFds {
  std::map<uint32_t, int> files;  // file id -> fd holding that open file
  // File id -> the root's own fd number for it (files::HomesOf): where the
  // root opens that file, so it needs no move later.
  std::map<uint32_t, int> homes;
  std::map<uint64_t, int> shmem;  // shmid -> memfd with the saved contents
  int err_fd = -1;                // errors go to ckpt here
  int log_fd = -1;
  int base = 3;    // service fds live at or above: above every dumped fd
  int go_fd = -1;  // the root reads one byte here before anything else
  int go_w = -1;   // its write end, which the root closes: ckpt gone = EOF
  // The tree has a user namespace of its own (criu/ns/user_ns.h): every
  // task restores inside it.
  bool in_user_ns = false;
  const std::map<uint32_t, pb::FileEntry>* entries = nullptr;  // the tree's files
  // --inherit-fd copies and the orphan pty socket (criu/files/inherit_fd.h,
  // orphan_pty.h), for the root's OpenFiles.
  const files::InheritedFds* inherited = nullptr;
  int orphan_pty_sk = -1;
  // --lazy-pages (criu/lazy_pages.h): the connection to the lazy-pages
  // daemon each restorer sends its userfaultfd over, and the UFFDIO_API
  // features to ask for; -1 for an ordinary restore.
  int lazy_fd = -1;
  uint64_t lazy_features = 0;
  // Processes sharing one fd table (criu/shared_tables.h): the order they
  // act in; null when no table is shared.
  const FdTableSync* fd_tables = nullptr;
};

// Never returns on success. On failure returns the error; the caller
// reports it to the parent and exits.
Status EnterRestorer(const TaskImages& t, const images::ImageDir& dir, const Options& o,
                     TreeFds& fds);

}  // namespace ckpt
