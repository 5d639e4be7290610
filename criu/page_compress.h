// `--compress zstd[:LEVEL]`: pages images written compressed.
//
// CompressPages wraps the dump's PageTarget (criu/page_xfer.h): every
// pages-*.img passed through Begin/End is written as a zpages file
// (images/zpages.h: independent 1 MiB zstd frames plus an index, so any
// offset can still be read) and marked so in checksums.img (or, through
// a page server, checksums1.img). Pagemaps and every other image stay
// as they are: they are small, and their records are read in place.
//
// Begin returns the write end of a pipe; a thread of ckpt's reads it,
// compresses (libzstd with 2 worker threads) and writes the result into
// the inner target's fd, so the dump keeps splicing pages in as before.
// The thread is the only user of the inner target between Begin and
// End. On an error it keeps draining the pipe (the writer never blocks
// on a dead reader) and End reports it.
//
// Dump:  TRY_ASSIGN(pages_to, PageTarget::Local(*dir));
//        if (o.compress) TRY_ASSIGN(pages_to, CompressPages(std::move(pages_to),
//                                                           o.compress_level));
// Restore, show, lazy pages, incremental chains: the image directory
// reads zpages files by itself (images/image_dir.h). Restore calls
// UnpackPages once, so the decompression happens in ckpt, in parallel,
// once per file, before any task exists.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "criu/page_xfer.h"

namespace ckpt {

struct TreeImages;  // criu/task_images.h

// Level 1: on this machine kind (2 cores) the fastest level that still
// halves text-like memory; see docs/design.md "Compression" for numbers.
inline constexpr int kDefaultCompressLevel = 1;

// "zstd" or "zstd:LEVEL" (LEVEL -7..19). CRIU has no such option.
Status ParseCompress(const std::string& arg, bool* on, int* level);

// `level` 0 = kDefaultCompressLevel. Logs the ratio of each file at End.
Result<std::unique_ptr<PageTarget>> CompressPages(std::unique_ptr<PageTarget> inner, int level);

// Restore, in ckpt right after LoadTreeImages (before any task exists):
// every compressed pages file the tree reads (its own, an ancestor's,
// a parent image's) is decompressed into `dir`'s memfds now, with 2
// threads; the restoring tasks (traced by ckpt: no threads there) and
// their children then only get fds of them. Nothing for raw files.
Status UnpackPages(const images::ImageDir& dir, const TreeImages& tree);

}  // namespace ckpt
