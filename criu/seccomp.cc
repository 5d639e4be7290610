#include "criu/seccomp.h"

#include <errno.h>
#include <sys/ptrace.h>

#include <algorithm>
#include <cstring>

#include "base/io.h"
#include "base/log.h"
#include "criu/task_images.h"

namespace ckpt {
namespace {

constexpr int kPtraceSeccompGetFilter = 0x420c;
constexpr int kPtraceSeccompGetMetadata = 0x420d;
constexpr uint32_t kFilterFlagLog = 1 << 1;  // SECCOMP_FILTER_FLAG_LOG
constexpr uint32_t kSockFilterSize = 8;      // struct sock_filter
constexpr uint32_t kBpfMaxInsns = 4096;      // BPF_MAXINSNS
// The kernel refuses a filter when the instructions of the whole chain,
// plus 4 per filter, would pass MAX_INSNS_PER_PATH.
constexpr uint64_t kMaxInsnsPerPath = 32768;

std::string Tid(pid_t pid, pid_t tid) {
  return "pid " + std::to_string(pid) + (tid != pid ? " tid " + std::to_string(tid) : "");
}

// The value of "Key:" in /proc status text, "" if absent.
std::string Field(const std::string& text, const char* key) {
  std::string k = "\n" + std::string(key) + ":";
  std::string t = "\n" + text;
  size_t p = t.find(k);
  if (p == std::string::npos) return "";
  p += k.size();
  while (p < t.size() && (t[p] == ' ' || t[p] == '\t')) p++;
  return t.substr(p, t.find('\n', p) - p);
}

// Whether a program can return SECCOMP_RET_USER_NOTIF (a constant return:
// BPF_RET|BPF_K). Its listener (a seccomp notify fd, here or in a
// supervisor outside the tree) cannot be restored with it.
bool NotifiesListener(const std::string& insns) {
  for (size_t off = 0; off + kSockFilterSize <= insns.size(); off += kSockFilterSize) {
    uint16_t code;
    uint32_t k;
    memcpy(&code, insns.data() + off, sizeof(code));
    memcpy(&k, insns.data() + off + 4, sizeof(k));
    if (code == (0x06 | 0x00) /* BPF_RET | BPF_K */ && (k & 0xffff0000u) == 0x7fc00000u)
      return true;
  }
  return false;
}

uint32_t Common(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  uint32_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) n++;
  return n;
}

}  // namespace

Status SeccompDumper::AddProcess(pid_t pid, const std::vector<pid_t>& threads) {
  for (pid_t tid : threads) {
    std::string who = Tid(pid, tid);
    TRY_ASSIGN(
        std::string st,
        io::ReadFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status"),
        who);
    std::string mode_s = Field(st, "Seccomp");
    if (mode_s.empty()) return Error(who + ": no Seccomp line in /proc status");
    uint32_t mode = uint32_t(atoi(mode_s.c_str()));
    if (mode > 2) return Error(who + ": unknown seccomp mode " + mode_s);
    pb::SeccompThreadEntry* th = img_.add_threads();
    th->set_tid(uint32_t(tid));
    th->set_mode(mode);
    th->set_no_new_privs(Field(st, "NoNewPrivs") == "1");
    // A filter installed without SPEC_ALLOW forces the mitigations on when
    // the kernel ties them to seccomp ("thread force mitigated",
    // "conditional force disabled").
    th->set_spec_allow(Field(st, "Speculation_Store_Bypass").find("force") == std::string::npos &&
                       Field(st, "SpeculationIndirectBranch").find("force") == std::string::npos);
    if (mode == 0) continue;

    // The parasite and ckpt's remote syscalls must get past the filters
    // (strict mode allows only read, write, exit and sigreturn). The dump
    // sets no other ptrace options on its tracees.
    if (ptrace(PTRACE_SETOPTIONS, tid, nullptr, (void*)kSuspendSeccomp) < 0)
      return Error::Errno(who + ": in seccomp mode " + mode_s +
                          ": cannot suspend it for the dump (PTRACE_O_SUSPEND_SECCOMP needs "
                          "CAP_SYS_ADMIN and a ckpt that is not under seccomp itself)");
    if (mode == 1) continue;

    // Oldest first: index 0 is the first filter the thread installed.
    uint32_t prev = 0, count = 0;
    for (unsigned long i = 0;; i++) {
      long n = ptrace(__ptrace_request(kPtraceSeccompGetFilter), tid, (void*)i, nullptr);
      if (n < 0 && errno == ENOENT) break;
      if (n < 0)
        return Error::Errno(who + ": reading seccomp filter " + std::to_string(i) +
                            " (PTRACE_SECCOMP_GET_FILTER)");
      if (n == 0 || n > long(kBpfMaxInsns))
        return Error(who + ": seccomp filter " + std::to_string(i) + " has " + std::to_string(n) +
                     " instructions");
      std::string insns(size_t(n) * kSockFilterSize, '\0');
      long got = ptrace(__ptrace_request(kPtraceSeccompGetFilter), tid, (void*)i, insns.data());
      if (got != n)
        return Error::Errno(who + ": seccomp filter " + std::to_string(i) +
                            " changed while being read");
      struct {
        uint64_t filter_off, flags;
      } md = {i, 0};
      if (ptrace(__ptrace_request(kPtraceSeccompGetMetadata), tid, (void*)sizeof(md), &md) < 0)
        return Error::Errno(who + ": seccomp filter " + std::to_string(i) +
                            " flags (PTRACE_SECCOMP_GET_METADATA)");
      if (NotifiesListener(insns))
        return Error(who + ": seccomp filter " + std::to_string(i) +
                     " hands system calls to a listener (SECCOMP_RET_USER_NOTIF): not supported");
      uint32_t flags = uint32_t(md.flags) & kFilterFlagLog;
      auto key = std::make_tuple(insns, flags, prev);
      auto it = index_.find(key);
      if (it == index_.end()) {
        pb::SeccompFilterEntry* f = img_.add_filters();
        f->set_insns(insns);
        f->set_flags(flags);
        f->set_prev(prev);
        it = index_.emplace(std::move(key), uint32_t(img_.filters_size())).first;
      }
      prev = it->second;
      count++;
    }
    std::string want = Field(st, "Seccomp_filters");
    if (!want.empty() && uint32_t(atoi(want.c_str())) != count)
      return Error(who + ": read " + std::to_string(count) + " seccomp filters, /proc says " +
                   want);
    if (!count) return Error(who + ": in seccomp filter mode without a filter");
    th->set_filter(prev);
    LOG_DBG(who + ": seccomp mode 2, " + std::to_string(count) + " filters");
  }
  return Ok();
}

