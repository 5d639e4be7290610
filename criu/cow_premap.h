// Copy-on-write sharing after restore (issue 14 item 7): pages a child
// still shared with its parent at dump (saved once: their pagemap entries
// name another pages file) are the same physical pages again after
// restore, so a tree of forked workers does not multiply its memory.
//
// How: each restoring task, still running ckpt's code, maps its plain
// private anonymous VMAs at their dumped addresses and fills them
// (PremapCow) before it forks its children. A child inherits those
// mappings copy-on-write; for each of its own VMAs that its parent
// premapped with the same bounds it only writes its own pages and zaps
// (MADV_DONTNEED) the pages it did not have; the pages it shared stay
// shared. Its own children then inherit from it. The restorer keeps the
// premapped VMAs (RestoreVma kVmaPremapped) instead of mapping them again
// and reads no pages into them.
// Only VMAs whose range is free in the task at that point are premapped
// (ckpt's own mappings may sit there: those are restored as before), and
// only plain ones: no MAP_GROWSDOWN, DONTFORK, WIPEONFORK, DROPPABLE.
//
//   RunTask (restore_tree.cc), before forking its children:
//     TRY(PremapCow(t, dir));
//   EnterRestorer (restore_task.cc): IsPremapped(v) marks the VMA, and
//     its pages are left out of the restorer's list.
#pragma once

#include "base/result.h"
#include "criu/task_images.h"
#include "images/image_dir.h"
#include "proto/mm.pb.h"

namespace ckpt {

Status PremapCow(const TaskImages& t, const images::ImageDir& dir);

// The VMA was premapped by this task (PremapCow), with its contents.
bool IsPremapped(const pb::VmaEntry& v);

}  // namespace ckpt
