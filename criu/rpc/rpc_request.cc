// criu_opts -> Options, field by field, in the schema's order.
#include "criu/rpc/rpc_request.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "base/io.h"
#include "base/log.h"
#include "criu/cgroup_v1.h"
#include "criu/config_file.h"
#include "criu/proc_parse.h"
#include "criu/security.h"
#include "criu/task_images.h"
#include "images/image_dir.h"

namespace ckpt::rpc {
namespace {

// CRIU's default of ghost_limit and cpu_cap (the schema's defaults).
constexpr uint32_t kDefaultGhostLimit = 0x100000;
constexpr uint32_t kDefaultCpuCap = 0xffffffff;

Error Refuse(const std::string& field, const std::string& why) {
  return Error("criu_opts." + field + ": " + why);
}

// A directory fd of the client, reopened by ckpt through /proc (the fd
// number is the client's; SO_PEERCRED named the client).
Result<UniqueFd> OpenClientDir(const Peer& peer, int fd, const char* field) {
  if (fd < 0) return Refuse(field, "bad fd " + std::to_string(fd));
  std::string path = "/proc/" + std::to_string(peer.pid) + "/fd/" + std::to_string(fd);
  UniqueFd d(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d)
    return Error::Errno(std::string("criu_opts.") + field + ": the client's fd " +
                        std::to_string(fd) + " (" + path + ")");
  return d;
}

// A path for ckpt (and its action scripts) to reach the directory `fd`:
// its own name when that still leads to the same directory, else
// /proc/CKPT/fd/N (valid as long as ckpt holds the fd).
std::string DirPath(int fd) {
  std::string proc = "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string(fd);
  auto name = io::ReadLink(proc);
  struct stat a, b;
  if (name.ok() && !name->empty() && (*name)[0] == '/' && fstat(fd, &a) == 0 &&
      stat(name->c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    return *name;
  return proc;
}

Result<CgroupMode> MapCgroupMode(criu_cg_mode m) {
  switch (m) {
    case IGNORE:
      return CgroupMode::kIgnore;
    case CG_NONE:
      return CgroupMode::kNone;
    case PROPS:
      return CgroupMode::kProps;
    case SOFT:
    case DEFAULT:  // CRIU's default mode is soft
      return CgroupMode::kSoft;
    case FULL:
      return CgroupMode::kFull;
    case STRICT:
      return CgroupMode::kStrict;
  }
  return Refuse("manage_cgroups_mode", "unknown mode " + std::to_string(int(m)));
}

// The same rules as --cgroup-root: cgroup v2 has one tree, so every
// cg_root of a v2 controller (or none) must name the same absolute path. A
// controller with a v1 hierarchy on this host (runc sends one cg_root per
// line of /proc/self/cgroup on hybrid hosts) is that hierarchy's root: v1
// placement is the client's (criu/cgroup_v1.h), kept aside and ignored.
Status MapCgroupRoots(const criu_opts& in, Options& o) {
  for (const cgroup_root& r : in.cg_root()) {
    const std::string& p = r.path();
    if (p.empty() || p[0] != '/')
      return Refuse("cg_root", "'" + p + "' is not an absolute cgroup path");
    if (p.find("/..") != std::string::npos || p.find("/./") != std::string::npos)
      return Refuse("cg_root", "'" + p + "': '.' and '..' are not allowed");
    if (!r.ctrl().empty() && cgroupv1::IsV1Controller(r.ctrl().substr(0, r.ctrl().find(',')))) {
      LOG_DBG("criu_opts.cg_root " + r.ctrl() + ":" + p +
              ": a cgroup v1 hierarchy, whose placement is the client's");
      o.cgroup_root_v1.push_back(r.ctrl() + ":" + p);
      continue;
    }
    std::string path = p;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (!o.cgroup_root.empty() && o.cgroup_root != path)
      return Refuse("cg_root", "given as " + o.cgroup_root + " and " + path +
                                   ": cgroup v2 has one hierarchy, so one root only");
    o.cgroup_root = path;
  }
  return Ok();
}

// Fields ckpt has no implementation for: refused when set to anything but
// their neutral value.
Status RefuseUnsupported(const criu_opts& in, criu_req_type type) {
  if (in.has_ps() && type == RESTORE) return Refuse("ps", "not a restore option");
  if (in.has_ps() && in.ps().has_fd())
    return Refuse("ps", "a connected page server socket (ps.fd) is not implemented");
  if (!in.parent_img().empty() && type == RESTORE)
    return Refuse("parent_img", "a dump option (restore follows the images' parent link)");
  if (in.track_mem() && type == RESTORE) return Refuse("track_mem", "a dump option");
  if (in.auto_dedup()) return Refuse("auto_dedup", "not implemented");
  if (in.has_cpu_cap() && in.cpu_cap() != 0 && in.cpu_cap() != kDefaultCpuCap)
    return Refuse("cpu_cap", "ckpt does not compare CPU features; only 0 is honoured");
  if (in.force_irmap()) return Refuse("force_irmap", "inotify path maps are not implemented");
  if (in.exec_cmd_size())
    return Refuse("exec_cmd", "running a command after restore is not implemented");
  if (in.auto_ext_mnt())
    return Refuse("auto_ext_mnt", "not implemented: name external mounts with ext_mnt");
  if (in.ext_sharing()) return Refuse("ext_sharing", "not implemented");
  if (in.ext_masters()) return Refuse("ext_masters", "not implemented");
  if (in.skip_mnt_size()) return Refuse("skip_mnt", "skipping mounts is not implemented");
  if (in.enable_fs_size()) return Refuse("enable_fs", "not implemented");
  if (in.unix_sk_ino_size())
    return Refuse("unix_sk_ino", "not implemented (deprecated: use external unix[INO])");
  if (in.has_ghost_limit() && in.ghost_limit() != kDefaultGhostLimit)
    return Refuse("ghost_limit", "ckpt has no limit on deleted files' size to honour");
  if (in.irmap_scan_paths_size()) return Refuse("irmap_scan_paths", "not implemented");
  if (in.empty_ns() & ~uint32_t(CLONE_NEWNET))
    return Refuse("empty_ns",
                  "only the network namespace (CLONE_NEWNET) can be left empty, not "
                  "flags " +
                      std::to_string(in.empty_ns() & ~uint32_t(CLONE_NEWNET)));
  for (const join_namespace& j : in.join_ns()) {
    if (type != RESTORE) return Refuse("join_ns", "a restore option");
    if (j.ns() != "net" && j.ns() != "uts")
      return Refuse("join_ns", "only net and uts namespaces can be joined, not " + j.ns());
    if (!j.extra_opt().empty())
      return Refuse("join_ns", "extra options (" + j.extra_opt() + ") are not implemented");
  }
  if (!in.cgroup_props().empty()) return Refuse("cgroup_props", "not implemented");
  if (!in.cgroup_props_file().empty()) return Refuse("cgroup_props_file", "not implemented");
  if (in.cgroup_dump_controller_size())
    return Refuse("cgroup_dump_controller", "not implemented (cgroup v2: one hierarchy)");
  if (in.timeout()) return Refuse("timeout", "a freezing timeout is not implemented");
  // Restore's lazy_pages is --lazy-pages (criu/lazy_pages.h: the caller
  // runs `ckpt lazy-pages -D DIR` first); a lazy dump serves on a port
  // until pulled, which a request-reply session cannot wait for.
  if (in.lazy_pages() && type != RESTORE)
    return Refuse("lazy_pages", "only restore is lazy over RPC (dump --lazy-pages: command line)");
  if (!in.lsm_profile().empty() && type != RESTORE) return Refuse("lsm_profile", "a restore option");
  if (!in.lsm_mount_context().empty()) return Refuse("lsm_mount_context", "not implemented");
  if (in.tls() || !in.tls_cacert().empty() || !in.tls_cacrl().empty() || !in.tls_cert().empty() ||
      !in.tls_key().empty() || in.tls_no_cn_verify())
    return Refuse("tls", "TLS for the page server is not implemented");
  if (!in.cgroup_yard().empty()) return Refuse("cgroup_yard", "not implemented");
  if (in.has_pidfd_store_sk())
    return Refuse("pidfd_store_sk", "the pidfd store is not implemented");
  if (in.unprivileged())
    return Refuse("unprivileged", "ckpt runs as root; callers are checked by their credentials");
  if (in.leave_stopped()) return Refuse("leave_stopped", "not implemented");
  return Ok();
}

}  // namespace

std::string RequestTypeName(int type) {
  if (criu_req_type_IsValid(type)) return criu_req_type_Name(criu_req_type(type));
  return "type " + std::to_string(type);
}

Result<MappedRequest> MapRequestOptions(const criu_opts& in, criu_req_type type,
                                        const RequestContext& ctx) {
  MappedRequest m;
  Options& o = m.opts;
  o.command = type == RESTORE                                   ? Command::kRestore
              : type == PRE_DUMP || type == SINGLE_PRE_DUMP     ? Command::kPreDump
              : type == PAGE_SERVER || type == PAGE_SERVER_CHLD ? Command::kPageServer
                                                                : Command::kDump;
  bool root_caller = ctx.peer.uid == 0;
  TRY(RefuseUnsupported(in, type));
  // CRIU's default config files come first; the request's own fields
  // override them, and its config_file (runc: /etc/criu/runc.conf, usually
  // absent) overrides the request (criu/config_file.h).
  TRY(ApplyConfigFiles(o, /*with_config_file=*/false));

  // Where: the images directory (a client fd, or a path when it sends -1),
  // and the work directory for the log (the images directory by default).
  if (in.images_dir_fd() >= 0) {
    TRY_ASSIGN(m.images_dir_fd, OpenClientDir(ctx.peer, in.images_dir_fd(), "images_dir_fd"));
  } else if (!in.images_dir().empty()) {
    if (!root_caller)
      return Refuse("images_dir", "a caller that is not root must pass images_dir_fd");
    m.images_dir_fd.reset(open(in.images_dir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!m.images_dir_fd) return Error::Errno("criu_opts.images_dir: " + in.images_dir());
  } else {
    return Refuse("images_dir_fd", "no images directory given (fd -1 and no images_dir)");
  }
  // ckpt writes there as root: a caller that is not root gets only
  // directories of its own.
  auto owned = [&](int fd, const char* field) -> Status {
    struct stat st;
    if (fstat(fd, &st) < 0) return Error::Errno(std::string("criu_opts.") + field);
    if (!root_caller && st.st_uid != ctx.peer.uid)
      return Refuse(field, "a caller that is not root must own the directory");
    return Ok();
  };
  TRY(owned(m.images_dir_fd.get(), "images_dir_fd"));
  o.images_dir = DirPath(m.images_dir_fd.get());
  if (in.has_work_dir_fd()) {
    TRY_ASSIGN(m.work_dir_fd, OpenClientDir(ctx.peer, in.work_dir_fd(), "work_dir_fd"));
    TRY(owned(m.work_dir_fd.get(), "work_dir_fd"));
    m.work_dir = DirPath(m.work_dir_fd.get());
  } else {
    m.work_dir = o.images_dir;
  }

  // What, and how.
  if (o.command == Command::kPageServer) {
    // The receiving side (criu/page_xfer.h): where to listen.
    o.address = in.ps().address();
    o.port = in.ps().port();
    if (o.port < 0 || o.port > 65535) return Refuse("ps", "bad port " + std::to_string(o.port));
  } else if (type != RESTORE) {
    // Incremental dumps (criu/predump.h): the previous step, relative to
    // the images directory, and write tracking kept for the next one.
    o.prev_images_dir = in.parent_img();
    o.track_mem = in.track_mem();
    if (in.has_ps()) {  // memory to a page server
      if (in.ps().address().empty() || in.ps().port() <= 0 || in.ps().port() > 65535)
        return Refuse("ps", "a page server needs an address and a port");
      o.page_server = true;
      o.address = in.ps().address();
      o.port = in.ps().port();
    }
    // CRIU's rule: no pid dumps the caller itself.
    o.pid = in.has_pid() ? pid_t(in.pid()) : ctx.peer.pid;
    if (o.pid <= 0) return Refuse("pid", "bad pid " + std::to_string(o.pid));
  } else if (in.has_pid() && in.pid() != 0) {
    // runc sends the container's old pid; the pids come from the images.
    LOG_DBG("criu_opts.pid " + std::to_string(in.pid()) + " on restore: the images name the pids");
  }
  o.leave_running = in.leave_running();
  o.lazy_pages = type == RESTORE && in.lazy_pages();
  o.ext_unix_sk = in.ext_unix_sk();
  o.tcp_established = in.tcp_established();
  // evasive_devices, link_remap, weak_sysctls, skip_file_rwx_check,
  // allow_uprobes and ghost_fiemap only relax CRIU's checks or choose its
  // method: ckpt reopens devices and files by their dumped paths, always
  // saves deleted files, and fails naming the object where CRIU would
  // need the relaxation. Accepted as such. Also accepted, having nothing
  // to act on: pre_dump_mode (PRE_DUMP is refused), mntns_compat_mode
  // (CRIU's choice between its two mount engines; ckpt has one),
  // display_stats (ckpt logs its statistics at log_level 3) and
  // file_validation_method (ckpt's own checks of reopened files apply).
  o.shell_job = in.shell_job();
  o.file_locks = in.file_locks();
  int level = in.log_level();
  o.verbosity = level < 0 ? 0 : level > 4 ? 4 : level;
  if (!in.log_file().empty()) {
    if (in.log_file().find('/') != std::string::npos)
      return Refuse("log_file", "'" + in.log_file() + "' must be a name in the work directory");
    o.log_file = m.work_dir + "/" + in.log_file();
  }
  if (in.log_to_stderr()) o.log_file = "-";
  m.notify = in.notify_scripts();
  // root: the restored tree's root mount (--root). runc sends its rootfs on
  // DUMP too, where CRIU, as ckpt, reads the tree's root from /proc.
  if (!in.root().empty()) {
    if (!root_caller) return Refuse("root", "only root may choose the tree's root directory");
    o.root = in.root();
  }
  for (const criu_veth_pair& v : in.veths())
    o.external.push_back("veth[" + v.if_in() + "]:" + v.if_out());
  // ext_mnt KEY -> VAL: CRIU's --ext-mount-map; on dump the mount point is
  // named by a key, on restore the key is given its source.
  for (const ext_mount_map& e : in.ext_mnt())
    o.external.push_back("mnt[" + e.key() + "]:" + e.val());
  for (const std::string& e : in.external()) {
    if (e.empty()) return Refuse("external", "empty value");
    o.external.push_back(e);
  }
  if (!root_caller && !o.external.empty())
    return Refuse("external", "only root may name external objects");

  // cgroups: manage_cgroups alone is CRIU's old switch (soft mode); a
  // mode given says everything.
  if (in.has_manage_cgroups_mode()) {
    TRY_ASSIGN(o.cgroup_mode, MapCgroupMode(in.manage_cgroups_mode()));
    o.manage_cgroups = in.manage_cgroups_mode() != IGNORE;
  } else {
    o.manage_cgroups = in.manage_cgroups();
  }
  TRY(MapCgroupRoots(in, o));
  if (!in.freeze_cgroup().empty()) {
    if (type == RESTORE) return Refuse("freeze_cgroup", "a dump option");
    if (!root_caller) return Refuse("freeze_cgroup", "only root may freeze a cgroup");
    o.freeze_cgroup = in.freeze_cgroup();
  }
  if (!root_caller && type == RESTORE &&
      !(in.has_manage_cgroups_mode() && in.manage_cgroups_mode() == IGNORE))
    return Refuse("manage_cgroups_mode",
                  "a caller that is not root must restore with IGNORE: ckpt does not place "
                  "tasks into cgroups on its behalf");
  if (!root_caller && (o.manage_cgroups || !o.cgroup_root.empty()))
    return Refuse("manage_cgroups", "only root may have ckpt manage cgroups");

  o.empty_ns = in.empty_ns();
  if (!in.lsm_profile().empty()) {
    if (!root_caller) return Refuse("lsm_profile", "only root may choose the restored label");
    o.lsm_profile = in.lsm_profile();  // checked against this host's LSM at restore
  }
  for (const join_namespace& j : in.join_ns()) {
    if (!root_caller) return Refuse("join_ns", "only root may join namespaces");
    o.join_ns.push_back({j.ns(), j.ns_file()});
  }
  o.skip_in_flight = in.tcp_skip_in_flight();
  o.tcp_close = in.tcp_close();
  // The lock's purpose is honoured whatever tool CRIU would use for it:
  // ckpt locks with nftables (iptables is CRIU's default), or not at all.
  if (in.has_network_lock()) o.network_lock = in.network_lock() != SKIP;

  if (in.rst_sibling()) {
    if (type != RESTORE) return Refuse("rst_sibling", "a restore option");
    if (!ctx.swrk)
      return Refuse("rst_sibling",
                    "only over swrk, as CRIU (the root becomes a child of swrk's parent)");
    o.rst_sibling = true;
  }
  for (const inherit_fd& f : in.inherit_fd()) {
    if (!ctx.swrk)
      return Refuse("inherit_fd",
                    "only over swrk: its fds are ckpt's own, handed over by the client");
    if (f.fd() < 0 || fcntl(f.fd(), F_GETFD) < 0)
      return Refuse("inherit_fd",
                    "key " + f.key() + ": fd " + std::to_string(f.fd()) + " is not open in ckpt");
    o.inherit_fds.push_back({f.key(), f.fd()});
  }
  if (in.has_status_fd()) {
    std::string path =
        "/proc/" + std::to_string(ctx.peer.pid) + "/fd/" + std::to_string(in.status_fd());
    m.status_fd.reset(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!m.status_fd) return Error::Errno("criu_opts.status_fd: the client's fd " + path);
  }
  o.orphan_pts_master = in.orphan_pts_master();
  if (!in.config_file().empty()) {
    if (!root_caller) return Refuse("config_file", "only root may give ckpt a config file");
    o.config_file = in.config_file();
    TRY(ApplyConfigFile(o.config_file, o, /*missing_ok=*/true));
  }
  if (type == RESTORE) o.restore_detached = true;  // the client waits, ckpt answers
  return m;
}

namespace {

// Every process of the tree of `pid`, parents first (from /proc's children).
// The client as criu/security.h sees it: SO_PEERCRED's uid and gid; its
// groups, capabilities and hard limits from /proc/PID only while that
// process still runs with that uid and gid (else none: it may have
// changed credentials, or its pid may name another process by now).
security::Caller PeerCaller(const Peer& peer) {
  auto c = security::Caller::OfProcess(peer.pid);
  if (c.ok() && c->uid[0] == peer.uid && c->uid[1] == peer.uid && c->gid[0] == peer.gid &&
      c->gid[1] == peer.gid)
    return *c;
  security::Caller bare;
  std::fill(std::begin(bare.uid), std::end(bare.uid), peer.uid);
  std::fill(std::begin(bare.gid), std::end(bare.gid), peer.gid);
  bare.groups = {peer.gid};
  return bare;
}

}  // namespace

Status CheckDumpAccess(const Peer& peer, pid_t pid) {
  if (peer.uid == 0) return Ok();
  Status s = security::CheckMayTraceTree(PeerCaller(peer), pid);
  if (!s.ok()) return Error("access denied: " + s.error().message(), EPERM);
  return Ok();
}

Status CheckRestoreAccess(const Peer& peer, const std::string& images_dir) {
  if (peer.uid == 0) return Ok();
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(images_dir));
  TRY_ASSIGN(TreeImages tree, LoadTreeImages(*dir));
  Status s = security::CheckMayOwn(PeerCaller(peer), tree);
  if (!s.ok()) return Error("access denied: " + s.error().message(), EPERM);
  return Ok();
}

}  // namespace ckpt::rpc
