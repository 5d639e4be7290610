#include "criu/ns/mountinfo.h"

#include <linux/mount.h>
#include <sys/types.h>

#include <cstdlib>
#include <sstream>

#include "base/io.h"

namespace ckpt::ns {
namespace {

bool Octal(char c) { return c >= '0' && c <= '7'; }

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

// "shared:12" -> 12; 0 and false if `field` does not start with `key`.
bool Tagged(const std::string& field, const std::string& key, uint32_t* v) {
  if (field.compare(0, key.size(), key) != 0) return false;
  char* end;
  unsigned long n = strtoul(field.c_str() + key.size(), &end, 10);
  if (*end || end == field.c_str() + key.size() || n == 0 || n > UINT32_MAX) return false;
  *v = uint32_t(n);
  return true;
}

bool ParseU32(const std::string& s, uint32_t* v) {
  if (s.empty()) return false;
  char* end;
  unsigned long n = strtoul(s.c_str(), &end, 10);
  if (*end || n > UINT32_MAX) return false;
  *v = uint32_t(n);
  return true;
}

}  // namespace

std::string UnescapeMountField(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && Octal(s[i + 2]) &&
        Octal(s[i + 3])) {
      out += char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

Result<uint64_t> ParseMountOptions(const std::string& opts) {
  uint64_t a = MOUNT_ATTR_STRICTATIME;
  bool rw_seen = false;
  for (const std::string& w : Split(opts, ',')) {
    if (w == "rw") {
      rw_seen = true;
    } else if (w == "ro") {
      rw_seen = true;
      a |= MOUNT_ATTR_RDONLY;
    } else if (w == "nosuid") {
      a |= MOUNT_ATTR_NOSUID;
    } else if (w == "nodev") {
      a |= MOUNT_ATTR_NODEV;
    } else if (w == "noexec") {
      a |= MOUNT_ATTR_NOEXEC;
    } else if (w == "nodiratime") {
      a |= MOUNT_ATTR_NODIRATIME;
    } else if (w == "nosymfollow") {
      a |= MOUNT_ATTR_NOSYMFOLLOW;
    } else if (w == "relatime") {
      a = (a & ~uint64_t(MOUNT_ATTR__ATIME)) | MOUNT_ATTR_RELATIME;
    } else if (w == "noatime") {
      a = (a & ~uint64_t(MOUNT_ATTR__ATIME)) | MOUNT_ATTR_NOATIME;
    } else {
      return Error("mount option '" + w + "' is not supported");
    }
  }
  if (!rw_seen) return Error("mount options '" + opts + "' say neither rw nor ro");
  return a;
}

std::string MountOptionsString(uint64_t a) {
  std::string s = (a & MOUNT_ATTR_RDONLY) ? "ro" : "rw";
  if (a & MOUNT_ATTR_NOSUID) s += ",nosuid";
  if (a & MOUNT_ATTR_NODEV) s += ",nodev";
  if (a & MOUNT_ATTR_NOEXEC) s += ",noexec";
  if ((a & MOUNT_ATTR__ATIME) == MOUNT_ATTR_NOATIME) s += ",noatime";
  if (a & MOUNT_ATTR_NODIRATIME) s += ",nodiratime";
  if ((a & MOUNT_ATTR__ATIME) == MOUNT_ATTR_RELATIME) s += ",relatime";
  if (a & MOUNT_ATTR_NOSYMFOLLOW) s += ",nosymfollow";
  return s;
}

Result<std::vector<MountInfo>> ParseMountInfo(const std::string& text) {
  std::vector<MountInfo> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto bad = [&](const std::string& why) {
      return Error("mountinfo line '" + line + "': " + why);
    };
    std::vector<std::string> f;
    std::istringstream words(line);
    std::string w;
    while (words >> w) f.push_back(w);
    size_t sep = 0;
    while (sep < f.size() && f[sep] != "-") sep++;
    if (sep < 6 || sep + 3 > f.size()) return bad("too few fields");
    MountInfo m;
    if (!ParseU32(f[0], &m.id) || !ParseU32(f[1], &m.parent_id)) return bad("bad mount ids");
    if (f[2].find(':') == std::string::npos) return bad("bad device");
    m.dev = f[2];
    m.root = UnescapeMountField(f[3]);
    m.mountpoint = UnescapeMountField(f[4]);
    if (m.root.empty() || m.mountpoint.empty() || m.mountpoint[0] != '/') return bad("bad paths");
    auto attrs = ParseMountOptions(f[5]);
    if (!attrs.ok()) return bad(attrs.error().message());
    m.attrs = *attrs;
    for (size_t i = 6; i < sep; i++) {
      if (Tagged(f[i], "shared:", &m.shared) || Tagged(f[i], "master:", &m.master) ||
          Tagged(f[i], "propagate_from:", &m.propagate_from))
        continue;
      if (f[i] == "unbindable") {
        m.unbindable = true;
        continue;
      }
      return bad("unknown optional field " + f[i]);
    }
    m.fstype = UnescapeMountField(f[sep + 1]);
    m.source = UnescapeMountField(f[sep + 2]);
    if (sep + 3 < f.size()) {
      for (const std::string& o : Split(f[sep + 3], ','))
        if (!o.empty()) m.fs_opts.push_back(UnescapeMountField(o));
    }
    if (sep + 4 < f.size()) return bad("too many fields");
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<MountInfo>> ReadMountInfo(pid_t pid) {
  std::string path = pid ? "/proc/" + std::to_string(pid) + "/mountinfo" : "/proc/self/mountinfo";
  TRY_ASSIGN(std::string text, io::ReadFile(path));
  TRY_ASSIGN(std::vector<MountInfo> m, ParseMountInfo(text), path);
  return m;
}

bool PathIsUnder(const std::string& path, const std::string& dir) {
  if (dir == "/") return !path.empty() && path[0] == '/';
  if (path.compare(0, dir.size(), dir) != 0) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

std::string PathRelativeTo(const std::string& path, const std::string& dir) {
  if (path.size() <= dir.size()) return "";
  size_t skip = dir == "/" ? 1 : dir.size() + 1;
  return path.substr(skip);
}

}  // namespace ckpt::ns
