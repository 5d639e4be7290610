// Helpers for the seccomp tests: classic BPF filters that give chosen
// system calls an action, and /proc status fields of a thread.
#pragma once

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "zdtm.h"

// A filter: each (syscall number, SECCOMP_RET_* action) pair; everything
// else allowed; another architecture is killed.
inline std::vector<sock_filter> seccomp_rules(const std::vector<std::pair<int, uint32_t>>& rules) {
  std::vector<sock_filter> f;
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  for (const auto& [nr, action] : rules) {
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, uint32_t(nr), 0, 1));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, action));
  }
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return f;
}

// seccomp(SECCOMP_SET_MODE_FILTER, flags, rules): its return value, errno set.
inline long seccomp_install(const std::vector<std::pair<int, uint32_t>>& rules,
                            unsigned flags = 0) {
  std::vector<sock_filter> f = seccomp_rules(rules);
  sock_fprog p = {(unsigned short)f.size(), f.data()};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
}

// "Key:" of /proc/self/task/TID/status (tid 0: the calling thread).
inline std::string thread_status(const char* key, pid_t tid = 0) {
  if (!tid) tid = pid_t(syscall(SYS_gettid));
  std::string path = "/proc/self/task/" + std::to_string(tid) + "/status";
  std::string text = "\n" + zdtm_read_file(path.c_str());
  std::string k = std::string("\n") + key + ":";
  size_t p = text.find(k);
  if (p == std::string::npos) return "(missing)";
  p += k.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) p++;
  return text.substr(p, text.find('\n', p) - p);
}

// A raw system call's errno (0 if it succeeded).
inline int errno_of(long r) { return r < 0 ? errno : 0; }
