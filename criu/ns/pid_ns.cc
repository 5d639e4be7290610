#include "criu/ns/pid_ns.h"

#include <map>
#include <string>

#include "criu/proc_parse.h"
#include "criu/pstree.h"

namespace ckpt::ns {
namespace {

std::string Who(pid_t pid) { return "pid " + std::to_string(pid); }

Result<std::vector<pid_t>> Chain(pid_t pid) {
  TRY_ASSIGN(proc::Status st, proc::ReadStatus(pid));
  if (st.ns_pid.empty()) return Error(Who(pid) + ": no NSpid in /proc/" + std::to_string(pid) + "/status");
  return st.ns_pid;
}

void Append(const std::vector<pid_t>& chain, int base,
            google::protobuf::RepeatedField<uint32_t>* out) {
  for (size_t i = size_t(base); i < chain.size(); i++) out->Add(uint32_t(chain[i]));
}

}  // namespace

Result<int> PidNsBase(const std::vector<TreeTask>& tree) {
  std::map<pid_t, size_t> depth;  // chain length per task
  std::map<pid_t, pid_t> inner;
  for (const TreeTask& t : tree) {
    TRY_ASSIGN(std::vector<pid_t> c, Chain(t.pid));
    if (c[0] != t.pid)
      return Error(Who(t.pid) + ": /proc does not belong to ckpt's pid namespace (NSpid starts with " +
                   std::to_string(c[0]) + ")");
    depth[t.pid] = c.size();
    inner[t.pid] = c.back();
  }
  const TreeTask& root = tree[0];
  size_t rd = depth[root.pid];
  if (rd > 1 && inner[root.pid] != 1)
    return Error(Who(root.pid) + " is pid " + std::to_string(inner[root.pid]) +
                 " of a pid namespace whose init is not in the tree: dump from its init (pid 1)");
  bool nested = rd > 1;
  for (size_t i = 1; i < tree.size(); i++) {
    const TreeTask& t = tree[i];
    size_t d = depth[t.pid], pd = depth.count(t.ppid) ? depth[t.ppid] : rd;
    if (d < pd || d > pd + 1)
      return Error(Who(t.pid) + " is " + std::to_string(d - 1) +
                   " pid namespace levels deep, its parent " + std::to_string(t.ppid) + " " +
                   std::to_string(pd - 1) + ": this layout (setns into a pid namespace) is not supported");
    if (d == pd + 1 && inner[t.pid] != 1)
      return Error(Who(t.pid) + " is pid " + std::to_string(inner[t.pid]) +
                   " of a pid namespace whose init is not in the tree");
    nested |= d > 1;
  }
  if (!nested) return -1;
  int base = rd > 1 ? int(rd) - 2 : 0;
  for (const TreeTask& t : tree)
    if (depth[t.pid] - size_t(base) > size_t(kMaxPidLevels))
      return Error(Who(t.pid) + " is nested in more than " + std::to_string(kMaxPidLevels) +
                   " pid namespaces");
  return base;
}

Status FillNsPids(pid_t pid, const std::vector<pid_t>& threads, int base, pb::PstreeEntry* ps) {
  TRY_ASSIGN(proc::Status st, proc::ReadStatus(pid));
  if (st.ns_pid.size() <= size_t(base) || st.ns_pgid.size() != st.ns_pid.size() ||
      st.ns_sid.size() != st.ns_pid.size())
    return Error(Who(pid) + ": unexpected NSpid/NSpgid/NSsid in its status");
  Append(st.ns_pid, base, ps->mutable_ns_pid());
  Append(st.ns_pgid, base, ps->mutable_ns_pgid());
  Append(st.ns_sid, base, ps->mutable_ns_sid());
  for (pid_t tid : threads) {
    std::vector<pid_t> c = st.ns_pid;
    if (tid != pid) {
      TRY_ASSIGN(proc::Status ts, proc::ReadStatus(tid));
      c = ts.ns_pid;
      if (c.size() != st.ns_pid.size())
        return Error(Who(pid) + " thread " + std::to_string(tid) + ": unexpected NSpid");
    }
    Append(c, base, ps->add_thread_ns_tids()->mutable_id());
  }
  return Ok();
}

std::vector<pid_t> SetTidOf(const pb::PstreeEntry& ps) {
  if (ps.ns_pid_size() == 0) return {pid_t(ps.pid())};
  return std::vector<pid_t>(ps.ns_pid().rbegin(), ps.ns_pid().rend());
}

std::vector<pid_t> SetTidOfThread(const pb::PstreeEntry& ps, int thread) {
  if (ps.thread_ns_tids_size() == 0) return {pid_t(ps.threads(thread))};
  const auto& ids = ps.thread_ns_tids(thread).id();
  return std::vector<pid_t>(ids.rbegin(), ids.rend());
}

Status CheckNsPids(const pb::PstreeEntry& ps) {
  std::string who = "pstree: pid " + std::to_string(ps.pid());
  int n = ps.ns_pid_size();
  if (n == 0) {
    if (ps.ns_pgid_size() || ps.ns_sid_size() || ps.thread_ns_tids_size())
      return Error(who + ": namespace ids without NSpid");
    return Ok();
  }
  if (n > kMaxPidLevels) return Error(who + ": nested in too many pid namespaces");
  if (ps.ns_pgid_size() != n || ps.ns_sid_size() != n)
    return Error(who + ": pgid/sid chains differ in depth from its pid's");
  if (ps.thread_ns_tids_size() != ps.threads_size())
    return Error(who + ": " + std::to_string(ps.thread_ns_tids_size()) + " thread chains for " +
                 std::to_string(ps.threads_size()) + " threads");
  for (uint32_t v : ps.ns_pid())
    if (v == 0 || v > (1u << 22)) return Error(who + ": bad pid in its chain");
  for (const pb::NsIds& t : ps.thread_ns_tids()) {
    if (t.id_size() != n) return Error(who + ": a thread's chain differs in depth");
    for (uint32_t v : t.id())
      if (v == 0 || v > (1u << 22)) return Error(who + ": bad tid in a thread's chain");
  }
  if (ps.thread_ns_tids(0).id(n - 1) != ps.ns_pid(n - 1))
    return Error(who + ": its first thread is not the task itself");
  return Ok();
}

}  // namespace ckpt::ns
