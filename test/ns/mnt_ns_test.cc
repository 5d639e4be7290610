// Mount namespaces on the real kernel (criu/ns/mnt_ns.h). Root.
//
// A child builds a container-like mount tree in a mount namespace of its
// own and pivot_roots into it; DumpMountNamespace saves it; pid 1 of new
// mount and pid namespaces runs RestoreMountNamespace and the two trees are
// compared from inside, as text built here: mountinfo (mount points,
// roots, types, sources, options, propagation relations with the group
// numbers renamed in order of appearance) and every file of the tmpfs
// mounts byte for byte. Mounts die with the namespaces; the temp
// directories are removed by the test.
#include "criu/ns/mnt_ns.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/io.h"
#include "criu/ns/mountinfo.h"
#include "images/image_dir.h"
#include "proto/mnt_ns.pb.h"
#include "test/unit/test_util.h"

namespace ckpt {
namespace {

using ckpt::testing::TempDir;

void Must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + strerror(errno));
}

void Send(int fd, const std::string& s) {
  uint32_t n = uint32_t(s.size());
  if (!io::WriteFull(fd, &n, 4).ok() || !io::WriteFull(fd, s.data(), s.size()).ok()) _exit(3);
}

std::string Recv(int fd) {
  uint32_t n;
  if (!io::ReadFull(fd, &n, 4).ok()) return "EOF";
  std::string s(n, '\0');
  if (!io::ReadFull(fd, s.data(), n).ok()) return "EOF";
  return s;
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string o;
  for (unsigned char c : s) o += d[c >> 4], o += d[c & 15];
  return o;
}

// Short data in full, longer as length and FNV-1a hash.
std::string Digest(const std::string& data) {
  if (data.size() <= 64) return Hex(data);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return std::to_string(data.size()) + "/" + std::to_string(h);
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  Must(fd >= 0, "create " + path);
  bool ok = io::WriteFull(fd, data.data(), data.size()).ok();
  close(fd);
  Must(ok, "write " + path);
}

void MountOrDie(const char* src, const std::string& target, const char* type, unsigned long flags,
                const char* data = nullptr) {
  Must(mount(src, target.c_str(), type, flags, data) == 0,
       std::string("mount ") + (type ? type : "") + " " + target);
}

// The mount tree the calling process sees, one sorted line per mount.
std::string MountSnapshot() {
  std::string text = io::ReadFile("/proc/self/mountinfo").value();
  std::map<std::string, std::string> names;  // peer group -> "G1", "G2", ...
  auto group = [&](const std::string& n) {
    auto it = names.find(n);
    if (it == names.end()) it = names.emplace(n, "G" + std::to_string(names.size() + 1)).first;
    return it->second;
  };
  std::map<std::string, std::string> mp_of;  // id -> mount point
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream w(line);
    std::vector<std::string> f;
    std::string x;
    while (w >> x) f.push_back(x);
    mp_of[f[0]] = f[4];
    rows.push_back(f);
  }
  // Groups named in the order of the sorted mount points.
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a[4] < b[4]; });
  std::vector<std::string> out;
  for (const auto& f : rows) {
    std::string l = f[4] + " parent=" + (mp_of.count(f[1]) ? mp_of[f[1]] : "-") + " root=" + f[3] +
                    " opts=" + f[5];
    size_t i = 6;
    for (; f[i] != "-"; i++) {
      size_t c = f[i].find(':');
      l += " " + (c == std::string::npos ? f[i] : f[i].substr(0, c + 1) + group(f[i].substr(c + 1)));
    }
    l += " type=" + f[i + 1] + " source=" + f[i + 2] + " fsopts=" + f[i + 3];
    out.push_back(l);
  }
  std::string s;
  for (const std::string& l : out) s += l + "\n";
  return s;
}

