#include "criu/proc_parse.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "base/io.h"

namespace ckpt::proc {
namespace {

bool IsMapsLine(const std::string& l) {
  // "start-end perms ..." starts with a hex digit and has a '-' early on.
  size_t dash = l.find('-');
  return !l.empty() && isxdigit(static_cast<unsigned char>(l[0])) && dash != std::string::npos &&
         dash < 17 && l.find(' ') > dash;
}

std::vector<std::string> Split(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

}  // namespace

bool MapEntry::HasFlag(const char* f) const {
  return std::find(vmflags.begin(), vmflags.end(), f) != vmflags.end();
}

Result<std::vector<MapEntry>> ParseMaps(const std::string& text) {
  std::vector<MapEntry> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    if (line.empty()) continue;
    if (!IsMapsLine(line)) {
      if (line.rfind("VmFlags:", 0) == 0 && !out.empty()) {
        auto words = Split(line.substr(8));
        out.back().vmflags = std::move(words);
        continue;
      }
      // Other smaps fields are "Key: value"; anything else is corrupt.
      size_t colon = line.find(':');
      bool field = colon != std::string::npos && colon > 0;
      for (size_t i = 0; field && i < colon; i++)
        field = isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_';
      if (!field) return Error("maps line " + std::to_string(lineno) + " is malformed: " + line);
      continue;
    }
    MapEntry e;
    char perms[8] = {};
    unsigned long long start, end, pgoff, inode;
    unsigned maj, min;
    int consumed = 0;
    if (sscanf(line.c_str(), "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &pgoff, &maj,
               &min, &inode, &consumed) < 7)
      return Error("maps line " + std::to_string(lineno) + " is malformed: " + line);
    if (strlen(perms) != 4 || start >= end)
      return Error("maps line " + std::to_string(lineno) + " is malformed: " + line);
    e.start = start, e.end = end, e.pgoff = pgoff, e.inode = inode;
    e.dev_major = maj, e.dev_minor = min;
    e.r = perms[0] == 'r', e.w = perms[1] == 'w', e.x = perms[2] == 'x';
    e.shared = perms[3] == 's';
    if (consumed > 0 && size_t(consumed) <= line.size()) {
      e.path = line.substr(consumed);
      while (!e.path.empty() && e.path.front() == ' ') e.path.erase(0, 1);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<Status> ParseStatus(const std::string& text) {
  Status s;
  std::istringstream in(text);
  std::string line;
  bool have_uid = false, have_gid = false;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    std::string val = line.substr(colon + 1);
    auto w = Split(val);
    auto hex = [&](uint64_t& dst) { dst = w.empty() ? 0 : strtoull(w[0].c_str(), nullptr, 16); };
    if (key == "Name") {
      s.name = val.empty() ? ""
                           : val.substr(val.find_first_not_of(" \t") == std::string::npos
                                            ? val.size()
                                            : val.find_first_not_of(" \t"));
    } else if (key == "State") {
      s.state = w.empty() ? '?' : w[0][0];
    } else if (key == "Tgid") {
      s.tgid = w.empty() ? 0 : atoi(w[0].c_str());
    } else if (key == "Pid") {
      s.pid = w.empty() ? 0 : atoi(w[0].c_str());
    } else if (key == "PPid") {
      s.ppid = w.empty() ? 0 : atoi(w[0].c_str());
    } else if (key == "Uid" || key == "Gid") {
      if (w.size() < 4) return Error("status: malformed " + key + " line");
      uint32_t* dst = key == "Uid" ? s.uid : s.gid;
      for (int i = 0; i < 4; i++) dst[i] = uint32_t(strtoul(w[i].c_str(), nullptr, 10));
      (key == "Uid" ? have_uid : have_gid) = true;
    } else if (key == "Groups") {
      for (auto& g : w) s.groups.push_back(uint32_t(strtoul(g.c_str(), nullptr, 10)));
    } else if (key == "NSpid" || key == "NSpgid" || key == "NSsid") {
      std::vector<pid_t>& dst = key == "NSpid" ? s.ns_pid : key == "NSpgid" ? s.ns_pgid : s.ns_sid;
      for (auto& v : w) dst.push_back(pid_t(atoi(v.c_str())));
    } else if (key == "Threads") {
      s.threads = w.empty() ? 0 : atoi(w[0].c_str());
    } else if (key == "SigBlk") {
      hex(s.sigblk);
    } else if (key == "SigPnd") {
      hex(s.sigpnd);
    } else if (key == "ShdPnd") {
      hex(s.shdpnd);
    } else if (key == "CapInh") {
      hex(s.cap_inh);
    } else if (key == "CapPrm") {
      hex(s.cap_prm);
    } else if (key == "CapEff") {
      hex(s.cap_eff);
    } else if (key == "CapBnd") {
      hex(s.cap_bnd);
    } else if (key == "CapAmb") {
      hex(s.cap_amb);
    }
  }
  if (!have_uid || !have_gid) return Error("status: no Uid/Gid lines");
  return s;
}

Result<Stat> ParseStat(const std::string& text) {
  Stat s;
  // comm may hold spaces and parentheses: it ends at the last ')'.
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open)
    return Error("stat: malformed comm");
  s.pid = atoi(text.c_str());
  s.comm = text.substr(open + 1, close - open - 1);
  auto f = Split(text.substr(close + 1));
  // f[0] is field 3 (state).
  if (f.size() < 50) return Error("stat: too few fields (" + std::to_string(f.size() + 2) + ")");
  auto u = [&](int field) { return strtoull(f[field - 3].c_str(), nullptr, 10); };
  s.state = f[0][0];
  s.ppid = pid_t(u(4)), s.pgid = pid_t(u(5)), s.sid = pid_t(u(6));
  s.start_code = u(26), s.end_code = u(27), s.start_stack = u(28);
  s.start_data = u(45), s.end_data = u(46), s.start_brk = u(47);
  s.arg_start = u(48), s.arg_end = u(49), s.env_start = u(50), s.env_end = u(51);
  s.exit_code = int(u(52));
  return s;
}

Result<FdInfo> ParseFdInfo(const std::string& text) {
  FdInfo fi;
  bool have_pos = false, have_flags = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("pos:", 0) == 0) {
      fi.pos = strtoull(line.c_str() + 4, nullptr, 10);
      have_pos = true;
    } else if (line.rfind("flags:", 0) == 0) {
      fi.flags = uint32_t(strtoul(line.c_str() + 6, nullptr, 8));
      have_flags = true;
    } else if (line.rfind("mnt_id:", 0) == 0) {
      fi.mnt_id = atoi(line.c_str() + 7);
    }
  }
  if (!have_pos || !have_flags) return Error("fdinfo: no pos/flags");
  return fi;
}

