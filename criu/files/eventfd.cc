// eventfd(2): the counter and EFD_SEMAPHORE come from fdinfo
// ("eventfd-count:" in hex; "eventfd-semaphore:" since Linux 6.4).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

bool Match(const FdContext& c) { return c.link == "anon_inode:[eventfd]"; }

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  auto count = FdinfoValue(c.fdinfo, "eventfd-count");
  if (!count) return Error("fdinfo has no eventfd-count");
  TRY_ASSIGN(uint64_t n, ParseNumber(*count, 16, "eventfd-count"));
  bool sem = false;
  if (auto s = FdinfoValue(c.fdinfo, "eventfd-semaphore"))
    sem = *s == "1";
  else
    LOG_WARN(Where(c) + ": the kernel does not show EFD_SEMAPHORE; restoring a plain counter");
  pb::EventfdEntry* d = e->mutable_eventfd();
  d->set_flags(c.info.flags);
  d->set_counter(n);
  d->set_semaphore(sem);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::EventfdEntry& d = e.eventfd();
  int flags = EFD_CLOEXEC | ((d.flags() & O_NONBLOCK) ? EFD_NONBLOCK : 0) |
              (d.semaphore() ? EFD_SEMAPHORE : 0);
  // eventfd(2)'s initial value is only 32 bits wide; a write adds any
  // value up to 2^64-2 without blocking on an empty counter.
  int fd = eventfd(0, flags);
  if (fd < 0) return Error::Errno("eventfd");
  uint64_t v = d.counter();
  if (v && write(fd, &v, sizeof(v)) != sizeof(v)) {
    int err = errno;
    close(fd);
    return Error::Errno("set eventfd counter", err);
  }
  return fd;
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_eventfd() || e.eventfd().counter() == UINT64_MAX)
    return Error("file " + std::to_string(e.id()) + ": bad eventfd entry");
  return Ok();
}

}  // namespace

const FileHandler kEventfdHandler = {.kind = pb::FILE_EVENTFD,
                                     .name = "eventfd",
                                     .match = Match,
                                     .check = nullptr,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr};

}  // namespace ckpt::files
