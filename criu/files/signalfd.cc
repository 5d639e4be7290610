// signalfd(2): only the mask ("sigmask:" in fdinfo, hex, bit n-1 = signal
// n) and O_NONBLOCK. The signals themselves are pending on the task and
// restored with it.
#include <fcntl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

bool Match(const FdContext& c) { return c.link == "anon_inode:[signalfd]"; }

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  auto mask = FdinfoValue(c.fdinfo, "sigmask");
  if (!mask) return Error("fdinfo has no sigmask");
  TRY_ASSIGN(uint64_t m, ParseNumber(*mask, 16, "sigmask"));
  pb::SignalfdEntry* d = e->mutable_signalfd();
  d->set_flags(c.info.flags);
  d->set_mask(m);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::SignalfdEntry& d = e.signalfd();
  // The raw syscall takes the kernel's 64-bit mask as is; glibc's
  // sigaddset() would refuse its own reserved signals 32 and 33.
  uint64_t mask = d.mask();
  int flags = SFD_CLOEXEC | ((d.flags() & O_NONBLOCK) ? SFD_NONBLOCK : 0);
  long fd = syscall(SYS_signalfd4, -1, &mask, sizeof(mask), flags);
  if (fd < 0) return Error::Errno("signalfd");
  return int(fd);
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_signalfd()) return Error("file " + std::to_string(e.id()) + ": bad signalfd entry");
  return Ok();
}

}  // namespace

const FileHandler kSignalfdHandler = {.kind = pb::FILE_SIGNALFD,
                                      .name = "signalfd",
                                      .match = Match,
                                      .check = nullptr,
                                      .dump = Dump,
                                      .open = Open,
                                      .validate = Validate,
                                      .deps = nullptr};

}  // namespace ckpt::files
