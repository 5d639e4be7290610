// Dump and restore of the tree's cgroup v2 placement (see cgroup.h).
#include "criu/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/log.h"
#include "criu/cgroup_fs.h"

namespace ckpt {
namespace {

namespace fs = cgroupfs;

// The settings saved with --manage-cgroups, in the order restore writes
// them: the type and the controllers a cgroup gives its children come
// before anything of a controller (its files appear only once the parent
// enabled it); cpuset.cpus before the partition made of them; cpu.max
// before the burst bounded by it. Multi-line files (per device) are
// written one line per write(2). Limits the restore itself could run into
// (tasks forked in their parent's cgroup before they are moved, helper
// tasks, ckpt's own pages in every restoring task, hugetlb pages mapped)
// are written once every task is in place (ApplyLimits). Only these names
// (and hugetlb's, below) are ever written: an image cannot make restore
// write cgroup.procs, cgroup.kill or anything else.
enum PropKind { kOne, kLines, kLimit };  // kLines: one write per line
struct PropSpec {
  const char* name;
  const char* controller;  // nullptr: a core file of every non-root cgroup
  PropKind kind;
  bool multiline() const { return kind == kLines; }
};
const PropSpec kProps[] = {
    {"cgroup.type", nullptr, kOne},  // saved only when "threaded"
    {"cgroup.subtree_control", nullptr, kOne},
    {"cgroup.max.depth", nullptr, kOne},
    {"cgroup.max.descendants", nullptr, kOne},
    {"cpu.weight", "cpu", kOne},
    {"cpu.max", "cpu", kOne},
    {"cpu.max.burst", "cpu", kOne},
    {"cpu.idle", "cpu", kOne},
    {"cpu.uclamp.min", "cpu", kOne},
    {"cpu.uclamp.max", "cpu", kOne},
    {"cpuset.cpus", "cpuset", kOne},
    {"cpuset.mems", "cpuset", kOne},
    {"cpuset.cpus.exclusive", "cpuset", kOne},
    {"cpuset.cpus.partition", "cpuset", kOne},
    {"memory.min", "memory", kOne},
    {"memory.low", "memory", kOne},
    {"memory.high", "memory", kLimit},
    {"memory.max", "memory", kLimit},
    {"memory.swap.high", "memory", kOne},
    {"memory.swap.max", "memory", kLimit},
    {"memory.zswap.max", "memory", kLimit},
    {"memory.zswap.writeback", "memory", kOne},
    {"memory.oom.group", "memory", kOne},
    {"io.weight", "io", kLines},
    {"io.bfq.weight", "io", kLines},
    {"io.max", "io", kLines},
    {"io.latency", "io", kLines},
    {"pids.max", "pids", kLimit},
    {"rdma.max", "rdma", kLines},
    {"misc.max", "misc", kLines},
};

// hugetlb.<SIZE>.max and hugetlb.<SIZE>.rsvd.max, SIZE like 2MB or 1GB
// (the sizes depend on the machine).
bool IsHugetlbLimit(const std::string& n) {
  const std::string pre = "hugetlb.";
  if (n.compare(0, pre.size(), pre) != 0) return false;
  std::string mid = n.substr(pre.size());
  for (const char* suf : {".rsvd.max", ".max"}) {
    std::string s = suf;
    if (mid.size() > s.size() && mid.compare(mid.size() - s.size(), s.size(), s) == 0) {
      std::string size = mid.substr(0, mid.size() - s.size());
      if (size.size() < 3 || size.size() > 8) return false;
      if (size.compare(size.size() - 2, 2, "KB") && size.compare(size.size() - 2, 2, "MB") &&
          size.compare(size.size() - 2, 2, "GB"))
        return false;
      return std::all_of(size.begin(), size.end() - 2, [](char c) { return c >= '0' && c <= '9'; });
    }
  }
  return false;
}

// The table row of a setting (hugetlb limits share one), or nullptr.
const PropSpec* FindProp(const std::string& name) {
  static const PropSpec kHugetlb = {"hugetlb.*.max", "hugetlb", kLimit};
  for (const PropSpec& p : kProps)
    if (name == p.name) return &p;
  return IsHugetlbLimit(name) ? &kHugetlb : nullptr;
}
int PropOrder(const std::string& name) {
  for (size_t i = 0; i < std::size(kProps); i++)
    if (name == kProps[i].name) return int(i);
  return int(std::size(kProps));  // hugetlb, after the rest
}

bool IsControllerName(const std::string& c) {
  return !c.empty() && c.size() <= 64 && std::all_of(c.begin(), c.end(), [](char x) {
    return (x >= 'a' && x <= 'z') || (x >= '0' && x <= '9') || x == '_';
  });
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
std::string JoinWords(const std::vector<std::string>& v, const char* sep = " ") {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}
std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string::npos) nl = s.size();
    if (nl > start) out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}
// Parent of a relative path ("a/b" -> "a", "a" -> "").
std::string RelParent(const std::string& rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}
std::string Printable(const std::string& rel) { return rel.empty() ? "(top)" : rel; }

// The settings of one cgroup directory worth writing back.
Status ReadProps(const std::string& dir, bool is_root, pb::CgroupDirEntry* d) {
  std::vector<std::string> names;
  for (const PropSpec& p : kProps) {
    if (p.controller && !Has({d->controllers().begin(), d->controllers().end()}, p.controller))
      continue;
    names.push_back(p.name);
  }
  if (Has({d->controllers().begin(), d->controllers().end()}, "hugetlb")) {
    DIR* dp = opendir(dir.c_str());
    if (!dp) return Error::Errno("open " + dir);
    std::vector<std::string> huge;
    while (struct dirent* e = readdir(dp))
      if (IsHugetlbLimit(e->d_name)) huge.push_back(e->d_name);
    closedir(dp);
    std::sort(huge.begin(), huge.end());
    names.insert(names.end(), huge.begin(), huge.end());
  }
  for (const std::string& n : names) {
    if (is_root && n != "cgroup.subtree_control" && n.compare(0, 11, "cgroup.max.") != 0)
      continue;  // the root has no controller interface files
    auto v = fs::ReadSetting(dir, n);
    if (!v.ok()) {
      if (v.error().err() == ENOENT) continue;  // not built into this kernel
      return std::move(v.error());
    }
    std::string value = *v;
    if (n == "cgroup.type" && value != "threaded") continue;  // the rest follows from it
    if (n == "cpuset.cpus.partition")
      value = value.substr(0, value.find(' '));  // "root invalid (..)"
    if (value.empty()) continue;                 // unset (cpuset: inherit the parent's)
    pb::CgroupPropEntry* p = d->add_props();
    p->set_name(n);
    p->set_value(value);
  }
  return Ok();
}

// The root of pid's cgroup namespace as ckpt sees it, or "" if pid is in
// ckpt's own namespace. /proc/PID/cgroup shows paths relative to the
// reader's namespace: a child joins pid's namespace (setns) and reads it
// from there; the difference with ckpt's reading is the namespace root.
Result<std::string> CgroupNsRoot(pid_t pid, const std::string& seen_here) {
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/cgroup";
  struct stat mine, theirs;
  if (stat("/proc/self/ns/cgroup", &mine) < 0) return Error::Errno("stat /proc/self/ns/cgroup");
  if (stat(ns.c_str(), &theirs) < 0) return Error::Errno("stat " + ns);
  if (mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev) return std::string();
  UniqueFd nsfd(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!nsfd) return Error::Errno("open " + ns);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return Error::Errno("pipe");
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t child = fork();
  if (child < 0) return Error::Errno("fork");
  if (child == 0) {
    std::string out = "!";
    if (setns(nsfd.get(), CLONE_NEWCGROUP) == 0) {
      auto r = fs::TaskCgroup(pid);
      out = r.ok() ? *r : "!" + r.error().message();
    } else {
      out += std::string("setns: ") + strerror(errno);
    }
    (void)!write(wr.get(), out.data(), out.size());
    _exit(0);
  }
  wr.reset();
  char buf[4096];
  std::string seen_there;
  ssize_t n;
  while ((n = read(rd.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) seen_there.append(buf, size_t(n));
  int st;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (seen_there.empty() || seen_there[0] == '!')
    return Error("reading its cgroup from inside its cgroup namespace: " +
                 (seen_there.empty() ? std::string("no answer") : seen_there.substr(1)));
  // seen_here = ns_root + seen_there ("/" inside is the root itself).
  if (seen_there == "/") return seen_here;
  if (seen_here.size() <= seen_there.size() ||
      seen_here.compare(seen_here.size() - seen_there.size(), seen_there.size(), seen_there))
    return Error("its cgroup is " + seen_here + " here but " + seen_there +
                 " in its cgroup namespace");
  std::string root = seen_here.substr(0, seen_here.size() - seen_there.size());
  return root.empty() ? std::string("/") : root;
}

}  // namespace

// ---------------------------------------------------------------- dump

Result<pb::CgroupEntry> CollectCgroups(const std::vector<pid_t>& tasks, const Options& o) {
  pb::CgroupEntry cg;
  std::vector<std::pair<pid_t, std::string>> where;
  std::string common;
  for (pid_t pid : tasks) {
    TRY_ASSIGN(std::string path, fs::TaskCgroup(pid), "pid " + std::to_string(pid));
    // A threaded subtree may put threads of one process in different
    // cgroups; the restorer creates threads in their process's cgroup.
    std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* dp = opendir(task_dir.c_str())) {
      std::vector<pid_t> tids;
      while (struct dirent* e = readdir(dp))
        if (e->d_name[0] != '.') tids.push_back(pid_t(atoi(e->d_name)));
      closedir(dp);
      for (pid_t tid : tids) {
        if (tid == pid) continue;
        auto t = fs::TaskCgroup(pid, tid);
        if (!t.ok() || *t == path) continue;
        std::string what = "pid " + std::to_string(pid) + ": thread " + std::to_string(tid) +
                           " is in cgroup " + *t + ", its process in " + path;
        // Only the process's cgroup is saved: without --manage-cgroups that
        // was all a dump saved before; with it the tree would come back wrong.
        if (!o.manage_cgroups) {
          LOG_WARN(what + ": the thread will be restored in its process's cgroup");
          continue;
        }
        return Error(what + ": threads in different cgroups are not supported");
      }
    }
    if (common.empty()) {
      common = path;
    } else {
      while (!fs::IsAncestorOrSelf(common, path)) common = fs::Parent(common);
    }
    where.emplace_back(pid, path);
  }
  if (where.empty()) return Error("no task to read the cgroups of");
  // A tree in a cgroup namespace of its own is saved from the namespace's
  // root down: its paths inside are relative to that root.
  TRY_ASSIGN(std::string ns_root, CgroupNsRoot(where[0].first, where[0].second),
             "pid " + std::to_string(where[0].first));
  if (!ns_root.empty())
    while (!fs::IsAncestorOrSelf(common, ns_root)) common = fs::Parent(common);
  std::string top = common;
  if (!o.cgroup_root.empty()) {
    if (!fs::IsAncestorOrSelf(o.cgroup_root, common))
      return Error("--cgroup-root " + o.cgroup_root + " is not an ancestor of cgroup " + common +
                   ", which holds the tree's tasks");
    top = o.cgroup_root;
  }
  cg.set_root(top);
  cg.set_managed(o.manage_cgroups);
  // The top, every task's cgroup and the cgroups between: parents sort
  // before their children.
  std::set<std::string> rels = {""};
  if (!ns_root.empty()) {
    std::string rel = fs::RelativeTo(top, ns_root);
    cg.set_ns_root(rel);
    for (; !rel.empty(); rel = RelParent(rel)) rels.insert(rel);
  }
  for (auto& [pid, path] : where) {
    std::string rel = fs::RelativeTo(top, path);
    pb::CgroupTaskEntry* t = cg.add_tasks();
    t->set_pid(uint32_t(pid));
    t->set_path(rel);
    for (; !rel.empty(); rel = RelParent(rel)) rels.insert(rel);
  }
  fs::Mount mount;
  if (o.manage_cgroups) {
    TRY_ASSIGN(mount, fs::FindMount(top));
  }
  for (const std::string& rel : rels) {
    pb::CgroupDirEntry* d = cg.add_dirs();
    d->set_path(rel);
    if (!o.manage_cgroups) continue;
    std::string cgpath = fs::Join(top, rel);
    std::string dir = fs::FsPath(mount, cgpath);
    TRY_ASSIGN(std::string ctrls, fs::ReadSetting(dir, "cgroup.controllers"), "cgroup " + cgpath);
    for (const std::string& c : fs::Words(ctrls)) d->add_controllers(c);
    TRY(ReadProps(dir, cgpath == "/", d), "cgroup " + cgpath);
  }
  LOG_INFO("cgroups: " + std::to_string(where.size()) + " tasks in " +
           std::to_string(cg.dirs_size()) + " cgroups below " + top +
           (o.manage_cgroups ? ", settings saved" : ""));
  return cg;
}

Status WriteCgroups(const pb::CgroupEntry& cg, images::ImageDir& dir) {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kCgroup));
  TRY(w.Write(cg));
  return w.Close();
}

