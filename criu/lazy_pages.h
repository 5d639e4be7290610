// Lazy restore (post-copy): the program runs at the destination before its
// memory has arrived.
//
//   ckpt lazy-pages -D DIR [--page-server --address A --port P] &   (1)
//   ckpt restore -D DIR --lazy-pages ...                              (2)
//
// (1) RunLazyPages loads DIR's images, forks its guard
// (criu/lazy_guard.h), listens on DIR/lazy-pages.sock (SOCK_SEQPACKET) and
// serves one restore. (2) Restore connects there first
// (ConnectLazyDaemon: no daemon, no restore) and every task's restorer,
// once its VMAs exist, registers the VMAs holding lazy pages
// (criu/lazy_plan.h) with a userfaultfd of its own mm, sends the fd with a
// LazyHello (parasite/abi.h) and closes it (the task's fd table ends as
// dumped). The daemon then answers faults (UFFDIO_COPY from the page
// source, UFFDIO_ZEROPAGE for pages the dump did not hold) and, once the
// restore says the tree runs, copies the rest in 1 MiB steps whenever no
// fault waits; it follows fork (the child's
// mm is owed what the parent still was), mremap, munmap and
// MADV_DONTNEED/REMOVE (those pages are no longer owed), and exits 0 once
// the restore's connection is closed (every task sent its fd) and no mm is
// owed a page: its fds close, the VMAs are ordinary memory again.
// Pages come from the image chain in DIR (pre-dump parents too) or from a
// lazy dump (`ckpt dump --lazy-pages --port P`, criu/lazy_source.h).
//
// If the daemon dies, the guard poisons what was still owed: the program
// gets SIGBUS on those pages, never zeros in place of its data.
#pragma once

#include <functional>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/options.h"
#include "criu/task_images.h"

namespace ckpt {

inline constexpr char kLazySocketName[] = "lazy-pages.sock";

// `ckpt lazy-pages`. `on_listening` once restores may connect.
Status RunLazyPages(const Options& o, const std::function<void()>& on_listening);

// Restore, before anything exists: what a lazy restore cannot do here (a
// tree with its own user namespace: its restorers may not make a
// userfaultfd that handles kernel faults unless vm.unprivileged_userfaultfd
// is 1).
Status CheckLazyTree(const TreeImages& tree);

// Restore, before anything exists: the daemon serving DIR, and the
// UFFDIO_API features the restorers ask for (*features).
Result<UniqueFd> ConnectLazyDaemon(const std::string& images_dir, uint64_t* features);

// Restore, after every restorer trapped and before the tree runs: tells
// the daemon `nr_tasks` fds were sent and waits until it holds them all
// (and its guard does), so a daemon dying later cannot lose one in flight.
Status LazyRestoreDone(int conn, size_t nr_tasks);

// Restore, once the tree runs: the daemon may copy in the background (it
// waits so as not to compete with the end of the restore).
void LazyTreeRuns(int conn);

// `ckpt check`: one line on whether lazy restore works here.
std::string DescribeLazySupport();

}  // namespace ckpt
