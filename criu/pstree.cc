#include "criu/pstree.h"

#include <dirent.h>

#include <set>
#include <sstream>

#include "base/io.h"
#include "base/log.h"
#include "criu/proc_parse.h"

namespace ckpt {
namespace {

// Children of every thread of pid (a child belongs to the thread that forked it).
Result<std::vector<pid_t>> Children(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return Error::Errno("open " + dir);
  std::vector<pid_t> out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto text = io::ReadFile(dir + "/" + e->d_name + "/children");
    if (!text.ok()) continue;  // the thread just exited
    std::istringstream in(*text);
    pid_t c;
    while (in >> c) out.push_back(c);
  }
  closedir(d);
  return out;
}

// Turns a stat/exit_code into the status waitpid() would report.
int WaitStatus(int exit_code) { return exit_code; }

}  // namespace

Result<std::vector<TreeTask>> SeizeTree(pid_t root) {
  std::vector<TreeTask> tasks;
  std::set<pid_t> seen;
  std::vector<pid_t> queue = {root};
  for (size_t qi = 0; qi < queue.size(); qi++) {
    pid_t pid = queue[qi];
    if (!seen.insert(pid).second) continue;
    TreeTask t;
    t.pid = pid;
    auto st = proc::ReadStat(pid);
    if (!st.ok()) {
      if (pid == root) return Error("pid " + std::to_string(pid) + ": no such process", ESRCH);
      continue;  // exited (and was reaped) meanwhile
    }
    if (st->state == 'Z' || st->state == 'X') {
      if (pid == root) return Error("pid " + std::to_string(pid) + " is a zombie");
      t.zombie = true;
      t.exit_status = WaitStatus(st->exit_code);
    } else {
      auto p = compel::SeizedProcess::Seize(pid);
      if (!p.ok()) {
        // It may have died between stat and seize: then it is a zombie now.
        auto again = proc::ReadStat(pid);
        if (pid != root && again.ok() && again->state == 'Z') {
          t.zombie = true;
          t.exit_status = WaitStatus(again->exit_code);
        } else if (pid != root && !again.ok()) {
          continue;
        } else {
          return std::move(p.error());
        }
      } else {
        t.proc = std::move(*p);
        // Re-read now that it is stopped: pgid/sid can no longer change.
        TRY_ASSIGN(st, proc::ReadStat(pid));
        TRY_ASSIGN(std::vector<pid_t> kids, Children(pid));
        for (pid_t k : kids) queue.push_back(k);
      }
    }
    t.ppid = pid == root ? 0 : st->ppid;
    t.pgid = st->pgid;
    t.sid = st->sid;
    LOG_DBG("tree: pid " + std::to_string(pid) + " ppid " + std::to_string(t.ppid) + " pgid " +
            std::to_string(t.pgid) + " sid " + std::to_string(t.sid) +
            (t.zombie ? " (zombie)" : ""));
    tasks.push_back(std::move(t));
  }
  return tasks;
}

}  // namespace ckpt
