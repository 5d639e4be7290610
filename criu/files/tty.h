// Terminals. Pseudo-terminal pairs whose master (/dev/ptmx) is held inside
// the dumped tree are dumped and restored by kPtyHandler (tty.cc): both
// ends, the pair's termios and window size, the master's lock and packet
// mode, TIOCEXCL, and which session has the pair as its controlling
// terminal (with its foreground process group). Terminals from outside the
// tree are reopened by path with --shell-job (kTtyHandler, chrdev.cc) and
// refused without it: "pid N fd M: terminal /dev/pts/K is outside the
// dumped tree (use --shell-job)". A pty slave whose master is outside the
// tree (a container's console) is dumped with --orphan-pts-master (the
// entry is marked orphan, with its rdev/dev) and comes back as the slave
// of a new pair whose master goes to the orphan-pts-master action
// (orphan_pty.h), or from --inherit-fd fd[N]:tty[RDEV:DEV]; --shell-job
// takes precedence (the shell's terminal, reopened by path).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "base/result.h"
#include "criu/files/file_types.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

extern const FileHandler kPtyHandler;

// Character devices that are terminals: pty slaves (majors 136-143), the
// pty multiplexer /dev/ptmx (5:2), /dev/tty (5:0), /dev/console (5:1),
// virtual consoles and serial lines (major 4).
bool IsTtyDevice(dev_t rdev);
bool IsPtyMaster(dev_t rdev);
bool IsPtySlave(dev_t rdev);
// A pty slave whose master some task of the dumped tree holds (during a
// dump: tasks ckpt traces).
bool PtySlaveInTree(const FdContext& c);

// For criu/restore_tree.cc (see docs in tty.cc). In a session leader,
// right after setsid() and before it creates any other task of its session
// (which then inherit it): takes its controlling terminal, if the dump
// recorded a pty of the tree as its session's. `opened` is every file of
// the tree, opened (files::OpenFiles). No-op otherwise.
Status RestoreControllingTty(const std::map<uint32_t, pb::FileEntry>& files,
                             const std::map<uint32_t, int>& opened);
// In a session leader, once every process group exists: makes the recorded
// foreground process group the terminal's foreground group again.
Status RestoreForegroundGroup(const std::map<uint32_t, pb::FileEntry>& files,
                              const std::map<uint32_t, int>& opened);

// For criu/ns/mnt_ns_restore.cc, in the root task before OpenFiles: a
// bind mount of a file of a devpts the restore just made (runc's
// /dev/console is a bind of the container's /dev/pts/0) needs that pty to
// exist. If `name` is a pty index missing below `devpts_root` (the fresh
// instance's root), opens its ptmx until that index exists and keeps the
// master: the pair of the images with that index then takes it
// (kPtyHandler's open) instead of making another, so the bind and the
// restored terminal are one pty. No-op for other names.
Status ReservePtyFile(int devpts_root, const std::string& name);

}  // namespace ckpt::files
