// inotify(7). fdinfo lists the watches (inotify_fdinfo in fs/notify/fdinfo.c):
//   inotify wd:2 ino:35d sdev:fe00000 mask:800 ignored_mask:0
//           fhandle-bytes:8 fhandle-type:1 f_handle:5d03000000000000
// A watch names an inode, not a path: the path is found again by opening the
// file handle (open_by_handle_at on a mount of that device) and reading the
// link of the result. Events queued but not read at dump time are lost.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>

#include "base/io.h"
#include "base/unique_fd.h"
#include "criu/files/fdinfo_fields.h"
#include "criu/files/file_types.h"

namespace ckpt::files {
namespace {

bool Match(const FdContext& c) { return c.link == "anon_inode:inotify"; }

struct Watch {
  uint32_t wd, mask;
  uint64_t ino;
  dev_t dev;
  std::string handle;  // struct file_handle, header included
  std::string what = {};  // for messages; "" = "inotify watch wd N"
};

Result<std::vector<Watch>> Watches(const FdContext& c) {
  std::vector<Watch> out;
  for (const std::string& line : FdinfoLines(c.fdinfo, "inotify ")) {
    auto tok = FdinfoTokens(line);
    const std::string what = "inotify watch";
    TRY_ASSIGN(uint64_t wd, TokenNumber(tok, "wd", 16, what));
    TRY_ASSIGN(uint64_t ino, TokenNumber(tok, "ino", 16, what));
    TRY_ASSIGN(uint64_t sdev, TokenNumber(tok, "sdev", 16, what));
    TRY_ASSIGN(uint64_t mask, TokenNumber(tok, "mask", 16, what));
    TRY_ASSIGN(uint64_t bytes, TokenNumber(tok, "fhandle-bytes", 16, what));
    TRY_ASSIGN(uint64_t type, TokenNumber(tok, "fhandle-type", 16, what));
    std::string hex = tok["f_handle"];
    if (bytes > MAX_HANDLE_SZ || hex.size() != 2 * bytes)
      return Error("fdinfo: bad inotify file handle for wd " + std::to_string(wd));
    file_handle h = {uint32_t(bytes), int(type)};
    std::string handle(reinterpret_cast<const char*>(&h), sizeof(h));
    for (size_t i = 0; i < bytes; i++) {
      TRY_ASSIGN(uint64_t b, ParseNumber(hex.substr(2 * i, 2), 16, "f_handle"));
      handle.push_back(char(b));
    }
    // The kernel's internal dev_t: 12 bits of major above 20 of minor.
    dev_t dev = makedev(unsigned(sdev >> 20), unsigned(sdev & 0xfffff));
    out.push_back({uint32_t(wd), uint32_t(mask), ino, dev, std::move(handle)});
  }
  std::sort(out.begin(), out.end(), [](const Watch& a, const Watch& b) { return a.wd < b.wd; });
  return out;
}

// Undoes mountinfo's octal escapes (\040 for a space, ...).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && isdigit(s[i + 1])) {
      out.push_back(char(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The path (as ckpt sees it) of the watched inode, tried through every
// mount of its device in the task's mount namespace.
Result<std::string> Resolve(pid_t pid, const Watch& w) {
  std::string root = "/proc/" + std::to_string(pid) + "/root";
  TRY_ASSIGN(std::string mounts, io::ReadFile("/proc/" + std::to_string(pid) + "/mountinfo"));
  std::istringstream in(mounts);
  std::string line;
  std::string why =
      "no mount of device " + std::to_string(major(w.dev)) + ":" + std::to_string(minor(w.dev));
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, majmin, mroot, mpoint;
    f >> id >> parent >> majmin >> mroot >> mpoint;
    unsigned ma, mi;
    if (sscanf(majmin.c_str(), "%u:%u", &ma, &mi) != 2 || makedev(ma, mi) != w.dev) continue;
    // Not O_PATH: open_by_handle_at() wants a real open file (fdget) here.
    UniqueFd mnt(open((root + Unescape(mpoint)).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!mnt) continue;
    std::string h = w.handle;
    UniqueFd fd(
        open_by_handle_at(mnt.get(), reinterpret_cast<file_handle*>(h.data()), O_PATH | O_CLOEXEC));
    if (!fd) {
      why = "open_by_handle_at: " + std::string(strerror(errno)) +
            (errno == EPERM ? " (it needs CAP_DAC_READ_SEARCH: run ckpt as root)" : "");
      continue;
    }
    auto path = io::ReadLink("/proc/self/fd/" + std::to_string(fd.get()));
    struct stat st;
    if (path.ok() && (*path)[0] == '/' && lstat(path->c_str(), &st) == 0 && st.st_ino == w.ino &&
        st.st_dev == w.dev)
      return *path;
    why = "the handle leads to " + (path.ok() ? *path : std::string("?")) +
          ", which is not the watched inode";
  }
  return Error((w.what.empty() ? "inotify watch wd " + std::to_string(w.wd) : w.what) +
               " (inode " + std::to_string(w.ino) + ") cannot be resolved to a path: " + why);
}

}  // namespace

Result<std::string> ResolveFileHandle(pid_t pid, dev_t dev, uint64_t ino,
                                      const std::string& handle, const std::string& what) {
  return Resolve(pid, Watch{0, 0, ino, dev, handle, what});
}

namespace {

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  TRY_ASSIGN(std::vector<Watch> ws, Watches(c), Where(c));
  for (const Watch& w : ws) TRY(Resolve(c.pid, w), Where(c));
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  TRY_ASSIGN(std::vector<Watch> ws, Watches(c));
  pb::InotifyEntry* d = e->mutable_inotify();
  d->set_flags(c.info.flags);
  for (const Watch& w : ws) {
    TRY_ASSIGN(std::string path, Resolve(c.pid, w));
    pb::InotifyWatch* pw = d->add_watches();
    pw->set_wd(w.wd);
    pw->set_mask(w.mask);
    pw->set_path(path);
  }
  return Ok();
}

// Reads away queued events (the IN_IGNORED of watches removed below).
void Drain(int fd) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  char buf[4096];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
  fcntl(fd, F_SETFL, fl);
}

// wds come from idr_alloc_cyclic: each new watch gets the next number,
// whatever was freed. To get wd N back, a watch is added and removed until
// the counter reaches N; each removal queues an IN_IGNORED event, read
// away at the end. Watches are added in ascending wd order.
Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::InotifyEntry& d = e.inotify();
  UniqueFd fd(inotify_init1(IN_CLOEXEC | ((d.flags() & O_NONBLOCK) ? IN_NONBLOCK : 0)));
  if (!fd) return Error::Errno("inotify_init1");
  constexpr uint32_t kMaxBurn = 1u << 22;
  uint32_t burned = 0;
  for (const pb::InotifyWatch& w : d.watches()) {
    uint32_t mask = (w.mask() & ~uint32_t(IN_MASK_ADD | IN_MASK_CREATE)) | IN_DONT_FOLLOW;
    for (;;) {
      int wd = inotify_add_watch(fd.get(), w.path().c_str(), mask);
      if (wd < 0) return Error::Errno("inotify watch " + w.path());
      if (uint32_t(wd) == w.wd()) break;
      if (uint32_t(wd) > w.wd() || ++burned > kMaxBurn)
        return Error("inotify watch " + w.path() + ": cannot get wd " + std::to_string(w.wd()) +
                     " back (got " + std::to_string(wd) + ")");
      inotify_rm_watch(fd.get(), wd);
      if (burned % 1024 == 0) Drain(fd.get());  // stay below max_queued_events
    }
  }
  if (burned) Drain(fd.get());
  return fd.release();
}

Status Validate(const pb::FileEntry& e) {
  if (!e.has_inotify()) return Error("file " + std::to_string(e.id()) + ": bad inotify entry");
  uint32_t last = 0;
  for (const auto& w : e.inotify().watches())
    if (w.wd() <= last || w.wd() > INT32_MAX || w.path().empty() || w.path()[0] != '/')
      return Error("file " + std::to_string(e.id()) + ": bad inotify watch");
    else
      last = w.wd();
  return Ok();
}

}  // namespace

const FileHandler kInotifyHandler = {.kind = pb::FILE_INOTIFY,
                                     .name = "inotify",
                                     .match = Match,
                                     .check = Check,
                                     .dump = Dump,
                                     .open = Open,
                                     .validate = Validate,
                                     .deps = nullptr};

}  // namespace ckpt::files