// ---------------------------------------------------------------- images

namespace {

Status CheckEntry(const pb::CgroupEntry& cg) {
  const std::string& root = cg.root();
  if (root.empty() || root[0] != '/' || (root != "/" && !fs::IsCleanRelative(root.substr(1))))
    return Error("bad root cgroup '" + root + "'");
  if (cg.dirs_size() == 0 || !cg.dirs(0).path().empty())
    return Error("the first cgroup must be the top (path \"\")");
  std::set<std::string> seen;
  for (const pb::CgroupDirEntry& d : cg.dirs()) {
    const std::string& rel = d.path();
    std::string who = "cgroup " + Printable(rel);
    if (!fs::IsCleanRelative(rel)) return Error("bad cgroup path '" + rel + "'");
    if (!rel.empty() && !seen.count(RelParent(rel))) return Error(who + " comes before its parent");
    if (!seen.insert(rel).second) return Error(who + " is listed twice");
    for (const std::string& c : d.controllers())
      if (!IsControllerName(c)) return Error(who + ": bad controller name '" + c + "'");
    std::set<std::string> names;
    for (const pb::CgroupPropEntry& p : d.props()) {
      const PropSpec* spec = FindProp(p.name());
      if (!spec) return Error(who + ": '" + p.name() + "' is not a setting ckpt restores");
      if (!names.insert(p.name()).second) return Error(who + ": " + p.name() + " given twice");
      if (p.value().size() > 65536 || p.value().find('\0') != std::string::npos)
        return Error(who + ": bad value for " + p.name());
      if (spec->controller &&
          !Has({d.controllers().begin(), d.controllers().end()}, spec->controller))
        return Error(who + ": " + p.name() + " without the " + spec->controller +
                     " controller in its controllers");
      if (p.name() == "cgroup.subtree_control")
        for (const std::string& c : fs::Words(p.value()))
          if (!IsControllerName(c)) return Error(who + ": bad controller name '" + c + "'");
      if (p.name() == "cgroup.type" && p.value() != "threaded")
        return Error(who + ": cgroup.type '" + p.value() + "' cannot be written");
    }
  }
  if (cg.has_ns_root() && !seen.count(cg.ns_root()))
    return Error("the cgroup namespace root '" + cg.ns_root() + "' is not among the cgroups");
  std::set<uint32_t> pids;
  for (const pb::CgroupTaskEntry& t : cg.tasks()) {
    if (t.pid() == 0 || t.pid() > 0x3fffffff) return Error("bad pid " + std::to_string(t.pid()));
    if (!pids.insert(t.pid()).second) return Error("pid " + std::to_string(t.pid()) + " twice");
    if (!seen.count(t.path()))
      return Error("pid " + std::to_string(t.pid()) + ": its cgroup '" + t.path() +
                   "' is not among the cgroups");
  }
  return Ok();
}

}  // namespace

