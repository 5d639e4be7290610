// What the cgroup tests share: real cgroups named ckpt-test-* under the
// cgroup2 mount (removed at the end, processes in them killed, also when a
// test fails) and child processes sitting in a given cgroup.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "criu/cgroup_fs.h"

namespace ckpt::cgtest {

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

inline bool WriteText(const std::string& path, const std::string& v) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, v.data(), v.size()) == ssize_t(v.size());
  close(fd);
  return ok;
}

inline bool IsDir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The cgroup (path) of a process, "" if unreadable.
inline std::string CgroupOf(pid_t pid) {
  auto r = cgroupfs::TaskCgroup(pid);
  return r.ok() ? *r : "";
}

// Kills what is in `dir` and below, removes it bottom-up (bounded retries:
// a killed task leaves its cgroup a moment after the signal).
inline void RemoveTree(const std::string& dir) {
  if (!IsDir(dir)) return;
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> subs;
    while (struct dirent* e = readdir(d))
      if (e->d_type == DT_DIR && e->d_name[0] != '.') subs.push_back(e->d_name);
    closedir(d);
    for (const std::string& s : subs) RemoveTree(dir + "/" + s);
  }
  WriteText(dir + "/cgroup.freeze", "0");
  WriteText(dir + "/cgroup.kill", "1");
  for (int i = 0; i < 500 && rmdir(dir.c_str()) < 0 && errno == EBUSY; i++) {
    int st;
    while (waitpid(-1, &st, WNOHANG | __WALL) > 0) {
    }
    usleep(10000);
  }
  EXPECT_FALSE(IsDir(dir)) << "could not remove " << dir << ": " << strerror(errno);
}

// A fresh cgroup /ckpt-test-PID-N below the cgroup2 mount's root, removed
// with everything below it on destruction.
class TestCgroup {
 public:
  TestCgroup() {
    auto m = cgroupfs::FindMount("/");
    if (!m.ok()) {
      ADD_FAILURE() << m.error().message();
      return;
    }
    mount_ = *m;
    static int n = 0;
    name_ = "ckpt-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    cgroup_ = cgroupfs::Join(mount_.root, name_);
    dir_ = cgroupfs::FsPath(mount_, cgroup_);
    EXPECT_EQ(mkdir(dir_.c_str(), 0755), 0) << dir_ << ": " << strerror(errno);
  }
  ~TestCgroup() {
    if (!dir_.empty()) RemoveTree(dir_);
  }
  TestCgroup(const TestCgroup&) = delete;

  const std::string& cgroup() const { return cgroup_; }  // "/ckpt-test-..."
  const std::string& dir() const { return dir_; }        // filesystem path
  const cgroupfs::Mount& mount() const { return mount_; }
  std::string Cg(const std::string& rel) const { return cgroupfs::Join(cgroup_, rel); }
  std::string Dir(const std::string& rel) const { return rel.empty() ? dir_ : dir_ + "/" + rel; }
  // mkdir -p of a relative path.
  void Make(const std::string& rel) const {
    std::string cur;
    std::istringstream in(rel);
    std::string part;
    while (std::getline(in, part, '/')) {
      cur += (cur.empty() ? "" : "/") + part;
      std::string d = Dir(cur);
      if (!IsDir(d)) {
        EXPECT_EQ(mkdir(d.c_str(), 0755), 0) << d << ": " << strerror(errno);
      }
    }
  }

 private:
  cgroupfs::Mount mount_;
  std::string name_, cgroup_, dir_;
};

// A child of the test that moved itself into cgroup directory `dir` and
// then waits to be killed (optionally with `threads` extra threads, busy
// if `spin`). Killed and reaped on destruction.
class Sitter {
 public:
  explicit Sitter(const std::string& dir, bool spin = false) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
      ADD_FAILURE() << "pipe";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(p[0]);
      char ok = WriteText(dir + "/cgroup.procs", "0") ? 'y' : 'n';
      (void)!write(p[1], &ok, 1);
      close(p[1]);
      for (;;) {
        if (spin) {
          __asm__ __volatile__("" ::: "memory");  // busy, never blocking
        } else {
          pause();
        }
      }
    }
    close(p[1]);
    char ok = 0;
    EXPECT_EQ(read(p[0], &ok, 1), 1);
    EXPECT_EQ(ok, 'y') << "the child could not join " << dir;
    close(p[0]);
  }
  ~Sitter() { Kill(); }
  Sitter(const Sitter&) = delete;
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int st;
    while (waitpid(pid_, &st, __WALL) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Ensures `ctrl` is enabled in the mount root's cgroup.subtree_control
// (so ckpt-test-* cgroups get it) and puts it back as it was. Tests
// using it hold the ctest resource lock "cgroup2-root".
class RootController {
 public:
  explicit RootController(const std::string& ctrl) : ctrl_(ctrl) {
    auto m = cgroupfs::FindMount("/");
    if (!m.ok()) return;
    root_ = cgroupfs::FsPath(*m, m->root);
    std::vector<std::string> on = cgroupfs::Words(ReadText(root_ + "/cgroup.subtree_control"));
    if (std::find(on.begin(), on.end(), ctrl) != on.end()) return;
    EXPECT_TRUE(WriteText(root_ + "/cgroup.subtree_control", "+" + ctrl)) << strerror(errno);
    enabled_ = true;
  }
  ~RootController() {
    if (enabled_) WriteText(root_ + "/cgroup.subtree_control", "-" + ctrl_);
  }

 private:
  std::string ctrl_, root_;
  bool enabled_ = false;
};

// A controller of the cgroup2 hierarchy with a limit file ckpt saves, and
// that file's name: pids, memory or hugetlb (whichever this system offers
// in v2), "" if none.
inline std::pair<std::string, std::string> LimitController() {
  auto m = cgroupfs::FindMount("/");
  if (!m.ok()) return {};
  std::vector<std::string> avail =
      cgroupfs::Words(ReadText(cgroupfs::FsPath(*m, m->root) + "/cgroup.controllers"));
  auto has = [&](const char* c) { return std::find(avail.begin(), avail.end(), c) != avail.end(); };
  if (has("pids")) return {"pids", "pids.max"};
  if (has("memory")) return {"memory", "memory.max"};
  if (has("hugetlb") && IsDir("/sys/kernel/mm/hugepages/hugepages-2048kB"))
    return {"hugetlb", "hugetlb.2MB.max"};
  return {};
}

// A controller the kernel has (/proc/cgroups) that the cgroup2 hierarchy
// does not offer (bound to a v1 hierarchy), "" if every one is offered.
inline std::string ControllerNotInV2() {
  auto m = cgroupfs::FindMount("/");
  if (!m.ok()) return "";
  std::vector<std::string> avail =
      cgroupfs::Words(ReadText(cgroupfs::FsPath(*m, m->root) + "/cgroup.controllers"));
  std::istringstream in(ReadText("/proc/cgroups"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string name = line.substr(0, line.find_first_of(" \t"));
    if (std::find(avail.begin(), avail.end(), name) == avail.end()) return name;
  }
  return "";
}

// Every test: root, and a child subreaper (orphans of restored trees come
// back to us to be reaped; init here reaps late).
inline void CommonSetUp() {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (cgroups, ptrace)";
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

}  // namespace ckpt::cgtest
