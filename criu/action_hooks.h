// Action hooks: the points of a dump or a restore at which ckpt stops and
// lets someone outside act before it goes on. Two kinds of listener get the
// same points, by CRIU's names: the programs given with --action-script
// (CRIU's CRTOOLS_SCRIPT_ACTION protocol) and, under the RPC service, the
// client's notifications (criu_notify, answered before ckpt goes on).
//
// Where each is run (ckpt's own process):
//   dump:    pre-dump      before the tree is seized
//            network-lock  once the network lock is in place (the tree frozen)
//            post-dump     images complete, before the tree is killed or resumed
//   restore: pre-restore   before anything is created
//            setup-namespaces       the root exists in its new namespaces
//                                   (pid: its real pid), nothing else restored
//            post-setup-namespaces  ckpt has filled them (uts, net, ...)
//            network-unlock         every connection rebuilt, the lock goes
//            post-restore  every task restored, none resumed (pid: the root)
//            pre-resume / post-resume  around letting the tree run
//            orphan-pts-master      a pty master made for a slave whose
//                                   master was outside the tree (fd: the
//                                   master, sent to an RPC client with
//                                   SCM_RIGHTS; scripts do not get it)
// A listener that fails (script exits non-zero, client answers no) fails
// the dump or restore at that point, with the usual guarantees: a dump's
// tree runs on unchanged; a restore leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <functional>

#include "base/result.h"

namespace ckpt {

struct Options;

enum class Action {
  kPreDump,
  kNetworkLock,
  kPostDump,
  kPreRestore,
  kSetupNamespaces,
  kPostSetupNamespaces,
  kNetworkUnlock,
  kPostRestore,
  kPreResume,
  kPostResume,
  kOrphanPtsMaster,
};

// CRIU's name of the point: "pre-dump", "post-restore", "orphan-pts-master", ...
const char* ActionName(Action a);

struct ActionEvent {
  Action action;
  pid_t pid = 0;  // the tree's root (its real pid) where one exists, else 0
  int fd = -1;    // orphan-pts-master: the master; borrowed, not closed
};

// Set by the RPC service on the Options of a request; empty on the command line.
using ActionNotifier = std::function<Status(const ActionEvent&)>;

// Runs every --action-script of `o` (in the order given), then `o.notify`.
// The first failure is returned, naming the point and the listener.
Status RunAction(const Options& o, const ActionEvent& e);

}  // namespace ckpt
