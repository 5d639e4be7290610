// TEMPORARY (branch rpc-stdio only): a stand-in for RunAction so this
// branch links and its orphan-pts-master path can be tested through
// Options::notify. The real one (action scripts and RPC notifications) is
// the RPC branch's criu/action_hooks.cc: the integrator keeps that one and
// drops this file.
#include "criu/action_hooks.h"

#include "criu/options.h"

namespace ckpt {

const char* ActionName(Action a) {
  switch (a) {
    case Action::kPreDump:
      return "pre-dump";
    case Action::kNetworkLock:
      return "network-lock";
    case Action::kPostDump:
      return "post-dump";
    case Action::kPreRestore:
      return "pre-restore";
    case Action::kSetupNamespaces:
      return "setup-namespaces";
    case Action::kPostSetupNamespaces:
      return "post-setup-namespaces";
    case Action::kNetworkUnlock:
      return "network-unlock";
    case Action::kPostRestore:
      return "post-restore";
    case Action::kPreResume:
      return "pre-resume";
    case Action::kPostResume:
      return "post-resume";
    case Action::kOrphanPtsMaster:
      return "orphan-pts-master";
  }
  return "?";
}

Status RunAction(const Options& o, const ActionEvent& e) {
  if (!o.notify) return Ok();
  TRY(o.notify(e), std::string("action ") + ActionName(e.action));
  return Ok();
}

}  // namespace ckpt
