#include "criu/shared_tables.h"

#include <linux/kcmp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "compel/seize.h"

namespace ckpt {
namespace {

struct Kind {
  int kcmp;
  const char* what;  // what is shared
  const char* flag;  // the clone flag that shares it
};
constexpr Kind kKinds[] = {{KCMP_FILES, "fd table", "CLONE_FILES"},
                           {KCMP_FS, "fs struct (cwd, root, umask)", "CLONE_FS"}};

// 0 same object, 1/2 different; < 0 error.
long Kcmp(pid_t a, pid_t b, int type) { return syscall(SYS_kcmp, a, b, type, 0, 0); }

}  // namespace

Status CheckSharedTables(const std::vector<TreeTask>& tree) {
  std::vector<pid_t> live;
  for (const TreeTask& t : tree) {
    if (!t.proc) continue;
    live.push_back(t.pid);
    for (pid_t tid : t.proc->threads()) {
      if (tid == t.pid) continue;
      for (const Kind& k : kKinds) {
        long r = Kcmp(t.pid, tid, k.kcmp);
        if (r < 0) return Error::Errno("pid " + std::to_string(t.pid) + ": kcmp");
        if (r != 0)
          return Error("pid " + std::to_string(t.pid) + " thread " + std::to_string(tid) +
                       " has its own " + k.what + " (unshare " + k.flag +
                       "): not supported (restored threads share their process's)");
      }
    }
  }
  for (size_t i = 0; i < live.size(); i++)
    for (size_t j = i + 1; j < live.size(); j++)
      for (const Kind& k : kKinds) {
        long r = Kcmp(live[i], live[j], k.kcmp);
        if (r < 0) return Error::Errno("pid " + std::to_string(live[i]) + ": kcmp");
        if (r == 0)
          return Error("pid " + std::to_string(live[i]) + " and pid " + std::to_string(live[j]) +
                       " share one " + k.what + " (a clone with " + k.flag +
                       " but no CLONE_VM): not supported yet");
      }
  return Ok();
}

}  // namespace ckpt
