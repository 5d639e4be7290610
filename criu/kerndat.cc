#include "criu/kerndat.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/io.h"
#include "base/unique_fd.h"
#include "criu/clone_pid.h"
#include "criu/net/netlock.h"

namespace ckpt {
namespace {

uint64_t ProbeZeroPfn() {
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  volatile char c = *static_cast<volatile char*>(p);  // maps the zero page
  (void)c;
  uint64_t e = 0;
  UniqueFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (fd) pread(fd.get(), &e, sizeof(e), off_t(uintptr_t(p) / 4096 * 8));
  munmap(p, 4096);
  if (!(e >> 63 & 1)) return 0;
  return e & ((1ull << 55) - 1);  // 0 when PFNs are hidden from us
}

bool ProbeClone3SetTid() {
  // Asking for our own (busy) pid: EEXIST means set_tid is understood.
  pid_t r = ForkWithPid(getpid());
  if (r == 0) _exit(0);  // cannot happen with a busy pid; never run ckpt code twice
  return r < 0 && errno == EEXIST;
}

bool ProbePagemapScan() {
  // struct pm_scan_arg (Linux 6.7); Debian 12's headers predate it.
  struct {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
  } arg;
  static_assert(sizeof(arg) == 96);
  constexpr unsigned long kPagemapScan = 0xc0606610;  // _IOWR('f', 16, struct pm_scan_arg)
  constexpr uint64_t kPageIsPresent = 1 << 3;
  UniqueFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  static char probe[4096] __attribute__((aligned(4096)));
  probe[0] = 1;
  memset(&arg, 0, sizeof(arg));
  arg.size = sizeof(arg);
  arg.start = uintptr_t(probe);
  arg.end = uintptr_t(probe) + sizeof(probe);
  arg.category_anyof_mask = kPageIsPresent;
  arg.return_mask = kPageIsPresent;
  return ioctl(fd.get(), kPagemapScan, &arg) >= 0;
}

// Soft-dirty exists if clearing the bits and writing a page sets bit 55.
bool ProbeSoftDirty() {
  UniqueFd refs(open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC));
  if (!refs || write(refs.get(), "4", 1) != 1) return false;
  static volatile char page[4096] __attribute__((aligned(4096)));
  page[0] = page[0] + 1;
  UniqueFd pm(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  uint64_t e = 0;
  if (!pm || pread(pm.get(), &e, 8, off_t(uintptr_t(page) / 4096 * 8)) != 8) return false;
  return e >> 55 & 1;
}

}  // namespace

KernelFeatures ProbeKernel() {
  KernelFeatures k;
  struct utsname u;
  if (uname(&u) == 0) k.kernel = u.release;
  k.zero_pfn = ProbeZeroPfn();
  k.clone3_set_tid = ProbeClone3SetTid();
  unsigned int sz = 0;
  k.prctl_mm_map = prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &sz, 0, 0) == 0 && sz > 0;
  int m = int(syscall(SYS_memfd_create, "ckpt-probe", MFD_CLOEXEC));
  k.memfd = m >= 0;
  if (m >= 0) close(m);
  k.map_files = access("/proc/self/map_files", R_OK) == 0;
  k.pagemap_scan = ProbePagemapScan();
  int uf = int(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  k.userfaultfd = uf >= 0;
  if (uf >= 0) close(uf);
  k.soft_dirty = ProbeSoftDirty();
  auto maps = io::ReadFile("/proc/self/maps");
  k.vvar_vclock = maps.ok() && maps->find("[vvar_vclock]") != std::string::npos;
  return k;
}

void ProbeNetworkFeatures(KernelFeatures* kf) {
  KernelFeatures& k = *kf;
  k.nftables = net::NftablesUsable();
  {
    // Repair mode needs CAP_NET_ADMIN and a kernel built with it.
    UniqueFd sk(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int on = 1;
    k.tcp_repair = sk && setsockopt(sk.get(), IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on)) == 0;
  }
}

namespace {

// Runs fn in a forked child; true if it returned true (exit 0).
bool InChild(bool (*fn)()) {
  pid_t c = fork();
  if (c < 0) return false;
  if (c == 0) _exit(fn() ? 0 : 1);
  int st;
  while (waitpid(c, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool MakeNamespaces() {
  return unshare(CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET) == 0;
}

bool MakeTimeNamespace() {
  constexpr int kNewTime = 0x80;  // CLONE_NEWTIME
  if (unshare(kNewTime) < 0) return false;
  UniqueFd fd(open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC));
  const char offs[] = "monotonic 1 0\n";
  return fd && write(fd.get(), offs, sizeof(offs) - 1) == ssize_t(sizeof(offs) - 1);
}

// An init of a new pid namespace with pid 1 inside and a chosen pid
// outside, as restore makes them (the outer pid: our own, free again once
// we are in the child... so take a fresh one from a grandchild's).
bool NestedSetTid() {
  pid_t ids[2] = {1, 0};
  pid_t probe = fork();  // a pid that is free once it is reaped
  if (probe < 0) return false;
  if (probe == 0) _exit(0);
  waitpid(probe, nullptr, 0);
  ids[1] = probe;
  pid_t c = ForkWithPids(ids, 2, CLONE_NEWPID);
  if (c < 0) return false;
  if (c == 0) _exit(getpid() == 1 ? 0 : 1);
  int st;
  waitpid(c, &st, 0);
  return c == probe && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

}  // namespace

void ProbeNamespaceFeatures(KernelFeatures* k) {
  k->namespaces = InChild(MakeNamespaces);
  k->time_ns = InChild(MakeTimeNamespace);
  k->nested_set_tid = InChild(NestedSetTid);
}

std::vector<FeatureLine> DescribeFeatures(const KernelFeatures& k) {
  return {
      {"clone3 set_tid", k.clone3_set_tid, true, "restore processes with their original pids"},
      {"prctl PR_SET_MM_MAP", k.prctl_mm_map, true, "restore brk, arg/env, auxv and exe"},
      {"memfd_create", k.memfd, true, "load the parasite into a victim"},
      {"/proc/PID/map_files", k.map_files, true, "find the files behind mappings"},
      {"zero page PFN visible", k.zero_pfn != 0, false, "skip zero pages in dumps"},
      {"PAGEMAP_SCAN", k.pagemap_scan, false, "dirty page tracking without soft-dirty"},
      {"userfaultfd", k.userfaultfd, false, "lazy restore"},
      {"soft-dirty", k.soft_dirty, false, "incremental dumps (PAGEMAP_SCAN also works)"},
      {"[vvar_vclock] mapping", k.vvar_vclock, false, "moved with [vdso] on restore"},
      {"TCP_REPAIR", k.tcp_repair, false, "live TCP connections (--tcp-established)"},
      {"nftables", k.nftables, false, "network lock for TCP connections"},
      {"pid/uts/ipc/net ns", k.namespaces, false, "trees in namespaces of their own"},
      {"time namespace", k.time_ns, false, "trees with their own clock offsets"},
      {"set_tid in pid ns", k.nested_set_tid, false,
       "the same pids inside and outside a tree's pid namespace"},
  };
}

}  // namespace ckpt
