#include "criu/files/fd_restore.h"

#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>
#include <vector>

#include "criu/files/file_context.h"
#include "criu/files/inherit_fd.h"

namespace ckpt::files {

namespace {

// The object id and whether it has data, for kinds that share objects.
bool ObjectOf(const pb::FileEntry& e, uint32_t* id, bool* has_data) {
  if (e.has_pipe())
    *id = e.pipe().object_id(), *has_data = e.pipe().has_data();
  else if (e.has_memfd())
    *id = e.memfd().object_id(), *has_data = e.memfd().has_data();
  else if (e.has_ghost())
    *id = e.ghost().object_id(), *has_data = e.ghost().has_data();
  else
    return false;
  return true;
}

// Moves a newly opened file (fd) to its home number if it has one and that
// number is free, else to the lowest free number >= min_fd (one there
// already stays); close-on-exec.
Result<int> PlaceFile(int fd, const std::map<uint32_t, int>& homes, uint32_t id, int min_fd) {
  auto home = homes.find(id);
  // At home, or already out of the way (a handed object: RestoreContext::Hand).
  if ((home != homes.end() && fd == home->second) || fd >= min_fd) {
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return Error::Errno("fcntl");
    return fd;
  }
  if (home != homes.end()) {
    int h = home->second;
    if (fcntl(h, F_GETFD) < 0 && errno == EBADF) {
      int r = dup3(fd, h, O_CLOEXEC);
      int e = errno;
      close(fd);
      if (r < 0) return Error::Errno("dup to fd " + std::to_string(h), e);
      return h;
    }
  }
  int high = fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
  int e = errno;
  close(fd);
  if (high < 0) return Error::Errno("dup", e);
  return high;
}

}  // namespace

Status CheckFiles(const images::ImageDir& dir, const std::map<uint32_t, pb::FileEntry>& files) {
  for (const auto& [id, e] : files) {
    std::string what = "file " + std::to_string(id);
    uint32_t obj;
    bool has_data;
    if (ObjectOf(e, &obj, &has_data)) {
      auto it = files.find(obj);
      if (it == files.end() || it->second.kind() != e.kind())
        return Error(what + ": its object " + std::to_string(obj) + " is not an entry of its kind");
      if (has_data) TRY(dir.OpenReader(images::ImageType::kFileData, obj), what);
    }
    const FileHandler* h = HandlerFor(e.kind());
    if (h && h->check_images) TRY(h->check_images(e, dir), what);
    if (e.has_epoll())
      for (const pb::EpollTarget& t : e.epoll().targets())
        if (!files.count(t.file_id()))
          return Error(what + ": epoll target file " + std::to_string(t.file_id()) + " is missing");
  }
  return Ok();
}

Result<std::map<uint32_t, int>> OpenFiles(const images::ImageDir& dir,
                                          const std::map<uint32_t, pb::FileEntry>& files,
                                          const RestoreOpts& o, int min_fd,
                                          const std::map<uint32_t, int>& homes) {
  std::map<uint32_t, int> opened;
  // Closes what is open so far if we return early.
  struct Guard {
    std::map<uint32_t, int>& m;
    bool done = false;
    ~Guard() {
      if (!done)
        for (auto& kv : m) close(kv.second);
    }
  } guard{opened};
  {
    RestoreContext ctx(dir, min_fd, opened);
    ctx.set_user_ns(o.user_ns);
    ctx.set_homes(&homes);
    {
      std::map<uint32_t, std::vector<uint32_t>> sharers;
      for (const auto& [id, e] : files) {
        uint32_t obj;
        bool has_data;
        if (ObjectOf(e, &obj, &has_data)) sharers[obj].push_back(id);
      }
      ctx.set_files(&files, std::move(sharers));
    }
    RestoreOpts ro = o;
    ro.ctx = &ctx;
    // Opens one entry whose dependencies are open, at its place.
    auto open_one = [&](const pb::FileEntry& fe) -> Result<int> {
      std::string what = "file " + std::to_string(fe.id());
      const FileHandler* h = HandlerFor(fe.kind());
      if (!h) return Error(what + ": unknown kind");
      // --inherit-fd: the caller's fd stands for this file (inherit_fd.h).
      int inherited = o.inherited ? o.inherited->Find(fe) : -1;
      TRY_ASSIGN(int fd, inherited >= 0 ? OpenInherited(fe, inherited, ctx) : h->open(fe, ro),
                 what + " (" + h->name + ")");
      TRY_ASSIGN(int placed, PlaceFile(fd, homes, fe.id(), min_fd), what);
      opened[fe.id()] = placed;
      return placed;
    };
    // A file in flight in a unix socket queue, wanted before its turn.
    ctx.set_opener([&](uint32_t id) -> Result<int> {
      auto f = files.find(id);
      if (f == files.end()) return Error("file " + std::to_string(id) + " is not in the image");
      const FileHandler* h = HandlerFor(f->second.kind());
      if (h && h->deps)
        for (uint32_t d : h->deps(f->second))
          if (!opened.count(d))
            return Error("file " + std::to_string(id) + ": wanted before file " +
                         std::to_string(d) + " it depends on is open");
      return open_one(f->second);
    });
    // Passes over what is left until everything is open; each pass opens
    // at least one entry whose dependencies are all open, or we are stuck.
    std::set<uint32_t> left;
    for (const auto& kv : files) left.insert(kv.first);
    while (!left.empty()) {
      bool progress = false;
      for (auto it = left.begin(); it != left.end();) {
        if (opened.count(*it)) {  // opened early (RestoreContext::OpenNow)
          it = left.erase(it);
          progress = true;
          continue;
        }
        const pb::FileEntry& fe = files.at(*it);
        std::string what = "file " + std::to_string(fe.id());
        const FileHandler* h = HandlerFor(fe.kind());
        if (!h) return Error(what + ": unknown kind");
        bool ready = true;
        if (h->deps)
          for (uint32_t d : h->deps(fe)) {
            if (!files.count(d))
              return Error(what + ": needs file " + std::to_string(d) +
                           ", which is not in the image");
            ready &= opened.count(d) != 0;
          }
        if (!ready) {
          ++it;
          continue;
        }
        TRY(open_one(fe));
        it = left.erase(it);
        progress = true;
      }
      if (!progress)
        return Error("file " + std::to_string(*left.begin()) + ": its dependencies form a cycle");
    }
    ctx.set_opener(nullptr);
  }  // the context closes what it kept (e.g. pipe ends nobody had)
  guard.done = true;
  return opened;
}

Status FinishTaskFds(const std::vector<pb::FdinfoEntry>& fds,
                     const std::map<uint32_t, pb::FileEntry>& files) {
  std::set<uint32_t> done;
  std::map<uint32_t, std::vector<int>> numbers;  // for in_task_fds
  for (const pb::FdinfoEntry& f : fds) {
    numbers[f.file_id()].push_back(int(f.fd()));
    if (!done.insert(f.file_id()).second) continue;
    const pb::FileEntry& e = files.at(f.file_id());
    const FileHandler* h = HandlerFor(e.kind());
    if (h && h->in_task) TRY(h->in_task(e, int(f.fd())), "fd " + std::to_string(f.fd()));
  }
  for (const auto& [id, nums] : numbers) {
    const pb::FileEntry& e = files.at(id);
    const FileHandler* h = HandlerFor(e.kind());
    if (h && h->in_task_fds) TRY(h->in_task_fds(e, nums), "fd " + std::to_string(nums[0]));
  }
  return Ok();
}

}  // namespace ckpt::files
