// State the fd handlers share while one dump or one restore runs.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "criu/files/inet_sk.h"  // InetOptDefaults
#include "images/image_dir.h"
#include "proto/ns.pb.h"

namespace ckpt::net {
class NetDump;  // criu/net/net_dump.h
}

namespace ckpt::files {

// The dump options the handlers act on (criu/options.h says what each means).
struct FileDumpOptions {
  bool link_remap = false;       // --link-remap (ghost.cc)
  uint64_t ghost_limit = 0;      // --ghost-limit, 0: none (ghost.cc)
  bool evasive_devices = false;  // --evasive-devices (chrdev.cc)
  // The tree has a mount namespace of its own: a regular file in flight
  // (fd_dump.h AddHeld) is saved by the path its holder's namespace gives
  // it, as the tree's own fds are (criu/dump.cc UseTaskPaths).
  bool task_paths = false;
};

// One per dump (the whole tree), owned by FdDumper.
class DumpContext {
 public:
  DumpContext(images::ImageDir& dir, net::NetDump& net) : dir_(dir), net_(net) {}
  ~DumpContext();  // removes the --link-remap links unless KeepLinks()
  const FileDumpOptions& options() const { return options_; }
  void set_options(const FileDumpOptions& o) { options_ = o; }
  // --link-remap: a name made for a deleted file during this dump; removed
  // again unless the dump completes (KeepLinks), then by the restore.
  void AddLink(const std::string& path) { links_.push_back(path); }
  void KeepLinks() { links_.clear(); }
  images::ImageDir& dir() { return dir_; }
  // The network side of this dump: inet_diag answers, sockets in repair mode.
  net::NetDump& net() { return net_; }
  // What new inet sockets have, per kind (inet_sk_opts.cc).
  InetOptDefaults& inet_defaults() { return inet_defaults_; }

  // The task being written: its fds, and the file id of each (for kinds
  // that refer to other fds by number, like epoll; 0 if fd is not open).
  uint32_t FileIdOf(int fd) const;
  const std::vector<FdContext>& task_fds() const { return *fds_; }
  void SetTask(const std::vector<FdContext>* fds, std::map<int, uint32_t> ids) {
    fds_ = fds;
    ids_ = std::move(ids);
  }

  // Every file of the tree seen so far, by one fd that holds it.
  void SawFile(pid_t pid, int fd, uint32_t file_id) { files_.push_back({pid, fd, file_id}); }
  // The file id of target `tfd` of epoll `efd` in task `pid`, looked up
  // among the files seen so far (in any task: the target may be open only
  // in another task's table); 0 if none is that file.
  uint32_t EpollTargetId(pid_t pid, int efd, int tfd) const;

  // An object several file entries refer to (a pipe, a memfd's inode),
  // named by a key unique to it ("pipe:1234"). The first entry to ask
  // names it by its own file id and must dump the object's data (first ==
  // true) and say in *has_data whether there was any; later entries get
  // the same id and read *has_data.
  struct Object {
    uint32_t id;
    bool first;
    bool* has_data;
  };
  Object Share(const std::string& key, uint32_t file_id);

  // Records one end of pipe `ino` seen in the dumped tree, and whether the
  // kernel reports holders of the opposite side (writers for a read end,
  // readers for a write end).
  void SawPipeEnd(uint64_t ino, bool write_end, bool peer_alive, const std::string& where);
  // Which sides of each pipe (by inode) the dumped tree's tasks hold: bit 0
  // the read side, bit 1 the write side. Read from /proc once per dump, on
  // first use (pipe.cc): the tree is frozen, so it cannot change.
  std::optional<std::map<uint64_t, uint8_t>>& tree_pipe_sides() { return tree_pipe_sides_; }
  // Whether a live task of the dumped tree maps the file `st` names
  // (shared or private: mem_dump.cc saves such a file as an object of its
  // own). The holder `pid` is asked first; the tree's tasks (ckpt's
  // tracees, found in /proc once per dump) only if it does not.
  Result<bool> TreeMaps(pid_t pid, const struct stat& st);
  // After every task: refuses a pipe whose other end is held only outside
  // the dumped tree (restoring it would cut that process off).
  Status Finish() const;

  // A file ckpt itself holds (one in flight in a unix socket queue, got by
  // peeking it: unix_sk_scm.h), dumped like a file of the tree: its entry is
  // shared with any fd of the tree that is the same open file. Keeps fd
  // open until the dump ends; returns its file id. `what` names it in
  // errors. Set by FdDumper while it writes a task.
  using HeldFileDumper = std::function<Result<uint32_t>(UniqueFd fd, const std::string& what)>;
  void set_held_file_dumper(HeldFileDumper f) { held_ = std::move(f); }
  Result<uint32_t> DumpHeldFile(UniqueFd fd, const std::string& what) {
    if (!held_) return Error(what + ": files in flight cannot be dumped here");
    return held_(std::move(fd), what);
  }

