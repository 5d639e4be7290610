// Fault injection: make ckpt fail (or die) at a named point, to prove that
// every failure on the way leaves the victim (dump) or the host (restore)
// as it was. Switched on at run time, no rebuild:
//
//   CKPT_FAULT=dump-before-cure ckpt dump ...          # fails there
//   CKPT_FAULT=infect-mmap:kill ckpt dump ...          # SIGKILLs itself there
//   CKPT_FAULT=dump-seized,restore-forked ...          # several points
//
// A point is one line at its site:
//
//   CKPT_FAULT("dump-before-cure");   // returns Error("fault injected at ...")
//
// in any function returning Status or Result<T>. Every name used in code
// is listed once in Points() (base/fault.cc), which `ckpt fault-points`
// prints; CKPT_FAULT naming a point not in the list is refused by
// CheckEnv() before ckpt does anything. With `:kill` the process that
// reaches the point (ckpt, or a restoring task still running ckpt's code)
// SIGKILLs itself. The two points inside the restorer blob are handed to
// the blob as flags in its arguments (criu/fault_blob.h) and fail through
// the blob's own exit path.
#pragma once

#include <string_view>
#include <vector>

#include "base/result.h"

namespace ckpt::fault {

struct Point {
  const char* name;   // "dump-before-cure"
  const char* where;  // one line for `ckpt fault-points`
};

// Every point ckpt knows, in the order a dump and a restore reach them.
const std::vector<Point>& Points();

// Refuses a CKPT_FAULT that names unknown points or an unknown mode.
Status CheckEnv();

// True when CKPT_FAULT names `point` (in fail mode). In kill mode it does
// not return: the calling process SIGKILLs itself.
bool At(std::string_view point);
// Whether CKPT_FAULT names `point`, and whether with `:kill` (no action).
bool Armed(std::string_view point);
bool KillMode(std::string_view point);

// The error an injected failure returns: names the point.
Error Injected(std::string_view point);

// Prints every point with its place, one a line (`ckpt fault-points`).
int PrintPoints();

}  // namespace ckpt::fault

#define CKPT_FAULT(point)                                                \
  do {                                                                   \
    if (::ckpt::fault::At(point)) return ::ckpt::fault::Injected(point); \
  } while (0)
