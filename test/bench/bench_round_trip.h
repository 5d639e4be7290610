// One dump+restore round trip of a fresh ckpt-bench-victim, the driver the
// memory and scaling sections share: start the victim and wait for READY,
// time `ckpt dump` (optionally through a `ckpt page-server` on loopback),
// check the dumped processes are gone, time `ckpt restore -d` (optionally
// --lazy-pages with a `ckpt lazy-pages` daemon, until every page is in),
// check the restored root from outside (pid file, same pid, same binary,
// our child, not a zombie), then SIGTERM it: the victim checks itself from
// inside and must exit 0. Throws RunFailure on any misbehaviour, with the
// tails of the logs; removes its logs and images when it succeeds.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "bench_util.h"

namespace bench {

struct RoundTripSpec {
  std::string ckpt;
  std::vector<std::string> victim_argv;  // [0] is the victim binary
  std::string work;        // cwd of the victim; holds victim.stdin
  std::string log_prefix;  // path prefix of this run's logs, e.g. WORK/tmpfs-run1-
  std::string dir;         // the medium's dir: images go to DIR/images
  std::string step;        // progress label, e.g. "run 1/3 tmpfs"
  double timeout = 300;
  bool page_server = false;  // dump --page-server to a `ckpt page-server` into DIR/server
  bool lazy = false;         // restore --lazy-pages from a `ckpt lazy-pages -D DIR/images`
  // "(what an exit status 1 of the SIGTERMed victim means)", e.g. a checksum mismatch.
  std::string exit1_means;
  // After READY: the dumped processes' pids (the root's by default: {root})
  // so the driver waits until all are gone; may throw RunFailure.
  std::function<std::vector<pid_t>(pid_t root)> after_ready;
  // After the restore returned and the root passed the outside checks,
  // before SIGTERM; may throw RunFailure.
  std::function<void(pid_t root)> after_restore;
  // Non-fatal oddities (said once per run of ckpt-bench by the caller).
  std::function<void(const std::string&)> note;
};

struct RoundTripResult {
  double dump_s = 0;     // `ckpt dump` until it exited
  double restore_s = 0;  // `ckpt restore -d` until it returned (the task runs)
  double all_in_s = 0;   // lazy: from the restore's start until the daemon exited
  Usage images;          // the image directory after the dump
  long dump_rss_kib = 0, restore_rss_kib = 0;  // ckpt's peak memory (ru_maxrss)
};

RoundTripResult RoundTrip(const RoundTripSpec& s);

}  // namespace bench