Status ReadCgroups(const images::ImageDir& dir, pb::CgroupEntry* cg, bool* found) {
  *found = dir.Exists(images::ImageType::kCgroup);
  if (!*found) return Ok();
  std::string name = images::FileName(images::ImageType::kCgroup);
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kCgroup), name);
  TRY(r.ReadOne(*cg), name);
  TRY(CheckEntry(*cg), name);
  return Ok();
}

// ---------------------------------------------------------------- restore

// What Prepare decided, before anything is touched.
struct CgroupPlan {
  fs::Mount mount;
  std::string own;                       // ckpt's cgroup
  std::vector<std::string> make_above;   // missing ancestors of the top, top-down (cgroup paths)
  std::vector<std::string> above_ctrls;  // controllers those must give their children
  struct Dir {
    std::string cgroup, fs;
    bool exists = false;
    bool write = false;  // write its saved settings
    const pb::CgroupDirEntry* e = nullptr;
  };
  std::vector<Dir> dirs;                // as the image's
  std::map<uint32_t, size_t> task_dir;  // image pid -> index in dirs
  std::string ns_root_dir;              // filesystem path, "" if none
};

namespace {

bool IsDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const char* ModeName(CgroupMode m) {
  switch (m) {
    case CgroupMode::kNone:
      return "none";
    case CgroupMode::kProps:
      return "props";
    case CgroupMode::kSoft:
      return "soft";
    case CgroupMode::kFull:
      return "full";
    case CgroupMode::kStrict:
      return "strict";
    case CgroupMode::kIgnore:
      return "ignore";
  }
  return "?";
}

std::vector<std::string> SubtreeOf(const pb::CgroupDirEntry& d) {
  for (const pb::CgroupPropEntry& p : d.props())
    if (p.name() == "cgroup.subtree_control") return fs::Words(p.value());
  return {};
}

Result<std::vector<std::string>> CurrentSubtree(const std::string& dir) {
  TRY_ASSIGN(std::string s, fs::ReadSetting(dir, "cgroup.subtree_control"));
  return fs::Words(s);
}

// `child` (a cgroup) needs `want` from `parent_dir`'s subtree_control, which
// will be `have`.
Status NeedEnabled(const std::vector<std::string>& want, const std::vector<std::string>& have,
                   const std::string& parent, const std::string& parent_dir,
                   const std::string& child, bool full_would_help) {
  std::vector<std::string> missing;
  for (const std::string& c : want)
    if (!Has(have, c)) missing.push_back(c);
  if (missing.empty()) return Ok();
  std::string plus;
  for (const std::string& c : missing) plus += (plus.empty() ? "+" : " +") + c;
  return Error("cgroup " + parent + " does not give its children the controller(s) " +
               JoinWords(missing, ", ") + " that cgroup " + child + " had (echo '" + plus + "' > " +
               parent_dir + "/cgroup.subtree_control" +
               (full_would_help ? ", or restore with --manage-cgroups=full" : "") + ")");
}

Result<CgroupPlan> MakePlan(const pb::CgroupEntry& cg, const Options& o, bool* nothing_to_do) {
  CgroupPlan plan;
  const CgroupMode mode = o.cgroup_mode;
  const bool managed = cg.managed();
  const std::string top = o.cgroup_root.empty() ? cg.root() : o.cgroup_root;
  TRY_ASSIGN(plan.own, fs::TaskCgroup(getpid()), "ckpt's own cgroup");
  std::map<std::string, size_t> index;
  for (const pb::CgroupDirEntry& d : cg.dirs()) {
    CgroupPlan::Dir pd;
    pd.cgroup = fs::Join(top, d.path());
    pd.e = &d;
    index[d.path()] = plan.dirs.size();
    plan.dirs.push_back(pd);
  }
  bool all_own = true;
  if (cg.has_ns_root()) all_own = false;  // the namespace root must exist: made below
  for (const pb::CgroupTaskEntry& t : cg.tasks()) {
    plan.task_dir[t.pid()] = index.at(t.path());
    all_own &= plan.dirs[index.at(t.path())].cgroup == plan.own;
  }
  // Tasks are born in ckpt's cgroup: nothing to create, nothing to write.
  *nothing_to_do = all_own && mode != CgroupMode::kStrict &&
                   (!managed || mode == CgroupMode::kNone || mode == CgroupMode::kSoft);
  if (*nothing_to_do) return plan;

  TRY_ASSIGN(plan.mount, fs::FindMount(top));
  const std::string mode_opt = std::string("--manage-cgroups=") + ModeName(mode);
  const bool may_create =
      mode == CgroupMode::kSoft || mode == CgroupMode::kFull || mode == CgroupMode::kStrict;
  for (std::string a = fs::Parent(top); !a.empty() && !IsDir(fs::FsPath(plan.mount, a));
       a = fs::Parent(a)) {
    if (!may_create)
      return Error("cgroup " + a + " does not exist (" + mode_opt +
                   " restores into existing cgroups only; soft, full or strict create them)");
    plan.make_above.insert(plan.make_above.begin(), a);
  }
  for (CgroupPlan::Dir& d : plan.dirs) {
    d.fs = fs::FsPath(plan.mount, d.cgroup);
    d.exists = IsDir(d.fs);
    if (cg.has_ns_root() && d.e->path() == cg.ns_root()) plan.ns_root_dir = d.fs;
    if (!d.exists && !may_create)
      return Error("cgroup " + d.cgroup + " does not exist (" + mode_opt +
                   " restores into existing cgroups only; soft, full or strict create them)");
    if (d.exists && mode == CgroupMode::kStrict && d.cgroup != plan.mount.root)
      return Error("cgroup " + d.cgroup + " exists already (" + mode_opt +
                   " creates every cgroup of the images itself)");
    d.write =
        managed && (mode == CgroupMode::kProps || mode == CgroupMode::kFull ||
                    (!d.exists && (mode == CgroupMode::kSoft || mode == CgroupMode::kStrict)));
    if (d.cgroup == plan.mount.root) d.write &= mode != CgroupMode::kSoft;
  }

  // Every controller a written cgroup had must exist here, and its parent
  // must give it (or be about to).
  std::string avail_dir = fs::FsPath(plan.mount, plan.mount.root);
  TRY_ASSIGN(std::string avail_s, fs::ReadSetting(avail_dir, "cgroup.controllers"));
  std::vector<std::string> avail = fs::Words(avail_s);
  std::vector<std::string> missing;
  for (const CgroupPlan::Dir& d : plan.dirs) {
    if (!d.write) continue;
    // The hierarchy's root lists every controller the dumping system had;
    // only what it gave its children matters (its only setting written).
    std::vector<std::string> need;
    if (d.cgroup != plan.mount.root)
      need.assign(d.e->controllers().begin(), d.e->controllers().end());
    for (const std::string& c : SubtreeOf(*d.e)) need.push_back(c);
    for (const std::string& c : need)
      if (!Has(avail, c) && !Has(missing, c)) missing.push_back(c);
  }
  if (!missing.empty())
    return Error("the images need the cgroup controller(s) " + JoinWords(missing, ", ") +
                 ", which this system does not offer (" + avail_dir + "/cgroup.controllers: '" +
                 avail_s + "'; a controller bound to a cgroup v1 hierarchy is not in v2)");
  for (const CgroupPlan::Dir& d : plan.dirs) {
    if (!d.write || d.e->controllers_size() == 0 || d.cgroup == plan.mount.root) continue;
    std::vector<std::string> want(d.e->controllers().begin(), d.e->controllers().end());
    if (!d.e->path().empty()) {
      const CgroupPlan::Dir& p = plan.dirs[index.at(RelParent(d.e->path()))];
      std::vector<std::string> have;
      if (p.exists) {
        TRY_ASSIGN(have, CurrentSubtree(p.fs), "cgroup " + p.cgroup);
      }
      if (p.write)
        for (const std::string& c : SubtreeOf(*p.e)) have.push_back(c);
      TRY(NeedEnabled(want, have, p.cgroup, p.fs, d.cgroup, true));
    } else if (d.cgroup != plan.mount.root) {
      // Above the dumped subtree ckpt writes nothing but the cgroups it
      // creates there: they pass the controllers down.
      std::string first =
          plan.make_above.empty() ? fs::Parent(d.cgroup) : fs::Parent(plan.make_above.front());
      std::string first_dir = fs::FsPath(plan.mount, first);
      TRY_ASSIGN(std::vector<std::string> have, CurrentSubtree(first_dir), "cgroup " + first);
      TRY(NeedEnabled(want, have, first, first_dir,
                      plan.make_above.empty() ? d.cgroup : plan.make_above.front(), false));
      plan.above_ctrls = want;
    }
  }
  return plan;
}

bool IsEbusy(const Status& s) { return !s.ok() && s.error().err() == EBUSY; }

}  // namespace

