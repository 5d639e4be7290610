// Kernel features, probed at run time (never guessed from the version).
// One KernelFeatures is probed per command and passed down explicitly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ckpt {

struct KernelFeatures {
  uint64_t zero_pfn = 0;        // PFN of the shared zero page; 0 = cannot tell
  bool clone3_set_tid = false;  // restore with the original pid
  bool prctl_mm_map = false;    // PR_SET_MM_MAP
  bool memfd = false;
  bool map_files = false;     // /proc/PID/map_files readable
  bool pagemap_scan = false;  // PAGEMAP_SCAN ioctl (dirty tracking without soft-dirty)
  bool userfaultfd = false;   // lazy restore
  bool soft_dirty = false;
  bool vvar_vclock = false;  // [vvar_vclock] beside [vdso]
  bool tcp_repair = false;   // TCP_REPAIR: live connections (--tcp-established)
  bool nftables = false;     // inet tables usable: the TCP network lock (criu/net/netlock.h)
  bool namespaces = false;   // new pid/uts/ipc/net namespaces can be made (trees in their own)
  bool time_ns = false;      // a time namespace with clock offsets
  bool nested_set_tid = false;  // clone3 set_tid at two pid namespace levels
  std::string kernel;        // uname -r
};

KernelFeatures ProbeKernel();
// The network probes (TCP_REPAIR, an nftables table made and removed):
// only `ckpt check` needs their answers, dump and restore find out by doing.
void ProbeNetworkFeatures(KernelFeatures* k);
// The namespace probes (each in a short-lived child): `ckpt check` only.
void ProbeNamespaceFeatures(KernelFeatures* k);

struct FeatureLine {
  const char* name;
  bool present;
  bool required;
  const char* why;
};
std::vector<FeatureLine> DescribeFeatures(const KernelFeatures& k);

}  // namespace ckpt
