#include "criu/files/inherit_fd.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <optional>
#include <set>

#include "base/log.h"
#include "criu/files/file_data.h"

namespace ckpt::files {
namespace {

// CRIU's documentation writes pipe[INO] and socket[INO]; /proc and runc
// write pipe:[INO] and socket:[INO]. A path may come without its "/".
std::string Canon(const std::string& key) {
  for (const char* kind : {"pipe", "socket"}) {
    std::string k = kind;
    if (key.rfind(k + "[", 0) == 0) return k + ":" + key.substr(k.size());
  }
  if (key.rfind("pipe:[", 0) == 0 || key.rfind("socket:[", 0) == 0 || key.rfind("tty[", 0) == 0 ||
      key.rfind("file[", 0) == 0 || key[0] == '/')
    return key;
  return "/" + key;
}

// The status flags of the dumped fd (access mode included), if its kind
// keeps them.
std::optional<uint32_t> FlagsOf(const pb::FileEntry& e) {
  if (e.has_reg()) return e.reg().flags();
  if (e.has_chr()) return e.chr().flags();
  if (e.has_pipe()) return e.pipe().flags();
  if (e.has_pty()) return e.pty().flags();
  if (e.has_ext()) return e.ext().flags();
  if (e.has_unix_sk()) return e.unix_sk().flags() | O_RDWR;
  return std::nullopt;
}

// Why e can only come from the caller, or "" if ckpt can make it.
std::string NeededFor(const pb::FileEntry& e, const Options& o) {
  if (e.has_pipe() && e.pipe().external() && !e.pipe().has_path()) {
    bool write_end = (e.pipe().flags() & O_ACCMODE) == O_WRONLY;
    return std::string("its ") + (write_end ? "read" : "write") +
           " end was held outside the dumped tree";
  }
  if (e.has_ext())
    return e.ext().path() + " was external at dump (--external " + e.ext().key() + ")";
  if (e.has_pty() && e.pty().orphan() && !o.orphan_pts_master)
    return "pty slave " + e.pty().path() + " whose master was outside the dumped tree";
  return "";
}

const char* AccName(int acc) {
  return acc == O_RDONLY ? "reading" : acc == O_WRONLY ? "writing" : "reading and writing";
}

}  // namespace

std::vector<std::string> KeysOf(const pb::FileEntry& e) {
  std::vector<std::string> k;
  if (e.has_pipe()) {
    if (e.pipe().has_path())
      k.push_back(e.pipe().path());
    else if (e.pipe().has_ino())
      k.push_back("pipe:[" + std::to_string(e.pipe().ino()) + "]");
  }
  if (e.has_unix_sk()) k.push_back("socket:[" + std::to_string(e.unix_sk().ino()) + "]");
  if (e.has_pty() && e.pty().has_rdev()) k.push_back(TtyKey(e.pty().rdev(), e.pty().dev()));
  if (e.has_ext()) k.push_back(e.ext().key());
  if (e.has_reg() && !e.reg().path().empty() && e.reg().path()[0] == '/')
    k.push_back(e.reg().path());
  if (e.has_chr() && !e.chr().path().empty()) k.push_back(e.chr().path());
  return k;
}

Status CheckInherited(const Options& o, const TreeImages& tree) {
  std::map<std::string, const Options::InheritFd*> by_key;
  for (const Options::InheritFd& f : o.inherit_fds) {
    std::string what = "--inherit-fd fd[" + std::to_string(f.fd) + "]:" + f.key;
    if (f.key.empty()) return Error(what + ": no key");
    if (fcntl(f.fd, F_GETFL) < 0)
      return Error(what + ": ckpt has no fd " + std::to_string(f.fd) +
                   " (the caller must pass it open)");
    if (!by_key.emplace(Canon(f.key), &f).second) return Error(what + ": key given twice");
  }
  std::set<std::string> used;
  for (const TaskImages& t : tree.tasks) {
    for (const pb::FdinfoEntry& fd : t.fds) {
      auto it = tree.files.find(fd.file_id());
      if (it == tree.files.end()) continue;  // LoadTreeImages refused it already
      const pb::FileEntry& e = it->second;
      std::string where = "pid " + std::to_string(t.pid()) + " fd " + std::to_string(fd.fd());
      std::vector<std::string> keys = KeysOf(e);
      const Options::InheritFd* inh = nullptr;
      for (const std::string& k : keys) {
        auto m = by_key.find(k);
        if (m != by_key.end()) {
          inh = m->second;
          used.insert(k);
          break;
        }
      }
      if (!inh) {
        std::string why = NeededFor(e, o);
        if (!why.empty())
          return Error(where + ": " + (keys.empty() ? std::string("file") : keys[0]) + ": " + why +
                       ": restore needs " +
                       (e.has_pty() ? "--orphan-pts-master (a new pair) or " : "") +
                       "--inherit-fd fd[N]:" + (keys.empty() ? std::string("KEY") : keys[0]) +
                       " (N: an fd of ckpt that stands for it)");
        continue;
      }
      auto flags = FlagsOf(e);
      int have = fcntl(inh->fd, F_GETFL);
      if (!flags || (*flags & O_PATH) || have < 0) continue;
      int want = int(*flags) & O_ACCMODE, got = have & O_ACCMODE;
      if (got != O_RDWR && got != want)
        return Error(where + ": --inherit-fd fd[" + std::to_string(inh->fd) + "]:" + inh->key +
                     ": fd " + std::to_string(inh->fd) + " is open for " + AccName(got) + ", " +
                     where + " was open for " + AccName(want));
    }
  }
  for (const auto& [key, f] : by_key)
    if (!used.count(key))
      LOG_WARN("--inherit-fd fd[" + std::to_string(f->fd) + "]:" + f->key +
               ": no fd of the dumped tree held that file; not used");
  return Ok();
}

Result<InheritedFds> InheritedFds::Prepare(const Options& o, const TreeImages& tree, int base) {
  TRY(CheckInherited(o, tree));
  InheritedFds r;
  for (const Options::InheritFd& f : o.inherit_fds) {
    UniqueFd copy(fcntl(f.fd, F_DUPFD_CLOEXEC, base));
    if (!copy) return Error::Errno("--inherit-fd fd[" + std::to_string(f.fd) + "]: dup");
    r.by_key_[Canon(f.key)] = copy.get();
    r.copies_.push_back(std::move(copy));
  }
  return r;
}

int InheritedFds::Find(const pb::FileEntry& e) const {
  for (const std::string& k : KeysOf(e)) {
    auto it = by_key_.find(k);
    if (it != by_key_.end()) return it->second;
  }
  return -1;
}

Result<int> OpenInherited(const pb::FileEntry& e, int fd, RestoreContext& ctx) {
  UniqueFd r(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!r) return Error::Errno("dup the inherited fd");
  auto flags = FlagsOf(e);
  if (flags) {
    int cur = fcntl(r.get(), F_GETFL);
    int want = (cur & ~(O_NONBLOCK | O_APPEND)) | (int(*flags) & (O_NONBLOCK | O_APPEND));
    if (cur >= 0 && want != cur && fcntl(r.get(), F_SETFL, want) < 0)
      return Error::Errno("set the flags of the inherited fd");
  }
  // A read end's unread bytes, once per pipe, into another, empty pipe.
  if (e.has_pipe() && !e.pipe().has_path() && e.pipe().has_data() &&
      (e.pipe().flags() & O_ACCMODE) == O_RDONLY) {
    std::string key = "inherited-data:" + std::to_string(e.pipe().object_id());
    struct stat st;
    int queued = 0;
    if (ctx.Find(key) < 0 && fstat(r.get(), &st) == 0 && S_ISFIFO(st.st_mode)) {
      if (st.st_ino == e.pipe().ino()) {
        LOG_INFO("pipe:[" + std::to_string(st.st_ino) +
                 "] is the dumped pipe itself: its unread bytes are still in it");
      } else if (ioctl(r.get(), FIONREAD, &queued) == 0 && queued > 0) {
        LOG_WARN("inherited pipe:[" + std::to_string(st.st_ino) + "] for pipe:[" +
                 std::to_string(e.pipe().ino()) + "] already holds " + std::to_string(queued) +
                 " bytes: the bytes the program had not read at dump are dropped");
      } else {
        TRY_ASSIGN(int w, Reopen(r.get(), O_WRONLY | O_NONBLOCK | O_CLOEXEC, "inherited pipe"));
        UniqueFd wg(w);
        TRY(RestorePipeData(ctx.dir(), e.pipe().object_id(), w, e.pipe().size()),
            "unread bytes of pipe:[" + std::to_string(e.pipe().ino()) + "]");
        TRY_ASSIGN(int kept, ctx.Keep(key, wg.release()));  // the mark: once per pipe
        (void)kept;
      }
    }
  }
  return r.release();
}

}  // namespace ckpt::files
