// Command line of ckpt: subcommand plus CRIU-compatible options.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "criu/action_hooks.h"

namespace ckpt {

enum class Command { kNone, kDump, kPreDump, kRestore, kCheck, kShow, kUnlock, kPageServer, kHelp, kVersion };

// --manage-cgroups=MODE, as CRIU: what restore may do to the cgroups the
// images name. kNone/kProps need them to exist (kProps writes the saved
// settings into them); kSoft creates the missing ones and writes settings
// only into those it created; kFull creates and writes everywhere; kStrict
// needs them all absent and creates them; kIgnore leaves cgroups alone
// (dump saves nothing, restore places no task).
enum class CgroupMode { kNone, kProps, kSoft, kFull, kStrict, kIgnore };

struct Options {
  Command command = Command::kNone;
  pid_t pid = 0;                // -t/--tree
  std::string images_dir;       // -D/--images-dir
  std::string log_file;         // -o/--log-file, relative to images_dir
  int verbosity = 2;            // -v0..-v4 (plain -v adds one)
  bool leave_running = false;   // -R/--leave-running
  bool restore_detached = false;  // -d/--restore-detached
  bool shell_job = false;       // -j/--shell-job
  bool file_locks = false;      // --file-locks (accepted; locks are always handled)
  bool ext_unix_sk = false;     // --ext-unix-sk: datagram sockets connected outside the tree
  bool tcp_established = false;  // --tcp-established: dump/restore live TCP connections
  bool tcp_close = false;        // --tcp-close: restore established connections as closed
  bool skip_in_flight = false;   // --skip-in-flight: drop connections not yet accept()ed
  bool network_lock = true;      // --network-lock nftables (default) | skip
  bool manage_cgroups = false;   // --manage-cgroups[=MODE]: dump saves cgroup dirs + settings
  CgroupMode cgroup_mode = CgroupMode::kSoft;  // its MODE (soft when not given, as CRIU)
  std::string cgroup_root;      // --cgroup-root [CONTROLLER:]PATH: a cgroup path ("/a/b")
  std::string freeze_cgroup;    // --freeze-cgroup PATH: a cgroup2 directory to freeze (dump)
  std::string pidfile;          // --pidfile
  std::vector<std::string> external;  // --external KEY (repeatable; CRIU's syntax)
  std::string root;             // --root DIR: source of the restored tree's root mount (mnt ns)
  bool page_server = false;     // dump --page-server: memory to a page server (criu/page_xfer.h)
  std::string address;          // --address: the page server's IP (dump; page-server: to listen on)
  int port = 0;                 // --port: the page server's TCP port
  int status_fd = -1;           // --status-fd FD: page-server writes a byte there once it listens
  // Incremental dumps (criu/mem_track.h, criu/predump.h):
  std::string prev_images_dir;  // --prev-images-dir: the previous step, relative to -D
  bool track_mem = false;       // --track-mem: dump uses (and -R keeps) the write tracking
  int track_mem_timeout = 600;  // --track-mem-timeout SEC: how long a tracker waits
  std::vector<std::string> action_scripts;  // --action-script PATH (repeatable), criu/action_hooks.h
  ActionNotifier notify;        // set by the RPC service for its client's notifications
  std::vector<std::string> args;  // positional (show: paths)
  bool help = false;            // CMD --help
};

// Parses argv. Unknown options and missing values are errors with a hint.
Result<Options> ParseOptions(int argc, char** argv);

// Usage text for `ckpt --help` or `ckpt CMD --help`.
std::string Usage(Command c);

// Where the log goes: -o relative to -D, absolute as given; "" = stderr.
std::string LogPath(const Options& o);

}  // namespace ckpt
