// POSIX message queue descriptors: the queue's name and the descriptor's
// flags (access mode, O_NONBLOCK). The queue itself (attributes, messages)
// belongs to the IPC namespace and is saved with it (criu/ns/ipc_ns.h);
// in ckpt's own namespace it outlives the tree like a file, and restore
// reopens it by name, as regfile.cc reopens a path.
//
// /proc/PID/fd/N of such a descriptor reads "/name", a regular file: the
// handler tells it from a regular file of that path by the filesystem
// (statfs through the link gives the mqueue magic), and is listed before
// kRegFileHandler.
//
// Refused: a queue unlinked while open ("/name (deleted)": no name to open
// again), and a queue with an mq_notify registration (the sigev_value it
// delivers is not visible anywhere, and the registration is per queue, so
// it cannot be told apart from a registration by another holder).
#include "criu/files/mqueue.h"

#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <sstream>

#include "base/io.h"
#include "base/unique_fd.h"
#include "criu/files/file_context.h"
#include "criu/files/file_types.h"

namespace ckpt::files {

Result<MqStatus> ParseMqStatus(const std::string& text) {
  MqStatus s;
  bool have[4] = {};
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    size_t colon = tok.find(':');
    if (colon == std::string::npos) return Error("mqueue status: unexpected '" + tok + "'");
    std::string key = tok.substr(0, colon), val = tok.substr(colon + 1);
    if (val.empty() && !(in >> val)) return Error("mqueue status: " + key + " has no value");
    char* end = nullptr;
    errno = 0;
    long long v = strtoll(val.c_str(), &end, 10);
    if (errno || end == val.c_str() || *end)
      return Error("mqueue status: bad " + key + " '" + val + "'");
    if (key == "QSIZE") {
      if (v < 0) return Error("mqueue status: bad QSIZE '" + val + "'");
      s.qsize = uint64_t(v);
      have[0] = true;
    } else if (key == "NOTIFY") {
      s.notify = int(v);
      have[1] = true;
    } else if (key == "SIGNO") {
      s.signo = int(v);
      have[2] = true;
    } else if (key == "NOTIFY_PID") {
      s.notify_pid = int(v);
      have[3] = true;
    }  // fields a later kernel may add are skipped
  }
  const char* names[4] = {"QSIZE", "NOTIFY", "SIGNO", "NOTIFY_PID"};
  for (int i = 0; i < 4; i++)
    if (!have[i]) return Error(std::string("mqueue status: no ") + names[i]);
  return s;
}

std::string MqNotifyName(const MqStatus& s) {
  switch (s.notify) {
    case SIGEV_SIGNAL:
      return "SIGEV_SIGNAL (signal " + std::to_string(s.signo) + ")";
    case SIGEV_NONE:
      return "SIGEV_NONE";
    case SIGEV_THREAD:
      return "SIGEV_THREAD";
    default:
      return "sigev_notify " + std::to_string(s.notify);
  }
}

namespace {

constexpr const char* kDeleted = " (deleted)";
constexpr uint32_t kKeptFlags = O_ACCMODE | O_NONBLOCK;

bool Match(const FdContext& c) {
  if (!S_ISREG(c.st.st_mode) || c.link.size() < 2 || c.link[0] != '/') return false;
  if (c.link.find('/', 1) != std::string::npos) return false;  // a queue's name has one '/'
  struct statfs fs;
  std::string p = "/proc/" + std::to_string(c.pid) + "/fd/" + std::to_string(c.fd);
  return statfs(p.c_str(), &fs) == 0 && fs.f_type == kMqueueMagic;
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  const std::string& l = c.link;
  size_t dl = strlen(kDeleted);
  if (l.size() > dl && l.compare(l.size() - dl, dl, kDeleted) == 0)
    return Error(Where(c) + ": POSIX message queue " + l.substr(0, l.size() - dl) +
                 " was unlinked while open: not supported");
  TRY_ASSIGN(int raw, OpenProcFd(c.pid, c.fd, O_RDONLY), Where(c));
  UniqueFd fd(raw);
  char buf[256];  // the status is one short line
  auto n = io::ReadUpTo(fd.get(), buf, sizeof(buf) - 1);
  if (!n.ok()) return std::move(n.error().Context(Where(c) + ": POSIX message queue " + l));
  std::string text(buf, *n);
  TRY_ASSIGN(MqStatus s, ParseMqStatus(text), Where(c) + ": POSIX message queue " + l);
  if (s.notify_pid != 0)
    return Error(Where(c) + ": POSIX message queue " + l + " has an mq_notify registration (" +
                 MqNotifyName(s) + ", pid " + std::to_string(s.notify_pid) + "): not supported");
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* e) {
  pb::MqueueEntry* m = e->mutable_mqueue();
  m->set_name(c.link);
  m->set_flags(c.info.flags & kKeptFlags);
  return Ok();
}

Result<int> Open(const pb::FileEntry& e, const RestoreOpts&) {
  const pb::MqueueEntry& m = e.mqueue();
  mqd_t q = mq_open(m.name().c_str(), int(m.flags()) | O_CLOEXEC);
  if (q < 0) {
    if (errno == ENOENT)
      return Error::Errno("POSIX message queue " + m.name() +
                          " (it lives in the IPC namespace: was that restored first?)");
    return Error::Errno("mq_open " + m.name());
  }
  return int(q);
}

Status Validate(const pb::FileEntry& e) {
  std::string what = "file " + std::to_string(e.id());
  if (!e.has_mqueue()) return Error(what + ": bad POSIX message queue entry");
  const pb::MqueueEntry& m = e.mqueue();
  const std::string& n = m.name();
  if (n.size() < 2 || n.size() > 256 || n[0] != '/' || n.find('/', 1) != std::string::npos ||
      n.find('\0') != std::string::npos)
    return Error(what + ": bad POSIX message queue name");
  if ((m.flags() & ~kKeptFlags) || (m.flags() & O_ACCMODE) == O_ACCMODE)
    return Error(what + ": bad POSIX message queue flags " + std::to_string(m.flags()));
  return Ok();
}

}  // namespace

const FileHandler kMqueueHandler = {.kind = pb::FILE_MQUEUE,
                                    .name = "POSIX message queue",
                                    .match = Match,
                                    .check = Check,
                                    .dump = Dump,
                                    .open = Open,
                                    .validate = Validate,
                                    .deps = nullptr};

}  // namespace ckpt::files
