#include "criu/shmem.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <set>
#include <vector>

#include "base/io.h"
#include "base/log.h"

namespace ckpt {
namespace {
constexpr size_t kPage = 4096;
constexpr size_t kChunk = 1 << 20;

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i += 8)
    if (*reinterpret_cast<const uint64_t*>(p + i)) return false;
  return true;
}

// Copies in to out, leaving holes where pages are zero.
Status SparseCopy(int in, int out, uint64_t size, const std::string& what) {
  std::vector<char> buf(kChunk);
  for (uint64_t off = 0; off < size;) {
    size_t n = size_t(std::min<uint64_t>(kChunk, size - off));
    ssize_t r = pread(in, buf.data(), n, off_t(off));
    if (r < 0) return Error::Errno("read " + what);
    if (r == 0) break;
    for (size_t p = 0; p < size_t(r); p += kPage) {
      size_t len = std::min(kPage, size_t(r) - p);
      if (len == kPage && AllZero(buf.data() + p, len)) continue;
      if (pwrite(out, buf.data() + p, len, off_t(off + p)) != ssize_t(len))
        return Error::Errno("write " + what);
    }
    off += uint64_t(r);
  }
  if (ftruncate(out, off_t(size)) < 0) return Error::Errno("truncate " + what);
  return Ok();
}