// Every file below `dir` on the same filesystem, with everything a restore
// keeps (not ctimes, not inode numbers), contents in full.
void FilesOf(const std::string& dir, dev_t dev, std::string& out) {
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);  // atimes stay
  Must(dfd >= 0, "open " + dir);
  DIR* d = fdopendir(dfd);
  Must(d != nullptr, "opendir " + dir);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    std::string p = (dir == "/" ? "" : dir) + "/" + n;
    struct stat st;
    Must(lstat(p.c_str(), &st) == 0, "lstat " + p);
    if (st.st_dev != dev) {  // a mount point: its own filesystem
      out += p + " (mount point)\n";
      continue;
    }
    out += p + " mode=" + std::to_string(st.st_mode) + " uid=" + std::to_string(st.st_uid) +
           " gid=" + std::to_string(st.st_gid) + " nlink=" + std::to_string(st.st_nlink) +
           " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
           " atime=" + std::to_string(st.st_atim.tv_sec) + "." + std::to_string(st.st_atim.tv_nsec);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
      out += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    if (S_ISLNK(st.st_mode)) out += " -> " + io::ReadLink(p).value();
    if (S_ISREG(st.st_mode)) {
      int fd = open(p.c_str(), O_RDONLY | O_NOATIME | O_CLOEXEC);
      Must(fd >= 0, "open " + p);
      std::string data(size_t(st.st_size), '\0');
      Must(io::ReadFull(fd, data.data(), data.size()).ok(), "read " + p);
      char x[256];
      ssize_t xn = fgetxattr(fd, "user.tag", x, sizeof(x));
      close(fd);
      out += " blocks=" + std::to_string(st.st_blocks) + " data=" + Digest(data);
      if (xn >= 0) out += " user.tag=" + std::string(x, size_t(xn));
    }
    out += "\n";
    if (S_ISDIR(st.st_mode)) FilesOf(p, dev, out);
  }
}

std::string FilesSnapshot(const std::string& dir) {
  struct stat st;
  Must(stat(dir.c_str(), &st) == 0, "stat " + dir);
  std::string out = dir + " mode=" + std::to_string(st.st_mode) + " mtime=" +
                    std::to_string(st.st_mtim.tv_sec) + "\n";
  FilesOf(dir, st.st_dev, out);
  return out;
}

std::string Snapshot() {
  struct stat st;
  return MountSnapshot() + "--- /\n" + FilesSnapshot("/") +
         (stat("/tmp", &st) == 0 ? "--- /tmp\n" + FilesSnapshot("/tmp") : "");
}

void SetTimes(const std::string& p, time_t sec, long nsec, int flags = AT_SYMLINK_NOFOLLOW) {
  struct timespec t[2] = {{sec - 100, nsec / 2}, {sec, nsec}};
  Must(utimensat(AT_FDCWD, p.c_str(), t, flags) == 0, "utimensat " + p);
}

