#include "criu/cgroup_fs.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>

#include "base/io.h"
#include "base/unique_fd.h"

namespace ckpt::cgroupfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<std::vector<Mount>> Cgroup2Mounts() {
  TRY_ASSIGN(std::string text, io::ReadFile("/proc/self/mountinfo"));
  std::vector<Mount> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mountpoint;
    head >> id >> parent >> dev >> root >> mountpoint;
    out.push_back({Unescape(root), Unescape(mountpoint)});
  }
  return out;
}

}  // namespace

Result<Mount> FindMount(const std::string& cgroup) {
  TRY_ASSIGN(std::vector<Mount> mounts, Cgroup2Mounts());
  if (mounts.empty())
    return Error("no cgroup2 filesystem is mounted here (mount -t cgroup2 none /sys/fs/cgroup)");
  for (const Mount& m : mounts)
    if (IsAncestorOrSelf(m.root, cgroup)) return m;
  return Error("no cgroup2 mount here shows cgroup " + cgroup + " (the first one, at " +
               mounts[0].mountpoint + ", shows " + mounts[0].root + " and below)");
}

std::string FsPath(const Mount& m, const std::string& cgroup) {
  std::string rel = RelativeTo(m.root, cgroup);
  return rel.empty() ? m.mountpoint : m.mountpoint + "/" + rel;
}

Result<std::string> CgroupOfDir(const std::string& fs_dir) {
  struct statfs sf;
  if (statfs(fs_dir.c_str(), &sf) < 0) return Error::Errno(fs_dir);
  if (sf.f_type != CGROUP2_SUPER_MAGIC)
    return Error(fs_dir + " is not a directory of a cgroup2 filesystem");
  char real[PATH_MAX];
  if (!realpath(fs_dir.c_str(), real)) return Error::Errno("realpath " + fs_dir);
  std::string path = real;
  TRY_ASSIGN(std::vector<Mount> mounts, Cgroup2Mounts());
  const Mount* best = nullptr;
  for (const Mount& m : mounts) {
    const std::string& mp = m.mountpoint;
    bool under = path == mp ||
                 (path.compare(0, mp.size(), mp) == 0 && (mp == "/" || path[mp.size()] == '/'));
    if (under && (!best || mp.size() > best->mountpoint.size())) best = &m;
  }
  if (!best) return Error(fs_dir + ": no cgroup2 mount of ckpt's mount namespace holds it");
  std::string rest = path.substr(best->mountpoint.size());
  while (!rest.empty() && rest[0] == '/') rest.erase(0, 1);
  return Join(best->root, rest);
}

Result<std::string> TaskCgroup(pid_t pid, pid_t tid) {
  std::string file = "/proc/" + std::to_string(pid) +
                     (tid ? "/task/" + std::to_string(tid) : std::string()) + "/cgroup";
  TRY_ASSIGN(std::string text, io::ReadFile(file));
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 3, "0::") != 0) continue;
    std::string path = line.substr(3);
    if (path.compare(0, 3, "/..") == 0 || path.empty() || path[0] != '/')
      return Error(file + ": cgroup " + path + " is outside ckpt's cgroup namespace");
    return path;
  }
  return Error(file + ": no cgroup v2 (\"0::\") line");
}

std::string Parent(const std::string& cgroup) {
  size_t slash = cgroup.rfind('/');
  if (slash == std::string::npos || cgroup == "/") return "";
  return slash == 0 ? "/" : cgroup.substr(0, slash);
}

std::string Join(const std::string& top, const std::string& rel) {
  if (rel.empty()) return top;
  return top == "/" ? "/" + rel : top + "/" + rel;
}

bool IsAncestorOrSelf(const std::string& anc, const std::string& cgroup) {
  if (anc == "/" || anc == cgroup) return true;
  return cgroup.size() > anc.size() && cgroup.compare(0, anc.size(), anc) == 0 &&
         cgroup[anc.size()] == '/';
}

std::string RelativeTo(const std::string& top, const std::string& cgroup) {
  if (top == cgroup) return "";
  return cgroup.substr(top == "/" ? 1 : top.size() + 1);
}

bool IsCleanRelative(const std::string& rel) {
  if (rel.empty()) return true;
  if (rel.size() > 4096 || rel.find('\0') != std::string::npos) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = rel.find('/', start);
    std::string part =
        rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == ".." || part.size() > 255) return false;
    if (slash == std::string::npos) return true;
    start = slash + 1;
  }
}

Result<std::string> ReadSetting(const std::string& dir, const std::string& name) {
  TRY_ASSIGN(std::string v, io::ReadFile(dir + "/" + name));
  while (!v.empty() && v.back() == '\n') v.pop_back();
  return v;
}

Status WriteSetting(const std::string& dir, const std::string& name, const std::string& value) {
  std::string path = dir + "/" + name;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + path);
  // One write: cgroup files parse each write(2) as a whole.
  ssize_t n;
  do {
    n = write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::Errno("writing '" + value + "' to " + path);
  if (size_t(n) != value.size()) return Error("short write of '" + value + "' to " + path);
  return Ok();
}

std::vector<std::string> Words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

}  // namespace ckpt::cgroupfs