Status SeccompDumper::Write(images::ImageDir& dir) const {
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(images::ImageType::kSeccomp));
  TRY(w.Write(img_));
  return w.Close();
}

Status LoadSeccomp(const images::ImageDir& dir, TreeImages* tree) {
  if (!dir.Exists(images::ImageType::kSeccomp)) return Ok();
  pb::SeccompEntry e;
  {
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kSeccomp));
    TRY(r.ReadOne(e), "seccomp image");
  }
  const int nf = e.filters_size();
  std::vector<uint64_t> cost(size_t(nf) + 1, 0);  // instructions on the path, 1-based
  for (int i = 0; i < nf; i++) {
    const pb::SeccompFilterEntry& f = e.filters(i);
    std::string w = "seccomp image: filter " + std::to_string(i + 1);
    size_t len = f.insns().size() / kSockFilterSize;
    if (f.insns().size() % kSockFilterSize || len == 0 || len > kBpfMaxInsns)
      return Error(w + ": bad program length " + std::to_string(f.insns().size()));
    if (f.flags() & ~kFilterFlagLog)
      return Error(w + ": unknown flags " + std::to_string(f.flags()));
    if (f.prev() > uint32_t(i)) return Error(w + ": its previous filter is not an earlier one");
    cost[size_t(i) + 1] = cost[f.prev()] + len + 4;
    if (cost[size_t(i) + 1] > kMaxInsnsPerPath) return Error(w + ": chain too long");
  }
  std::map<uint32_t, const pb::SeccompThreadEntry*> by_tid;
  for (const pb::SeccompThreadEntry& t : e.threads()) {
    std::string w = "seccomp image: tid " + std::to_string(t.tid());
    if (!by_tid.emplace(t.tid(), &t).second) return Error(w + " appears twice");
    if (t.mode() > 2) return Error(w + ": bad mode " + std::to_string(t.mode()));
    if ((t.mode() == 2) != (t.filter() != 0) || t.filter() > uint32_t(nf))
      return Error(w + ": mode " + std::to_string(t.mode()) + " with filter " +
                   std::to_string(t.filter()));
  }
  size_t used = 0;
  for (TaskImages& task : tree->tasks) {
    if (task.zombie() || task.helper) continue;
    TaskSeccomp& s = task.seccomp;
    std::map<uint32_t, uint32_t> local;  // 1-based image index -> index in s.filters
    for (const pb::ThreadEntry& th : task.core.threads()) {
      auto it = by_tid.find(th.tid());
      if (it == by_tid.end())
        return Error("seccomp image: tid " + std::to_string(th.tid()) + " of pid " +
                     std::to_string(task.pid()) + " is missing");
      used++;
      const pb::SeccompThreadEntry& t = *it->second;
      TaskSeccomp::Thread out;
      out.mode = t.mode();
      out.no_new_privs = t.no_new_privs();
      out.spec_allow = t.spec_allow();
      for (uint32_t f = t.filter(); f; f = e.filters(int(f) - 1).prev()) {
        auto [l, fresh] = local.emplace(f, uint32_t(s.filters.size()));
        if (fresh)
          s.filters.push_back({e.filters(int(f) - 1).insns(), e.filters(int(f) - 1).flags()});
        out.chain.push_back(l->second);
      }
      std::reverse(out.chain.begin(), out.chain.end());
      s.threads.push_back(std::move(out));
    }
  }
  if (used != by_tid.size())
    return Error("seccomp image: names threads that are not in the dumped tree");
  return Ok();
}

