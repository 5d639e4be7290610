// The requests of one RPC connection (transport: rpc_server.h).
//
//   VERSION        CRIU's numbering (see kVersionMajor), name "ckpt"
//   CHECK          the kernel probe of `ckpt check`: success when every
//                  required feature is there, else cr_errmsg lists them
//   FEATURE_CHECK  answers exactly the features asked (mem_track,
//                  lazy_pages, pidfd_store): false, ckpt implements none
//   DUMP           Dump() with the mapped options (rpc_request.h) in a
//                  child of the session (a dump joins the tree's
//                  namespaces; a crash answers with an error)
//   RESTORE        Restore(), detached; the answer carries the root's real
//                  pid. With rst_sibling (swrk only) it runs in the session
//                  process itself and the root is cloned with CLONE_PARENT:
//                  the client becomes its parent and reaps it; the session
//                  ends after the answer. Without, it runs in a child and
//                  the root comes back to the session (a child subreaper)
//                  for WAIT_PID.
//   WAIT_PID       waits for a child of the session (a tree it restored)
//                  and answers its wait status
//   PRE_DUMP, PAGE_SERVER, ...  success=false: not implemented
//   anything else  success=false naming the type
//
// Notifications (criu/action_hooks.h): when criu_opts.notify_scripts is
// set, each point of the dump or restore sends criu_resp{NOTIFY, notify
// {script, pid}} (orphan-pts-master: the pty master with SCM_RIGHTS) and
// waits for criu_req{NOTIFY, notify_success}; false fails the request at
// that point.
#pragma once

#include "criu/rpc/rpc_request.h"

namespace ckpt::rpc {

// CRIU version reported by VERSION. runc 1.1 refuses CRIU older than 3.0.0
// (major*10000 + minor*100 + sublevel >= 30000) and asks for newer ones
// for some features (cgroup v2: 3.14). 3.19 is newer than every minimum
// runc 1.1 and podman 4.3 check, and older than CRIU 4.0, whose
// additions ckpt does not claim.
constexpr int kVersionMajor = 3;
constexpr int kVersionMinor = 19;
constexpr int kVersionSublevel = 0;

// Serves requests on `sk` until the client closes it (or a request ends
// the session: a RESTORE with rst_sibling). Runs in the session process,
// which it makes a child subreaper.
void ServeSession(int sk, const RequestContext& ctx);

}  // namespace ckpt::rpc
