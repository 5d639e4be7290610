// Decoding a CRIU RPC request into ckpt's Options.
//
// Every field of criu_opts is either mapped onto Options or, when the
// client set it to a value ckpt cannot honour, refused: MapRequestOptions
// returns an Error naming the field ("criu_opts.track_mem: ..."), which the
// service sends back as success=false with that cr_errmsg. Neutral values
// sent explicitly (log_level, notify_scripts, manage_cgroups=false, an
// empty lsm_profile, ...) are accepted. Nothing is ignored silently.
//
// Fds in criu_opts are the client's: images_dir_fd, work_dir_fd and
// status_fd are reached through /proc/CLIENT/fd/N (CRIU's way); the
// inherit_fd fds are ckpt's own (swrk: the client hands them over as ckpt's
// fds, as runc does with the container's stdio), so inherit_fd and
// rst_sibling are refused outside swrk, as CRIU does.
//
// Access (SO_PEERCRED): a caller that is not root may dump only processes
// it could ptrace (CheckDumpAccess) and restore only images whose
// credentials it could have given itself (CheckRestoreAccess), by the
// same rules as ckpt run by that user (criu/security.h); root may do
// anything.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/options.h"
#include "proto/rpc.pb.h"

namespace ckpt::rpc {

// The process at the other end of the socket (SO_PEERCRED).
struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// How the request arrived.
struct RequestContext {
  Peer peer;
  bool swrk = false;  // `ckpt swrk FD` (vs `ckpt service`)
};

// Options of one DUMP or RESTORE, with the fds they use (closed with it).
struct MappedRequest {
  Options opts;
  UniqueFd images_dir_fd;  // ckpt's copy of the client's images directory
  UniqueFd work_dir_fd;    // ... of its work directory (= images dir if not given)
  UniqueFd status_fd;      // criu_opts.status_fd: "\0" written once the request is taken
  std::string work_dir;    // path of the work directory (log_file is relative to it)
  bool notify = false;     // criu_opts.notify_scripts: the client wants notifications
};

// Maps `in` for a request of `type` (DUMP or RESTORE). Opens the client's
// fds; fails naming the first field ckpt cannot honour.
Result<MappedRequest> MapRequestOptions(const criu_opts& in, criu_req_type type,
                                        const RequestContext& ctx);

// A non-root caller may dump the tree of `pid` only if it could trace
// every process of it (security::CheckMayTraceTree).
Status CheckDumpAccess(const Peer& peer, pid_t pid);

// A non-root caller may restore only images it could have made itself
// (security::CheckMayOwn: ids, groups, capabilities within its own, no
// namespaces of their own).
Status CheckRestoreAccess(const Peer& peer, const std::string& images_dir);

// The name of a request type as CRIU's schema spells it ("DUMP", ...), or
// "type N" for a number the schema does not know.
std::string RequestTypeName(int type);

}  // namespace ckpt::rpc
