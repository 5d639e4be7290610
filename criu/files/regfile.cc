// Regular files and directories, reopened by path at their offset.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

constexpr const char* kDeleted = " (deleted)";

bool Match(const FdContext& c) {
  return (S_ISREG(c.st.st_mode) || S_ISDIR(c.st.st_mode)) && !c.link.empty() && c.link[0] == '/';
}

// Unlinked regular files are kGhostFileHandler's; what is left here is an
// unlinked directory, which cannot be recreated with its contents.
Status Check(const FdContext& c, const std::vector<FdContext>&) {
  const std::string& l = c.link;
  if (l.size() > strlen(kDeleted) &&
      l.compare(l.size() - strlen(kDeleted), std::string::npos, kDeleted) == 0)
    return Error(Where(c) + ": deleted " + (S_ISDIR(c.st.st_mode) ? "directory " : "file ") + l +
                 " is not supported");
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::RegFileEntry* r = e->mutable_reg();
  r->set_path(c.link);
  r->set_flags(c.info.flags);
  r->set_pos(c.info.pos);
  r->set_size(uint64_t(c.st.st_size));
  r->set_mode(c.st.st_mode);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::RegFileEntry& r = e.reg();
  // Creation flags did their work at the original open; don't repeat them.
  int flags = int(r.flags()) & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_CLOEXEC);
  int fd = open(r.path().c_str(), flags);
  if (fd < 0) return Error::Errno("open " + r.path());
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (r.has_size() && uint64_t(st.st_size) != r.size())
      LOG_WARN("file " + r.path() + " changed size since the dump (" + std::to_string(r.size()) +
               " -> " + std::to_string(st.st_size) + " bytes)");
    if (r.has_mode() && ((st.st_mode ^ r.mode()) & S_IFMT)) {
      close(fd);
      return Error(r.path() + " is no longer the same kind of file");
    }
  }
  if (!(flags & O_PATH) && lseek(fd, off_t(r.pos()), SEEK_SET) < 0 && errno != ESPIPE) {
    int e2 = errno;
    close(fd);
    return Error::Errno("seek " + r.path(), e2);
  }
  return fd;
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_reg() || e.reg().path().empty() || e.reg().path()[0] != '/')
    return Error("file " + std::to_string(e.id()) + ": bad regular file entry");
  return Ok();
}

}  // namespace

const FileHandler kRegFileHandler = {.kind = pb::FILE_REG,
                                     .name = "regular file",
                                     .match = Match,
                                     .check = Check,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr};

}  // namespace ckpt::files
