// fanotify: a fanotify group with marks (issue 14 item 10). fd 190 is a
// group (FAN_CLASS_NOTIF, non-blocking) with an inode mark on watched.dat
// (FAN_MODIFY | FAN_CLOSE_WRITE, ignored FAN_ACCESS), and a mount mark on
// the mount holding the test directory (FAN_OPEN). After restore its
// fdinfo shows the same marks (inode, masks, mount), and it works: a write
// to watched.dat gives a FAN_MODIFY event whose fd is that file.
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <sstream>
#include <string>

#include "zdtm.h"

namespace {
// The mark lines of fdinfo without the handle fields (which may be encoded
// differently) and the mount id (a restored mount namespace renumbers).
std::set<std::string> marks(int fd) {
  std::string text = zdtm_read_file(("/proc/self/fdinfo/" + std::to_string(fd)).c_str());
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("fanotify ", 0) != 0) continue;
    std::istringstream w(line);
    std::string word, keep;
    while (w >> word)
      if (word.rfind("fhandle", 0) && word.rfind("f_handle", 0) && word.rfind("mnt_id", 0))
        keep += word + " ";
      else if (!word.rfind("mnt_id", 0))
        keep += "mnt ";
    out.insert(keep);
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  int f = open("watched.dat", O_RDWR | O_CREAT, 0644);
  if (f < 0) fail("watched.dat");
  close(f);
  int fa = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY);
  if (fa < 0) fail("fanotify_init: %s", strerror(errno));
  if (dup2(fa, 190) != 190) fail("dup2");
  close(fa);
  if (fanotify_mark(190, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, "watched.dat") ||
      fanotify_mark(190, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_ACCESS, AT_FDCWD, "watched.dat") ||
      fanotify_mark(190, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN, AT_FDCWD, "."))
    fail("fanotify_mark: %s", strerror(errno));
  std::set<std::string> before = marks(190);
  if (before.size() != 3) fail("want 3 fdinfo lines, got %zu", before.size());
  struct stat wst;
  if (stat("watched.dat", &wst)) fail("stat");

  test_ready();
  test_wait();

  std::set<std::string> after = marks(190);
  if (after != before) {
    std::string a, b;
    for (auto& s : before) b += "\n  " + s;
    for (auto& s : after) a += "\n  " + s;
    fail("fanotify fdinfo differs; before:%s\nafter:%s", b.c_str(), a.c_str());
  }
  // Drain, write, then find the FAN_MODIFY of watched.dat.
  char buf[8192];
  for (int i = 0; i < 10000 && read(190, buf, sizeof(buf)) > 0; i++) {
  }
  int w = open("watched.dat", O_WRONLY);
  if (w < 0 || write(w, "x", 1) != 1) fail("write watched.dat");
  close(w);
  bool seen = false;
  for (int round = 0; round < 1000 && !seen; round++) {
    ssize_t n = read(190, buf, sizeof(buf));
    if (n <= 0) break;
    for (auto* m = reinterpret_cast<fanotify_event_metadata*>(buf); FAN_EVENT_OK(m, n);
         m = FAN_EVENT_NEXT(m, n)) {
      if (m->fd >= 0) {
        struct stat st;
        if ((m->mask & FAN_MODIFY) && fstat(m->fd, &st) == 0 && st.st_ino == wst.st_ino) seen = true;
        close(m->fd);
      }
    }
  }
  if (!seen) fail("no FAN_MODIFY event for watched.dat after restore");
  pass();
}
