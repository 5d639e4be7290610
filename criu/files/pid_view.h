// The restoring task's view of the dump's pids. Images name tasks by their
// pid in ckpt's pid namespace at dump; a task inside a pid namespace of the
// tree sees other numbers (getpid() is 1 in an init). criu/restore_tree.cc
// sets the view in each task (a process of its own) before its files are
// opened or finished; file kinds that store pids (a terminal's session and
// foreground group) translate through it.
#pragma once

#include <sys/types.h>

#include <map>

namespace ckpt::files {

struct PidView {
  pid_t self = 0;                // the calling task's pid in the dump
  std::map<pid_t, pid_t> inner;  // dump pid -> the pid as the task sees it
};

void SetPidView(PidView v);
// The calling task's pid in the dump (getpid() when no view was set).
pid_t DumpPidOfSelf();
// dump_pid as the calling task sees it (dump_pid itself if unknown).
pid_t ToOwnView(pid_t dump_pid);

}  // namespace ckpt::files
