// Write tracking without soft-dirty: userfaultfd write-protection in
// asynchronous mode plus the PAGEMAP_SCAN ioctl of /proc/PID/pagemap
// (Linux 6.7+; Documentation/admin-guide/mm/pagemap.rst "PAGEMAP_SCAN",
// userfaultfd.rst "Write Protect Notifications", async mode).
//
// How it works, and the kernel facts it rests on:
//  - A userfaultfd belongs to the mm of the process that made it. ckpt
//    makes it in the frozen victim by a remote userfaultfd(2)
//    (MakeUffdIn), takes it with pidfd_getfd(2) and closes the victim's
//    fd again: the victim's fd table ends as it was.
//  - The ioctls on that fd act on its mm, not the caller's, so ckpt does
//    UFFDIO_API (WP_ASYNC | WP_UNPOPULATED) and UFFDIO_REGISTER(MODE_WP)
//    itself (InitAsync, Register).
//  - In async mode a write to a protected page is resolved by the kernel
//    (no message, no waiting thread): it just clears the page's uffd-wp
//    bit. PAGEMAP_SCAN with category PAGE_IS_WRITTEN reports the pages
//    without the bit, and PM_SCAN_WP_MATCHING sets it again on the pages
//    it reports, atomically (ScanWritten).
//  - Closing the last reference of the fd unregisters every VMA and clears
//    every bit (fs/userfaultfd.c userfaultfd_release ->
//    userfaultfd_clear_vma -> uffd_wp_range(..., false)): whoever holds the
//    fd holds the tracking, and a dead holder leaves nothing behind.
//  - A VMA created later (mmap, mremap without UFFD_FEATURE_EVENT_REMAP,
//    a fork's copy without EVENT_FORK) is not registered: smaps VmFlags
//    show "uw" only on registered VMAs. A VMA registered by another
//    userfaultfd (the program's own) refuses ours with EBUSY.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "compel/seize.h"

namespace ckpt::uffd {

// A half-open range of addresses [start, end).
struct Range {
  uint64_t start, end;
};

// Whether this kernel offers async write-protection and PAGEMAP_SCAN
// (tried on a page of ckpt's own).
bool ProbeWpAsync();

// A userfaultfd of the seized process `proc` (stopped), owned by ckpt. The
// victim's temporary fd is closed before this returns, also on errors.
Result<UniqueFd> MakeUffdIn(compel::SeizedProcess& proc);

// UFFDIO_API with WP_ASYNC | WP_UNPOPULATED (once per fd).
Status InitAsync(int uffd);

// UFFDIO_REGISTER(MODE_WP) of [start, end). Returns the errno on failure
// (EBUSY: registered with another userfaultfd), 0 on success.
int Register(int uffd, uint64_t start, uint64_t end);

// One page run reported by PAGEMAP_SCAN.
struct ScanRun {
  uint64_t start, end;
  uint64_t categories;  // PAGE_IS_* bits below
};
inline constexpr uint64_t kPageIsWritten = 1 << 1;
inline constexpr uint64_t kPageIsFile = 1 << 2;
inline constexpr uint64_t kPageIsPresent = 1 << 3;
inline constexpr uint64_t kPageIsSwapped = 1 << 4;
inline constexpr uint64_t kPageIsPfnZero = 1 << 5;

// A /proc/PID/pagemap entry that is a PTE marker, not a page: a uffd-wp
// marker (left where a write-protected page of a file mapping was zapped)
// or a guard region. Linux shows markers as swap entries of the last swap
// type (SWP_PTE_MARKER = 31, bits 0-4); reading the address gives the
// file's contents or zeros, nothing of the process's own.
inline bool IsPteMarker(uint64_t pagemap_entry) {
  return (pagemap_entry >> 62 & 1) && !(pagemap_entry >> 63 & 1) && (pagemap_entry & 31) == 31;
}

// PAGEMAP_SCAN of [start, end) on `pagemap_fd` (/proc/PID/pagemap): the
// pages written since they were last protected, protecting them again
// (PM_SCAN_WP_MATCHING) — only in VMAs registered with an async
// userfaultfd; others are skipped by the kernel. Appends to `out`.
Status ScanWritten(int pagemap_fd, uint64_t start, uint64_t end, std::vector<ScanRun>& out);

}  // namespace ckpt::uffd