 private:
  struct SeenFile {
    pid_t pid;
    int fd;
    uint32_t id;
  };
  std::vector<SeenFile> files_;
  struct PipeSeen {
    bool read = false, write = false;
    bool writers_alive = false, readers_alive = false;
    std::string where;  // the first end seen
  };
  images::ImageDir& dir_;
  net::NetDump& net_;
  FileDumpOptions options_;
  std::vector<std::string> links_;
  InetOptDefaults inet_defaults_;
  const std::vector<FdContext>* fds_ = nullptr;
  std::map<int, uint32_t> ids_;
  std::map<std::string, std::pair<uint32_t, bool>> objects_;  // key -> id, has_data
  std::map<uint64_t, PipeSeen> pipes_;
  std::optional<std::map<uint64_t, uint8_t>> tree_pipe_sides_;
  std::optional<std::vector<pid_t>> tree_pids_;  // TreeMaps
  HeldFileDumper held_;
};

// One per restore: OpenFiles makes it and drops it once every file is open.
class RestoreContext {
 public:
  RestoreContext(const images::ImageDir& dir, int min_fd, const std::map<uint32_t, int>& opened)
      : dir_(dir), min_fd_(min_fd), opened_(opened) {}
  ~RestoreContext();  // closes every kept fd
  RestoreContext(const RestoreContext&) = delete;
  RestoreContext& operator=(const RestoreContext&) = delete;

  const images::ImageDir& dir() const { return dir_; }
  // The tree's own user namespace the restoring root is in (user_ns.h), or
  // null: files made for the tree are made with their owners' fs ids.
  const pb::UserNsEntry* user_ns() const { return user_ns_; }
  void set_user_ns(const pb::UserNsEntry* u) { user_ns_ = u; }
  // Every fd number being restored is below this.
  int min_fd() const { return min_fd_; }
  // The fd holding an already opened file entry (a dependency), or -1.
  int Opened(uint32_t file_id) const;
  // The fd kept under key, or -1.
  int Find(const std::string& key) const;
  // Takes fd and keeps it under key until the context dies (or Take),
  // moved to a number >= min_fd so it never sits on an fd number being
  // restored; or, given the file entry it will be (`for_file`), at that
  // file's home number when it has a free one (fd_install.h).
  // Returns its new number.
  Result<int> Keep(const std::string& key, int fd, uint32_t for_file = 0);
  // Hands a kept fd over to the file entry being opened (an object only it
  // uses as is: a socket, the end pipe2() made): the caller owns it from
  // now on, and Find still answers its number, which stays valid while
  // OpenFiles runs (OpenFiles leaves an fd at its home or >= min_fd where
  // it is). -1 if nothing is kept under key.
  int Hand(const std::string& key);
  // The file entries that share object `object_id` (pipe ends, memfds,
  // ghost files: fd_restore.cc ObjectOf), and one entry by id (or null).
  const std::vector<uint32_t>& SharersOf(uint32_t object_id) const;
  const pb::FileEntry* EntryOf(uint32_t file_id) const;
  void set_files(const std::map<uint32_t, pb::FileEntry>* files,
                 std::map<uint32_t, std::vector<uint32_t>> sharers) {
    files_ = files;
    sharers_ = std::move(sharers);
  }
  // Opens file entry file_id now, if OpenFiles has not yet (a file in
  // flight that a unix socket queue sends again: unix_sk_restore.cc), and
  // returns its fd, which OpenFiles then owns. Its dependencies must be
  // open already.
  using Opener = std::function<Result<int>(uint32_t file_id)>;
  void set_opener(Opener f) { opener_ = std::move(f); }
  Result<int> OpenNow(uint32_t file_id) {
    int fd = Opened(file_id);
    if (fd >= 0) return fd;
    if (!opener_) return Error("file " + std::to_string(file_id) + " is not open");
    return opener_(file_id);
  }
  // The home number of file_id when it has one that is free (or is fd
  // itself), else -1.
  int FreeHome(uint32_t file_id, int fd) const;
  // The root's home numbers of the files it holds (OpenFiles sets them).
  void set_homes(const std::map<uint32_t, int>* homes) { homes_ = homes; }

 private:
  const images::ImageDir& dir_;
  int min_fd_;
  const std::map<uint32_t, int>& opened_;
  const std::map<uint32_t, int>* homes_ = nullptr;
  const std::map<uint32_t, pb::FileEntry>* files_ = nullptr;
  std::map<uint32_t, std::vector<uint32_t>> sharers_;
  std::map<std::string, int> handed_;  // key -> number, owned by an entry
  std::map<std::string, int> kept_;
  const pb::UserNsEntry* user_ns_ = nullptr;
  Opener opener_;
};

// A new open file description of the file behind our own fd, through
// /proc/self/fd (works for unlinked files, memfds, pipes).
Result<int> Reopen(int fd, int flags, const std::string& what);
// Reopen with dumped open(2) flags (those that only mattered at creation,
// like O_CREAT and O_TMPFILE, dropped), then seek to pos.
Result<int> ReopenAt(int fd, uint32_t flags, uint64_t pos, const std::string& what);

// Whether pid maps the file `st` describes with MAP_SHARED. Such memory is
// restored by shmem.cc as an object of its own, so an fd of the same file
// (memfd, unlinked file) is opened on that object (its entry names it by
// shmid), or it would come back as a different file.
Result<bool> MappedShared(pid_t pid, const struct stat& st);
// Whether pid maps that file at all (shared, or private: a deleted file or
// memfd mapped private is restored from a shared memory object too).
Result<bool> Mapped(pid_t pid, const struct stat& st);

// Opens /proc/PID/fd/FD: a new open file description of a seized task's
// file, so reading it never moves the task's own offset.
Result<int> OpenProcFd(pid_t pid, int fd, int flags);

}  // namespace ckpt::files
