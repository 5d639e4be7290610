// Permission checks for ckpt run without full privileges (security.h).
#include "criu/security.h"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include "base/io.h"
#include "base/log.h"
#include "criu/task_images.h"

namespace ckpt::security {
namespace {

const char* const kIdField[4] = {"real", "effective", "saved", "fs"};
const char* const kRlimitName[16] = {
    "CPU",     "FSIZE", "DATA",  "STACK",      "CORE",     "RSS",  "NPROC",  "NOFILE",
    "MEMLOCK", "AS",    "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME"};

std::string Hex(uint64_t v) {
  std::ostringstream s;
  s << "0x" << std::hex << v;
  return s.str();
}

// The lowest capability in `set`, by number, for messages.
int FirstCap(uint64_t set) {
  for (int i = 0; i < 64; i++)
    if (HasCap(set, i)) return i;
  return -1;
}

std::string TaskName(const TaskImages& t) {
  return "pid " + std::to_string(t.pid()) + " of the images ('" + t.core.comm() + "')";
}

// setresuid(2)/setresgid(2) without CAP_SETUID/CAP_SETGID: each new id is
// one of the current real, effective or saved ids (setfsuid: or the fs id).
bool Settable(const uint32_t own[4], uint32_t id, bool fs) {
  for (int i = 0; i < (fs ? 4 : 3); i++)
    if (own[i] == id) return true;
  return false;
}

Status CheckIds(const std::string& who, const char* kind, const uint32_t own[4],
                const uint32_t want[4]) {
  for (int i = 0; i < 4; i++)
    if (!Settable(own, want[i], i == 3))
      return Error(who + ": its " + kIdField[i] + " " + kind + " is " + std::to_string(want[i]) +
                       "; you are " + kind + " " + std::to_string(own[0]) +
                       ": ckpt restores only credentials you could give yourself (or run it as "
                       "root)",
                   EPERM);
  return Ok();
}

Status CheckTaskCreds(const Caller& c, const TaskImages& t) {
  std::string who = TaskName(t);
  const pb::CredsEntry& cr = t.core.creds();
  uint32_t uids[4] = {cr.uid(), cr.euid(), cr.suid(), cr.fsuid()};
  uint32_t gids[4] = {cr.gid(), cr.egid(), cr.sgid(), cr.fsgid()};
  TRY(CheckIds(who, "uid", c.uid, uids));
  TRY(CheckIds(who, "gid", c.gid, gids));
  // setgroups(2) needs CAP_SETGID: the restored task keeps ckpt's groups,
  // so they must be the dumped ones.
  std::set<uint32_t> own(c.groups.begin(), c.groups.end());
  std::set<uint32_t> want(cr.groups().begin(), cr.groups().end());
  if (own != want && !HasCap(c.cap_eff, kCapSetgid)) {
    for (uint32_t g : want)
      if (!own.count(g))
        return Error(who + ": it is in group " + std::to_string(g) +
                         ", which you are not in: setting supplementary groups needs CAP_SETGID",
                     EPERM);
    return Error(who + ": its supplementary groups are fewer than yours (" +
                     std::to_string(want.size()) + " of " + std::to_string(own.size()) +
                     "): setting them needs CAP_SETGID",
                 EPERM);
  }
  // capset(2): permitted can only shrink, inheritable and ambient only
  // within permitted; so every set of the image within the caller's
  // permitted set.
  struct {
    const char* name;
    uint64_t set;
  } sets[] = {{"permitted", cr.cap_prm()},
              {"effective", cr.cap_eff()},
              {"inheritable", cr.cap_inh()},
              {"ambient", cr.cap_amb()}};
  for (const auto& s : sets) {
    uint64_t extra = s.set & ~c.cap_prm;
    if (extra)
      return Error(who + ": its " + s.name + " capabilities " + Hex(s.set) +
                       " include capability " + std::to_string(FirstCap(extra)) +
                       ", which you do not have",
                   EPERM);
  }
  // PR_SET_SECUREBITS needs CAP_SETPCAP.
  if (t.core.securebits() != c.securebits && !HasCap(c.cap_eff, kCapSetpcap))
    return Error(who + ": its securebits " + Hex(t.core.securebits()) + " differ from yours (" +
                     Hex(c.securebits) + "): setting them needs CAP_SETPCAP",
                 EPERM);
  // Raising a hard limit needs CAP_SYS_RESOURCE.
  if (!HasCap(c.cap_eff, kCapSysResource))
    for (const pb::RlimitEntry& r : t.core.rlimits()) {
      if (r.resource() >= c.rlim_max.size()) continue;  // bounded by LoadTreeImages
      uint64_t own_max = c.rlim_max[r.resource()];
      if (own_max != RLIM_INFINITY && (r.max() == RLIM_INFINITY || r.max() > own_max))
        return Error(
            who + ": its hard RLIMIT_" + kRlimitName[r.resource()] + " (" +
                (r.max() == RLIM_INFINITY ? std::string("unlimited") : std::to_string(r.max())) +
                ") is above yours (" + std::to_string(own_max) +
                "): raising a hard limit needs CAP_SYS_RESOURCE",
            EPERM);
    }
  return Ok();
}

// The tasks under `root` now, parents first (/proc/PID/task/TID/children).
std::vector<pid_t> TreeNow(pid_t root) {
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size() && out.size() < 100000; i++) {
    std::string base = "/proc/" + std::to_string(out[i]) + "/task/";
    std::vector<std::string> tids;
    if (DIR* d = opendir(base.c_str())) {
      while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') tids.push_back(e->d_name);
      closedir(d);
    }  // else gone meanwhile: the seize will say so
    for (const std::string& tid : tids) {
      auto kids = io::ReadFile(base + tid + "/children");
      if (!kids.ok()) continue;
      std::istringstream in(*kids);
      pid_t p;
      while (in >> p)
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
  }
  return out;
}

}  // namespace

bool Caller::Privileged() const {
  return uid[1] == 0 && HasCap(cap_eff, kCapSysAdmin) && HasCap(cap_eff, kCapSysPtrace) &&
         HasCap(cap_eff, kCapSetuid) && HasCap(cap_eff, kCapSetgid);
}

namespace {
// What /proc/PID/status and the system's Yama setting say of a caller.
Caller CallerFrom(const proc::Status& s) {
  Caller c;
  std::copy(std::begin(s.uid), std::end(s.uid), c.uid);
  std::copy(std::begin(s.gid), std::end(s.gid), c.gid);
  c.groups = s.groups;
  c.cap_prm = s.cap_prm;
  c.cap_eff = s.cap_eff;
  auto yama = io::ReadFile("/proc/sys/kernel/yama/ptrace_scope");
  if (yama.ok()) c.yama_scope = atoi(yama->c_str());
  return c;
}
}  // namespace

Result<Caller> Caller::Current() {
  TRY_ASSIGN(proc::Status s, proc::ReadStatus(getpid()), "ckpt's own credentials");
  Caller c = CallerFrom(s);
  int sb = prctl(PR_GET_SECUREBITS);
  c.securebits = sb < 0 ? 0 : uint64_t(sb);
  for (int r = 0; r < RLIM_NLIMITS; r++) {
    struct rlimit l;
    if (getrlimit(r, &l) < 0) return Error::Errno("getrlimit " + std::to_string(r));
    c.rlim_max.push_back(l.rlim_max);
  }
  return c;
}

Result<Caller> Caller::OfProcess(pid_t pid) {
  std::string who = "pid " + std::to_string(pid);
  TRY_ASSIGN(proc::Status s, proc::ReadStatus(pid), who);
  TRY_ASSIGN(std::vector<uint64_t> hard, proc::ReadHardLimits(pid), who);
  Caller c = CallerFrom(s);
  c.rlim_max = std::move(hard);
  return c;
}

Status CheckMayTrace(const Caller& c, const Target& t) {
  if (c.yama_scope >= 3)
    return Error("kernel.yama.ptrace_scope is 3: no process may be traced, so none dumped", EPERM);
  if (HasCap(c.cap_eff, kCapSysPtrace)) return Ok();
  std::string who = "pid " + std::to_string(t.pid) + (t.comm.empty() ? "" : " ('" + t.comm + "')");
  if (c.yama_scope == 2)
    return Error(who + ": kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may trace it", EPERM);
  const proc::Status& s = t.status;
  for (int i = 0; i < 3; i++)
    if (s.uid[i] != c.uid[0])
      return Error(who + " belongs to uid " + std::to_string(s.uid[i]) + "; you are uid " +
                       std::to_string(c.uid[0]) +
                       ": ckpt dumps only your own processes (tracing another user's needs "
                       "CAP_SYS_PTRACE)",
                   EPERM);
  for (int i = 0; i < 3; i++)
    if (s.gid[i] != c.gid[0])
      return Error(who + ": its " + kIdField[i] + " gid is " + std::to_string(s.gid[i]) +
                       "; yours is " + std::to_string(c.gid[0]) +
                       ": the kernel lets only CAP_SYS_PTRACE trace it",
                   EPERM);
  if (!t.dumpable)
    return Error(who +
                     " is not dumpable (it changed credentials or set PR_SET_DUMPABLE 0): "
                     "tracing it needs CAP_SYS_PTRACE",
                 EPERM);
  uint64_t extra = s.cap_prm & ~c.cap_prm;
  if (extra)
    return Error(who + " holds capability " + std::to_string(FirstCap(extra)) +
                     ", which you do not: tracing it needs CAP_SYS_PTRACE",
                 EPERM);
  return Ok();
}

Status CheckMayDump(const Caller& c, pid_t root, bool tcp_established) {
  if (c.Privileged()) return Ok();
  // /proc/PID/map_files (proc_map_files_get_link): CAP_CHECKPOINT_RESTORE
  // or CAP_SYS_ADMIN in the initial user namespace.
  if (!HasCap(c.cap_eff, kCapCheckpointRestore) && !HasCap(c.cap_eff, kCapSysAdmin))
    return Error(
        "dump needs CAP_CHECKPOINT_RESTORE to read /proc/PID/map_files; give it with setcap "
        "cap_checkpoint_restore+eip ckpt or run as root",
        EPERM);
  if (tcp_established && !HasCap(c.cap_eff, kCapNetAdmin))
    return Error(
        "--tcp-established needs CAP_NET_ADMIN (TCP_REPAIR and the nftables network lock); "
        "run as root, or dump without it",
        EPERM);
  if (c.yama_scope == 1 && !HasCap(c.cap_eff, kCapSysPtrace))
    LOG_WARN(
        "kernel.yama.ptrace_scope is 1: a plain user may trace only descendants and "
        "processes that allowed it (PR_SET_PTRACER); if the seize fails, set it to 0 or "
        "give ckpt CAP_SYS_PTRACE");
  return CheckMayTraceTree(c, root);
}

Status CheckMayTraceTree(const Caller& c, pid_t root) {
  for (pid_t p : TreeNow(root)) {
    std::string dir = "/proc/" + std::to_string(p);
    Target t;
    t.pid = p;
    auto st = proc::ReadStatus(p);
    if (!st.ok()) continue;  // gone (or a zombie's leftovers): the seize decides
    t.status = *st;
    t.comm = st->name;
    // Not dumpable: the kernel gives the files under /proc/PID to root (or
    // its user namespace's root) instead of the task's euid
    // (task_dump_owner); /proc/PID itself keeps the euid.
    struct stat sb;
    if (stat((dir + "/status").c_str(), &sb) == 0) t.dumpable = sb.st_uid == st->uid[1];
    TRY(CheckMayTrace(c, t));
  }
  return Ok();
}

Status CheckMayRestore(const Caller& c, const TreeImages& tree, bool tcp_established) {
  if (c.Privileged()) return Ok();
  // clone3 set_tid: CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) in the user
  // namespace owning ckpt's pid namespace.
  if (!HasCap(c.cap_eff, kCapCheckpointRestore) && !HasCap(c.cap_eff, kCapSysAdmin))
    return Error(
        "restore needs CAP_CHECKPOINT_RESTORE to choose pids (clone3 set_tid); give it with "
        "setcap cap_checkpoint_restore+eip ckpt or run as root",
        EPERM);
  if (tcp_established && !HasCap(c.cap_eff, kCapNetAdmin))
    return Error(
        "--tcp-established needs CAP_NET_ADMIN (TCP_REPAIR and the nftables network lock); "
        "run as root",
        EPERM);
  return CheckMayOwn(c, tree);
}

Status CheckMayOwn(const Caller& c, const TreeImages& tree) {
  const pb::NamespacesEntry& ns = tree.namespaces;
  std::string own;
  for (auto [on, name] : {std::pair{ns.pid(), "pid"},
                          {ns.net(), "net"},
                          {ns.ipc(), "ipc"},
                          {ns.uts(), "uts"},
                          {ns.mnt(), "mnt"},
                          {ns.user(), "user"},
                          {ns.time(), "time"},
                          {ns.cgroup(), "cgroup"}})
    if (on) own += (own.empty() ? "" : ", ") + std::string(name);
  if (!own.empty())
    return Error("the images have namespaces of their own (" + own + "): restoring them needs root",
                 EPERM);
  for (const TaskImages& t : tree.tasks) {
    if (t.helper || t.zombie()) continue;
    TRY(CheckTaskCreds(c, t));
  }
  return Ok();
}

}  // namespace ckpt::security
