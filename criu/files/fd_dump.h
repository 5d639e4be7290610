// Dumping a task's file descriptors: inspect every fd (before infection),
// refuse unsupported kinds, then write fdinfo-PID.img and files.img.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/file_types.h"
#include "images/image_dir.h"

namespace ckpt::files {

struct TaskFds {
  pid_t pid = 0;
  std::vector<FdContext> fds;                // sorted by fd
  std::vector<const FileHandler*> handlers;  // one per fd
};

// Reads every fd of pid, finds its handler and runs its check; the first
// unsupported fd fails with "pid N fd M: <kind> is not supported".
Result<TaskFds> CollectFds(pid_t pid, const FdOptions& o);

// Writes fdinfo-PID.img of each task and the one files.img of the tree.
// Fds sharing an open file description, in one task or across tasks (dup,
// fork), share one file entry (found with kcmp), so restore shares it again.
// Finding it costs O(log n) kcmp calls per fd: open file descriptions are
// kept in the total order kcmp(KCMP_FILE) gives them.
class FdDumper {
 public:
  static Result<FdDumper> Create(images::ImageDir& dir, net::NetDump& net);
  // Before AddTask: the options handlers act on (file_context.h).
  void SetOptions(const FileDumpOptions& o) { ctx_->set_options(o); }
  // Once the dump is complete (its inventory written): names made for
  // --link-remap stay for the restore. Without it they go with the FdDumper.
  void KeepLinks() { ctx_->KeepLinks(); }
  // Call while the task is still stopped: handlers read its pipes.
  Status AddTask(images::ImageDir& dir, const TaskFds& t);
  // After the last task: refuses what only the whole tree shows (a pipe
  // whose other end is outside it), then finishes files.img.
  Status Close();

 private:
  FdDumper(images::ImageWriter w, std::unique_ptr<DumpContext> ctx)
      : files_(std::move(w)), ctx_(std::move(ctx)) {}
  // One fd that holds an open file description; ordered by inode, then by
  // the kernel's own order of open file descriptions (kcmp).
  struct FileKey {
    pid_t pid;
    const FdContext* fd;
  };
  struct FileOrder {
    bool operator()(const FileKey& a, const FileKey& b) const;
  };
  // A file ckpt holds (in flight in a unix socket queue): DumpContext::DumpHeldFile.
  // `pid` is the task whose queue holds it (its mount namespace names it).
  Result<uint32_t> AddHeld(pid_t pid, UniqueFd fd, const std::string& what);
  images::ImageWriter files_;
  std::unique_ptr<DumpContext> ctx_;
  uint32_t next_id_ = 1;
  std::map<FileKey, uint32_t, FileOrder> seen_;  // -> file id
  std::vector<std::unique_ptr<TaskFds>> keep_;  // what seen_ points into
  std::vector<std::unique_ptr<FdContext>> held_;  // held files, also in seen_
  std::vector<UniqueFd> held_fds_;  // open while the dump runs (kcmp needs them)
};

}  // namespace ckpt::files
