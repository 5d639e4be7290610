#include "criu/restore_task.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "base/io.h"
#include "base/log.h"
#include "criu/files/fd_install.h"
#include "criu/fault_blob.h"
#include "criu/files/deleted_node.h"
#include "criu/files/fd_restore.h"
#include "criu/files/flock.h"
#include "criu/lazy_plan.h"
#include "criu/lsm.h"
#include "criu/ns/pid_ns.h"
#include "criu/ns/user_ns.h"
#include "criu/page_chain.h"
#include "criu/proc_parse.h"
#include "criu/sched_state.h"
#include "criu/cow_premap.h"
#include "criu/fown.h"
#include "criu/seccomp.h"
#include "criu/shared_tables.h"
#include "parasite/abi.h"
#include "parasite/blobs.h"

namespace ckpt {
namespace {

constexpr uint64_t kPage = 4096;
static_assert(ns::kMaxPidLevels == int(abi::kMaxPidLevels));
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;
constexpr uint64_t kStackSize = 64 * 1024;

uint64_t Align(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

// ckpt's own fds the restorer needs, moved above every dumped fd.
struct ServiceFds {
  std::vector<int*> slots;
  int base = 0;
};

// Moves every service fd to a number >= base (those already there stay)
// and closes everything else but the tree's open files (`files`, left
// where they are: criu/files/fd_install.h). In a shared fd table (its
// owner: criu/shared_tables.h) only what `only` lists may be closed.
Status PlaceServiceFds(ServiceFds& s, int base, const std::set<int>& files,
                       const std::set<int>* only = nullptr) {
  std::map<int, int> moved;  // old number -> new number (slots may share an fd)
  for (int* fd : s.slots) {
    if (*fd >= base) continue;
    auto it = moved.find(*fd);
    if (it == moved.end()) {
      int to = fcntl(*fd, F_DUPFD_CLOEXEC, base);
      if (to < 0) return Error::Errno("moving a service fd above " + std::to_string(base));
      it = moved.emplace(*fd, to).first;
    }
    *fd = it->second;
  }
  std::set<int> keep = files;
  for (int* fd : s.slots) keep.insert(*fd);
  s.base = base;
  if (only) {  // (and the numbers the slots were moved from)
    std::set<int> doomed = *only;
    for (const auto& kv : moved) doomed.insert(kv.first);
    for (int fd : doomed)
      if (!keep.count(fd)) close(fd);
    return Ok();
  }
  // Everything else of ckpt goes: below base, and in the gaps above it.
  int from = 0;
  for (int k : keep) {
    if (k > from) syscall(SYS_close_range, from, k - 1, 0);
    from = k + 1;
  }
  syscall(SYS_close_range, from, ~0u, 0);
  s.base = base;
  return Ok();
}

struct Interval {
  uint64_t start, end;
};

// A free range of `size` bytes that neither ckpt (now) nor the dumped task
// (later) uses.
Result<uint64_t> FindHole(const TaskImages& t, const std::vector<proc::MapEntry>& self,
                          uint64_t size) {
  std::vector<Interval> used;
  for (const auto& v : t.mm.vmas()) used.push_back({v.start(), v.end()});
  for (const auto& m : self)
    if (m.end <= kTaskSize) used.push_back({m.start, m.end});
  std::sort(used.begin(), used.end(), [](auto& a, auto& b) { return a.start < b.start; });
  uint64_t cur = 1ull << 32;  // stay clear of low addresses
  for (const Interval& u : used) {
    if (u.end <= cur) continue;
    if (u.start >= cur + size + kPage) return cur;
    cur = std::max(cur, Align(u.end, kPage) + kPage);  // keep a guard page
  }
  if (cur + size < kTaskSize) return cur;
  return Error("no free address range for the restorer");
}

Result<abi::SpecialMapping> Special(const TaskImages& t, const std::vector<proc::MapEntry>& self,
                                    pb::VmaKind kind, const char* name) {
  abi::SpecialMapping sm = {0, 0, 0};
  const pb::VmaEntry* img = nullptr;
  for (const auto& v : t.mm.vmas())
    if (v.kind() == kind) img = &v;
  const proc::MapEntry* cur = nullptr;
  for (const auto& m : self)
    if (m.path == name) cur = &m;
  if (!img && !cur) return sm;
  if (!img || !cur || img->end() - img->start() != cur->end - cur->start)
    return Error(std::string(name) +
                 " differs between this kernel and the dump's: restoring on another kernel "
                 "is not supported yet");
  sm.cur = cur->start;
  sm.len = cur->end - cur->start;
  sm.dest = img->start();
  return sm;
}

// The tick setitimer adds to CPU-time timers, measured on ourselves (we
// are about to become the restored task: our own timers do not matter).
uint64_t CpuTimerTickUs() {
  struct itimerval set = {{0, 0}, {1, 0}}, got = {};
  if (setitimer(ITIMER_VIRTUAL, &set, nullptr) < 0 || getitimer(ITIMER_VIRTUAL, &got) < 0) return 0;
  struct itimerval off = {};
  setitimer(ITIMER_VIRTUAL, &off, nullptr);
  int64_t us = int64_t(got.it_value.tv_sec) * 1000000 + got.it_value.tv_usec - 1000000;
  return us > 0 && us < 100000 ? uint64_t(us) : 0;
}

[[noreturn]] void Jump(uint64_t entry, uint64_t args, uint64_t stack_top) {
  // args goes in rdi by constraint: written by the asm, it could share a
  // register with entry (clang did so, and jumped into the args).
  asm volatile(
      "movq %1, %%rsp\n"
      "jmp *%0\n" ::"r"(entry),
      "r"(stack_top), "D"(args)
      : "memory");
  __builtin_unreachable();
}

}  // namespace

Status EnterRestorer(const TaskImages& t, const images::ImageDir& dir, const Options& o,
                     TreeFds& tf) {
  // A shared fd table (criu/shared_tables.h): its owner lays it out, once,
  // after its sharers have taken their own service fds.
  using Role = FdTableSync::Role;
  Role role = tf.fd_tables ? tf.fd_tables->RoleOf(t.pid()) : Role::kAlone;
  std::set<int> table_fds;  // an owner's: the numbers it may close
  if (role == Role::kSharer) TRY(tf.fd_tables->SharerArrive(t.pid()));
  if (role == Role::kOwner) {
    TRY_ASSIGN(table_fds, tf.fd_tables->OwnerStart(t.pid()));
    TRY(tf.fd_tables->OwnerWaitPlaced(t.pid()));
  }
  // Service fds: pages, exe, one per mapped file, shared memory, the tree's
  // open files, log, error pipe. All go above every dumped fd number.
  TRY_ASSIGN(UniqueFd pages, dir.OpenRaw(images::PagesFileName(t.pages_id)));
  int pages_fd = pages.release();
  int exe_fd = open(t.mm.exe_path().c_str(), O_RDONLY | O_CLOEXEC);
  if (exe_fd < 0) return Error::Errno("open executable " + t.mm.exe_path());
  std::map<std::pair<std::string, bool>, int> vma_files;
  for (const pb::VmaEntry& v : t.mm.vmas()) {
    if (v.kind() != pb::VMA_FILE_PRIVATE && v.kind() != pb::VMA_FILE_SHARED) continue;
    if (v.has_shmid()) continue;  // a deleted file: its shared memory object (below)
    auto key = std::make_pair(v.path(), v.open_rw());
    if (vma_files.count(key)) continue;
    int fd = open(v.path().c_str(), (v.open_rw() ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) return Error::Errno("open mapped file " + v.path());
    struct stat st;
    if (fstat(fd, &st) == 0 && v.has_file_size() && uint64_t(st.st_size) != v.file_size())
      return Error("mapped file " + v.path() + " changed since the dump (size " +
                   std::to_string(v.file_size()) + " -> " + std::to_string(st.st_size) + ")");
    vma_files.emplace(key, fd);
  }

  ServiceFds svc;
  // Pages shared with ancestors are read from their files.
  std::map<uint32_t, int> src_pages;
  for (const auto& p : t.pages)
    if (p.has_src_pages_id() && !src_pages.count(p.src_pages_id())) {
      TRY_ASSIGN(UniqueFd f, dir.OpenRaw(PagesSourceName(p.src_pages_id())));
      src_pages[p.src_pages_id()] = f.release();
    }
  if (src_pages.size() + 1 > abi::kMaxCloseFds) return Error("too many pages files to read from");
  svc.slots = {&pages_fd, &exe_fd, &tf.log_fd, &tf.err_fd};
  if (tf.lazy_fd >= 0) svc.slots.push_back(&tf.lazy_fd);
  for (auto& kv : src_pages) svc.slots.push_back(&kv.second);
  for (auto& kv : vma_files) svc.slots.push_back(&kv.second);
  for (auto& kv : tf.shmem) svc.slots.push_back(&kv.second);
  std::set<int> sources;
  for (const auto& kv : tf.files) sources.insert(kv.second);
  if (role == Role::kSharer) {
    std::set<int> own = {pages_fd, exe_fd};
    for (auto& kv : src_pages) own.insert(kv.second);
    for (auto& kv : vma_files) own.insert(kv.second);
    TRY(PlaceSharerServiceFds(svc.slots, own, tf.base));
    svc.base = tf.base;
  } else {
    TRY(PlaceServiceFds(svc, tf.base, sources, role == Role::kOwner ? &table_fds : nullptr));
  }
  log::SetFd(tf.log_fd);

  // This task's fds, all taken from the tree's open files: a file shared by
  // several fds or tasks is one open file description again. A sharer's
  // are its table owner's (who closes the sources).
  if (role != Role::kSharer) {
    std::set<int> service;
    for (int* fd : svc.slots) service.insert(*fd);
    TRY(files::InstallTaskFds(t.fds, tf.files, service, tf.base));
  }
  tf.files.clear();
  // Closing any fd of a file drops the POSIX locks the process holds on
  // it, and the restorer closes the fds it maps files through: a file this
  // task will hold POSIX locks on is mapped through its own fd, left open.
  // Decided (and our own open of it closed) before the locks are taken.
  std::map<std::pair<std::string, bool>, int> own_fd;
  for (auto& [key, fd] : vma_files) {
    if (role == Role::kSharer) break;  // (refused: criu/shared_tables.h FilesCloneFlag)
    struct stat st;
    if (fstat(fd, &st) < 0) continue;
    int own = files::LockedFdFor(t.fds, *tf.entries, st, key.second);
    if (own < 0) continue;
    close(fd);
    fd = own;
    own_fd[key] = own;
  }
  if (role == Role::kSharer) {
    tf.fd_tables->SharerPlaced(t.pid());
    TRY(tf.fd_tables->SharerWaitInstalled(t.pid()));
    TRY(TakeOwnPosixLocks(t.fds, *tf.entries));  // its owner took its own
  } else {
    TRY(files::FinishTaskFds(t.fds, *tf.entries));
    TRY(RestoreFownAsync(t.core));  // criu/fown.h: si_fd names the task's fd
    if (role == Role::kOwner) tf.fd_tables->OwnerInstalled(t.pid());
  }
  // A chroot hides /proc: our maps are read through a file opened before.
  UniqueFd maps_fd(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (!maps_fd) return Error::Errno("open /proc/self/maps");
  // Audit login uid and membarrier registrations: only the task itself
  // can set them (criu/sched_state.h), through its /proc: before a chroot.
  if (t.core.has_sched()) TRY(RestoreSchedInside(t.core.sched(), tf.in_user_ns));
  if (t.fs.root() != "/" && chroot(t.fs.root().c_str()) < 0)
    return Error::Errno("chroot " + t.fs.root());
  // A chroot'ed task's cwd was read from outside its root: made relative to it.
  std::string cwd = t.fs.cwd();
  const std::string& fsroot = t.fs.root();
  if (fsroot != "/" && (cwd == fsroot || cwd.rfind(fsroot + "/", 0) == 0))
    cwd = cwd.size() == fsroot.size() ? "/" : cwd.substr(fsroot.size());
  if (t.fs.cwd_deleted())
    TRY(files::EnterDeletedDir(cwd, t.fs.cwd_mode()));  // criu/files/deleted_node.h
  else if (chdir(cwd.c_str()) < 0)
    return Error::Errno("chdir " + cwd);

  std::vector<int> vma_fd(t.mm.vmas_size(), -1);
  std::vector<bool> keep_fd(t.mm.vmas_size(), false);
  std::set<int> used_shmem;
  for (int i = 0; i < t.mm.vmas_size(); i++) {
    const pb::VmaEntry& v = t.mm.vmas(i);
    if (v.kind() == pb::VMA_FILE_PRIVATE && v.has_shmid()) {  // deleted file, mapped private
      vma_fd[i] = tf.shmem.at(v.shmid());
      used_shmem.insert(vma_fd[i]);
    } else if (v.kind() == pb::VMA_FILE_PRIVATE || v.kind() == pb::VMA_FILE_SHARED) {
      vma_fd[i] = vma_files.at({v.path(), v.open_rw()});
      keep_fd[i] = own_fd.count({v.path(), v.open_rw()}) != 0;
    }
    if (v.kind() == pb::VMA_ANON_SHARED) {
      vma_fd[i] = tf.shmem.at(v.shmid());
      used_shmem.insert(vma_fd[i]);
    }
  }
  for (auto& kv : tf.shmem)
    if (!used_shmem.count(kv.second)) close(kv.second);

  // The restorer region: blob, args with their arrays, parked specials,
  // thread stacks, the leader's stack.
  std::string maps_text;
  {
    char buf[16384];
    ssize_t n;
    while ((n = read(maps_fd.get(), buf, sizeof(buf))) > 0) maps_text.append(buf, size_t(n));
    if (n < 0) return Error::Errno("read /proc/self/maps");
    maps_fd.reset();
  }
  TRY_ASSIGN(std::vector<proc::MapEntry> self, proc::ParseMaps(maps_text));
  TRY_ASSIGN(abi::SpecialMapping vvar, Special(t, self, pb::VMA_VVAR, "[vvar]"));
  TRY_ASSIGN(abi::SpecialMapping vclock, Special(t, self, pb::VMA_VVAR_VCLOCK, "[vvar_vclock]"));
  TRY_ASSIGN(abi::SpecialMapping vdso, Special(t, self, pb::VMA_VDSO, "[vdso]"));

  const pb::TaskCoreEntry& c = t.core;
  size_t nthreads = size_t(c.threads_size());
  size_t npending = 0;
  for (const auto& th : c.threads()) npending += size_t(th.pending_size());
  blobs::Blob blob = blobs::Restorer();
  uint64_t blob_len = Align(blob.size, kPage);
  uint64_t vmas_off = Align(sizeof(abi::RestoreArgs), 64);
  // Lazy restore (criu/lazy_plan.h): pages of anonymous VMAs are left to the daemon.
  LazyPlan plan = PlanLazy(t, tf.lazy_fd >= 0);
  uint64_t pages_off = vmas_off + sizeof(abi::RestoreVma) * t.mm.vmas_size();
  uint64_t lazy_off = pages_off + sizeof(abi::RestorePages) * plan.eager.size();
  uint64_t threads_off = Align(lazy_off + sizeof(abi::LazyRange) * plan.vmas.size(), 64);
  uint64_t frames_off = Align(threads_off + sizeof(abi::RestoreThread) * nthreads, 64);
  uint64_t pending_off = frames_off + sizeof(abi::SigframeArea) * nthreads;
  uint64_t shared_off = pending_off + 128 * npending;
  uint64_t timers_off = Align(shared_off + 128 * size_t(c.shared_pending_size()), 64);
  uint64_t seccomp_off =
      Align(timers_off + sizeof(abi::RestorePosixTimer) * size_t(c.posix_timers_size()), 64);
  uint64_t lsm_off = Align(seccomp_off + SeccompArgsSize(t.seccomp), 64);
  uint64_t args_len = Align(lsm_off + LsmArgsSize(t.lsm), kPage);
  uint64_t park_len = vvar.len + vclock.len + vdso.len;
  uint64_t stacks_len = abi::kThreadStackSize * nthreads;
  uint64_t size = blob_len + args_len + park_len + stacks_len + kStackSize;
  TRY_ASSIGN(uint64_t base, FindHole(t, self, size));
  void* region = mmap(reinterpret_cast<void*>(base), size, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (region == MAP_FAILED) return Error::Errno("mmap restorer region");
  memcpy(region, blob.data, blob.size);
  auto* a = reinterpret_cast<abi::RestoreArgs*>(base + blob_len);
  char* ab = reinterpret_cast<char*>(a);
  a->self_start = base;
  a->self_len = size;
  a->park = base + blob_len + args_len;
  a->vvar = vvar, a->vclock = vclock, a->vdso = vdso;
  uint64_t stacks = a->park + park_len;

  a->nr_vmas = uint32_t(t.mm.vmas_size());
  a->vmas_off = vmas_off;
  auto* rv = reinterpret_cast<abi::RestoreVma*>(ab + vmas_off);
  for (int i = 0; i < t.mm.vmas_size(); i++) {
    const pb::VmaEntry& v = t.mm.vmas(i);
    abi::RestoreVma& r = rv[i];
    r.start = v.start(), r.end = v.end(), r.pgoff = v.pgoff();
    r.prot = v.prot(), r.flags = v.flags(), r.fd = vma_fd[i], r.madv = v.madv();
    if (keep_fd[i]) r.madv |= abi::kVmaKeepFd;
    if (IsPremapped(v)) r.madv |= abi::kVmaPremapped;  // criu/cow_premap.h
    switch (v.kind()) {
      case pb::VMA_ANON_PRIVATE:
        r.kind = abi::kVmaAnon;
        break;
      case pb::VMA_FILE_PRIVATE:
      case pb::VMA_FILE_SHARED:
      case pb::VMA_ANON_SHARED:
        r.kind = abi::kVmaFile;
        break;
      case pb::VMA_SYSV_SHM:
        r.kind = abi::kVmaSysv;
        r.sysv_id = v.sysv().id();
        break;
      case pb::VMA_VDSO:
        r.kind = abi::kVmaVdso;
        break;
      case pb::VMA_VVAR:
        r.kind = abi::kVmaVvar;
        break;
      default:
        r.kind = abi::kVmaVvarVclock;
        break;
    }
    if (v.kind() == pb::VMA_ANON_SHARED) r.flags = (r.flags & ~uint32_t(MAP_PRIVATE)) | MAP_SHARED;
  }
  a->pages_off = pages_off;
  auto* rp = reinterpret_cast<abi::RestorePages*>(ab + pages_off);
  size_t np = 0;
  for (const PageRun& p : plan.eager) {
    bool premapped = false;  // its VMA was filled before the fork (criu/cow_premap.h)
    for (const pb::VmaEntry& v : t.mm.vmas())
      if (p.vaddr >= v.start() && p.vaddr < v.end()) premapped = IsPremapped(v);
    if (premapped) continue;
    rp[np].vaddr = p.vaddr;
    rp[np].nr_pages = p.nr_pages;
    rp[np].fd = p.src == t.pages_id ? pages_fd : src_pages.at(p.src);
    rp[np].off = p.off;
    np++;
  }
  a->nr_pages = uint32_t(np);
  a->lazy_sock = tf.lazy_fd;
  a->lazy_id = t.pid();
  a->nr_lazy = uint32_t(plan.vmas.size());
  a->lazy_off = lazy_off;
  a->lazy_features = tf.lazy_features;
  auto* lr = reinterpret_cast<abi::LazyRange*>(ab + lazy_off);
  for (size_t i = 0; i < plan.vmas.size(); i++) lr[i] = {plan.vmas[i].start, plan.vmas[i].end};
  a->pages_fd = pages_fd;
  a->pages_fds[a->nr_pages_fds++] = pages_fd;
  for (auto& kv : src_pages) a->pages_fds[a->nr_pages_fds++] = kv.second;
  a->log_fd = tf.log_fd;
  a->log_level = log::GetLevel();
  FillRestorerFaults(a);  // CKPT_FAULT (base/fault.h)
  a->nr_close_fds = 1;
  a->close_fds[0] = tf.err_fd;

  const pb::MmEntry& mm = t.mm;
  a->mm = {mm.start_code(),
           mm.end_code(),
           mm.start_data(),
           mm.end_data(),
           mm.start_brk(),
           mm.brk(),
           mm.start_stack(),
           mm.arg_start(),
           mm.arg_end(),
           mm.env_start(),
           mm.env_end(),
           0,
           0,
           uint32_t(exe_fd)};
  for (int i = 0; i < mm.auxv_size(); i++) a->auxv[i] = mm.auxv(i);
  a->mm.auxv = uint64_t(a->auxv);
  a->mm.auxv_size = uint32_t(mm.auxv_size() * 8);

  for (const auto& s : c.sigactions())
    a->sigacts[s.sig() - 1] = {s.handler(), s.flags(), s.restorer(), s.mask()};
  a->nr_rlimits = uint32_t(c.rlimits_size());
  for (int i = 0; i < c.rlimits_size(); i++)
    a->rlimits[i] = {c.rlimits(i).resource(), 0, c.rlimits(i).cur(), c.rlimits(i).max()};
  a->umask = c.umask();
  a->personality = c.personality();
  a->dumpable = int32_t(c.dumpable());
  a->pdeath_sig = int32_t(c.pdeath_sig());
  a->child_subreaper = c.child_subreaper();
  a->no_new_privs = c.no_new_privs();
  strncpy(a->comm, c.comm().c_str(), sizeof(a->comm) - 1);
  const pb::CredsEntry& cr = c.creds();
  uint32_t uids[4] = {cr.uid(), cr.euid(), cr.suid(), cr.fsuid()};
  uint32_t gids[4] = {cr.gid(), cr.egid(), cr.sgid(), cr.fsgid()};
  memcpy(a->uids, uids, sizeof(uids));
  memcpy(a->gids, gids, sizeof(gids));
  a->nr_groups = uint32_t(cr.groups_size());
  for (int i = 0; i < cr.groups_size(); i++) a->groups[i] = cr.groups(i);
  // Inside the tree's user namespace setgroups may be denied and cannot
  // name an unmapped group: inherited groups that match stay (user_ns.h).
  // Elsewhere too: setgroups needs CAP_SETGID even for the same groups.
  if (ns::KeepInheritedGroups(cr.groups())) a->nr_groups = abi::kKeepGroups;
  if (cr.has_cap_eff()) {
    a->has_caps = 1;
    a->cap_eff = cr.cap_eff(), a->cap_prm = cr.cap_prm(), a->cap_inh = cr.cap_inh();
    a->cap_bnd = cr.cap_bnd(), a->cap_amb = cr.cap_amb();
  }
  a->securebits = c.securebits();
  a->thp_disable = c.thp_disable();
  a->timerslack_ns = c.timerslack_ns();

  // setitimer adds a tick to CPU-time timers (ITIMER_VIRTUAL/PROF) so they
  // never fire early; what getitimer reported at dump already had it.
  uint64_t tick_us = CpuTimerTickUs();
  for (const auto& it : c.itimers()) {
    abi::KItimerval& v = a->itimers[it.which()];
    uint64_t value_us = it.value_us();
    if (it.which() != ITIMER_REAL && value_us > tick_us) value_us -= tick_us;
    // A periodic ITIMER_REAL that had expired reads 0 until its SIGALRM is
    // taken (the kernel re-arms it then); restored as 0 it would stay off.
    if (it.which() == ITIMER_REAL && value_us == 0 && it.interval_us() != 0) value_us = 1;
    v.interval = {int64_t(it.interval_us() / 1000000), int64_t(it.interval_us() % 1000000)};
    v.value = {int64_t(value_us / 1000000), int64_t(value_us % 1000000)};
  }
  a->nr_posix_timers = uint32_t(c.posix_timers_size());
  a->posix_timers_off = timers_off;
  auto* pt = reinterpret_cast<abi::RestorePosixTimer*>(ab + timers_off);
  for (int i = 0; i < c.posix_timers_size(); i++) {
    const pb::PosixTimerEntry& e = c.posix_timers(i);
    pt[i].id = e.id(), pt[i].clock = e.clock(), pt[i].notify = e.notify();
    pt[i].signo = e.signo(), pt[i].notify_tid = e.notify_tid(), pt[i].value = e.value();
    for (int k = 0; k < c.threads_size(); k++)  // the dump's tid -> the task's own view
      if (c.threads(k).tid() == uint32_t(e.notify_tid())) pt[i].notify_tid = t.vtid(k);
    uint64_t v = e.value_ns();
    // An armed timer that had just expired must stay armed: 0 would disarm it.
    if (v == 0 && (e.interval_ns() || e.value_ns())) v = 1;
    pt[i].spec.interval = {int64_t(e.interval_ns() / 1000000000),
                           int64_t(e.interval_ns() % 1000000000)};
    pt[i].spec.value = {int64_t(v / 1000000000), int64_t(v % 1000000000)};
  }
  a->nr_shared_pending = uint32_t(c.shared_pending_size());
  a->shared_pending_off = shared_off;
  for (int i = 0; i < c.shared_pending_size(); i++)
    memcpy(ab + shared_off + 128 * i, c.shared_pending(i).data(), 128);

  a->nr_threads = uint32_t(nthreads);
  a->threads_off = threads_off;
  auto* rt = reinterpret_cast<abi::RestoreThread*>(ab + threads_off);
  uint64_t pend = pending_off;
  for (size_t i = 0; i < nthreads; i++) {
    const pb::ThreadEntry& th = c.threads(int(i));
    abi::RestoreThread& r = rt[i];
    r.tid = int32_t(t.vtid(int(i)));
    std::vector<pid_t> chain = ns::SetTidOfThread(t.pstree, int(i));
    r.set_tid_size = uint32_t(chain.size());
    // Inside the tree's user namespace: not ckpt's pid level (user_ns.h).
    if (tf.in_user_ns) r.set_tid_size = uint32_t(ns::TidsSettableInside(chain.size()));
    for (size_t k = 0; k < chain.size() && k < abi::kMaxPidLevels; k++) r.set_tid[k] = chain[k];
    r.frame_off = frames_off + sizeof(abi::SigframeArea) * i;
    r.stack_top = stacks + abi::kThreadStackSize * (i + 1) - 64;
    r.fs_base = t.regs[i].gp.fs_base;
    r.gs_base = t.regs[i].gp.gs_base;
    r.clear_tid = th.clear_tid();
    r.robust_list = th.robust_list();
    r.robust_len = th.robust_len();
    strncpy(r.comm, th.comm().c_str(), sizeof(r.comm) - 1);
    if (th.has_rseq()) {
      r.rseq_ptr = th.rseq().ptr();
      r.rseq_size = th.rseq().size();
      r.rseq_sig = th.rseq().signature();
    }
    r.nr_pending = uint32_t(th.pending_size());
    r.pending_off = pend;
    for (const auto& p : th.pending()) {
      memcpy(ab + pend, p.data(), 128);
      pend += 128;
    }
    abi::KStack alt = {0, 2 /* SS_DISABLE */, 0, 0};
    if (th.has_sigaltstack())
      alt = {th.sigaltstack().sp(), int32_t(th.sigaltstack().flags()), 0, th.sigaltstack().size()};
    auto* area = reinterpret_cast<abi::SigframeArea*>(ab + r.frame_off);
    compel::BuildSigframe(area, uint64_t(area), t.regs[i], th.blk_sigset(), alt);
  }
  FillSeccompArgs(t.seccomp, c, a, seccomp_off);
  FillLsmArgs(t.lsm, a, lsm_off);

  // glibc registered rseq for ckpt's thread in memory the restorer is about
  // to unmap: the kernel would fault writing it. Unregister it first.
  if (__rseq_size > 0) {
    auto* area = reinterpret_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
    // glibc registers a 32-byte area even when __rseq_size says less.
    if (syscall(SYS_rseq, area, __rseq_size, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG) < 0 &&
        syscall(SYS_rseq, area, 32, 1, RSEQ_SIG) < 0)
      return Error::Errno("unregister rseq");
  }
  LOG_DBG("pid " + std::to_string(t.pid()) + ": jumping to the restorer at " +
          std::to_string(base));
  Jump(base, uint64_t(a), base + size - 64);
}

}  // namespace ckpt
