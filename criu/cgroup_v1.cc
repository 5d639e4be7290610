#include "criu/cgroup_v1.h"

#include <dirent.h>
#include <linux/magic.h>
#include <sys/statfs.h>

#include <sstream>

#include "base/io.h"

namespace ckpt::cgroupv1 {

bool IsV1Dir(const std::string& dir) {
  struct statfs sf;
  return statfs(dir.c_str(), &sf) == 0 && sf.f_type == CGROUP_SUPER_MAGIC;
}

std::set<std::string> V1Controllers() {
  std::set<std::string> out;
  auto text = io::ReadFile("/proc/self/cgroup");
  if (!text.ok()) return out;
  // HIERARCHY-ID:CONTROLLER[,CONTROLLER...]:PATH; id 0 is cgroup2's.
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos || line.compare(0, c1, "0") == 0) continue;
    std::istringstream ctrls(line.substr(c1 + 1, c2 - c1 - 1));
    std::string c;
    while (std::getline(ctrls, c, ','))
      if (!c.empty()) out.insert(c);
  }
  return out;
}

bool IsV1Controller(const std::string& ctrl) { return V1Controllers().count(ctrl) > 0; }

Result<std::vector<pid_t>> Members(const std::string& dir, const std::string& file) {
  std::vector<pid_t> out;
  TRY_ASSIGN(std::string text, io::ReadFile(dir + "/" + file));
  std::istringstream in(text);
  long id;
  while (in >> id) out.push_back(pid_t(id));
  DIR* d = opendir(dir.c_str());
  if (!d) return Error::Errno("open " + dir);
  std::vector<std::string> subdirs;
  while (struct dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') subdirs.push_back(e->d_name);
  }
  closedir(d);
  for (const std::string& s : subdirs) {
    TRY_ASSIGN(std::vector<pid_t> below, Members(dir + "/" + s, file));
    out.insert(out.end(), below.begin(), below.end());
  }
  return out;
}

}  // namespace ckpt::cgroupv1
