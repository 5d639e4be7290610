#include "criu/ns/sem_undo.h"

#include <dirent.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <utility>

#include "base/io.h"
#include "base/log.h"
#include "compel/infect.h"
#include "criu/ns/ipc_ns.h"

namespace ckpt::ns {
namespace {

constexpr int kSemValueMax = 32767;  // SEMVMX: no value or adjustment goes beyond

using SemValues = std::map<std::pair<int, int>, int>;  // (semid, num) -> value

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

// Every semaphore's value in the IPC namespace of pid.
Result<SemValues> ReadValues(pid_t pid) {
  auto read = []() -> Result<std::string> {
    TRY_ASSIGN(std::string table, io::ReadFile("/proc/sysvipc/sem"));
    std::istringstream in(table);
    std::string line, out;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      long key, id, perms, nsems;
      if (sscanf(line.c_str(), "%ld %ld %lo %ld", &key, &id, &perms, &nsems) != 4) continue;
      std::vector<unsigned short> v(size_t(nsems > 0 ? nsems : 1));
      if (semctl(int(id), 0, GETALL, v.data()) < 0) {
        if (errno == EINVAL || errno == EIDRM) continue;  // removed meanwhile
        return Error::Errno("semaphore set " + std::to_string(id) + ": GETALL");
      }
      for (long n = 0; n < nsems; n++)
        out += std::to_string(id) + " " + std::to_string(n) + " " + std::to_string(v[size_t(n)]) +
               "\n";
    }
    return out;
  };
  TRY_ASSIGN(std::string text, RunInIpcNamespace(pid, read));
  SemValues values;
  std::istringstream in(text);
  int id, num, val;
  while (in >> id >> num >> val) values[{id, num}] = val;
  return values;
}

// The pids of processes (not threads) outside `tree` whose IPC namespace is ino.
Result<std::vector<pid_t>> OthersInIpcNs(ino_t ino, const std::map<pid_t, size_t>& tree) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return Error::Errno("opendir /proc");
  while (struct dirent* e = readdir(d)) {
    char* end;
    long p = strtol(e->d_name, &end, 10);
    if (*end || p <= 0 || tree.count(pid_t(p)) || p == getpid()) continue;
    struct stat st;
    std::string ns = std::string("/proc/") + e->d_name + "/ns/ipc";
    if (stat(ns.c_str(), &st) == 0 && st.st_ino == ino) out.push_back(pid_t(p));
  }
  closedir(d);
  return out;
}

}  // namespace

Result<SemUndoPlan> PlanSemUndo(const std::map<pid_t, size_t>& tasks, bool own_ipc_ns, pid_t root) {
  SemUndoPlan plan;
  std::vector<pid_t> pids;
  for (const auto& [pid, threads] : tasks) pids.push_back(pid);
  TRY_ASSIGN(std::vector<pid_t> with_list, TasksWithSemUndo(pids));
  if (with_list.empty()) return plan;
  std::string whole_tree;  // a reason that holds for every list
  if (!own_ipc_ns) {
    whole_tree = "the tree shares its IPC namespace with processes outside it";
  } else {
    struct stat st;
    std::string ns = "/proc/" + std::to_string(root) + "/ns/ipc";
    if (stat(ns.c_str(), &st) < 0) return Error::Errno("stat " + ns);
    TRY_ASSIGN(std::vector<pid_t> others, OthersInIpcNs(st.st_ino, tasks));
    if (!others.empty())
      whole_tree = Who(others[0]) + ", outside the tree, is in its IPC namespace";
  }
  for (pid_t p : with_list) {
    std::string why = whole_tree;
    if (why.empty() && tasks.at(p) > 1) why = "its threads share the list";
    for (pid_t q : with_list)
      if (why.empty() && q != p && syscall(SYS_kcmp, p, q, KCMP_SYSVSEM, 0, 0) == 0)
        why = "it shares the list with " + Who(q) + " (CLONE_SYSVSEM)";
    if (why.empty())
      plan.readable.push_back(p);
    else
      plan.unreadable[p] = why;
  }
  return plan;
}

