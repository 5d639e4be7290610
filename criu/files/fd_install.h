// Putting a restored task's fds at their numbers.
//
// The restoring root opens every file of the tree once (fd_restore.h). A
// file the root itself holds is opened straight at the root's own (lowest)
// fd number for it, its "home"; the others sit above every number being
// restored. RLIMIT_NOFILE bounds fd numbers, so this is what lets a
// process with fds up to N restore under a limit below 2N.
//
// Every task inherits those fds from the root and must turn them into its
// own table: a parallel move, where a number one file must go to may still
// hold another file the task needs. InstallTaskFds orders the moves so no
// needed fd is overwritten, breaking cycles with one spare number at a
// time, then closes every source the task does not hold.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "base/result.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// The root's home number for each file id it holds: its lowest fd number
// for that file.
std::map<uint32_t, int> HomesOf(const std::vector<pb::FdinfoEntry>& root_fds);

// Makes this process's fd table hold `fds` (each fdinfo: number, file id,
// close-on-exec) taken from `sources` (file id -> fd open now). Numbers in
// `keep` (service fds) are never touched; they must not be numbers in
// `fds`. Spare numbers for cycles are taken at or above `spare_from`.
// Sources not in `fds` are closed.
Status InstallTaskFds(const std::vector<pb::FdinfoEntry>& fds,
                      const std::map<uint32_t, int>& sources, const std::set<int>& keep,
                      int spare_from);

}  // namespace ckpt::files
