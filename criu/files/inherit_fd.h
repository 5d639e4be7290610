// --inherit-fd fd[N]:KEY (CRIU's semantics): the caller of ckpt passes an
// open fd N that stands for the dumped file KEY names; every fd of the
// tree that held that file gets a dup of it at its number, with its dumped
// status flags (O_NONBLOCK, O_APPEND: set on the caller's open file, which
// it shares), instead of ckpt opening or making the file. This is how a
// runtime gives a restored container its stdio (runc: fd[0..2] and the
// "pipe:[INO]" keys it recorded at dump).
//
// Keys a file answers to (KeysOf), as CRIU names them:
//   pipe:[INO] or pipe[INO]      an anonymous pipe, by its inode at dump
//   socket:[INO] or socket[INO]  a unix socket, by its inode at dump
//   tty[RDEV:DEV]                a terminal (hex; --external tty, or a pty
//                                slave whose master was outside)
//   file[MNT_ID:INODE]           a file dumped with --external file[..]
//   /path or path                a file or FIFO reopened by path
//
// Needed, not optional, for what the dump could not save (CheckInherited
// refuses the restore before anything exists, naming pid, fd and key):
//   - a pipe whose other side was held only outside the tree (PipeEntry
//     external). CRIU makes a new pipe there instead; ckpt refuses: the
//     restored program would write into a pipe nobody reads (SIGPIPE) or
//     read end-of-file, and its output would be lost without a word.
//   - a file dumped through --external (FILE_EXT);
//   - a pty slave whose master was outside, unless --orphan-pts-master.
// An inherited pipe read end that is not the dumped pipe and is empty gets
// the bytes the program had not read at dump first.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/options.h"
#include "criu/task_images.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// "tty[8800:19]": CRIU's key of a terminal (hex st_rdev and st_dev).
std::string TtyKey(uint64_t rdev, uint64_t dev);
std::string Hex(uint64_t v);

// The keys an --inherit-fd may name entry e by (see above).
std::vector<std::string> KeysOf(const pb::FileEntry& e);

class InheritedFds {
 public:
  InheritedFds() = default;
  InheritedFds(InheritedFds&&) = default;
  InheritedFds& operator=(InheritedFds&&) = default;

  // In ckpt, before the root is created (restore.cc): checks o.inherit_fds
  // against the images (CheckInherited) and takes a close-on-exec copy of
  // each fd at or above `base` (above every restored fd number), which the
  // root inherits at clone and OpenFiles uses.
  static Result<InheritedFds> Prepare(const Options& o, const TreeImages& tree, int base);

  // The copy standing for e, or -1.
  int Find(const pb::FileEntry& e) const;
  // ckpt's copies, once the root has its own: a pipe's reader then sees
  // end-of-file when the tree's writers are gone, not when ckpt exits.
  void CloseCopies() { copies_.clear(); }

 private:
  std::map<std::string, int> by_key_;
  std::vector<UniqueFd> copies_;
};

// Checks before any process exists: every file that can only come from
// the caller has an --inherit-fd, every --inherit-fd is an open fd of ckpt
// whose access mode fits the fds it replaces. Errors name the task's pid
// and fd and the key, with the option that would fix it. Keys matching
// nothing are warned about.
Status CheckInherited(const Options& o, const TreeImages& tree);

// In the root (OpenFiles): the open file for e from inherited fd `fd`: a
// dup with e's status flags; a pipe read end also gets the saved unread
// bytes (see above).
Result<int> OpenInherited(const pb::FileEntry& e, int fd, RestoreContext& ctx);

}  // namespace ckpt::files
