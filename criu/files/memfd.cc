// memfd_create(2) files: name, size, contents (without holes), seals
// (F_GET_SEALS), mode; each open file description (a memfd reopened through
// /proc/self/fd) keeps its own flags and offset. The /proc link reads
// "/memfd:NAME (deleted)". The memfd is created once per inode at restore.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/file_data.h"
#include "criu/files/file_types.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U  // Linux 6.3
#endif

namespace ckpt::files {
namespace {

constexpr const char* kPrefix = "/memfd:";
constexpr const char* kSuffix = " (deleted)";

bool Match(const FdContext& c) {
  const std::string& l = c.link;
  size_t p = strlen(kPrefix), s = strlen(kSuffix);
  return S_ISREG(c.st.st_mode) && l.size() > p + s && l.compare(0, p, kPrefix) == 0 &&
         l.compare(l.size() - s, s, kSuffix) == 0;
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  struct statfs sf;
  std::string p = "/proc/" + std::to_string(c.pid) + "/fd/" + std::to_string(c.fd);
  if (statfs(p.c_str(), &sf) < 0) return Error::Errno(Where(c) + ": statfs");
  if (sf.f_type == HUGETLBFS_MAGIC) return Error(Where(c) + ": hugetlb memfd is not supported");
  if (sf.f_type != TMPFS_MAGIC) return Error(Where(c) + ": " + c.link + " is not a memfd");
  return Ok();
}

Status Dump(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  const std::string& l = c.link;
  pb::MemfdEntry* d = e->mutable_memfd();
  d->set_name(l.substr(strlen(kPrefix), l.size() - strlen(kPrefix) - strlen(kSuffix)));
  d->set_flags(c.info.flags);
  d->set_pos(c.info.pos);
  d->set_size(uint64_t(c.st.st_size));
  d->set_mode(c.st.st_mode & 07777);
  TRY_ASSIGN(int raw, OpenProcFd(c.pid, c.fd, O_RDONLY));
  UniqueFd fd(raw);
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return Error::Errno("F_GET_SEALS");
  d->set_seals(uint32_t(seals));
  TRY_ASSIGN(bool mapped, Mapped(c.pid, c.st), Where(c));
  if (mapped) d->set_shmid(c.st.st_ino);  // the mapping's object: restored with it
  DumpContext::Object o = ctx.Share(
      "memfd:" + std::to_string(c.st.st_dev) + ":" + std::to_string(c.st.st_ino), e->id());
  if (o.first) {
    TRY_ASSIGN(*o.has_data, DumpFileData(ctx.dir(), o.id, fd.get(), d->size()));
  }
  d->set_object_id(o.id);
  d->set_has_data(*o.has_data);
  return Ok();
}

Result<int> Create(const pb::MemfdEntry& d, const RestoreOpts& o) {
  // Exec permission is decided at creation (MFD_EXEC, vm.memfd_noexec):
  // ask for an executable memfd, set the dumped mode, then add every seal
  // (F_SEAL_EXEC included, which MFD_NOEXEC_SEAL had given the original).
  UniqueFd fd(memfd_create(d.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
  if (!fd)  // before Linux 6.3 (EINVAL), or vm.memfd_noexec=2 (EACCES)
    fd.reset(memfd_create(d.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::Errno("memfd_create " + d.name());
  struct stat st;
  if (fstat(fd.get(), &st) == 0 && (st.st_mode & 07777) != d.mode() &&
      fchmod(fd.get(), d.mode()) < 0)
    return Error::Errno("chmod memfd " + d.name());
  if (ftruncate(fd.get(), off_t(d.size())) < 0) return Error::Errno("size memfd " + d.name());
  if (d.has_data()) TRY(RestoreFileData(o.ctx->dir(), d.object_id(), fd.get(), d.size()));
  if (d.seals() && fcntl(fd.get(), F_ADD_SEALS, d.seals()) < 0)
    return Error::Errno("seal memfd " + d.name());
  return fd.release();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("memfd needs a restore context (files::OpenFiles)");
  const pb::MemfdEntry& d = e.memfd();
  std::string key = "memfd:" + std::to_string(d.object_id());
  int base = o.ctx->Find(key);
  if (base < 0 && d.has_shmid()) {
    // Mapped shared too: the mapping's object already holds the contents.
    auto it = o.shmem ? o.shmem->find(d.shmid()) : decltype(o.shmem->end()){};
    if (!o.shmem || it == o.shmem->end())
      return Error("memfd " + d.name() + ": its shared memory object is missing");
    int fd = fcntl(it->second, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) return Error::Errno("dup memfd " + d.name());
    // The object was sized to the pages its mappings reach: the file's own size.
    struct stat now;
    if (fstat(fd, &now) == 0 && uint64_t(now.st_size) != d.size() &&
        ftruncate(fd, off_t(d.size())) < 0) {
      close(fd);
      return Error::Errno("size of memfd " + d.name());
    }
    if (fchmod(fd, d.mode()) < 0 ||
        (d.seals() && fcntl(fd, F_ADD_SEALS, d.seals()) < 0)) {
      close(fd);
      return Error::Errno("mode or seals of memfd " + d.name());
    }
    TRY_ASSIGN(base, o.ctx->Keep(key, fd));
  }
  if (base < 0) {
    TRY_ASSIGN(int fd, Create(d, o));
    TRY_ASSIGN(base, o.ctx->Keep(key, fd));
  }
  return ReopenAt(base, d.flags(), d.pos(), "memfd " + d.name());
}

Status Validate(const pb::FileEntry& e) {
  const pb::MemfdEntry& d = e.memfd();
  if (!e.has_memfd() || d.object_id() == 0 || d.name().size() > 249 || d.mode() > 07777 ||
      d.size() > (1ull << 46))
    return Error("file " + std::to_string(e.id()) + ": bad memfd entry");
  return Ok();
}

}  // namespace

const FileHandler kMemfdHandler = {.kind = pb::FILE_MEMFD,
                                   .name = "memfd",
                                   .match = Match,
                                   .check = Check,
                                   .dump = Dump,
                                   .open = Open,
                                   .validate = Validate,
                                   .deps = nullptr};

}  // namespace ckpt::files