bool TreeHasSeccomp(const TreeImages& tree) {
  for (const TaskImages& t : tree.tasks)
    for (const TaskSeccomp::Thread& th : t.seccomp.threads)
      if (th.mode) return true;
  return false;
}

std::vector<std::pair<int, uint32_t>> PlanThreadClones(
    const std::vector<std::vector<uint32_t>>& chains) {
  std::vector<std::pair<int, uint32_t>> plan(chains.size(), {0, 0});
  if (!chains.empty()) plan[0] = {-1, 0};
  for (size_t i = 1; i < chains.size(); i++) {
    int best = 0;
    uint32_t best_c = Common(chains[i], chains[0]);
    for (size_t j = 1; j < i && best_c < chains[i].size(); j++) {
      uint32_t c = Common(chains[i], chains[j]);
      if (c > best_c) best = int(j), best_c = c;
    }
    plan[i] = {best, best_c};
  }
  return plan;
}

uint64_t SeccompArgsSize(const TaskSeccomp& s) {
  uint64_t n = sizeof(abi::RestoreFilter) * s.filters.size();
  for (const auto& f : s.filters) n += f.insns.size();
  for (const auto& t : s.threads) n += sizeof(uint32_t) * t.chain.size();
  return (n + 7) & ~uint64_t(7);
}

void FillSeccompArgs(const TaskSeccomp& s, const pb::TaskCoreEntry& core, abi::RestoreArgs* a,
                     uint64_t off) {
  char* base = reinterpret_cast<char*>(a);
  auto* rt = reinterpret_cast<abi::RestoreThread*>(base + a->threads_off);
  a->nr_filters = uint32_t(s.filters.size());
  a->filters_off = off;
  auto* rf = reinterpret_cast<abi::RestoreFilter*>(base + off);
  uint64_t cur = off + sizeof(abi::RestoreFilter) * s.filters.size();
  for (size_t i = 0; i < s.filters.size(); i++) {
    rf[i].insns_off = cur;
    rf[i].len = uint32_t(s.filters[i].insns.size() / kSockFilterSize);
    rf[i].flags = s.filters[i].flags;
    memcpy(base + cur, s.filters[i].insns.data(), s.filters[i].insns.size());
    cur += s.filters[i].insns.size();
  }
  std::vector<std::vector<uint32_t>> chains(a->nr_threads);
  for (uint32_t i = 0; i < a->nr_threads && i < s.threads.size(); i++)
    chains[i] = s.threads[i].chain;
  std::vector<std::pair<int, uint32_t>> plan = PlanThreadClones(chains);
  for (uint32_t i = 0; i < a->nr_threads; i++) {
    abi::RestoreThread& r = rt[i];
    r.clone_by = plan[i].first;
    r.clone_at = plan[i].second;
    r.chain_off = cur;
    r.nr_chain = uint32_t(chains[i].size());
    if (!chains[i].empty())  // data() of an empty vector may be null: memcpy's UB
      memcpy(base + cur, chains[i].data(), sizeof(uint32_t) * chains[i].size());
    cur += sizeof(uint32_t) * chains[i].size();
    if (i < s.threads.size()) {
      r.seccomp_mode = s.threads[i].mode;
      r.no_new_privs = s.threads[i].no_new_privs;
      r.spec_allow = s.threads[i].spec_allow;
    } else {  // a dump without seccomp.img
      r.seccomp_mode = 0;
      r.no_new_privs = core.no_new_privs();
      r.spec_allow = 0;
    }
  }
}

}  // namespace ckpt