Result<std::unique_ptr<CgroupRestore>> CgroupRestore::Prepare(const images::ImageDir& dir,
                                                              const Options& o) {
  std::unique_ptr<CgroupRestore> r(new CgroupRestore());
  if (o.cgroup_mode == CgroupMode::kIgnore) return r;
  pb::CgroupEntry cg;
  bool found = false;
  TRY(ReadCgroups(dir, &cg, &found));
  if (!found) {
    LOG_INFO("cgroups: no " + images::FileName(images::ImageType::kCgroup) +
             ", the tasks stay in ckpt's cgroup");
    return r;
  }
  return Prepare(cg, o);
}

Result<std::unique_ptr<CgroupRestore>> CgroupRestore::Prepare(const pb::CgroupEntry& cg,
                                                              const Options& o) {
  std::unique_ptr<CgroupRestore> r(new CgroupRestore());
  if (o.cgroup_mode == CgroupMode::kIgnore) return r;
  TRY(CheckEntry(cg), images::FileName(images::ImageType::kCgroup));
  bool nothing = false;
  TRY_ASSIGN(CgroupPlan plan, MakePlan(cg, o, &nothing), "cgroups");
  if (nothing) {
    LOG_INFO("cgroups: every task goes where ckpt is (" + plan.own + ")");
    return r;
  }
  TRY(r->Execute(plan), "cgroups");
  return r;
}

