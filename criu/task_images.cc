#include "criu/task_images.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "criu/ns/namespaces.h"
#include "criu/page_chain.h"
#include "criu/ns/pid_ns.h"
#include "criu/ns/sem_undo.h"
#include "criu/files/fd_restore.h"
#include "criu/files/file_types.h"
#include "criu/regs_pb.h"
#include "parasite/abi.h"

namespace ckpt {
namespace {

using images::ImageType;
constexpr uint64_t kTaskSize = 0x7ffffffff000ull;
constexpr uint64_t kPage = 4096;
constexpr uint32_t kMaxFd = 1u << 20;

template <typename M>
Status ReadOne(const images::ImageDir& dir, ImageType t, uint32_t id, M* m) {
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(t, id));
  return r.ReadOne(*m);
}

template <typename M>
Result<std::vector<M>> ReadAll(images::ImageReader& r) {
  std::vector<M> out;
  for (;;) {
    M m;
    TRY_ASSIGN(bool got, r.Read(m));
    if (!got) break;
    out.push_back(std::move(m));
  }
  return out;
}

Status CheckMm(const pb::MmEntry& mm) {
  uint64_t prev_end = 0;
  std::set<int> specials;
  for (const pb::VmaEntry& v : mm.vmas()) {
    std::string w = "mm image: vma " + std::to_string(v.start());
    if (v.start() % kPage || v.end() % kPage || v.start() >= v.end() || v.end() > kTaskSize)
      return Error(w + ": bad bounds");
    if (v.start() < prev_end) return Error(w + ": overlaps or out of order");
    prev_end = v.end();
    if (v.prot() & ~uint32_t(PROT_READ | PROT_WRITE | PROT_EXEC)) return Error(w + ": bad prot");
    if (v.flags() & ~uint32_t(MAP_SHARED | MAP_PRIVATE | MAP_GROWSDOWN))
      return Error(w + ": bad flags");
    // madv bits (proto/mm.proto); wipe-on-fork and droppable are for
    // anonymous private memory only (madvise/mmap refuse the rest).
    if (v.madv() & ~uint32_t(1 | 2 | 4 | 8 | 32 | 64)) return Error(w + ": bad madv bits");
    if ((v.madv() & (32 | 64)) && v.kind() != pb::VMA_ANON_PRIVATE)
      return Error(w + ": wipe-on-fork or droppable on a mapping that is not anonymous private");
    switch (v.kind()) {
      case pb::VMA_FILE_PRIVATE:
      case pb::VMA_FILE_SHARED:
        if (!v.has_path() || v.path().empty() || v.path()[0] != '/')
          return Error(w + ": file mapping without a path");
        if (v.pgoff() % kPage) return Error(w + ": bad file offset");
        break;
      case pb::VMA_VDSO:
      case pb::VMA_VVAR:
      case pb::VMA_VVAR_VCLOCK:
        if (!specials.insert(v.kind()).second) return Error(w + ": duplicate special mapping");
        break;
      case pb::VMA_ANON_PRIVATE:
        break;
      case pb::VMA_ANON_SHARED:
        if (!v.has_shmid() || v.pgoff() % kPage) return Error(w + ": bad shared memory");
        break;
      case pb::VMA_SYSV_SHM:
        if (!v.has_sysv() || v.sysv().id() < 0 || v.pgoff() % kPage ||
            v.sysv().size() > (1ull << 40))
          return Error(w + ": bad SysV segment");
        break;
      default:
        return Error(w + ": unsupported kind");
    }
  }
  if (uint32_t(mm.auxv_size()) > abi::kMaxAuxv || mm.auxv_size() % 2)
    return Error("mm image: bad auxv");
  if (mm.exe_path().empty()) return Error("mm image: no executable path");
  return Ok();
}

Status CheckPages(const pb::MmEntry& mm, const std::vector<pb::PagemapEntry>& pages,
                  uint64_t pages_file_size) {
  uint64_t total = 0, prev_end = 0;
  auto vma = mm.vmas().begin();
  for (const pb::PagemapEntry& p : pages) {
    uint64_t s = p.vaddr(), n = p.nr_pages();
    if (s % kPage || n == 0 || n > kTaskSize / kPage || s + n * kPage > kTaskSize || s < prev_end)
      return Error("pagemap image: bad entry at " + std::to_string(s));
    prev_end = s + n * kPage;
    // The run must lie inside private VMAs (pagemap runs never cross VMAs).
    while (vma != mm.vmas().end() && vma->end() <= s) ++vma;
    if (vma == mm.vmas().end() || vma->start() > s || vma->end() < prev_end ||
        (vma->kind() != pb::VMA_ANON_PRIVATE && vma->kind() != pb::VMA_FILE_PRIVATE))
      return Error("pagemap image: pages at " + std::to_string(s) + " outside private memory");
    if (p.in_parent()) continue;  // incremental: resolved in the parent images (page_chain.h)
    if (p.has_src_pages_id()) {
      if (p.src_off() % kPage) return Error("pagemap image: bad source offset");
      continue;  // checked against the source file once every task is loaded
    }
    total += n;
  }
  if (total * kPage != pages_file_size)
    return Error("pages image holds " + std::to_string(pages_file_size) + " bytes, pagemap says " +
                 std::to_string(total * kPage) + " (truncated or corrupt)");
  return Ok();
}

Status LoadTask(const images::ImageDir& dir, const TreeImages& tree, TaskImages& t) {
  uint32_t pid = t.pstree.pid();
  TRY(ReadOne(dir, ImageType::kCore, pid, &t.core));
  if (t.core.pid() != pid || t.core.threads_size() != t.pstree.threads_size() ||
      t.core.threads_size() == 0 || t.core.threads(0).tid() != pid)
    return Error("core image does not match pstree");
  for (int i = 0; i < t.core.threads_size(); i++) {
    const pb::ThreadEntry& th = t.core.threads(i);
    if (th.tid() != t.pstree.threads(i)) return Error("core image: thread ids differ from pstree");
    TRY_ASSIGN(compel::Regs r, RegsFromProto(th.regs()), "core image");
    t.regs.push_back(std::move(r));
    for (const auto& p : th.pending())
      if (p.size() != 128) return Error("core image: bad pending signal");
  }
  for (const auto& p : t.core.shared_pending())
    if (p.size() != 128) return Error("core image: bad pending signal");
  for (const auto& s : t.core.sigactions())
    if (s.sig() < 1 || s.sig() > abi::kNumSignals) return Error("core image: bad signal number");
  if (t.core.rlimits_size() > 16) return Error("core image: too many rlimits");
  for (const auto& r : t.core.rlimits())
    if (r.resource() >= 16) return Error("core image: bad rlimit");
  if (t.core.creds().groups_size() > int(abi::kMaxGroups))
    return Error("core image: too many groups");
  for (const auto& it : t.core.itimers())
    if (it.which() > 2) return Error("core image: bad itimer");
  if (t.core.posix_timers_size() > int(abi::kMaxPosixTimers))
    return Error("core image: too many POSIX timers");
  TRY(ns::CheckSemUndo(t.core), "core image");

  TRY(ReadOne(dir, ImageType::kMm, pid, &t.mm));
  TRY(CheckMm(t.mm));
  {
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(ImageType::kPagemap, pid));
    pb::PagemapHead head;
    TRY(r.ReadOne(head));
    t.pages_id = head.pages_id();
    TRY_ASSIGN(t.pages, ReadAll<pb::PagemapEntry>(r));
  }
  {
    TRY_ASSIGN(uint64_t size, dir.RawSize(images::PagesFileName(t.pages_id)));
    TRY(CheckPages(t.mm, t.pages, size));
  }
  {
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(ImageType::kFdinfo, pid));
    TRY_ASSIGN(t.fds, ReadAll<pb::FdinfoEntry>(r));
    std::set<uint32_t> seen;
    for (const auto& f : t.fds) {
      if (f.fd() >= kMaxFd || !seen.insert(f.fd()).second)
        return Error("fdinfo image: bad or duplicate fd " + std::to_string(f.fd()));
      if (!tree.files.count(f.file_id()))
        return Error("fdinfo image: fd " + std::to_string(f.fd()) + " names a missing file");
    }
    std::sort(t.fds.begin(), t.fds.end(),
              [](const auto& a, const auto& b) { return a.fd() < b.fd(); });
  }
  TRY(ReadOne(dir, ImageType::kFs, pid, &t.fs));
  if (t.fs.cwd().empty() || t.fs.cwd()[0] != '/' || t.fs.root().empty() || t.fs.root()[0] != '/')
    return Error("fs image: bad cwd or root");
  return Ok();
}

}  // namespace

