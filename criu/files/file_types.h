// The file type interface: one handler per kind of open file, each in its
// own file in this folder, listed in registry.cc. Adding a kind is one new
// file, its schema in proto/fdinfo.proto, and one registry line.
//
// Life of an fd kind:
//   dump:    match (which handler) -> check (refuse early, before the task
//            is infected) -> dump (after the parasite is cured, the task
//            still stopped; may write data images through DumpContext).
//   restore: validate (every entry, before any process exists) -> open
//            (once per file entry, in one process for the whole tree, after
//            the entries named by deps: OpenFiles) -> each task dup()s the
//            fds it needs to their numbers.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "criu/proc_parse.h"
#include "proto/fdinfo.pb.h"
#include "proto/ns.pb.h"

namespace ckpt::images {
class ImageDir;  // images/image_dir.h
}

namespace ckpt::files {

class DumpContext;     // file_context.h
class RestoreContext;  // file_context.h

// What the dumper knows about one fd of a seized task.
struct FdContext {
  pid_t pid;
  int fd;
  std::string link;   // readlink of /proc/PID/fd/FD
  struct stat st;     // stat through the fd link
  proc::FdInfo info;  // pos, flags
  bool shell_job;
  std::string fdinfo;  // the whole /proc/PID/fdinfo/FD text (kind-specific lines)
  bool ext_unix_sk = false;  // --ext-unix-sk: datagram peers outside the tree allowed
  bool tcp_established = false;  // --tcp-established: live TCP connections allowed
  bool skip_in_flight = false;   // --skip-in-flight: drop connections not yet accepted
  const std::vector<std::string>* externals = nullptr;  // --external keys (ext_file.cc)
  bool orphan_pts_master = false;  // --orphan-pts-master: pty slaves of outside masters (tty.h)
};

// The dump options fd handlers see (copied into every FdContext).
struct FdOptions {
  bool shell_job = false;
  bool ext_unix_sk = false;
  bool tcp_established = false;
  bool skip_in_flight = false;
  const std::vector<std::string>* externals = nullptr;
  bool orphan_pts_master = false;
};

class InheritedFds;  // inherit_fd.h

// "pid 42 fd 7": how errors name an fd.
std::string Where(const FdContext& c);

struct RestoreOpts {
  bool shell_job;
  bool tcp_established = false;  // --tcp-established: connections come back alive
  bool tcp_close = false;        // --tcp-close: ... or as closed sockets
  // Objects several entries share (both ends of a pipe). Set by OpenFiles;
  // kinds that share objects refuse to open without it.
  RestoreContext* ctx = nullptr;
  // Shared memory objects the mappings of the tree use (shmid -> fd), made
  // before any task: a memfd both open and mapped must be that object.
  const std::map<uint64_t, int>* shmem = nullptr;
  // The tree's own user namespace, which the restoring root is in: file
  // owners from the images are ckpt's ids, given in its (user_ns.h).
  const pb::UserNsEntry* user_ns = nullptr;
  // --inherit-fd: fds of the caller standing for files of the dump, taken
  // instead of opening them (OpenFiles). Null: none.
  const InheritedFds* inherited = nullptr;
  // --orphan-pts-master: where the root sends the master of each pty pair
  // it makes for an orphan slave (orphan_pty.h); -1 without the option.
  int orphan_pty_sk = -1;
};

struct FileHandler {
  pb::FileKind kind;
  const char* name;
  // True if this handler takes the fd.
  bool (*match)(const FdContext& c);
  // Optional. Refuses an fd this kind cannot dump faithfully, before the
  // task is infected. `all` is every fd of the task (sorted by fd).
  Status (*check)(const FdContext& c, const std::vector<FdContext>& all);
  // Fills the kind-specific part of e (id and kind are set by the caller).
  Status (*dump)(const FdContext& c, DumpContext& ctx, pb::FileEntry* e);
  // Opens the file in the restoring process; returns a new fd (any number).
  Result<int> (*open)(const pb::FileEntry& e, const RestoreOpts& o);
  // Checks an entry read from an image before anything is created.
  Status (*validate)(const pb::FileEntry& e);
  // Optional. File ids that must be open before this one (epoll targets);
  // open finds their fds with o.ctx->Opened(id).
  std::vector<uint32_t> (*deps)(const pb::FileEntry& e);
  // Optional. Runs in each task that holds the file, once its fds are at
  // their numbers (fd is one of them): state owned by the task rather than
  // by the open file, e.g. POSIX locks or a controlling terminal.
  Status (*in_task)(const pb::FileEntry& e, int fd);
  // Optional. Checks the data images an entry names (e.g. a TCP stream),
  // with every image read before any process exists (CheckFiles).
  Status (*check_images)(const pb::FileEntry& e, const images::ImageDir& dir);
  // Optional. Like in_task, with every fd number the task holds the file
  // at (a kind that replaces the stand-in its open made: pidfd.cc).
  Status (*in_task_fds)(const pb::FileEntry& e, const std::vector<int>& fds);
};

extern const FileHandler kRegFileHandler;
extern const FileHandler kChrDevHandler;
extern const FileHandler kTtyHandler;
extern const FileHandler kUnixSkHandler;  // unix_sk.cc
extern const FileHandler kPipeHandler;
extern const FileHandler kFifoHandler;
extern const FileHandler kEventfdHandler;
extern const FileHandler kSignalfdHandler;
extern const FileHandler kTimerfdHandler;
extern const FileHandler kEpollHandler;
extern const FileHandler kInotifyHandler;
extern const FileHandler kMemfdHandler;
extern const FileHandler kPidfdHandler;  // pidfd.cc
extern const FileHandler kFanotifyHandler;  // fanotify.cc
extern const FileHandler kGhostFileHandler;
extern const FileHandler kNetlinkSkHandler;  // netlink_sk.cc
extern const FileHandler kPacketSkHandler;   // packet_sk.cc
extern const FileHandler kMqueueHandler;     // mqueue.cc
extern const FileHandler kExtFileHandler;    // ext_file.cc
extern const FileHandler kCttyHandler;       // ctty.cc: /dev/tty

// Finds the handler for an fd, or says precisely why it is not supported:
// "pid 42 fd 7: io_uring is not supported".
Result<const FileHandler*> Classify(const FdContext& c);
const FileHandler* HandlerFor(pb::FileKind kind);

// Reads everything about one fd of pid.
Result<FdContext> InspectFd(pid_t pid, int fd, const FdOptions& o);

}  // namespace ckpt::files
