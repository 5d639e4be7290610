// `ckpt pre-dump -t PID -D DIR [--prev-images-dir PREV]`: one step of an
// incremental chain, taken while the tree keeps running (CRIU's pre-dump).
//
// The tree is frozen only to start or continue the write tracking and to
// read which pages to save (criu/mem_track.h: no parasite, nothing mapped
// into the processes; one remote userfaultfd()+close() per process the
// first time). It then runs on while ckpt copies those pages from
// /proc/PID/mem: a page written after the freeze is saved again by the
// next step, so a copy newer than the freeze is fine. Pages unchanged
// since PREV are "in parent". Images: pstree, mm-PID (VMAs),
// pagemap-PID, pages-N, memtrack (the tracker left for the next step)
// and an inventory marked pre_dump (restore refuses it alone).
// Memory goes through a PageTarget (criu/page_xfer.h): the directory, or
// a page server with --page-server.
//
// On any error the tree is resumed unchanged, the tracker (if started)
// exits and the kernel drops the write-protection, and DIR is removed.
#pragma once

#include "base/result.h"
#include "criu/kerndat.h"
#include "criu/options.h"

namespace ckpt {

Status PreDump(const Options& o, const KernelFeatures& kf);

}  // namespace ckpt
