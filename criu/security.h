// Who may dump and restore what: ckpt run by a plain user (with
// CAP_CHECKPOINT_RESTORE, as a file capability or an ambient one) reaches
// only what that user could reach without ckpt.
//
// Dump: CheckMayDump refuses, before any process is touched, a tree with
// a task the caller could not PTRACE_ATTACH, by the kernel's own rules
// (kernel/ptrace.c __ptrace_may_access with PTRACE_MODE_REALCREDS, and the
// commoncap check): the caller's real uid and gid must be the task's real,
// effective and saved ones, the task must be dumpable, and its permitted
// capabilities a subset of the caller's -- unless the caller has
// CAP_SYS_PTRACE. The kernel's refusal of the seize stays the authority;
// this only gives the reason first ("pid N belongs to uid U; you are uid V").
//
// Restore: CheckMayRestore refuses images whose tasks hold credentials the
// caller could not have given itself with setresuid/setresgid/setgroups/
// capset/prlimit (each id one of the caller's real/effective/saved ids,
// the groups exactly the caller's, capabilities within the caller's
// permitted set, securebits and hard rlimits no higher than the caller's),
// or namespaces of their own; and says what is missing to choose pids
// (clone3 set_tid needs CAP_CHECKPOINT_RESTORE in the user namespace that
// owns ckpt's pid namespace). A fully privileged caller (see Privileged)
// is not restricted.
//
// Both read the caller's credentials once (Caller::Current); the checks
// themselves are pure functions of the caller and the target, so unit
// tests give them any credentials. The RPC service (criu/rpc) asks the
// same questions about its client (Caller::OfProcess of the peer): the
// service does the work, so only the parts about whose processes and
// credentials these are apply (CheckMayTraceTree, CheckMayOwn).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/proc_parse.h"

namespace ckpt {

struct TreeImages;

namespace security {

// Capability numbers (linux/capability.h), as bits of the 64-bit sets.
constexpr int kCapSetgid = 6, kCapNetAdmin = 12, kCapSetuid = 7, kCapSetpcap = 8,
              kCapSysPtrace = 19, kCapSysAdmin = 21, kCapSysResource = 24,
              kCapCheckpointRestore = 40;
constexpr bool HasCap(uint64_t set, int cap) { return (set >> cap) & 1; }

struct Caller {
  uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
  std::vector<uint32_t> groups;
  uint64_t cap_prm = 0, cap_eff = 0;
  uint64_t securebits = 0;
  std::vector<uint64_t> rlim_max;  // hard limits by resource number
  // kernel.yama.ptrace_scope (0 without Yama): 1 = only descendants or
  // processes that allowed it (PR_SET_PTRACER, not visible in /proc), 2 =
  // only CAP_SYS_PTRACE, 3 = nobody.
  int yama_scope = 0;
  // Full privileges: every credential check below passes. Root with the
  // capabilities that matter here (this machine's root lacks
  // CAP_SYS_RESOURCE: not every capability is required).
  bool Privileged() const;
  static Result<Caller> Current();
  // Another process's credentials as /proc shows them (an RPC client). Its
  // securebits are not visible there: taken as 0, so images with any
  // securebits set are refused to it.
  static Result<Caller> OfProcess(pid_t pid);
};

// The facts about one task the kernel's ptrace check looks at.
struct Target {
  pid_t pid = 0;
  std::string comm;
  proc::Status status;
  bool dumpable = true;  // /proc/PID/* is owned by its euid only when dumpable
};

// Pure: may `c` PTRACE_ATTACH `t`? The error names the task and the reason.
Status CheckMayTrace(const Caller& c, const Target& t);

// Every task of the tree under `root` (children as /proc shows them now)
// by CheckMayTrace.
Status CheckMayTraceTree(const Caller& c, pid_t root);

// Call before the seize (dump, pre-dump): the capabilities a dump needs
// (CAP_CHECKPOINT_RESTORE for /proc/PID/map_files; CAP_NET_ADMIN for
// `tcp_established`: TCP_REPAIR and the nftables lock), then
// CheckMayTraceTree. Ok for a privileged caller without looking.
Status CheckMayDump(const Caller& c, pid_t root, bool tcp_established);

// Pure: could `c` have given itself what `tree` holds (no namespaces of
// its own; every live task's ids, groups, capabilities, securebits and
// hard rlimits within the caller's)?
Status CheckMayOwn(const Caller& c, const TreeImages& tree);

// Pure: may `c` restore `tree` (choosing pids needs CAP_CHECKPOINT_RESTORE;
// `tcp_established` needs CAP_NET_ADMIN; then CheckMayOwn)? Call after
// LoadTreeImages, before anything is created. Ok for a privileged caller.
Status CheckMayRestore(const Caller& c, const TreeImages& tree, bool tcp_established = false);

}  // namespace security
}  // namespace ckpt
