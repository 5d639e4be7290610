// Command line of ckpt: subcommand plus CRIU-compatible options.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "criu/action_hooks.h"

namespace ckpt {

enum class Command {
  kNone,
  kDump,
  kPreDump,  // ckpt pre-dump: memory only, the tree runs on (criu/predump.h)
  kRestore,
  kCheck,
  kShow,
  kUnlock,
  kPageServer,  // ckpt page-server: receives a dump's memory (criu/page_xfer.h)
  kLazyPages,   // ckpt lazy-pages: fills a lazy restore's memory (criu/lazy_pages.h)
  kHelp,
  kVersion,
  kSwrk,     // ckpt swrk FD: CRIU's RPC on an inherited socket (criu/rpc/rpc_server.h)
  kService,  // ckpt service --address PATH: CRIU's RPC on a listening socket
};

// --manage-cgroups=MODE, as CRIU: what restore may do to the cgroups the
// images name. kNone/kProps need them to exist (kProps writes the saved
// settings into them); kSoft creates the missing ones and writes settings
// only into those it created; kFull creates and writes everywhere; kStrict
// needs them all absent and creates them; kIgnore leaves cgroups alone
// (dump saves nothing, restore places no task).
enum class CgroupMode { kNone, kProps, kSoft, kFull, kStrict, kIgnore };

// --inherit-fd fd[N]:KEY / criu_opts.inherit_fd: an object the dump named
// KEY is this fd of ckpt's (open while the restore runs; not owned here).
struct InheritFd {
  std::string key;
  int fd;
};

// --join-ns NS:FILE / criu_opts.join_ns: restore into an existing
// namespace (net or uts) instead of a new one (criu/ns/namespaces.h).
struct JoinNs {
  std::string ns;    // "net", "uts"
  std::string file;  // a namespace file (/proc/PID/ns/net, /run/netns/NAME)
};

struct Options {
  Command command = Command::kNone;
  pid_t pid = 0;                // -t/--tree
  std::string images_dir;       // -D/--images-dir
  std::string log_file;         // -o/--log-file, relative to images_dir
  int verbosity = 2;            // -v0..-v4 (plain -v adds one)
  bool leave_running = false;   // -R/--leave-running
  // With -R: pages written from copy-on-write snapshots after the tree
  // runs again (criu/mem_snapshot.h); --no-cow-snapshot turns it off.
  bool cow_snapshot = true;
  bool sync = true;             // --no-sync: dump does not wait for the disk (ImageDir::SetSync)
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
  std::vector<std::string> cgroup_root_v1;  // --cgroup-root for v1 controllers: ignored
  std::string freeze_cgroup;    // --freeze-cgroup PATH: a cgroup2 directory to freeze (dump)
  std::string pidfile;          // --pidfile
  std::vector<std::string> external;  // --external KEY (repeatable; CRIU's syntax)
  std::string root;             // --root DIR: source of the restored tree's root mount (mnt ns)
  bool page_server = false;     // dump --page-server: memory to a page server (criu/page_xfer.h)
  std::string address;          // --address: the page server's IP (dump --page-server; page-server:
                                // where to listen); service: the unix socket path
  int port = 0;                 // --port: the page server's TCP port
  // --lazy-pages (criu/lazy_pages.h): restore leaves private anonymous
  // memory to `ckpt lazy-pages`; dump keeps it and serves it on --port.
  bool lazy_pages = false;
  // --compress zstd[:LEVEL] (dump, pre-dump): pages images compressed
  // (criu/page_compress.h); 0 = off.
  bool compress = false;
  int compress_level = 0;  // 0: the default level (criu/page_compress.h)
  int status_fd = -1;           // --status-fd FD: page-server writes a byte there once it listens
  // Incremental dumps (criu/mem_track.h, criu/predump.h):
  std::string prev_images_dir;  // --prev-images-dir: the previous step, relative to -D
  bool track_mem = false;       // --track-mem: dump uses (and -R keeps) the write tracking
  int track_mem_timeout = 600;  // --track-mem-timeout SEC: how long a tracker waits
  std::vector<std::string> action_scripts;  // --action-script PATH (repeatable), criu/action_hooks.h
  ActionNotifier notify;        // set by the RPC service for its client's notifications
  // RPC (criu/rpc/): set from a client's criu_opts, not from the command line.
  bool rst_sibling = false;  // restore: the root becomes a sibling of ckpt (CLONE_PARENT)
  // --inherit-fd fd[N]:KEY (repeatable, restore): ckpt's own fd N, passed in
  // by the caller, stands for the dumped file KEY names ("pipe:[INO]",
  // "socket:[INO]", "tty[RDEV:DEV]", "file[MNT_ID:INO]" or a path):
  // criu/files/inherit_fd.h. The RPC's inherit_fd fills the same list.
  using InheritFd = ckpt::InheritFd;
  std::vector<InheritFd> inherit_fds;
  // --orphan-pts-master: dump accepts a pty slave whose master is outside
  // the tree; restore makes a new pair for it and hands the master to the
  // orphan-pts-master action (criu/files/tty.h).
  bool orphan_pts_master = false;
  // --empty-ns net / criu_opts.empty_ns (CLONE_NEW* bits; only CLONE_NEWNET):
  // the tree's network namespace is made, but its configuration is neither
  // saved nor restored (runc always asks: it configures the network itself).
  uint32_t empty_ns = 0;
  // --config FILE: read after the default files (criu/config_file.h); the
  // RPC's config_file (applied after the request's options, as CRIU does).
  std::string config_file;
  bool no_default_config = false;  // --no-default-config
  bool daemon = false;             // service --daemon
  std::vector<JoinNs> join_ns;     // --join-ns NS:{PID|FILE} (restore)
  std::string lsm_profile;         // --lsm-profile LSM:LABEL (restore; criu/lsm.h)
  // restore --exec-cmd -- PROG ARGS...: once the tree runs, ckpt execs PROG
  // (which becomes the restored root's parent); implies -d.
  std::vector<std::string> exec_cmd;
  bool display_stats = false;      // --display-stats: timings and page counts on stdout
  int timeout = 0;                 // --timeout SEC (dump): bound on freezing/seizing; 0: none
  bool log_pid = false;            // --log-pid: the log file name gets ".PID" (ckpt's pid)
  // Deleted files (criu/files/ghost.cc): --link-remap keeps a deleted
  // file by a hard link (linkat of the open file) next to where it was
  // instead of copying its contents; --ghost-limit SIZE refuses copying
  // deleted files larger than SIZE (0: no limit).
  bool link_remap = false;
  uint64_t ghost_limit = 0;
  bool weak_sysctls = false;       // --weak-sysctls: sysctls missing here are skipped (warned)
  std::vector<std::string> skip_mnt;  // --skip-mnt PATH (dump, repeatable): mount not saved
  bool evasive_devices = false;    // --evasive-devices: a device node gone is reached by another
  bool force_irmap = false;        // --force-irmap: accepted; ckpt needs no inotify path map
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