Status CgroupRestore::WriteSetting(const std::string& dir, const std::string& name,
                                   const std::string& value, bool keep_old) {
  if (name == "cgroup.subtree_control") {
    // Only ever adds: controllers other users of an existing cgroup enabled stay.
    std::vector<std::string> have;
    if (keep_old) {
      TRY_ASSIGN(have, CurrentSubtree(dir));
    }
    std::string plus, minus;
    for (const std::string& c : fs::Words(value)) {
      if (Has(have, c)) continue;
      plus += (plus.empty() ? "+" : " +") + c;
      minus += (minus.empty() ? "-" : " -") + c;
    }
    if (plus.empty()) return Ok();
    TRY(fs::WriteSetting(dir, name, plus));
    if (keep_old) undo_.push_back({dir, name, minus});
    return Ok();
  }
  const PropSpec* spec = FindProp(name);
  std::string old;
  if (keep_old) {
    TRY_ASSIGN(old, fs::ReadSetting(dir, name));
  }
  if (spec && spec->multiline()) {
    for (const std::string& line : Lines(value)) TRY(fs::WriteSetting(dir, name, line));
  } else {
    TRY(fs::WriteSetting(dir, name, value));
  }
  if (keep_old && old != value) {
    if (name == "cpuset.cpus.partition") old = old.substr(0, old.find(' '));
    undo_.push_back({dir, name, old});
  }
  return Ok();
}

