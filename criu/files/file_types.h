// The file type interface: one handler per kind of open file, each in its
// own file in this folder, listed in registry.cc. Adding a kind is one new
// file, its schema in proto/fdinfo.proto, and one registry line.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "criu/proc_parse.h"
#include "proto/fdinfo.pb.h"

namespace ckpt::files {

// What the dumper knows about one fd of a seized task.
struct FdContext {
  pid_t pid;
  int fd;
  std::string link;   // readlink of /proc/PID/fd/FD
  struct stat st;     // stat through the fd link
  proc::FdInfo info;  // pos, flags
  bool shell_job;
};

struct RestoreOpts {
  bool shell_job;
};

struct FileHandler {
  pb::FileKind kind;
  const char* name;
  // True if this handler takes the fd.
  bool (*match)(const FdContext& c);
  // Fills the kind-specific part of e (id and kind are set by the caller).
  Status (*dump)(const FdContext& c, pb::FileEntry* e);
  // Opens the file in the restoring process; returns a new fd (any number).
  Result<int> (*open)(const pb::FileEntry& e, const RestoreOpts& o);
  // Checks an entry read from an image before anything is created.
  Status (*validate)(const pb::FileEntry& e);
};

extern const FileHandler kRegFileHandler;
extern const FileHandler kChrDevHandler;
extern const FileHandler kTtyHandler;

// Finds the handler for an fd, or says precisely why it is not supported:
// "pid 42 fd 7: io_uring is not supported".
Result<const FileHandler*> Classify(const FdContext& c);
const FileHandler* HandlerFor(pb::FileKind kind);

// Reads everything about one fd of pid.
Result<FdContext> InspectFd(pid_t pid, int fd, bool shell_job);

}  // namespace ckpt::files
