// inotify: watches with wd 1 (a directory, IN_CREATE | IN_DELETE) and wd 3
// (a file, IN_MODIFY | IN_CLOSE_WRITE), wd 2 having been removed, on an
// O_NONBLOCK instance; a second instance watching a directory for IN_ATTRIB.
// Verifies the watch lists (fdinfo), that events arrive with the right wd
// and nothing else is queued, and that the next watch gets wd 4.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("inotify_init1: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
int watch(int fd, const char* path, uint32_t mask) {
  int wd = inotify_add_watch(fd, path, mask);
  if (wd < 0) fail("inotify_add_watch %s: %s", path, strerror(errno));
  return wd;
}
struct Ev {
  int wd;
  uint32_t mask;
  std::string name;
};
std::vector<Ev> events(int fd) {
  std::vector<Ev> out;
  alignas(inotify_event) char buf[4096];
  ssize_t n = read(fd, buf, sizeof(buf));
  for (ssize_t off = 0; off < n;) {
    auto* e = reinterpret_cast<inotify_event*>(buf + off);
    out.push_back({e->wd, e->mask, e->len ? e->name : ""});
    off += sizeof(inotify_event) + e->len;
  }
  return out;
}
// "inotify wd:.. ino:.. sdev:.. mask:.." of each watch.
std::string watches(int fd) {
  std::string info = zdtm_read_file(("/proc/self/fdinfo/" + std::to_string(fd)).c_str()), out;
  size_t p = 0;
  while ((p = info.find("inotify wd:", p)) != std::string::npos) {
    size_t e = info.find(" ignored_mask", p);
    out += info.substr(p, e - p) + "\n";
    p = e;
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  if (mkdir("watched_dir", 0755) || mkdir("other_dir", 0755) || mkdir("attr_dir", 0755))
    fail("mkdir: %s", strerror(errno));
  close(open("watched_file", O_CREAT | O_WRONLY, 0644));
  close(open("attr_dir/file", O_CREAT | O_WRONLY, 0644));
  place(inotify_init1(IN_NONBLOCK), 90);
  if (watch(90, "watched_dir", IN_CREATE | IN_DELETE) != 1) fail("first wd is not 1");
  int wd2 = watch(90, "other_dir", IN_ALL_EVENTS);
  if (watch(90, "watched_file", IN_MODIFY | IN_CLOSE_WRITE) != 3) fail("third wd is not 3");
  inotify_rm_watch(90, wd2);
  events(90);  // the IN_IGNORED of wd 2
  place(inotify_init1(0), 91);
  watch(91, "attr_dir", IN_ATTRIB);  // not ".": ckpt and the runner work there
  const std::string w90 = watches(90), w91 = watches(91);
  int fl = fcntl(90, F_GETFL);

  test_ready();
  test_wait();

  if (watches(90) != w90 || watches(91) != w91)
    fail("watches now:\n%s%swant:\n%s%s", watches(90).c_str(), watches(91).c_str(), w90.c_str(), w91.c_str());
  if (fcntl(90, F_GETFL) != fl) fail("fd 90 flags changed");
  auto ev = events(90);
  if (!ev.empty()) fail("%zu unexpected queued events, the first wd %d mask %#x", ev.size(), ev[0].wd, ev[0].mask);
  // Names and modes not used before: with --leave-running the original ran
  // this part already, in the same directory.
  std::string name = "new-" + std::to_string(zdtm_seed() % 1000000007);
  close(open(("watched_dir/" + name).c_str(), O_CREAT | O_WRONLY, 0644));
  int f = open("watched_file", O_WRONLY | O_APPEND);
  if (f < 0 || write(f, "x", 1) != 1) fail("modify watched_file");
  close(f);
  struct stat st;
  stat("attr_dir/file", &st);
  chmod("attr_dir/file", (st.st_mode & 0777) == 0600 ? 0640 : 0600);
  ev = events(90);
  if (ev.size() != 3 || ev[0].wd != 1 || ev[0].mask != IN_CREATE || ev[0].name != name || ev[1].wd != 3 ||
      ev[1].mask != IN_MODIFY || ev[2].wd != 3 || ev[2].mask != IN_CLOSE_WRITE)
    fail("got %zu events, want create(1) modify(3) close_write(3)", ev.size());
  ev = events(91);
  if (ev.size() != 1 || ev[0].mask != IN_ATTRIB || ev[0].name != "file") fail("fd 91: no IN_ATTRIB");
  if (watch(90, "other_dir", IN_CREATE) != 4) fail("the next wd is not 4");
  if (inotify_rm_watch(90, 3)) fail("inotify_rm_watch 3: %s", strerror(errno));
  pass();
}