// The container: a tmpfs root holding files of every kind, host binds of
// a directory and a file, proc, a read-only tmpfs, nosuid/nodev/noexec,
// a shared mount with a peer and a slave, mqueue, devpts newinstance.
// `host` is the test's temp dir (vol/, file). Runs in the child after
// unshare(CLONE_NEWNS); ends inside the new root.
void BuildContainer(const std::string& host) {
  MountOrDie(nullptr, "/", nullptr, MS_REC | MS_PRIVATE);
  std::string r = host + "/root";
  MountOrDie("rootfs", r, "tmpfs", 0, "size=8m,mode=755");
  umask(0);
  for (const char* d : {"proc", "vol", "etc", "tmp", "nx", "shared", "peer", "slave", "mq", "pts",
                        "data", "data/sub"})
    Must(mkdir((r + "/" + d).c_str(), 0755) == 0, std::string("mkdir ") + d);
  WriteFile(r + "/etc/hostsfile", "");
  WriteFile(r + "/data/hello", "hello, world\n");
  WriteFile(r + "/data/empty", "");
  WriteFile(r + "/data/suid", "#!/bin/sh\n", 04755);
  Must(chown((r + "/data/suid").c_str(), 1000, 1000) == 0 &&
           chmod((r + "/data/suid").c_str(), 04755) == 0,
       "suid");
  {  // sparse: data, a 1 MiB hole, data, a hole at the end
    int fd = open((r + "/data/sparse").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    Must(fd >= 0 && pwrite(fd, "head", 4, 0) == 4 && pwrite(fd, "tail", 4, 1 << 20) == 4 &&
             ftruncate(fd, 3 << 20) == 0,
         "sparse");
    close(fd);
  }
  std::string big;
  for (int i = 0; i < 300000; i++) big += char('a' + i % 26);
  WriteFile(r + "/data/big", big, 0640);
  Must(setxattr((r + "/data/hello").c_str(), "user.tag", "blue", 4, 0) == 0, "setxattr");
  Must(link((r + "/data/hello").c_str(), (r + "/data/sub/hardlink").c_str()) == 0, "link");
  Must(symlink("../hello", (r + "/data/sub/rel-link").c_str()) == 0, "symlink");
  Must(symlink("/data/big", (r + "/data/abs-link").c_str()) == 0, "symlink");
  Must(mkfifo((r + "/data/fifo").c_str(), 0620) == 0, "mkfifo");
  Must(mknod((r + "/data/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod");
  Must(mkdir((r + "/data/private").c_str(), 0750) == 0 &&
           chown((r + "/data/private").c_str(), 1234, 5678) == 0,
       "private dir");
  Must(lchown((r + "/data/abs-link").c_str(), 42, 43) == 0, "lchown");
  SetTimes(r + "/data/hello", 1000000000, 123456789);
  SetTimes(r + "/data/abs-link", 1100000000, 5);
  SetTimes(r + "/data/fifo", 1200000000, 0);
  SetTimes(r + "/data/sub", 1300000000, 7);
  SetTimes(r + "/data", 1400000000, 8);

  MountOrDie((host + "/vol").c_str(), r + "/vol", nullptr, MS_BIND);
  MountOrDie((host + "/file").c_str(), r + "/etc/hostsfile", nullptr, MS_BIND);
  MountOrDie("proc", r + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible");
  MountOrDie("scratch", r + "/tmp", "tmpfs", 0, "size=1m,mode=1777");
  WriteFile(r + "/tmp/note", "kept\n", 0600);
  MountOrDie(nullptr, r + "/tmp", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOATIME);
  MountOrDie("nx", r + "/nx", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k");
  MountOrDie("shared", r + "/shared", "tmpfs", 0, "size=64k");
  Must(mkdir((r + "/shared/d").c_str(), 0700) == 0, "mkdir shared/d");
  MountOrDie(nullptr, r + "/shared", nullptr, MS_SHARED);
  MountOrDie((r + "/shared").c_str(), r + "/peer", nullptr, MS_BIND);
  MountOrDie((r + "/shared/d").c_str(), r + "/slave", nullptr, MS_BIND);
  MountOrDie(nullptr, r + "/slave", nullptr, MS_SLAVE);
  MountOrDie("mqueue", r + "/mq", "mqueue", MS_NOSUID);
  MountOrDie("devpts", r + "/pts", "devpts", 0, "newinstance,ptmxmode=0666,mode=0620");
  Must(chdir(r.c_str()) == 0, "chdir root");
  Must(syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  Must(umount2(".", MNT_DETACH) == 0, "umount old root");
  Must(chdir("/") == 0, "chdir /");
}

// A child in a mount namespace of its own running `setup`; answers 's'
// with Snapshot(), 'p' with TaskPaths-style facts, 'q' exits.
struct Victim {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string first;
  ~Victim() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (in >= 0) close(in);
    if (out >= 0) close(out);
  }
  std::string Ask(char c) {
    Send(out, std::string(1, c));
    return Recv(in);
  }
};

void StartVictim(Victim& v, const std::function<std::string()>& setup) {
  int down[2], up[2];
  ASSERT_EQ(pipe2(down, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(up, O_CLOEXEC), 0);
  v.pid = fork();
  ASSERT_GE(v.pid, 0);
  if (v.pid == 0) {
    close(down[1]);
    close(up[0]);
    try {
      Must(unshare(CLONE_NEWNS) == 0, "unshare");
      Send(up[1], setup());
      for (;;) {
        std::string c = Recv(down[0]);
        if (c == "s")
          Send(up[1], Snapshot());
        else
          _exit(0);
      }
    } catch (const std::exception& e) {
      Send(up[1], std::string("ERROR: ") + e.what());
      _exit(1);
    }
  }
  close(down[0]);
  close(up[1]);
  v.in = up[0];
  v.out = down[1];
  v.first = Recv(v.in);
  ASSERT_EQ(v.first.rfind("ERROR", 0), std::string::npos) << v.first;
}

// Restores `path` in pid 1 of new mount and pid namespaces and returns its
// Snapshot() (or "ERROR: ...").
std::string RestoreInNewNamespaces(const std::string& path, const ns::MntNsOptions& o = {}) {
  int up[2];
  if (pipe2(up, O_CLOEXEC) < 0) return "ERROR: pipe";
  pid_t r = fork();
  if (r < 0) return "ERROR: fork";
  if (r == 0) {
    close(up[0]);
    if (unshare(CLONE_NEWPID) < 0) {
      Send(up[1], "ERROR: unshare(CLONE_NEWPID)");
      _exit(1);
    }
    pid_t init = fork();
    if (init == 0) {
      try {
        Must(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)");
        auto dir = images::ImageDir::Open(path);
        if (!dir.ok()) throw std::runtime_error(dir.error().message());
        Status s = ns::RestoreMountNamespace(**dir, o);
        Send(up[1], s.ok() ? Snapshot() : "ERROR: " + s.error().message());
      } catch (const std::exception& e) {
        Send(up[1], std::string("ERROR: ") + e.what());
      }
      _exit(0);
    }
    int st = 0;
    if (init > 0) waitpid(init, &st, 0);
    _exit(init > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 1);
  }
  close(up[1]);
  std::string s = Recv(up[0]);
  close(up[0]);
  waitpid(r, nullptr, 0);
  return s;
}

// The test's host side: vol/ with a file, a file to bind, root/ to mount on.
void MakeHost(const TempDir& host) {
  ASSERT_EQ(mkdir((host / "vol").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((host / "root").c_str(), 0755), 0);
  testing::WriteFileOrDie(host / "vol/in-volume", "volume data\n");
  testing::WriteFileOrDie(host / "file", "a host file\n");
}

TEST(MntNs, ContainerTreeRoundTrip) {
  TempDir host;
  MakeHost(host);
  Victim v;
  StartVictim(v, [&] {
    BuildContainer(host.path());
    return std::string("ok");
  });
  if (::testing::Test::HasFatalFailure()) return;
  // Reading a symlink sets its atime (relatime: once, when not newer than
  // its mtime) and nothing prevents it: the first look settles them.
  ASSERT_EQ(v.Ask('s').rfind("ERROR", 0), std::string::npos);
  std::string before = v.Ask('s');
  ASSERT_EQ(before.rfind("ERROR", 0), std::string::npos) << before;
  // The snapshot holds what was built (so equal means something).
  for (const char* want :
       {"/ parent=- root=/ opts=rw,relatime type=tmpfs source=rootfs fsopts=rw,size=8192k,mode=755",
        "/etc/hostsfile parent=/ root=" , "/vol parent=/ root=",
        "/proc parent=/ root=/ opts=rw,nosuid,nodev,noexec,relatime type=proc source=proc "
        "fsopts=rw,hidepid=invisible",
        "/tmp parent=/ root=/ opts=ro,noatime type=tmpfs source=scratch",
        "/nx parent=/ root=/ opts=rw,nosuid,nodev,noexec,relatime type=tmpfs",
        "/peer parent=/ root=/ opts=rw,relatime shared:G1 type=tmpfs",
        "/shared parent=/ root=/ opts=rw,relatime shared:G1 type=tmpfs",
        "/slave parent=/ root=/d opts=rw,relatime master:G1 type=tmpfs",
        "/mq parent=/ root=/ opts=rw,nosuid,relatime type=mqueue",
        "/pts parent=/ root=/ opts=rw,relatime type=devpts source=devpts fsopts=rw,mode=620,ptmxmode=666",
        "/data/sub/hardlink mode=33188", "/data/null mode=8630", "rdev=1:3", "/data/fifo mode=4496",
        "/data/abs-link mode=41471 uid=42 gid=43", "/data mode=16877 uid=0 gid=0 nlink=4 "
        "mtime=1400000000.8 atime=1399999900.4", "/data/sub mode=16877 uid=0 gid=0 nlink=2 "
        "mtime=1300000000.7 atime=1299999900.3", "-> /data/big", "user.tag=blue",
        "/data/suid mode=35309 uid=1000", "/data/private mode=16872 uid=1234 gid=5678",
        "/tmp/note mode=33152", "mtime=1000000000.123456789"})
    EXPECT_NE(before.find(want), std::string::npos) << want << "\n" << before;

  TempDir images;
  auto dir = images::ImageDir::Create(images.path());  // its files go with it
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  Status s = ns::DumpMountNamespace(v.pid, {}, **dir);
  ASSERT_TRUE(s.ok()) << s.error().message();
  // The dump changed nothing the container sees (atimes included).
  EXPECT_EQ(before, v.Ask('s'));

  std::string restored = RestoreInNewNamespaces(images.path());
  EXPECT_EQ(before, restored);
}

// A minimal container whose root is a bind of host dir `rootdir`, with a
// mount `extra` made by `more` (in the new root, before pivot_root).
void BuildSmall(const std::string& rootdir, const std::function<void(const std::string&)>& more) {
  MountOrDie(nullptr, "/", nullptr, MS_REC | MS_PRIVATE);
  MountOrDie(rootdir.c_str(), rootdir, nullptr, MS_BIND);
  more(rootdir);
  Must(chdir(rootdir.c_str()) == 0, "chdir root");
  Must(syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  Must(umount2(".", MNT_DETACH) == 0, "umount old root");
  Must(chdir("/") == 0, "chdir /");
}

std::string DumpError(pid_t pid, const std::string& path, const ns::MntNsOptions& o = {}) {
  auto dir = images::ImageDir::Create(path);
  if (!dir.ok()) return dir.error().message();
  Status s = ns::DumpMountNamespace(pid, o, **dir);
  return s.ok() ? "ok" : s.error().message();
}

TEST(MntNs, HiddenMountIsRefusedByName) {
  TempDir host;
  MakeHost(host);
  Victim v;
  StartVictim(v, [&] {
    BuildSmall(host / "root", [](const std::string& r) {
      Must(mkdir((r + "/a").c_str(), 0755) == 0 && mkdir((r + "/a/b").c_str(), 0755) == 0, "mkdir");
      MountOrDie("under", r + "/a/b", "tmpfs", 0);
      MountOrDie("over", r + "/a", "tmpfs", 0);  // hides /a/b
    });
    return std::string("ok");
  });
  if (::testing::Test::HasFatalFailure()) return;
  TempDir images;
  std::string e = DumpError(v.pid, images.path());
  EXPECT_NE(e.find("mount namespace of pid " + std::to_string(v.pid) +
                   ": /a/b (tmpfs under): hidden under another mount"),
            std::string::npos)
      << e;
  EXPECT_FALSE(testing::PathExists(images / "mnt-ns.img"));
}

// A filesystem ckpt cannot make (ramfs) and its namespace does not show:
// refused by mount point, unless named with --external; restore then
// needs the key mapped to a path.
TEST(MntNs, ExternalMountsAreMappedOnBothSides) {
  TempDir host;
  MakeHost(host);
  ASSERT_EQ(mkdir((host / "root/ext").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((host / "root/proc").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((host / "elsewhere").c_str(), 0755), 0);
  testing::WriteFileOrDie(host / "elsewhere/marker", "from the restore's side\n");
  Victim v;
  StartVictim(v, [&] {
    BuildSmall(host / "root", [](const std::string& r) {
      MountOrDie("ram", r + "/ext", "ramfs", 0);
      MountOrDie("proc", r + "/proc", "proc", 0);
    });
    return std::string("ok");
  });
  if (::testing::Test::HasFatalFailure()) return;
  {
    TempDir images;
    std::string e = DumpError(v.pid, images.path());
    EXPECT_NE(e.find(": /ext (ramfs ram): ckpt's mount namespace shows no path to its files"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("--external mnt[/ext]:KEY"), std::string::npos) << e;
  }
  TempDir images;
  auto dir = images::ImageDir::Create(images.path());
  ASSERT_TRUE(dir.ok());
  Status s = ns::DumpMountNamespace(v.pid, {.externals = {"mnt[/ext]:ramkey"}}, **dir);
  ASSERT_TRUE(s.ok()) << s.error().message();
  std::string r = RestoreInNewNamespaces(images.path());
  EXPECT_NE(r.find("ERROR: mount namespace: " + images.path() +
                   "/mnt-ns.img: mount 0"), 0u);  // (the id varies)
  EXPECT_NE(r.find("is external: restore needs --external mnt[ramkey]:PATH"), std::string::npos) << r;
  r = RestoreInNewNamespaces(images.path(), {.externals = {"mnt[ramkey]:" + (host / "elsewhere")}});
  ASSERT_EQ(r.rfind("ERROR", 0), std::string::npos) << r;
  EXPECT_NE(r.find("/ext parent=/ root=" + host / "elsewhere"), std::string::npos) << r;
  EXPECT_NE(r.find("/ext/marker"), std::string::npos) << r;
}

// --root: the tree's root comes from another directory.
TEST(MntNs, RootFromAnotherDirectory) {
  TempDir host;
  MakeHost(host);
  ASSERT_EQ(mkdir((host / "root/proc").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((host / "other").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((host / "other/proc").c_str(), 0755), 0);
  testing::WriteFileOrDie(host / "other/marker", "the other root\n");
  Victim v;
  StartVictim(v, [&] {
    BuildSmall(host / "root",
               [](const std::string& r) { MountOrDie("proc", r + "/proc", "proc", 0); });
    return std::string("ok");
  });
  if (::testing::Test::HasFatalFailure()) return;
  TempDir images;
  auto dir = images::ImageDir::Create(images.path());
  ASSERT_TRUE(dir.ok());
  Status s = ns::DumpMountNamespace(v.pid, {}, **dir);
  ASSERT_TRUE(s.ok()) << s.error().message();
  std::string plain = RestoreInNewNamespaces(images.path());
  EXPECT_NE(plain.find("/ parent=- root=" + host / "root"), std::string::npos) << plain;
  std::string r = RestoreInNewNamespaces(images.path(), {.root = host / "other"});
  ASSERT_EQ(r.rfind("ERROR", 0), std::string::npos) << r;
  EXPECT_NE(r.find("/ parent=- root=" + host / "other"), std::string::npos) << r;
  EXPECT_NE(r.find("/marker mode="), std::string::npos) << r;
  EXPECT_NE(r.find("/proc parent=/ root=/ opts=rw,relatime type=proc"), std::string::npos) << r;
}

// Files as the task sees them, and whether their mount is its namespace's.
TEST(MntNs, TaskPathsAreTheTasksOwn) {
  TempDir host;
  MakeHost(host);
  int outside = open((host / "file").c_str(), O_RDONLY | O_CLOEXEC);  // ckpt's namespace's mount
  ASSERT_GE(outside, 0);
  int keep = fcntl(outside, F_DUPFD, 100);  // inherited by the victim
  close(outside);
  Victim v;
  StartVictim(v, [&] {
    BuildSmall(host / "root", [](const std::string& r) {
      Must(mkdir((r + "/t").c_str(), 0755) == 0, "mkdir");
      MountOrDie("t", r + "/t", "tmpfs", 0);
      WriteFile(r + "/t/inside", "x");
    });
    int fd = open("/t/inside", O_RDONLY);
    Must(fd >= 0 && chdir("/t") == 0, "open");
    return std::to_string(fd);
  });
  close(keep);
  if (::testing::Test::HasFatalFailure()) return;
  auto r = ns::TaskPaths(v.pid, {"fd/" + v.first, "cwd", "root", "fd/100"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].path, "/t/inside");
  EXPECT_TRUE((*r)[0].in_ns);
  EXPECT_EQ((*r)[1].path, "/t");
  EXPECT_TRUE((*r)[1].in_ns);
  EXPECT_EQ((*r)[2].path, "/");
  EXPECT_TRUE((*r)[2].in_ns);
  EXPECT_FALSE((*r)[3].in_ns) << (*r)[3].path;
  auto bad = ns::TaskPaths(v.pid, {"fd/99"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("/fd/99"), std::string::npos) << bad.error().message();
}

// Images written by hand: every kind of damage is named, nothing is built.
TEST(MntNs, BadImagesAreRefused) {
  auto entry = [](uint32_t id, uint32_t parent, const std::string& mp) {
    pb::MountEntry e;
    e.set_id(id);
    e.set_parent_id(parent);
    e.set_mountpoint(mp);
    e.set_root("/");
    e.set_fstype("tmpfs");
    e.set_source("t");
    e.set_kind(pb::MOUNT_TMPFS);
    e.set_attrs(0);
    e.set_dev("0:" + std::to_string(id));
    e.set_is_dir(true);
    e.set_contents(true);
    return e;
  };
  auto write = [](const TempDir& d, const std::vector<pb::MountEntry>& es) {
    auto dir = images::ImageDir::Create(d.path());
    auto w = (*dir)->OpenWriter(images::ImageType::kMntNs);
    for (const auto& e : es) (void)w->Write(e);
    (void)w->Close();
    for (const auto& e : es) {
      auto t = (*dir)->OpenWriter(images::ImageType::kTmpfs, e.id());
      pb::TmpfsRecord rec;
      auto* f = rec.mutable_file();
      f->set_path("");
      f->set_mode(S_IFDIR | 0755);
      f->set_uid(0);
      f->set_gid(0);
      f->set_atime_ns(0);
      f->set_mtime_ns(0);
      (void)t->Write(rec);
      (void)t->Close();
    }
    return std::move(*dir);
  };
  auto check = [](const TempDir& d) {
    auto dir = images::ImageDir::Open(d.path());
    auto r = ns::CheckMountNamespaceImage(**dir, {});
    return r.ok() ? std::string("ok") : r.error().message();
  };
  {
    TempDir d;
    auto keep = write(d, {entry(1, 0, "/"), entry(2, 1, "/a")});
    EXPECT_EQ(check(d), "ok");
    struct stat st;
    ASSERT_EQ(stat((d / "mnt-ns.img").c_str(), &st), 0);
    ASSERT_EQ(truncate((d / "mnt-ns.img").c_str(), st.st_size - 3), 0);
    EXPECT_NE(check(d).find("mnt-ns.img"), std::string::npos) << check(d);
    std::string r = RestoreInNewNamespaces(d.path());
    EXPECT_EQ(r.rfind("ERROR: mount namespace: ", 0), 0u) << r;
  }
  {
    TempDir d;
    auto keep = write(d, {entry(1, 0, "/"), entry(2, 1, "/a/../../etc")});
    EXPECT_NE(check(d).find("mount 2 at /a/../../etc (tmpfs): bad mount point or root"),
              std::string::npos)
        << check(d);
  }
  {
    TempDir d;
    auto keep = write(d, {entry(1, 0, "/"), entry(2, 7, "/a")});
    EXPECT_NE(check(d).find("its parent 7 does not come before it"), std::string::npos) << check(d);
  }
  {
    TempDir d;
    auto keep = write(d, {entry(2, 1, "/a")});
    EXPECT_NE(check(d).find("the first mount must be the root"), std::string::npos) << check(d);
  }
  {
    TempDir d;
    auto keep = write(d, {entry(1, 0, "/")});
    ASSERT_EQ(unlink((d / "tmpfs-1.img").c_str()), 0);
    EXPECT_NE(check(d).find("tmpfs-1.img is missing"), std::string::npos) << check(d);
  }
  {
    // A tmpfs file escaping its directory: refused while building.
    TempDir d;
    auto keep = write(d, {entry(1, 0, "/")});
    auto t = keep->OpenWriter(images::ImageType::kTmpfs, 1);
    pb::TmpfsRecord root, esc;
    auto* f = root.mutable_file();
    f->set_path("");
    f->set_mode(S_IFDIR | 0755);
    f->set_uid(0), f->set_gid(0), f->set_atime_ns(0), f->set_mtime_ns(0);
    esc = root;
    esc.mutable_file()->set_path("../escape");
    esc.mutable_file()->set_mode(S_IFREG | 0644);
    ASSERT_TRUE(t->Write(root).ok() && t->Write(esc).ok() && t->Close().ok());
    std::string r = RestoreInNewNamespaces(d.path());
    EXPECT_NE(r.find("tmpfs-1.img: bad path '../escape'"), std::string::npos) << r;
  }
}

}  // namespace
}  // namespace ckpt
