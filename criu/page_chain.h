// Restore of an incremental chain (criu/mem_track.h): pagemap entries
// marked `in_parent` are resolved, before any process exists, into
// entries that read from the pages files of the parent images
// (DIR/parent, DIR/parent/parent, ...), so the restorer itself knows
// nothing of chains.
//
//   TRY(ResolveParentPages(dir, &tree));   // in LoadTreeImages, after the checks
//   ... dir.OpenRaw(PagesSourceName(entry.src_pages_id())) ...
//
// A resolved entry's src_pages_id carries the depth of the directory it
// reads from in its top bits (depth << kChainDepthShift | pages id); ids
// of the dump's own directory have depth 0 and are unchanged.
//
// Refused, naming the directory: a chain longer than kMaxChain or with a
// loop, a step without inventory or memtrack image, a step of another
// process (root pid, or a process's start time, differ), pages a step says
// are in its parent that the parent does not hold, pagemap entries out of
// order or pointing outside their pages files.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "criu/task_images.h"
#include "images/image_dir.h"

namespace ckpt {

inline constexpr uint32_t kChainDepthShift = 24;

// The name, relative to the dump's directory, of pages source `src_pages_id`.
std::string PagesSourceName(uint32_t src_pages_id);

Status ResolveParentPages(const images::ImageDir& dir, TreeImages* tree);

}  // namespace ckpt
