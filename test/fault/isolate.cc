#include "isolate.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace faulttest {

std::string Isolate(const std::string& tag, const std::vector<std::string>& keep) {
  if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC) < 0)
    return std::string("unshare: ") + strerror(errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    return std::string("making / private: ") + strerror(errno);
  // Top directories under /tmp that must stay reachable.
  std::set<std::string> tops;
  for (const std::string& p : keep)
    if (p.rfind("/tmp/", 0) == 0) tops.insert(p.substr(5, p.find('/', 5) - 5));
  int old_tmp = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (old_tmp < 0) return std::string("open /tmp: ") + strerror(errno);
  for (const char* d : {"/dev/shm", "/tmp"})
    if (mount(tag.c_str(), d, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0) {
      close(old_tmp);
      return std::string("tmpfs on ") + d + ": " + strerror(errno);
    }
  for (const std::string& t : tops) {
    struct stat st;  // not there yet (a work directory): made in the new /tmp
    if (fstatat(old_tmp, t.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) continue;
    std::string from = "/proc/self/fd/" + std::to_string(old_tmp) + "/" + t, to = "/tmp/" + t;
    if (mkdir(to.c_str(), 0700) < 0 ||
        mount(from.c_str(), to.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0) {
      close(old_tmp);
      return "keeping " + to + " reachable: " + strerror(errno);
    }
  }
  close(old_tmp);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {};
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) return "reading lo's flags";
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) return "bringing lo up";
  close(s);
  return "";
}

}  // namespace faulttest
