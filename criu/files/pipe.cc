// Pipes and FIFOs. Unread bytes are saved without being consumed (tee, see
// file_data.h) and put back; the pipe size (F_GETPIPE_SZ) too.
//
// An anonymous pipe is created once at restore; each end entry takes that
// end, or a new open file of it (through /proc/self/fd) for ends the task
// had opened itself that way. A pipe whose other end is held only by
// processes outside the dumped tree (a container's stdio, held by the
// runtime) is saved as external (PipeEntry.external) and comes back only
// from --inherit-fd fd[N]:pipe:[INO] (inherit_fd.h); its unread bytes are
// saved for a read end (they are the tree's input), not for a write end
// (they are the outside reader's, still in the old pipe). One whose other
// end is closed everywhere is restored with that end closed.
//
// A FIFO is reopened by path. While its ends are being opened, the restore
// holds it open for reading and writing, so that opening one end does not
// block waiting for the other.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/deleted_node.h"
#include "criu/files/file_context.h"
#include "criu/files/unix_sk.h"
#include "criu/files/file_data.h"
#include "criu/files/file_types.h"
#include "criu/files/flock.h"  // SeizedByUs
#include "criu/proc_parse.h"

namespace ckpt::files {
namespace {

bool MatchPipe(const FdContext& c) {
  return S_ISFIFO(c.st.st_mode) && c.link.rfind("pipe:", 0) == 0;
}
bool MatchFifo(const FdContext& c) {
  return S_ISFIFO(c.st.st_mode) && !c.link.empty() && c.link[0] == '/';
}

// Saves what both kinds share: size, packet mode and (once per pipe,
// unless !save_data) data.
Status DumpCommon(const FdContext& c, DumpContext& ctx, const std::string& key, pb::FileEntry* e,
                  pb::PipeEntry* d, bool save_data = true) {
  // O_RDONLY | O_NONBLOCK never blocks, not even on a FIFO without writers.
  TRY_ASSIGN(int raw, OpenProcFd(c.pid, c.fd, O_RDONLY | O_NONBLOCK));
  UniqueFd h(raw);
  int size = fcntl(h.get(), F_GETPIPE_SZ);
  if (size < 0) return Error::Errno("F_GETPIPE_SZ");
  bool packets = false;
  for (const FdContext& o : ctx.task_fds())
    packets |=
        o.st.st_ino == c.st.st_ino && o.st.st_dev == c.st.st_dev && (o.info.flags & O_DIRECT);
  DumpContext::Object obj = ctx.Share(key, e->id());
  if (obj.first && save_data) {
    TRY_ASSIGN(*obj.has_data, DumpPipeData(ctx.dir(), obj.id, h.get()));
  }
  d->set_object_id(obj.id);
  d->set_flags(c.info.flags);
  d->set_size(uint32_t(size));
  d->set_has_data(*obj.has_data);
  d->set_ino(c.st.st_ino);
  d->set_packets(packets);
  return Ok();
}

// Whether anything holds the opposite side of this end of the pipe, asked
// through a new open file of our own on the same side, which the kernel's
// pipe_poll answers for: a reader sees POLLHUP once no writer is left, a
// writer sees POLLERR once no reader is left.
Result<bool> PeerAlive(const FdContext& c, bool write_end) {
  TRY_ASSIGN(int raw, OpenProcFd(c.pid, c.fd, (write_end ? O_WRONLY : O_RDONLY) | O_NONBLOCK));
  UniqueFd h(raw);
  pollfd p = {h.get(), 0, 0};
  if (poll(&p, 1, 0) < 0) return Error::Errno("poll");
  return !(p.revents & (write_end ? POLLERR : POLLHUP));
}

// Which sides of which pipes the tasks of the dumped tree (those ckpt
// traces) hold, in one pass over their fd tables: bit 0 read, bit 1 write.
std::map<uint64_t, uint8_t> ScanTreePipes() {
  std::map<uint64_t, uint8_t> sides;
  DIR* d = opendir("/proc");
  if (!d) return sides;
  while (dirent* p = readdir(d)) {
    if (p->d_name[0] < '1' || p->d_name[0] > '9') continue;
    pid_t pid = pid_t(atoi(p->d_name));
    if (!SeizedByUs(pid)) continue;
    std::string dir = std::string("/proc/") + p->d_name + "/fd";
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      char buf[64];
      ssize_t n = readlinkat(dirfd(fds), f->d_name, buf, sizeof(buf) - 1);
      if (n < 7 || memcmp(buf, "pipe:[", 6) != 0) continue;
      buf[n] = 0;
      uint64_t ino = strtoull(buf + 6, nullptr, 10);
      auto info = proc::ReadFdInfo(pid, atoi(f->d_name));
      if (!info.ok()) continue;
      int acc = int(info->flags) & O_ACCMODE;
      sides[ino] |= acc == O_RDWR ? 3 : acc == O_WRONLY ? 2 : 1;
    }
    closedir(fds);
  }
  closedir(d);
  return sides;
}

// Whether a task of the dumped tree holds pipe `ino` open on the given side.
bool TreeHoldsSide(DumpContext& ctx, uint64_t ino, bool write_side) {
  auto& sides = ctx.tree_pipe_sides();
  if (!sides) sides = ScanTreePipes();
  auto it = sides->find(ino);
  return it != sides->end() && (it->second & (write_side ? 2 : 1));
}

Status DumpPipe(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  int acc = int(c.info.flags) & O_ACCMODE;
  bool external = false;
  for (bool write_end : {false, true}) {
    if (acc != O_RDWR && (acc == O_WRONLY) != write_end) continue;
    bool alive = true;
    if (acc != O_RDWR) {
      TRY_ASSIGN(alive, PeerAlive(c, write_end));
      // The other side is open, and not in the tree: held outside.
      // (An end in flight in a queue of the tree is in the tree: unix_sk.h.)
      if (alive && !TreeHoldsSide(ctx, c.st.st_ino, !write_end) &&
          !PipeSideInFlight(c.st.st_ino, !write_end))
        external = true;
    }
    if (!external) ctx.SawPipeEnd(c.st.st_ino, write_end, alive, Where(c));
  }
  std::string name = "pipe:[" + std::to_string(c.st.st_ino) + "]";
  TRY(DumpCommon(c, ctx, "pipe:" + std::to_string(c.st.st_ino), e, e->mutable_pipe(),
                 !(external && acc == O_WRONLY)));
  if (external) {
    e->mutable_pipe()->set_external(true);
    LOG_WARN(Where(c) + ": " + name + " is external (its " + (acc == O_WRONLY ? "read" : "write") +
             " end is held outside the dumped tree): restore needs --inherit-fd fd[N]:" + name);
  }
  return Ok();
}

Status CheckFifo(const FdContext& c, const std::vector<FdContext>&) {
  // A deleted FIFO is made again (deleted_node.h), unless another name of
  // it is left: that one cannot be found.
  if (IsDeletedLink(c.link) && c.st.st_nlink > 0)
    return Error(Where(c) + ": deleted FIFO " + c.link + " that still has " +
                 std::to_string(c.st.st_nlink) + " other name(s) is not supported");
  return Ok();
}

Status DumpFifo(const FdContext& c, DumpContext& ctx, pb::FileEntry* e) {
  pb::PipeEntry* d = e->mutable_pipe();
  d->set_path(StripDeleted(c.link));
  if (IsDeletedLink(c.link)) {
    d->set_deleted(true);
    d->set_mode(c.st.st_mode & 07777);
  }
  return DumpCommon(
      c, ctx, "fifo:" + std::to_string(c.st.st_dev) + ":" + std::to_string(c.st.st_ino), e, d);
}

Status Resize(int fd, uint32_t size) {
  int cur = fcntl(fd, F_GETPIPE_SZ);
  if (cur >= 0 && uint32_t(cur) == size) return Ok();
  if (fcntl(fd, F_SETPIPE_SZ, int(size)) < 0)
    return Error::Errno("F_SETPIPE_SZ " + std::to_string(size) +
                        (errno == EPERM ? " (above fs.pipe-max-size)" : ""));
  return Ok();
}

// O_LARGEFILE as the kernel reports it (fdinfo, F_GETFL) on x86-64. glibc
// defines O_LARGEFILE as 0 on 64-bit targets, so `flags & O_LARGEFILE` is
// always false: an open file made by open(2) (which adds it) must be told
// from the one pipe(2) made by this value.
constexpr uint32_t kKernelOLargefile = 0100000;
// The status flags of one open file of a pipe end (F_SETFL can set them).
constexpr int kEndFlags = O_NONBLOCK | O_APPEND | O_DIRECT;

// A new open file of the pipe end `end` with this entry's flags. open(2)
// refuses O_DIRECT on a pipe; fcntl(F_SETFL) takes it (packet mode).
Result<int> OpenEnd(int end, uint32_t flags, const std::string& what) {
  int f = int(flags) & (O_ACCMODE | O_NONBLOCK | O_APPEND);
  TRY_ASSIGN(int fd, Reopen(end, f | O_CLOEXEC, what));
  if ((flags & O_DIRECT) && fcntl(fd, F_SETFL, f | O_DIRECT) < 0) {
    int e = errno;
    close(fd);
    return Error::Errno(what + ": set O_DIRECT", e);
  }
  return fd;
}

// The entry that takes the end pipe2() made on one side of pipe `object`:
// the one of that side opened without open(2) (no O_LARGEFILE); 0 if none.
uint32_t PipeEndEntry(const RestoreContext& ctx, uint32_t object, bool write_side) {
  for (uint32_t id : ctx.SharersOf(object)) {
    const pb::FileEntry* e = ctx.EntryOf(id);
    if (!e || !e->has_pipe()) continue;
    int acc = int(e->pipe().flags()) & O_ACCMODE;
    if (acc != O_RDWR && (acc == O_WRONLY) == write_side &&
        !(e->pipe().flags() & kKernelOLargefile))
      return id;
  }
  return 0;
}

Result<int> OpenPipe(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("pipe needs a restore context (files::OpenFiles)");
  const pb::PipeEntry& d = e.pipe();
  if (d.external())  // OpenFiles takes an --inherit-fd first (inherit_fd.h)
    return Error("pipe:[" + std::to_string(d.ino()) +
                 "] was external at dump: restore needs --inherit-fd fd[N]:pipe:[" +
                 std::to_string(d.ino()) + "]");
  std::string key = "pipe:" + std::to_string(d.object_id());
  int r = o.ctx->Find(key + ":r"), w = o.ctx->Find(key + ":w");
  if (r < 0) {
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK | (d.packets() ? O_DIRECT : 0)) < 0)
      return Error::Errno("pipe");
    UniqueFd pr(p[0]), pw(p[1]);
    TRY(Resize(pw.get(), d.size()));
    if (d.has_data()) TRY(RestorePipeData(o.ctx->dir(), d.object_id(), pw.get(), d.size()));
    // Each end waits at the home number of the entry that will take it.
    TRY_ASSIGN(r, o.ctx->Keep(key + ":r", pr.release(), PipeEndEntry(*o.ctx, d.object_id(), false)));
    TRY_ASSIGN(w, o.ctx->Keep(key + ":w", pw.release(), PipeEndEntry(*o.ctx, d.object_id(), true)));
  }
  int acc = int(d.flags()) & O_ACCMODE;
  int end = acc == O_WRONLY ? w : r;
  if (acc == O_RDWR || (d.flags() & kKernelOLargefile)) return OpenEnd(end, d.flags(), "pipe");
  // The end pipe2() made (open(2) would add O_LARGEFILE, which F_GETFL
  // shows and F_SETFL cannot clear): this entry takes it over, so this
  // open file is the entry's alone. (A second such entry shares it.)
  int own = o.ctx->Hand(key + (acc == O_WRONLY ? ":w" : ":r"));
  UniqueFd fd(own >= 0 ? own : fcntl(end, F_DUPFD_CLOEXEC, 0));
  if (!fd) return Error::Errno("dup pipe end");
  if (fcntl(fd.get(), F_SETFL, int(d.flags()) & kEndFlags) < 0)
    return Error::Errno("pipe flags");
  return fd.release();
}