Result<std::vector<pb::SemUndoEntry>> ReadSemUndo(pid_t pid, int mem_fd, pid_t ipc_ns_pid) {
  std::string where = Who(pid) + ": SEM_UNDO list";
  TRY_ASSIGN(uint64_t exec, compel::FindExecAddr(pid));
  TRY_ASSIGN(SemValues before, ReadValues(ipc_ns_pid), where);
  // Applies the list as an exit would, and drops it.
  auto unshared = compel::RemoteSyscallRestoring(pid, mem_fd, exec, SYS_unshare, CLONE_SYSVSEM);
  if (!unshared.ok()) return std::move(unshared.error().Context(where));
  long r = *unshared;
  if (r < 0) return Error::Errno(where + ": unshare(CLONE_SYSVSEM)", int(-r));
  auto after = ReadValues(ipc_ns_pid);
  std::vector<pb::SemUndoEntry> out;
  std::string lost;  // what the process has lost if putting it back fails
  if (after.ok())
    for (const auto& [key, value] : *after) {
      auto was = before.find(key);
      if (was == before.end() || was->second == value) continue;
      pb::SemUndoEntry e;
      e.set_semid(key.first);
      e.set_num(uint32_t(key.second));
      e.set_adj(value - was->second);
      out.push_back(e);
      lost += (lost.empty() ? "" : ", ") + std::to_string(e.semid()) + "[" +
              std::to_string(e.num()) + "] " + std::to_string(e.adj());
    }
  if (!after.ok())
    return Error(where + ": applied, but the values could not be read back (" +
                 after.error().message() + "): the process lost its adjustments");
  // Made again by the process itself: semop(-adj, SEM_UNDO) on each.
  for (const pb::SemUndoEntry& e : out) {
    struct sembuf op = {};
    op.sem_num = static_cast<unsigned short>(e.num());
    op.sem_op = static_cast<short>(-e.adj());
    op.sem_flg = SEM_UNDO | IPC_NOWAIT;
    std::string data(reinterpret_cast<const char*>(&op), sizeof(op));
    auto s =
        compel::RemoteSyscallRestoring(pid, mem_fd, exec, SYS_semop, e.semid(),
                                       long(exec + compel::kRemoteDataOffset), 1, 0, 0, 0, data);
    if (!s.ok() || *s < 0)
      return Error(where + ": applied, and putting back semaphore " + std::to_string(e.semid()) +
                   "[" + std::to_string(e.num()) + "] failed (" +
                   (s.ok() ? std::string(strerror(int(-*s))) : s.error().message()) +
                   "); the process lost its adjustments " + lost);
  }
  TRY_ASSIGN(SemValues check, ReadValues(ipc_ns_pid), where + ": reading back");
  if (check != before)
    return Error(where + ": the semaphores' values differ after putting the list back");
  if (!out.empty()) LOG_INFO(where + ": " + lost);
  return out;
}

Status CheckSemUndo(const pb::TaskCoreEntry& core) {
  for (const pb::SemUndoEntry& e : core.sem_undo())
    if (e.semid() < 0 || e.num() > 65535 || e.adj() == 0 || e.adj() > kSemValueMax ||
        e.adj() < -kSemValueMax)
      return Error("pid " + std::to_string(core.pid()) + ": bad SEM_UNDO entry (set " +
                   std::to_string(e.semid()) + ", semaphore " + std::to_string(e.num()) +
                   ", adjustment " + std::to_string(e.adj()) + ")");
  return Ok();
}

Status RestoreSemUndo(const pb::TaskCoreEntry& core) {
  for (const pb::SemUndoEntry& e : core.sem_undo()) {
    // The positive operation first: neither can block, the value ends as
    // it was, and the list holds adj (an operation's undo is its negation).
    short adj = static_cast<short>(e.adj());
    struct sembuf ops[2] = {};
    ops[0].sem_num = ops[1].sem_num = static_cast<unsigned short>(e.num());
    ops[0].sem_op = adj > 0 ? adj : static_cast<short>(-adj);
    ops[0].sem_flg = static_cast<short>(IPC_NOWAIT | (adj > 0 ? 0 : SEM_UNDO));
    ops[1].sem_op = static_cast<short>(-ops[0].sem_op);
    ops[1].sem_flg = static_cast<short>(IPC_NOWAIT | (adj > 0 ? SEM_UNDO : 0));
    if (semop(e.semid(), ops, 2) < 0)
      return Error::Errno("SEM_UNDO adjustment " + std::to_string(e.adj()) + " of semaphore set " +
                          std::to_string(e.semid()) + "[" + std::to_string(e.num()) + "]");
  }
  return Ok();
}

}  // namespace ckpt::ns
