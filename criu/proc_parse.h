// Parsers for /proc files. Pure functions over text, so unit tests feed
// them samples; the Read* helpers fetch the file for a pid.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace ckpt::proc {

// One line of /proc/PID/maps, plus VmFlags from smaps when read from there.
struct MapEntry {
  uint64_t start = 0, end = 0;
  bool r = false, w = false, x = false, shared = false;
  uint64_t pgoff = 0;
  unsigned dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string path;                  // "" for anonymous, "[heap]", "/usr/lib/..."
  std::vector<std::string> vmflags;  // "rd", "gd", "dd", ... (smaps only)
  bool HasFlag(const char* f) const;
};

// Parses /proc/PID/maps or /proc/PID/smaps text.
Result<std::vector<MapEntry>> ParseMaps(const std::string& text);

struct Status {
  std::string name;
  pid_t tgid = 0, pid = 0, ppid = 0;
  uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
  std::vector<uint32_t> groups;
  uint64_t sigblk = 0, sigpnd = 0, shdpnd = 0;
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  int threads = 0;
  char state = '?';
  // NSpid/NSpgid/NSsid: the ids at every pid namespace level, from the one
  // /proc was mounted in down to the task's own (0 where not visible).
  std::vector<pid_t> ns_pid, ns_pgid, ns_sid;
};
Result<Status> ParseStatus(const std::string& text);

// /proc/PID/stat: the fields ckpt needs (man 5 proc numbering in comments).
struct Stat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0, pgid = 0, sid = 0;
  uint64_t start_code = 0, end_code = 0, start_stack = 0;           // 26..28
  uint64_t start_data = 0, end_data = 0, start_brk = 0;             // 45..47
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;  // 48..51
  int exit_code = 0;                                                // 52
};
Result<Stat> ParseStat(const std::string& text);

// /proc/PID/fdinfo/FD
struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;  // octal in the file
  int mnt_id = -1;
};
Result<FdInfo> ParseFdInfo(const std::string& text);

// /proc/PID/limits: the hard limit of every resource, by resource number
// (RLIMIT_CPU = 0, ...; the rows are in that order), UINT64_MAX for
// "unlimited".
Result<std::vector<uint64_t>> ParseHardLimits(const std::string& text);

Result<std::vector<MapEntry>> ReadSmaps(pid_t pid);
Result<Status> ReadStatus(pid_t pid);
Result<std::vector<uint64_t>> ReadHardLimits(pid_t pid);
Result<Stat> ReadStat(pid_t pid);
Result<FdInfo> ReadFdInfo(pid_t pid, int fd);
// Open fd numbers of pid, sorted.
Result<std::vector<int>> ListFds(pid_t pid);

}  // namespace ckpt::proc
