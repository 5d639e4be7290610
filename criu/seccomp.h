// Seccomp: dumping each thread's mode and filter chain, and laying them
// out for the restorer, which reinstalls them.
//
// Dump (ckpt, right after the tree is seized, before any parasite):
//   SeccompDumper sd;
//   for each live process: TRY(sd.AddProcess(pid, threads));
//   ... TRY(sd.Write(dir));                       // seccomp.img
// AddProcess reads /proc/PID/task/TID/status (Seccomp, NoNewPrivs,
// speculation state) and, for filter mode, every filter with
// PTRACE_SECCOMP_GET_FILTER and its flags with PTRACE_SECCOMP_GET_METADATA
// (index 0 is the oldest filter). It also sets PTRACE_O_SUSPEND_SECCOMP on
// each thread under seccomp, so that the parasite's and ckpt's remote
// system calls pass its filters (strict mode would kill the victim
// otherwise); detaching clears it. Both need CAP_SYS_ADMIN and a ckpt not
// under seccomp itself: without them the dump fails before the parasite,
// leaving the process as it was.
//
// Restore:
//   LoadSeccomp(dir, &tree)   with the other images, before any process:
//                             validates seccomp.img and fills each task's
//                             TaskImages::seccomp (no image: nothing, and
//                             no_new_privs comes from core.no_new_privs)
//   TreeHasSeccomp(tree)      ckpt must then trace the tree with
//                             PTRACE_O_SUSPEND_SECCOMP (kSuspendSeccomp)
//                             from the root's PTRACE_SEIZE until it detaches
//   SeccompArgsSize / FillSeccompArgs   in EnterRestorer: the filters, each
//                             thread's chain and its clone plan (abi.h
//                             RestoreThread) in the restorer's arena.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "base/result.h"
#include "images/image_dir.h"
#include "parasite/abi.h"
#include "proto/seccomp.pb.h"

namespace ckpt {

struct TreeImages;
namespace pb {
class TaskCoreEntry;
}

class SeccompDumper {
 public:
  // Reads the seccomp state of every thread of the seized (stopped)
  // process `pid`, and suspends its filters while ckpt traces it.
  Status AddProcess(pid_t pid, const std::vector<pid_t>& threads);
  Status Write(images::ImageDir& dir) const;
  const pb::SeccompEntry& entry() const { return img_; }

 private:
  // (program, flags, prev) -> 1-based index in img_.filters.
  std::map<std::tuple<std::string, uint32_t, uint32_t>, uint32_t> index_;
  pb::SeccompEntry img_;
};

// A process's seccomp state, ready for its restorer.
struct TaskSeccomp {
  struct Filter {
    std::string insns;  // sock_filter[], 8 bytes each
    uint32_t flags = 0;
  };
  struct Thread {
    uint32_t mode = 0;
    bool no_new_privs = false;
    bool spec_allow = false;
    std::vector<uint32_t> chain;  // indexes into filters, oldest first
  };
  std::vector<Filter> filters;  // only those this process uses
  std::vector<Thread> threads;  // as core.threads; empty: no seccomp.img
};

// The PTRACE_SEIZE option restore adds when TreeHasSeccomp.
inline constexpr long kSuspendSeccomp = 1 << 21;  // PTRACE_O_SUSPEND_SECCOMP

Status LoadSeccomp(const images::ImageDir& dir, TreeImages* tree);
bool TreeHasSeccomp(const TreeImages& tree);

// Bytes FillSeccompArgs writes at its offset.
uint64_t SeccompArgsSize(const TaskSeccomp& s);
// Fills a->nr_filters/filters_off and every thread's seccomp fields and
// no_new_privs (threads already laid out at a->threads_off); the filters
// and chains go at `off` (from the start of RestoreArgs, 8-aligned).
void FillSeccompArgs(const TaskSeccomp& s, const pb::TaskCoreEntry& core, abi::RestoreArgs* a,
                     uint64_t off);

// The clone plan (exposed for unit tests): for each thread i > 0 the
// earlier thread sharing the longest prefix of its chain (the lowest such
// index on ties) and that prefix's length. plan[0] = {-1, 0}.
std::vector<std::pair<int, uint32_t>> PlanThreadClones(
    const std::vector<std::vector<uint32_t>>& chains);

}  // namespace ckpt
