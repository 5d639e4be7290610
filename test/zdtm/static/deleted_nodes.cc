// deleted_nodes: things other than regular files removed while in use
// (issue 14 item 9). Before READY, in the test's directory:
//   fd 130  a directory (mode 0750) held open, then removed
//   fd 131  a FIFO (mode 0640) open O_RDWR with 13 bytes queued, then removed
//   fd 132  a /dev/null node (mode 0620) made with mknod, opened, removed
//   cwd     a directory (mode 0710) entered, then removed
// With --link-remap (the runner dumps with --link-remap):
//   fd 134  multi.dat, which has a second name multi.other, removed
//   fd 135  an O_TMPFILE file (linkable), never named
// After restore each must be what it was: the /proc link (path and
// " (deleted)"), the kind, the permissions, no name left, and it works
// (the FIFO gives its bytes back, the device takes writes, the working
// directory is the removed one). With --link-remap, fd 134 is the same
// inode as multi.other (a write through one is read through the other)
// and fd 135 is the same inode as before with its contents. With
// --evasive (the runner dumps with --evasive-devices) fd 132 comes back as
// /dev/null itself (the device by its /dev name).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
void place(int fd, int num, const char* what) {
  if (fd < 0) fail("%s: %s", what, strerror(errno));
  if (fd != num && dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  if (fd != num) close(fd);
}
std::string link_of(const char* p) {
  char buf[4096];
  ssize_t n = readlink(p, buf, sizeof(buf));
  return n < 0 ? "?" : std::string(buf, n);
}
std::string fd_link(int fd) { return link_of(("/proc/self/fd/" + std::to_string(fd)).c_str()); }
struct stat stat_of(int fd) {
  struct stat st;
  if (fstat(fd, &st)) fail("fstat %d: %s", fd, strerror(errno));
  return st;
}
void expect_node(int fd, const std::string& link, mode_t kind, mode_t perm) {
  if (fd_link(fd) != link) fail("fd %d: link %s, want %s", fd, fd_link(fd).c_str(), link.c_str());
  struct stat st = stat_of(fd);
  if ((st.st_mode & S_IFMT) != kind) fail("fd %d: kind %o, want %o", fd, st.st_mode & S_IFMT, kind);
  if ((st.st_mode & 07777) != perm) fail("fd %d: mode %o, want %o", fd, st.st_mode & 07777, perm);
  if (st.st_nlink != 0) fail("fd %d: %lu names, want none", fd, (unsigned long)st.st_nlink);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  bool remap = argc > 1 && !strcmp(argv[1], "--link-remap");
  bool evasive = argc > 1 && !strcmp(argv[1], "--evasive");
  umask(0);
  int wd = open(".", O_PATH | O_DIRECTORY);
  place(wd, 129, "open .");

  if (mkdir("dir.gone", 0750)) fail("mkdir: %s", strerror(errno));
  place(open("dir.gone", O_RDONLY | O_DIRECTORY), 130, "open dir.gone");

  if (mkfifo("fifo.gone", 0640)) fail("mkfifo: %s", strerror(errno));
  place(open("fifo.gone", O_RDWR | O_NONBLOCK), 131, "open fifo.gone");
  if (write(131, "queued-bytes!", 13) != 13) fail("write fifo");

  if (mknod("null.gone", S_IFCHR | 0620, makedev(1, 3))) fail("mknod: %s", strerror(errno));
  place(open("null.gone", O_RDWR), 132, "open null.gone");

  struct stat tmp_before = {};
  if (remap) {
    place(open("multi.dat", O_RDWR | O_CREAT | O_EXCL, 0644), 134, "open multi.dat");
    if (write(134, "hello", 5) != 5 || link("multi.dat", "multi.other")) fail("multi.dat");
    place(open(".", O_RDWR | O_TMPFILE, 0600), 135, "O_TMPFILE");
    if (write(135, "tmpfile", 7) != 7) fail("write tmpfile");
    tmp_before = stat_of(135);
    if (unlink("multi.dat")) fail("unlink multi.dat");
  }
  std::string l130 = fd_link(130), l131 = fd_link(131), l132 = fd_link(132);
  ino_t null_ino = stat_of(132).st_ino;
  std::string l134 = remap ? fd_link(134) : "", l135 = remap ? fd_link(135) : "";
  if (rmdir("dir.gone") || unlink("fifo.gone") || unlink("null.gone")) fail("remove: %s", strerror(errno));
  l130 += " (deleted)";
  l131 += " (deleted)";
  l132 += " (deleted)";

  if (mkdir("cwd.gone", 0710) || chdir("cwd.gone") || rmdir("../cwd.gone")) fail("cwd.gone: %s", strerror(errno));
  std::string cwd_link = link_of("/proc/self/cwd");
  if (cwd_link.find("cwd.gone (deleted)") == std::string::npos) fail("cwd reads %s", cwd_link.c_str());

  test_ready();
  test_wait();

  expect_node(130, l130, S_IFDIR, 0750);
  expect_node(131, l131, S_IFIFO, 0640);
  if (evasive) {
    // The original (not restored: plain mode, or before the restore) still
    // has its own node; a restored one has /dev/null itself.
    bool original = fd_link(132) == l132 && stat_of(132).st_ino == null_ino;
    if (!original && fd_link(132) != "/dev/null")
      fail("fd 132: link %s, want /dev/null (--evasive-devices)", fd_link(132).c_str());
  } else {
    expect_node(132, l132, S_IFCHR, 0620);
  }
  if (stat_of(132).st_rdev != makedev(1, 3)) fail("fd 132 is not /dev/null's device");
  char buf[32] = {};
  ssize_t n = read(131, buf, sizeof(buf));
  if (n != 13 || memcmp(buf, "queued-bytes!", 13)) fail("FIFO gave %zd bytes '%.*s'", n, int(n > 0 ? n : 0), buf);
  if (write(131, "again", 5) != 5 || read(131, buf, 5) != 5 || memcmp(buf, "again", 5)) fail("FIFO no longer works");
  if (write(132, "sink", 4) != 4 || read(132, buf, 1) != 0) fail("device node is not /dev/null");
  if (link_of("/proc/self/cwd") != cwd_link) fail("cwd %s, want %s", link_of("/proc/self/cwd").c_str(), cwd_link.c_str());
  struct stat cst;
  if (stat(".", &cst) || !S_ISDIR(cst.st_mode) || (cst.st_mode & 07777) != 0710 || cst.st_nlink != 0)
    fail("cwd: mode %o, %lu names", cst.st_mode & 07777, (unsigned long)cst.st_nlink);
  if (openat(129, "dir.gone", O_RDONLY) >= 0 || openat(129, "cwd.gone", O_RDONLY) >= 0 ||
      openat(129, "fifo.gone", O_PATH) >= 0 || openat(129, "null.gone", O_PATH) >= 0)
    fail("a removed name is back");

  if (remap) {
    if (fd_link(134) != l134) fail("fd 134: link %s, want %s", fd_link(134).c_str(), l134.c_str());
    struct stat other;
    if (fstatat(129, "multi.other", &other, 0)) fail("multi.other: %s", strerror(errno));
    if (stat_of(134).st_ino != other.st_ino) fail("fd 134 is no longer the file multi.other names");
    if (pwrite(134, "world", 5, 5) != 5) fail("pwrite 134");
    int o = openat(129, "multi.other", O_RDONLY);
    if (o < 0 || pread(o, buf, 10, 0) != 10 || memcmp(buf, "helloworld", 10)) fail("multi.other does not see the write");
    close(o);
    if (fd_link(135) != l135) fail("fd 135: link %s, want %s", fd_link(135).c_str(), l135.c_str());
    if (stat_of(135).st_ino != tmp_before.st_ino) fail("fd 135 is another inode (contents were copied)");
    if (pread(135, buf, 7, 0) != 7 || memcmp(buf, "tmpfile", 7)) fail("fd 135 contents");
    // The dump's names are gone, except those of dumps not restored (-R).
    int d = openat(129, ".", O_RDONLY | O_DIRECTORY);
    DIR* dir = fdopendir(d);
    int names = 0;
    while (struct dirent* e = dir ? readdir(dir) : nullptr)
      if (!strncmp(e->d_name, "link_remap.", 11)) names++;
    if (dir) closedir(dir);
    test_msg("%d link_remap names left by dumps not restored", names);
  }
  pass();
}