Status CgroupRestore::Execute(const CgroupPlan& plan) {
  auto make = [&](const std::string& cgroup, const std::string& dir) -> Status {
    if (mkdir(dir.c_str(), 0755) < 0) return Error::Errno("creating cgroup " + cgroup);
    created_.push_back(dir);
    LOG_DBG("cgroups: created " + cgroup);
    return Ok();
  };
  for (const std::string& a : plan.make_above) {
    std::string dir = fs::FsPath(plan.mount, a);
    TRY(make(a, dir));
    if (!plan.above_ctrls.empty())
      TRY(WriteSetting(dir, "cgroup.subtree_control", JoinWords(plan.above_ctrls), false),
          "cgroup " + a);
  }
  for (const CgroupPlan::Dir& d : plan.dirs) {
    if (!d.exists) TRY(make(d.cgroup, d.fs));
    if (!d.write) continue;
    std::vector<const pb::CgroupPropEntry*> props;
    for (const pb::CgroupPropEntry& p : d.e->props()) props.push_back(&p);
    std::stable_sort(props.begin(), props.end(),
                     [](auto* a, auto* b) { return PropOrder(a->name()) < PropOrder(b->name()); });
    for (const pb::CgroupPropEntry* p : props) {
      if (d.cgroup == plan.mount.root && p->name() != "cgroup.subtree_control") continue;
      if (FindProp(p->name())->kind == kLimit) {
        limits_.push_back({d.fs, p->name(), p->value(), d.exists, d.cgroup});
        continue;
      }
      TRY(WriteSetting(d.fs, p->name(), p->value(), d.exists), "cgroup " + d.cgroup);
    }
  }
  ns_root_dir_ = plan.ns_root_dir;
  // cgroup.procs of every cgroup a task goes to, but ckpt's own.
  std::map<size_t, int> opened;
  for (auto& [pid, di] : plan.task_dir) {
    const CgroupPlan::Dir& d = plan.dirs[di];
    if (d.cgroup == plan.own) continue;
    auto it = opened.find(di);
    if (it == opened.end()) {
      std::string path = d.fs + "/cgroup.procs";
      UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd) return Error::Errno("open " + path);
      it = opened.emplace(di, int(procs_.size())).first;
      procs_.push_back(std::move(fd));
      procs_dir_.push_back(d.fs);
    }
    procs_of_[pid] = it->second;
  }
  LOG_INFO("cgroups: " + std::to_string(plan.task_dir.size()) + " tasks into " +
           std::to_string(procs_.size()) + " cgroups; created " + std::to_string(created_.size()) +
           ", changed settings of existing ones: " + std::to_string(undo_.size()));
  return Ok();
}