static std::string P(pid_t pid, const char* what) {
  return "/proc/" + std::to_string(pid) + "/" + what;
}

Result<std::vector<uint64_t>> ParseHardLimits(const std::string& text) {
  // "Limit(25) Soft Limit(20) Hard Limit(20) Units", columns separated by
  // one space (fs/proc/base.c proc_pid_limits): the hard limit starts at 47.
  constexpr size_t kHardCol = 47;
  std::vector<uint64_t> hard;
  size_t pos = text.find('\n');  // the header
  if (pos == std::string::npos || text.compare(0, 5, "Limit") != 0)
    return Error("limits: no header line");
  while (++pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end;
    if (line.empty()) continue;
    if (line.size() <= kHardCol || line[kHardCol - 1] != ' ')
      return Error("limits: malformed row '" + line + "'");
    size_t f = kHardCol, e = line.find(' ', f);
    std::string v = line.substr(f, e == std::string::npos ? std::string::npos : e - f);
    if (v == "unlimited") {
      hard.push_back(UINT64_MAX);
      continue;
    }
    char* stop = nullptr;
    errno = 0;
    unsigned long long n = strtoull(v.c_str(), &stop, 10);
    if (v.empty() || errno || *stop) return Error("limits: bad hard limit '" + v + "'");
    hard.push_back(n);
  }
  if (hard.empty()) return Error("limits: no rows");
  return hard;
}

Result<std::vector<MapEntry>> ReadSmaps(pid_t pid) {
  TRY_ASSIGN(std::string t, io::ReadFile(P(pid, "smaps")));
  return ParseMaps(t);
}
Result<Status> ReadStatus(pid_t pid) {
  TRY_ASSIGN(std::string t, io::ReadFile(P(pid, "status")));
  return ParseStatus(t);
}
Result<std::vector<uint64_t>> ReadHardLimits(pid_t pid) {
  TRY_ASSIGN(std::string t, io::ReadFile(P(pid, "limits")));
  return ParseHardLimits(t);
}
Result<Stat> ReadStat(pid_t pid) {
  TRY_ASSIGN(std::string t, io::ReadFile(P(pid, "stat")));
  return ParseStat(t);
}
Result<FdInfo> ReadFdInfo(pid_t pid, int fd) {
  TRY_ASSIGN(std::string t, io::ReadFile(P(pid, "fdinfo/") + std::to_string(fd)));
  return ParseFdInfo(t);
}

Result<std::vector<int>> ListFds(pid_t pid) {
  std::string dir = P(pid, "fd");
  DIR* d = opendir(dir.c_str());
  if (!d) return Error::Errno("open " + dir);
  std::vector<int> out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    out.push_back(atoi(e->d_name));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ckpt::proc
