// One connection's requests: decode, check, serve, answer.
#include "criu/rpc/rpc_session.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "base/log.h"
#include "criu/dump.h"
#include "criu/kerndat.h"
#include "criu/lazy_pages.h"
#include "criu/page_xfer.h"
#include "criu/predump.h"
#include "criu/restore.h"
#include "criu/rpc/rpc_server.h"
#include "criu/uffd_wp.h"

namespace ckpt::rpc {
namespace {

criu_resp Reply(criu_req_type type, bool success) {
  criu_resp r;
  r.set_type(type);
  r.set_success(success);
  return r;
}

// success=false naming what went wrong; the type echoes the request's when
// the schema knows it (CRIU answers EMPTY to what it cannot read).
criu_resp ErrorReply(int type, const Error& e) {
  criu_resp r = Reply(criu_req_type_IsValid(type) ? criu_req_type(type) : EMPTY, false);
  r.set_cr_errmsg(e.message());
  if (e.err()) r.set_cr_errno(e.err());
  return r;
}

void Answer(int sk, const criu_resp& r) {
  Status s = SendResponse(sk, r);
  if (!s.ok()) LOG_WARN("RPC: " + s.error().message());
}

// The client's notifications: a point is announced and ckpt waits for the
// client's verdict before going on.
ActionNotifier ClientNotifier(int sk) {
  return [sk](const ActionEvent& e) -> Status {
    criu_resp r = Reply(NOTIFY, true);
    r.mutable_notify()->set_script(ActionName(e.action));
    if (e.pid > 0) r.mutable_notify()->set_pid(e.pid);
    int fd = e.action == Action::kOrphanPtsMaster ? e.fd : -1;
    TRY(SendResponse(sk, r, fd), "notifying the client");
    criu_req a;
    int unknown;
    TRY_ASSIGN(bool got, RecvRequest(sk, &a, &unknown), "waiting for the client's answer");
    if (!got) return Error("the client closed the connection instead of answering");
    if (unknown >= 0 || a.type() != NOTIFY)
      return Error("the client answered with a " +
                   RequestTypeName(unknown >= 0 ? unknown : int(a.type())) +
                   " request, not NOTIFY");
    if (!a.notify_success()) return Error("the RPC client answered no");
    return Ok();
  };
}

// Runs `serve` in a child of the session, which answers the client itself
// and exits 0. A child that dies any other way is answered for.
void InWorker(int sk, criu_req_type type, const std::function<void()>& serve) {
  pid_t p = fork();
  if (p < 0) {
    Answer(sk, ErrorReply(type, Error::Errno("fork")));
    return;
  }
  if (p == 0) {
    serve();
    _exit(0);
  }
  int st = 0;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return;
  std::string how = WIFEXITED(st) ? "exited with " + std::to_string(WEXITSTATUS(st))
                                  : "was killed by signal " + std::to_string(WTERMSIG(st));
  Answer(sk,
         ErrorReply(type, Error("ckpt's process serving " + RequestTypeName(type) + " " + how)));
}

// The log of a request: -v from log_level, the file from log_file. The
// log goes back to stderr when the request is done (LogReset).
struct LogReset {
  ~LogReset() { log::SetFd(-1); }
};

Result<UniqueFd> OpenLog(const Options& o) {
  log::SetLevel(o.verbosity);
  if (o.log_file == "-") {
    log::SetFd(-1);
    return UniqueFd();
  }
  if (o.log_file.empty()) return UniqueFd();
  UniqueFd fd(open(o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return Error::Errno("criu_opts.log_file: " + o.log_file);
  log::SetFd(fd.get());
  return fd;
}

// Images a root ckpt wrote for a caller that is not root become the
// caller's (they hold its memory: nobody else may read them).
void GiveToCaller(const MappedRequest& m, const Peer& peer) {
  int dfd = m.images_dir_fd.get();
  DIR* d = fdopendir(dup(dfd));
  if (d) {
    while (struct dirent* e = readdir(d)) {
      struct stat st;
      if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
          st.st_uid == 0)
        (void)!fchownat(dfd, e->d_name, peer.uid, peer.gid, AT_SYMLINK_NOFOLLOW);
    }
    closedir(d);
  }
  if (!m.opts.log_file.empty() && m.opts.log_file != "-")
    (void)!chown(m.opts.log_file.c_str(), peer.uid, peer.gid);
}

// A request refused before its log was opened still leaves its reason in
// the log file the client named (runc shows the client that file, not
// ckpt's stderr), opened through the client's directory fd.
void LogRefusal(const criu_req& req, const Peer& peer, const std::string& msg) {
  if (!req.has_opts()) return;
  const criu_opts& o = req.opts();
  if (o.log_file().empty() || o.log_file().find('/') != std::string::npos) return;
  int dir = o.has_work_dir_fd() ? o.work_dir_fd() : o.images_dir_fd();
  if (dir < 0) return;
  std::string path = "/proc/" + std::to_string(peer.pid) + "/fd/" + std::to_string(dir);
  UniqueFd dfd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st;  // as in MapRequestOptions: not root, not its directory, no log
  if (!dfd || fstat(dfd.get(), &st) < 0 || (peer.uid != 0 && st.st_uid != peer.uid)) return;
  UniqueFd fd(openat(dfd.get(), o.log_file().c_str(),
                     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return;
  if (peer.uid != 0) (void)!fchown(fd.get(), peer.uid, peer.gid);
  std::string line = "ckpt: " + RequestTypeName(req.type()) + " refused: " + msg + "\n";
  (void)!write(fd.get(), line.data(), line.size());
}

// Mapping, access check, log and status fd: what DUMP and RESTORE share.
Result<MappedRequest> Prepare(int sk, const criu_req& req, const RequestContext& ctx,
                              UniqueFd& log_fd) {
  if (!req.has_opts()) return Error("a " + RequestTypeName(req.type()) + " request needs opts");
  TRY_ASSIGN(MappedRequest m, MapRequestOptions(req.opts(), req.type(), ctx));
  if (m.opts.orphan_pts_master && !m.notify)
    return Error(
        "criu_opts.orphan_pts_master: needs notify_scripts (the master comes with a notification)");
  if (m.notify) m.opts.notify = ClientNotifier(sk);
  if (m.opts.command == Command::kDump || m.opts.command == Command::kPreDump) {
    TRY(CheckDumpAccess(ctx.peer, m.opts.pid));
  } else if (m.opts.command == Command::kPageServer) {
    if (ctx.peer.uid != 0) return Error("only root may start a page server (it listens on TCP)");
  } else {
    TRY(CheckRestoreAccess(ctx.peer, m.opts.images_dir));
  }
  TRY_ASSIGN(log_fd, OpenLog(m.opts));
  if (m.status_fd) {
    (void)!write(m.status_fd.get(), "", 1);
    m.status_fd.reset();
  }
  LOG_INFO("RPC " + RequestTypeName(req.type()) + " from pid " + std::to_string(ctx.peer.pid) +
           " (uid " + std::to_string(ctx.peer.uid) + ")");
  return m;
}

void ServeDump(int sk, const criu_req& req, const RequestContext& ctx) {
  UniqueFd log_fd;
  LogReset reset;
  auto m = Prepare(sk, req, ctx, log_fd);
  if (!m.ok()) {
    LogRefusal(req, ctx.peer, m.error().message());
    return Answer(sk, ErrorReply(DUMP, m.error()));
  }
  KernelFeatures kf = ProbeKernel();
  criu_req_type type = req.type();
  bool pre = m->opts.command == Command::kPreDump;
  Status s = pre ? PreDump(m->opts, kf) : Dump(m->opts, kf);
  if (ctx.peer.uid != 0) GiveToCaller(*m, ctx.peer);
  if (!s.ok()) {
    LOG_ERR(std::string(pre ? "pre-dump" : "dump") + " failed: " + s.error().message());
    return Answer(sk, ErrorReply(type, s.error()));
  }
  criu_resp r = Reply(type, true);
  if (type == DUMP) r.mutable_dump()->set_restored(false);
  Answer(sk, r);
}

// PAGE_SERVER: a page server (criu/page_xfer.h) in a process of its own
// that receives one dump and exits, as CRIU's; the answer carries its pid
// and the port it listens on (the one asked for, or one the kernel picked).
void ServePageServer(int sk, const criu_req& req, const RequestContext& ctx) {
  UniqueFd log_fd;
  LogReset reset;
  auto m = Prepare(sk, req, ctx, log_fd);
  if (!m.ok()) {
    LogRefusal(req, ctx.peer, m.error().message());
    return Answer(sk, ErrorReply(req.type(), m.error()));
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Answer(sk, ErrorReply(req.type(), Error::Errno("pipe")));
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = fork();
  if (child < 0) return Answer(sk, ErrorReply(req.type(), Error::Errno("fork")));
  if (child == 0) {
    rd.reset();
    close(sk);  // the client's session is not the page server's
    setsid();
    int w = wr.release();
    Status s = RunPageServer(m->opts.images_dir, m->opts.address, m->opts.port, [w](int port) {
      (void)!write(w, &port, sizeof(port));
      close(w);
    });
    if (!s.ok()) LOG_ERR("page server: " + s.error().message());
    _exit(s.ok() ? 0 : 1);
  }
  wr.reset();
  int port = 0;
  ssize_t n;
  while ((n = read(rd.get(), &port, sizeof(port))) < 0 && errno == EINTR) {
  }
  if (n != ssize_t(sizeof(port))) {
    int st = 0;
    waitpid(child, &st, 0);
    return Answer(sk, ErrorReply(req.type(), Error("the page server did not start (see the log)")));
  }
  criu_resp r = Reply(req.type(), true);
  r.mutable_ps()->set_pid(child);
  r.mutable_ps()->set_port(port);
  if (!m->opts.address.empty()) r.mutable_ps()->set_address(m->opts.address);
  Answer(sk, r);
}

void ServeRestore(int sk, const criu_req& req, const RequestContext& ctx) {
  UniqueFd log_fd;
  LogReset reset;
  auto m = Prepare(sk, req, ctx, log_fd);
  if (!m.ok()) {
    LogRefusal(req, ctx.peer, m.error().message());
    return Answer(sk, ErrorReply(RESTORE, m.error()));
  }
  KernelFeatures kf = ProbeKernel();
  pid_t root = 0;
  auto r = Restore(m->opts, kf, &root);
  if (ctx.peer.uid != 0 && !m->opts.log_file.empty() && m->opts.log_file != "-")
    (void)!chown(m->opts.log_file.c_str(), ctx.peer.uid, ctx.peer.gid);
  if (!r.ok()) {
    LOG_ERR("restore failed: " + r.error().message());
    return Answer(sk, ErrorReply(RESTORE, r.error()));
  }
  criu_resp resp = Reply(RESTORE, true);
  resp.mutable_restore()->set_pid(root);
  Answer(sk, resp);
}

void ServeCheck(int sk) {
  KernelFeatures k = ProbeKernel();
  ProbeNetworkFeatures(&k);
  ProbeNamespaceFeatures(&k);
  std::string missing;
  for (const FeatureLine& f : DescribeFeatures(k))
    if (f.required && !f.present) missing += std::string(missing.empty() ? "" : ", ") + f.name;
  if (!missing.empty())
    return Answer(
        sk, ErrorReply(CHECK, Error("kernel " + k.kernel + " lacks what ckpt needs: " + missing)));
  Answer(sk, Reply(CHECK, true));
}

void ServeVersion(int sk) {
  criu_resp r = Reply(VERSION, true);
  criu_version* v = r.mutable_version();
  v->set_major_number(kVersionMajor);
  v->set_minor_number(kVersionMinor);
  v->set_sublevel(kVersionSublevel);
  v->set_gitid("ckpt-0.1.0");
  v->set_name("ckpt");
  Answer(sk, r);
}

// Only the features asked are answered, as CRIU does: memory tracking
// (pre-dump) where this kernel has uffd-wp async and PAGEMAP_SCAN
// (criu/uffd_wp.h), lazy pages where userfaultfd has the events lazy
// restore follows (criu/lazy_pages.h); the pidfd store is not implemented.
void ServeFeatures(int sk, const criu_req& req) {
  criu_resp r = Reply(FEATURE_CHECK, true);
  criu_features* f = r.mutable_features();
  const criu_features& asked = req.features();
  if (asked.has_mem_track()) f->set_mem_track(ProbeKernel().pagemap_scan && uffd::ProbeWpAsync());
  if (asked.has_lazy_pages()) f->set_lazy_pages(DescribeLazySupport().rfind("yes", 0) == 0);
  if (asked.has_pidfd_store()) f->set_pidfd_store(false);
  Answer(sk, r);
}

void ServeWaitPid(int sk, const criu_req& req) {
  if (!req.has_pid()) return Answer(sk, ErrorReply(WAIT_PID, Error("WAIT_PID needs a pid")));
  pid_t pid = pid_t(req.pid());
  int st = 0;
  pid_t r;
  while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
  }
  if (r < 0)
    return Answer(sk, ErrorReply(WAIT_PID, Error::Errno("pid " + std::to_string(pid) +
                                                        ": not a tree this session restored")));
  criu_resp resp = Reply(WAIT_PID, true);
  resp.set_status(st);
  Answer(sk, resp);
}

}  // namespace

void ServeSession(int sk, const RequestContext& ctx) {
  // Trees restored by a worker come back to the session when it exits.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  for (;;) {
    criu_req req;
    int unknown = -1;
    auto got = RecvRequest(sk, &req, &unknown);
    if (!got.ok()) {
      LOG_WARN("RPC: " + got.error().message());
      if (SendResponse(sk, ErrorReply(EMPTY, got.error())).ok()) continue;
      return;
    }
    if (!*got) return;  // the client closed
    if (unknown >= 0) {
      Answer(sk, ErrorReply(EMPTY, Error("unknown request type " + std::to_string(unknown))));
      continue;
    }
    switch (req.type()) {
      case VERSION:
        ServeVersion(sk);
        break;
      case FEATURE_CHECK:
        ServeFeatures(sk, req);
        break;
      case CHECK:
        InWorker(sk, CHECK, [&] { ServeCheck(sk); });
        break;
      case DUMP:
        InWorker(sk, DUMP, [&] { ServeDump(sk, req, ctx); });
        break;
      case RESTORE:
        if (ctx.swrk && req.has_opts() && req.opts().rst_sibling()) {
          // The root must be cloned by this very process (CLONE_PARENT
          // makes it the client's child); the namespaces the restore
          // entered stay with it, so the session ends here.
          ServeRestore(sk, req, ctx);
          return;
        }
        InWorker(sk, RESTORE, [&] { ServeRestore(sk, req, ctx); });
        break;
      case WAIT_PID:
        ServeWaitPid(sk, req);
        break;
      case PRE_DUMP:
      case SINGLE_PRE_DUMP:
        InWorker(sk, req.type(), [&] { ServeDump(sk, req, ctx); });
        break;
      case PAGE_SERVER:
      case PAGE_SERVER_CHLD:
        ServePageServer(sk, req, ctx);
        break;
      case CPUINFO_DUMP:
      case CPUINFO_CHECK:
        Answer(sk, ErrorReply(req.type(), Error(RequestTypeName(req.type()) +
                                                " is not implemented: ckpt does not compare "
                                                "CPU features")));
        break;
      case NOTIFY:
        // Answered as EMPTY: a NOTIFY response would read as a notification.
        Answer(sk, ErrorReply(EMPTY, Error("NOTIFY answers a notification; none is pending")));
        break;
      default:  // EMPTY: CRIU answers what it cannot serve with EMPTY
        Answer(sk, ErrorReply(EMPTY, Error("unknown request type " + RequestTypeName(req.type()))));
        break;
    }
  }
}

}  // namespace ckpt::rpc