Status CgroupRestore::ApplyLimits() {
  for (const Limit& l : limits_)
    TRY(WriteSetting(l.dir, l.name, l.value, l.keep_old), "cgroup " + l.cgroup);
  if (!limits_.empty()) LOG_INFO("cgroups: " + std::to_string(limits_.size()) + " limits set");
  limits_.clear();
  return Ok();
}

Status CgroupRestore::Place(pid_t pid, uint32_t image_pid) const {
  auto it = procs_of_.find(image_pid);
  if (it == procs_of_.end()) return Ok();
  std::string s = std::to_string(pid);
  ssize_t n;
  do {
    n = pwrite(procs_[it->second].get(), s.data(), s.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return Error::Errno("pid " + std::to_string(image_pid) + ": moving into cgroup " +
                        procs_dir_[it->second]);
  return Ok();
}

std::string CgroupRestore::TargetDir(uint32_t image_pid) const {
  auto it = procs_of_.find(image_pid);
  return it == procs_of_.end() ? "" : procs_dir_[it->second];
}

CgroupRestore::~CgroupRestore() {
  procs_.clear();
  if (!armed_) return;
  // Made cgroups first, children first: a cgroup that gives a controller
  // to a child of its own cannot take it back from its parent. (No existing
  // cgroup lies below one made here.) The tasks placed here were killed
  // and reaped before (the caller's contract); a dying task may still hold
  // its cgroup for a moment.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    Status s = Ok();
    for (int tries = 0; tries < 200; tries++) {
      s = rmdir(it->c_str()) == 0 ? Ok() : Status(Error::Errno("removing cgroup " + *it));
      if (!IsEbusy(s)) break;
      usleep(10 * 1000);
    }
    if (!s.ok()) LOG_WARN("cgroups: " + s.error().message());
  }
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    const PropSpec* spec = FindProp(it->file);
    Status s = Ok();
    if (spec && spec->multiline()) {
      for (const std::string& line : Lines(it->value))
        if (s.ok()) s = fs::WriteSetting(it->dir, it->file, line);
    } else {
      s = fs::WriteSetting(it->dir, it->file, it->value);
    }
    if (!s.ok()) LOG_WARN("cgroups: putting a setting back: " + s.error().message());
  }
}

}  // namespace ckpt