Result<TreeImages> LoadTreeImages(const images::ImageDir& dir, const std::string& lsm_profile,
                                  bool own_pages_only) {
  TreeImages tree;
  if (!dir.Exists(ImageType::kInventory))
    return Error(dir.path() + " holds no complete dump (no inventory image)");
  TRY(ReadOne(dir, ImageType::kInventory, 0, &tree.inventory));
  const pb::InventoryEntry& inv = tree.inventory;
  if (inv.format_version() != images::kFormatVersion)
    return Error("images have format version " + std::to_string(inv.format_version()) +
                 "; this ckpt reads version " + std::to_string(images::kFormatVersion));
  if (inv.arch() != "x86_64") return Error("images are for " + inv.arch() + ", not x86_64");
  if (inv.page_size() != kPage) return Error("images have an unsupported page size");
  if (inv.pre_dump())
    return Error(dir.path() + " is a pre-dump (memory only): restore the final dump made with "
                 "`ckpt dump --prev-images-dir` after it");

  {
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(ImageType::kPstree));
    TRY_ASSIGN(std::vector<pb::PstreeEntry> entries, ReadAll<pb::PstreeEntry>(r));
    if (entries.empty() || entries[0].pid() != inv.root_pid() || entries[0].ppid() != 0)
      return Error("pstree image does not match the inventory");
    std::map<uint32_t, int> index;
    std::set<uint32_t> ids;
    const bool chains = entries[0].ns_pid_size() > 0;
    for (auto& e : entries) {
      if (e.pid() == 0 || e.pid() >= (1u << 22) || !index.emplace(e.pid(), 0).second)
        return Error("pstree image: bad or duplicate pid " + std::to_string(e.pid()));
      if (e.threads_size() == 0 || e.threads(0) != e.pid())
        return Error("pstree image: pid " + std::to_string(e.pid()) + " has bad threads");
      for (uint32_t tid : e.threads())
        if (!ids.insert(tid).second || tid == 0 || tid >= (1u << 22))
          return Error("pstree image: duplicate thread id " + std::to_string(tid));
      if (e.zombie() && e.threads_size() != 1) return Error("pstree image: bad zombie");
      TRY(ns::CheckNsPids(e));
      if ((e.ns_pid_size() > 0) != chains)
        return Error("pstree image: pid " + std::to_string(e.pid()) +
                     " has pid namespace ids and the root does not, or the other way round");
      int me = int(tree.tasks.size());
      index[e.pid()] = me;
      TaskImages t;
      t.pstree = std::move(e);
      if (me > 0) {
        auto parent = index.find(t.pstree.ppid());
        if (parent == index.end() || parent->second >= me || tree.tasks[parent->second].zombie())
          return Error("pstree image: pid " + std::to_string(t.pid()) +
                       " comes before its parent or has none");
        tree.tasks[parent->second].children.push_back(me);
        int depth = t.pstree.ns_pid_size(), pdepth = tree.tasks[parent->second].pstree.ns_pid_size();
        if (depth < pdepth || depth > pdepth + 1 || (depth > pdepth && t.vpid() != 1))
          return Error("pstree image: pid " + std::to_string(t.pid()) +
                       " is not in its parent's pid namespace nor the init of a new one");
      } else if (t.pstree.ns_pid_size() > 2 ||
                 (t.pstree.ns_pid_size() == 2 && t.vpid() != 1)) {
        return Error("pstree image: the root is neither in the outer pid namespace nor an init");
      } else if (t.zombie()) {
        return Error("pstree image: the root is a zombie");
      }
      tree.tasks.push_back(std::move(t));
    }
  }
  TRY_ASSIGN(tree.namespaces, ns::ReadNamespaces(dir));
  if (tree.namespaces.pid() != (tree.tasks[0].pstree.ns_pid_size() == 2))
    return Error("namespaces.img and pstree.img disagree on the root's pid namespace");
  {
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(ImageType::kFiles));
    TRY_ASSIGN(std::vector<pb::FileEntry> files, ReadAll<pb::FileEntry>(r));
    for (auto& f : files) {
      const files::FileHandler* h = files::HandlerFor(f.kind());
      if (!h) return Error("files image: unknown file kind");
      TRY(h->validate(f), "files image");
      uint32_t id = f.id();
      if (!tree.files.emplace(id, std::move(f)).second) return Error("files image: duplicate id");
    }
    TRY(files::CheckFiles(dir, tree.files), "files image");
  }
  std::map<uint32_t, uint64_t> pages_size;  // pages_id -> bytes
  for (TaskImages& t : tree.tasks) {
    if (t.zombie()) continue;
    TRY(LoadTask(dir, tree, t), "pid " + std::to_string(t.pid()));
    tree.nr_threads += t.core.threads_size();
    for (const auto& f : t.fds) tree.max_fd = std::max(tree.max_fd, int(f.fd()));
    if (!pages_size.emplace(t.pages_id, 0).second)
      return Error("pagemap image: pages id " + std::to_string(t.pages_id) + " used twice");
  }
  for (auto& [id, size] : pages_size) {
    TRY_ASSIGN(size, dir.RawSize(images::PagesFileName(id)));
  }
  // Pages shared with an ancestor must lie inside that ancestor's file.
  for (const TaskImages& t : tree.tasks)
    for (const auto& p : t.pages) {
      if (!p.has_src_pages_id()) continue;
      auto src = pages_size.find(p.src_pages_id());
      if (src == pages_size.end() || p.src_off() > src->second ||
          uint64_t(p.nr_pages()) * kPage > src->second - p.src_off())
        return Error("pagemap image of pid " + std::to_string(t.pid()) +
                     ": shared pages outside their source file");
    }
  if (own_pages_only) {
    for (TaskImages& t : tree.tasks) {
      auto& pm = t.pages;
      pm.erase(std::remove_if(pm.begin(), pm.end(),
                              [](const pb::PagemapEntry& p) { return p.in_parent(); }),
               pm.end());
    }
  } else {
    TRY(ResolveParentPages(dir, &tree));  // incremental chains: pages of the parent images
  }
  TRY(LoadSeccomp(dir, &tree));
  TRY(LoadLsm(dir, &tree, lsm_profile));
  return tree;
}

}  // namespace ckpt