Result<int> OpenFifo(const pb::FileEntry& e, const RestoreOpts& o) {
  if (!o.ctx) return Error("FIFO needs a restore context (files::OpenFiles)");
  const pb::PipeEntry& d = e.pipe();
  std::string key = "fifo:" + std::to_string(d.object_id());
  int base = o.ctx->Find(key);
  if (base < 0) {
    // O_RDWR on a FIFO never waits for a partner (fifo(7), Linux).
    UniqueFd fd;
    if (d.deleted()) {
      TRY_ASSIGN(int made, OpenDeletedNode(d.path(), S_IFIFO | (d.mode() & 07777), 0,
                                           O_RDWR | O_NONBLOCK));
      fd.reset(made);
    } else {
      fd.reset(open(d.path().c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    }
    if (!fd) return Error::Errno("open FIFO " + d.path());
    struct stat st;
    if (fstat(fd.get(), &st) < 0 || !S_ISFIFO(st.st_mode))
      return Error(d.path() + " is no longer a FIFO");
    TRY(Resize(fd.get(), d.size()));
    int queued = 0;
    if (ioctl(fd.get(), FIONREAD, &queued) == 0 && queued > 0)
      LOG_WARN("FIFO " + d.path() +
               " is open elsewhere and holds data; its dumped data is not "
               "added");
    else if (d.has_data())
      TRY(RestorePipeData(o.ctx->dir(), d.object_id(), fd.get(), d.size()));
    TRY_ASSIGN(base, o.ctx->Keep(key, fd.release()));
  }
  return OpenEnd(base, d.flags(), "FIFO " + d.path());
}

Status Validate(const pb::FileEntry& e, bool fifo) {
  const pb::PipeEntry& d = e.pipe();
  uint32_t sz = d.size();
  if (!e.has_pipe() || d.object_id() == 0 || sz < 4096 || (sz & (sz - 1)) != 0 ||
      fifo != d.has_path() || (fifo && (d.path().empty() || d.path()[0] != '/')))
    return Error("file " + std::to_string(e.id()) + ": bad pipe entry");
  return Ok();
}

}  // namespace

const FileHandler kPipeHandler = {
    .kind = pb::FILE_PIPE,
    .name = "pipe",
    .match = MatchPipe,
    .check = nullptr,
    .dump = DumpPipe,
    .open = OpenPipe,
    .validate = [](const pb::FileEntry& e) { return Validate(e, false); },
    .deps = nullptr};

const FileHandler kFifoHandler = {
    .kind = pb::FILE_FIFO,
    .name = "FIFO",
    .match = MatchFifo,
    .check = CheckFifo,
    .dump = DumpFifo,
    .open = OpenFifo,
    .validate = [](const pb::FileEntry& e) { return Validate(e, true); },
    .deps = nullptr};

}  // namespace ckpt::files
