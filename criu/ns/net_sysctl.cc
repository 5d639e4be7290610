// Sysctls through /proc/sys/net. Which namespace a file shows is decided
// by the thread that reads or writes it (current's netns), not by the
// procfs mount, so a helper thread that setns()ed in reads the dumped
// namespace's values.
#include "criu/ns/net_sysctl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>

#include "base/io.h"
#include "base/log.h"
#include "base/unique_fd.h"

namespace ckpt::ns {
namespace {

constexpr char kRoot[] = "/proc/sys/net/";
const char* const kTops[] = {"ipv4", "ipv6", "core", "unix"};
// A sysctl value longer than this is not a sysctl we know.
constexpr size_t kMaxValue = 64 * 1024;
// Folders deeper than this below /proc/sys/net do not exist.
constexpr int kMaxDepth = 8;

// "net.ipv4.conf.eth0.rp_filter" for people (sysctl(8)'s spelling).
std::string Name(const std::string& rel) {
  std::string n = "net." + rel;
  for (char& ch : n)
    if (ch == '/') ch = '.';
  return n;
}

std::string Norm(const std::string& v) {
  std::istringstream in(v);
  std::string w, out;
  while (in >> w) out += (out.empty() ? "" : " ") + w;
  return out;
}

Result<std::string> ReadValue(const std::string& rel) {
  UniqueFd fd(open((kRoot + rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open");
  std::string v(kMaxValue, '\0');
  TRY_ASSIGN(size_t n, io::ReadUpTo(fd.get(), v.data(), v.size()));
  if (n == v.size()) return Error("value too long", EFBIG);
  v.resize(n);
  while (!v.empty() && v.back() == '\n') v.pop_back();
  return v;
}

Status WriteValue(const std::string& rel, const std::string& v) {
  UniqueFd fd(open((kRoot + rel).c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open " + std::string(kRoot) + rel);
  std::string line = v + "\n";
  ssize_t n = write(fd.get(), line.data(), line.size());
  if (n < 0) return Error::Errno("sysctl " + Name(rel) + ": writing '" + v + "'");
  if (size_t(n) != line.size())
    return Error("sysctl " + Name(rel) + ": short write of '" + v + "'", EIO);
  return Ok();
}

Status Walk(const std::string& rel, int depth, std::vector<pb::NetSysctlEntry>& out) {
  if (depth > kMaxDepth) return Ok();
  std::unique_ptr<DIR, int (*)(DIR*)> d(opendir((kRoot + rel).c_str()), closedir);
  if (!d) return Error::Errno("opendir " + std::string(kRoot) + rel);
  std::vector<std::string> names;
  while (dirent* de = readdir(d.get())) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string p = rel + "/" + n;
    struct stat st;
    if (fstatat(dirfd(d.get()), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) continue;  // gone
    if (S_ISDIR(st.st_mode)) {
      TRY(Walk(p, depth + 1, out));
      continue;
    }
    if (!S_ISREG(st.st_mode) || !(st.st_mode & 0200) || !(st.st_mode & 0400)) continue;
    auto v = ReadValue(p);
    if (!v.ok()) {
      // e.g. ipv6 stable_secret while unset (EIO): nothing to restore.
      LOG_DBG("netns: sysctl " + Name(p) + " not readable: " + v.error().message());
      continue;
    }
    pb::NetSysctlEntry e;
    e.set_path(p);
    e.set_value(*v);
    out.push_back(std::move(e));
  }
  return Ok();
}

bool GoodComponent(const std::string& c) {
  if (c.empty() || c == "." || c == ".." || c.size() > 255) return false;
  for (char ch : c)
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.' ||
          ch == '@' || ch == '+' || ch == '#' || ch == '%' || ch == '=' || ch == ','))
      return false;
  return true;
}

std::vector<std::string> Split(const std::string& p) {
  std::vector<std::string> out;
  size_t s = 0;
  while (true) {
    size_t e = p.find('/', s);
    out.push_back(p.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  return out;
}

// Write order of the namespace-wide entries: 0 plain, 1 conf/all, 2
// conf/default and neigh/default.
int Rank(const std::string& path) {
  auto c = Split(path);
  if (c.size() >= 3 && (c[1] == "conf" || c[1] == "neigh")) return c[2] == "all" ? 1 : 2;
  return 0;
}

}  // namespace

bool IsDeviceSysctl(const std::string& path) {
  auto c = Split(path);
  return c.size() >= 4 && (c[0] == "ipv4" || c[0] == "ipv6") &&
         (c[1] == "conf" || c[1] == "neigh") && c[2] != "all" && c[2] != "default";
}

Result<std::vector<pb::NetSysctlEntry>> DumpSysctls() {
  std::vector<pb::NetSysctlEntry> out;
  for (const char* top : kTops) {
    if (access((std::string(kRoot) + top).c_str(), F_OK) != 0) continue;  // e.g. ipv6 off
    TRY(Walk(top, 0, out), "reading sysctls");
  }
  return out;
}

void MarkChanged(std::vector<pb::NetSysctlEntry>& entries,
                 const std::vector<pb::NetSysctlEntry>& fresh) {
  std::map<std::string, std::string> f;
  for (const auto& e : fresh) f[e.path()] = Norm(e.value());
  for (auto& e : entries) {
    auto it = f.find(e.path());
    e.set_changed(it == f.end() || it->second != Norm(e.value()));
  }
}

Status CheckSysctls(const std::vector<pb::NetSysctlEntry>& entries) {
  for (size_t i = 0; i < entries.size(); i++) {
    const auto& e = entries[i];
    auto c = Split(e.path());
    bool top = !c.empty() && std::any_of(std::begin(kTops), std::end(kTops),
                                         [&](const char* t) { return c[0] == t; });
    bool good = top && c.size() >= 2 && c.size() <= size_t(kMaxDepth) + 2;
    for (const auto& comp : c) good = good && GoodComponent(comp);
    if (!good)
      return Error("sysctl entry " + std::to_string(i) + ": bad path '" + e.path() + "'", EINVAL);
    if (e.value().size() >= kMaxValue || e.value().find('\0') != std::string::npos)
      return Error("sysctl " + Name(e.path()) + ": bad value", EINVAL);
  }
  return Ok();
}

Status RestoreSysctls(const std::vector<pb::NetSysctlEntry>& entries, bool devices, bool weak) {
  std::vector<const pb::NetSysctlEntry*> todo;
  for (const auto& e : entries)
    if (IsDeviceSysctl(e.path()) == devices) todo.push_back(&e);
  std::stable_sort(todo.begin(), todo.end(),
                   [](const auto* a, const auto* b) { return Rank(a->path()) < Rank(b->path()); });
  int written = 0;
  while (!todo.empty()) {
    std::vector<const pb::NetSysctlEntry*> failed;
    Status first;
    for (const auto* e : todo) {
      auto cur = ReadValue(e->path());
      if (!cur.ok()) {
        if (cur.error().err() == ENOENT) {
          if (!e->changed() || weak) {
            if (weak && e->changed()) {
              LOG_WARN("sysctl " + Name(e->path()) + " (changed to '" + e->value() +
                       "') does not exist here: skipped (--weak-sysctls)");
              continue;
            }
            LOG_WARN("sysctl " + Name(e->path()) + " does not exist here; it held its default");
            continue;
          }
          return Error("sysctl " + Name(e->path()) + " (changed to '" + e->value() +
                           "') does not exist here (another kernel or module set?)",
                       ENOENT);
        }
        return std::move(cur.error().Context("sysctl " + Name(e->path())));
      }
      if (Norm(*cur) == Norm(e->value())) continue;
      Status st = WriteValue(e->path(), e->value());
      if (st.ok()) {
        written++;
        continue;
      }
      if (first.ok()) first = st;
      failed.push_back(e);
    }
    if (failed.size() == todo.size()) return first;
    todo = std::move(failed);
  }
  LOG_DBG("netns: " + std::to_string(written) + (devices ? " per-device" : " namespace") +
          " sysctls written");
  return Ok();
}

}  // namespace ckpt::ns