// A new file at `name`, unlinked at once, when its directory exists (on a
// tmpfs only, unless `any_fs`) and the name is free; otherwise nothing (the
// caller makes a memfd). Not directly in "/" unless on a tmpfs: the kernel
// names its own objects there ("/anon_hugepage", "/[aio]", "/i915").
UniqueFd RecreateDeletedFile(const std::string& name, bool any_fs) {
  size_t slash = name.rfind('/');
  if (name.empty() || name[0] != '/' || slash == std::string::npos || slash + 1 >= name.size())
    return UniqueFd();
  if (slash == 0) any_fs = false;
  UniqueFd dir(open(slash ? name.substr(0, slash).c_str() : "/",
                    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct statfs sf;
  if (!dir || fstatfs(dir.get(), &sf) < 0 || (!any_fs && sf.f_type != TMPFS_MAGIC))
    return UniqueFd();
  std::string base = name.substr(slash + 1);
  UniqueFd fd(
      openat(dir.get(), base.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd && unlinkat(dir.get(), base.c_str(), 0) < 0) return UniqueFd();
  return fd;
}

}  // namespace

std::string ShmemFileName(uint64_t shmid) { return "shmem-" + std::to_string(shmid) + ".img"; }

std::string SysvShmFileName(int id) { return "sysvshm-" + std::to_string(id) + ".img"; }

Status ShmemDumper::Add(pid_t pid, const pb::MmEntry& mm) {
  for (const pb::VmaEntry& v : mm.vmas()) {
    bool object = v.kind() == pb::VMA_ANON_SHARED ||
                  (v.kind() == pb::VMA_FILE_PRIVATE && v.has_shmid());  // a deleted file
    if (object && !objects_.count(v.shmid()))
      objects_[v.shmid()] = {pid, v.start(), v.end(), ShmemFileName(v.shmid())};
    if (v.kind() == pb::VMA_SYSV_SHM && v.pgoff() == 0 && !sysv_.count(v.sysv().id()))
      sysv_[v.sysv().id()] = {pid, v.start(), v.end(), SysvShmFileName(v.sysv().id())};
  }
  return Ok();
}

Status ShmemDumper::Write(images::ImageDir& dir) {
  std::vector<Object> all;
  for (const auto& kv : objects_) all.push_back(kv.second);
  for (const auto& kv : sysv_) all.push_back(kv.second);
  for (const Object& o : all) {
    char link[128];
    snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, o.pid, o.start, o.end);
    UniqueFd in(open(link, O_RDONLY | O_CLOEXEC));
    if (!in) return Error::Errno(std::string("open shared memory ") + link);
    struct stat st;
    if (fstat(in.get(), &st) < 0) return Error::Errno("stat shared memory");
    TRY_ASSIGN(UniqueFd out, dir.CreateRaw(o.file));
    TRY(SparseCopy(in.get(), out.get(), uint64_t(st.st_size), o.file));
    LOG_DBG("shared memory " + o.file + ": " + std::to_string(st.st_size) + " bytes");
  }
  return Ok();
}

namespace {

// A new object of `size` bytes that looks like the dumped one in
// /proc/PID/maps: shared anonymous memory ("/dev/zero (deleted)") comes
// from a shared anonymous mapping reopened through map_files; a memfd
// gets its name back; a deleted file (POSIX shm unlinked while in use, a
// scratch file mapped private) is made and unlinked again in its
// directory, so /proc shows the same name (only on a tmpfs when the paths
// are not ckpt's: `any_fs` false); anything else becomes a memfd named
// after it.
Result<UniqueFd> NewObject(const std::string& path, uint64_t id, uint64_t size, bool any_fs) {
  const std::string del = " (deleted)";
  std::string name = path;
  if (name.size() > del.size() && name.compare(name.size() - del.size(), del.size(), del) == 0)
    name.resize(name.size() - del.size());
  if (name == "/dev/zero") {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return Error::Errno("mmap shared memory");
    char link[96];
    snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
             (unsigned long)p + size);
    UniqueFd fd(open(link, O_RDWR | O_CLOEXEC));
    int e = errno;
    munmap(p, size);
    if (!fd) return Error::Errno("reopen shared memory", e);
    return fd;
  }
  if (name.rfind("/memfd:", 0) != 0) {
    UniqueFd fd = RecreateDeletedFile(name, any_fs);
    if (fd) {
      if (ftruncate(fd.get(), off_t(size)) < 0) return Error::Errno("truncate " + path);
      return fd;
    }
  }
  std::string mname =
      name.rfind("/memfd:", 0) == 0 ? name.substr(7) : "ckpt-shmem-" + std::to_string(id);
  // Sealable: a memfd that is also open may have seals to put back.
  UniqueFd fd(memfd_create(mname.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Error::Errno("memfd_create");
  if (ftruncate(fd.get(), off_t(size)) < 0) return Error::Errno("truncate shared memory");
  return fd;
}

}  // namespace

Result<std::map<uint64_t, int>> RestoreShmem(const images::ImageDir& dir,
                                             const std::vector<const pb::MmEntry*>& mms,
                                             bool own_paths) {
  std::map<uint64_t, int> out;
  std::map<uint64_t, uint64_t> need;  // shmid -> bytes the mappings reach
  std::map<uint64_t, std::string> names;
  for (const pb::MmEntry* mm : mms)
    for (const pb::VmaEntry& v : mm->vmas())
      if (v.kind() == pb::VMA_ANON_SHARED ||
          (v.kind() == pb::VMA_FILE_PRIVATE && v.has_shmid())) {  // mem_dump.cc
        need[v.shmid()] = std::max(need[v.shmid()], v.pgoff() + v.end() - v.start());
        names[v.shmid()] = v.path();
      }
  for (const auto& [id, reach] : need) {
    TRY_ASSIGN(UniqueFd in, dir.OpenRaw(ShmemFileName(id)));
    struct stat st;
    if (fstat(in.get(), &st) < 0) return Error::Errno("stat " + ShmemFileName(id));
    uint64_t size = std::max<uint64_t>(uint64_t(st.st_size), reach);
    size = (size + kPage - 1) / kPage * kPage;
    TRY_ASSIGN(UniqueFd obj, NewObject(names[id], id, size, own_paths));
    TRY(SparseCopy(in.get(), obj.get(), uint64_t(st.st_size), ShmemFileName(id)));
    if (uint64_t(st.st_size) < size && ftruncate(obj.get(), off_t(size)) < 0 && errno != EPERM)
      return Error::Errno("truncate shared memory");
    out[id] = obj.release();
  }
  return out;
}

std::vector<int> DoomedSysvShm(const std::vector<const pb::MmEntry*>& mms) {
  constexpr uint32_t kShmDest = 01000;  // marked for removal (IPC_RMID)
  std::set<int> out;
  for (const pb::MmEntry* mm : mms)
    for (const pb::VmaEntry& v : mm->vmas())
      if (v.kind() == pb::VMA_SYSV_SHM && (v.sysv().mode() & kShmDest)) out.insert(v.sysv().id());
  return std::vector<int>(out.begin(), out.end());
}

Result<std::vector<int>> RestoreSysvShm(const images::ImageDir& dir,
                                        const std::vector<const pb::MmEntry*>& mms,
                                        std::vector<int>* created) {
  constexpr uint32_t kShmDest = 01000;  // marked for removal (IPC_RMID)
  std::map<int, pb::SysvShmEntry> segs;
  for (const pb::MmEntry* mm : mms)
    for (const pb::VmaEntry& v : mm->vmas())
      if (v.kind() == pb::VMA_SYSV_SHM) segs[v.sysv().id()] = v.sysv();
  std::vector<int> doomed;
  for (const auto& [id, e] : segs) {
    struct shmid_ds ds;
    std::string v = std::to_string(id);
    key_t key = (e.mode() & kShmDest) ? IPC_PRIVATE : key_t(e.key());
    if (shmctl(id, IPC_STAT, &ds) == 0) {
      // A keyed segment outlives its processes: after dump and kill on
      // this machine it is still there. The same segment is reused (and
      // given its dumped contents); anything else holding the id is not.
      if (key == IPC_PRIVATE || ds.shm_perm.__key != key || ds.shm_segsz != e.size() ||
          (ds.shm_perm.mode & kShmDest))
        return Error("SysV shm id " + v + " is in use by another segment: cannot restore it");
    } else {
      UniqueFd next(open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC));
      if (!next || write(next.get(), v.data(), v.size()) != ssize_t(v.size()))
        return Error::Errno("setting kernel.shm_next_id to " + v);
      int got = shmget(key, size_t(e.size()), IPC_CREAT | IPC_EXCL | int(e.mode() & 0777));
      if (got < 0) return Error::Errno("shmget for SysV shm id " + v);
      if (got != id) {
        shmctl(got, IPC_RMID, nullptr);
        return Error("SysV shm id " + v + " came back as " + std::to_string(got));
      }
      created->push_back(id);
    }
    void* p = shmat(id, nullptr, 0);
    if (p == reinterpret_cast<void*>(-1)) return Error::Errno("shmat " + v);
    TRY_ASSIGN(UniqueFd in, dir.OpenRaw(SysvShmFileName(id)));
    auto n = io::ReadUpTo(in.get(), p, size_t(e.size()));
    // A segment removed at dump stays attached here and is removed at
    // once: the tasks inherit the attach and shmat it by id (Linux allows
    // that for a removed segment), and a ckpt killed before they did takes
    // it along instead of leaving it behind.
    bool keep = (e.mode() & kShmDest) && n.ok();
    if (!keep) shmdt(p);
    if (!n.ok()) return std::move(n.error());
    if (shmctl(id, IPC_STAT, &ds) == 0) {
      ds.shm_perm.uid = e.uid();
      ds.shm_perm.gid = e.gid();
      ds.shm_perm.mode = e.mode() & 0777;
      if (shmctl(id, IPC_SET, &ds) < 0) return Error::Errno("IPC_SET for SysV shm id " + v);
    }
    if (keep && shmctl(id, IPC_RMID, nullptr) < 0)
      return Error::Errno("IPC_RMID for SysV shm id " + v);
    if (e.mode() & kShmDest) doomed.push_back(id);
  }
  return doomed;
}

}  // namespace ckpt
