// ckpt-bench: how fast does ckpt dump and restore a process, compared with
// what the machine can do at all (memcpy, write(2) to tmpfs, write(2)+fsync
// to disk), measured in the same run; and how its cost grows with the
// number of processes, threads and fds.
//
//   ckpt-bench --ckpt PATH [--only memory,tree,threads,fds,tcp,container,freeze,precopy,compress] [--size-mib 1024]
//              [--json FILE]
//              [--disk-dir DIR] [--tmpfs-dir DIR] [--runs 3] [--timeout SEC]
//              [--victim PATH] [--tree-sizes 1,10,100,300,1000]
//              [--tree-fanout 8] [--thread-counts 1,10,100,300,1000]
//              [--fd-counts 0,1000,10000] [--fd-files 256] [--tcp-counts 100,1000]
//
// Each section lives in its own file, this one sets up the media and runs
// them in turn; options in bench_options.cc, the report (tables and --json)
// in bench_report.h, the shared dump/restore driver in bench_round_trip.h.
//
// memory (bench_memory.cc): for every run and every medium (tmpfs, disk,
// page server, lazy) it starts
// ckpt-bench-victim holding SIZE MiB of random data, times
// `ckpt dump -t PID -D IMG`, reaps the victim, times `ckpt restore -D IMG -d`,
// then SIGTERMs the restored process, which exits 0 only if its memory
// checksum still matches.
//
// tree, threads, fds (bench_scale.cc): the same round trip, images on tmpfs, for a victim of
// each size N: a tree of N processes, one process with N threads, one
// process with N fds besides stdio. Before the dump ckpt-bench records what
// /proc shows (every pid and its parent; every tid; every fd number), and
// after the restore it must show exactly that again; then the SIGTERMed
// victim checks itself from inside (see bench_victim.cc) and must exit 0.
// The table shows per-object cost, growth relative to the smallest N, the
// marginal cost between sizes, a least-squares line and a growth exponent.
//
// tcp (bench_tcp.cc): dump and restore with --tcp-established of a process
// holding N established loopback connections; the victim checks them all.
//
// container (bench_container.cc): a 100-process tree whose root is pid 1 of
// new pid, uts, ipc and net namespaces, next to the same tree without them.
//
// precopy (bench_precopy.cc): a SIZE MiB process rewriting --precopy-rate
// MiB/s at random: cold full dump + restore against iterative pre-copy
// through a page server on loopback and the final pause.
//
// Best of the runs is reported. Any failed or wrong restore makes the exit
// status non-zero.
//
// ckpt-bench is a child subreaper, so the restored processes (and anything
// ckpt leaves behind) become its descendants; on exit, normal or not, it
// kills and reaps all of them, unmounts its tmpfs and removes its temp dirs.

#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "bench_compress.h"
#include "bench_container.h"
#include "bench_freeze.h"
#include "bench_memory.h"
#include "bench_options.h"
#include "bench_precopy.h"
#include "bench_report.h"
#include "bench_scale.h"
#include "bench_tcp.h"
#include "bench_util.h"

namespace {

using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing

int run(Options& o) {
  if (access(o.ckpt.c_str(), X_OK) != 0) fail_errno("ckpt binary " + o.ckpt);
  o.ckpt = abs_path(o.ckpt);
  if (o.victim.empty()) {
    std::string self = abs_path("/proc/self/exe");
    o.victim = self.substr(0, self.rfind('/')) + "/ckpt-bench-victim";
  }
  if (access(o.victim.c_str(), X_OK) != 0) fail_errno("victim binary " + o.victim);
  o.victim = abs_path(o.victim);

  // ---- media
  std::vector<Medium> media(4);
  Medium& tm = media[0];
  Medium& dk = media[1];
  Medium& ps = media[2];
  Medium& lz = media[3];
  tm.name = "tmpfs";
  dk.name = "disk";
  dk.fsync = true;
  ps.name = "pgsrv";
  ps.page_server = true;
  ps.same_as = &tm;
  lz.name = "lazy";
  lz.lazy = true;
  lz.same_as = &tm;

  std::string disk_parent = o.disk_dir.empty() ? "/var/tmp" : abs_path(o.disk_dir);
  dk.dir = make_temp_dir(disk_parent, "ckpt-bench");
  g_cleanup.dirs.push_back(dk.dir);
  long magic = 0;
  dk.desc = fs_type(dk.dir, &magic);
  if (magic == kTmpfsMagic)
    warn("disk dir " + dk.dir + " is on tmpfs: the 'disk' numbers measure memory");

  if (!o.tmpfs_dir.empty()) {
    tm.dir = make_temp_dir(abs_path(o.tmpfs_dir), "ckpt-bench");
    g_cleanup.dirs.push_back(tm.dir);
    tm.desc = "given";
  } else {
    std::string mnt = make_temp_dir("/tmp", "ckpt-bench-tmpfs");
    g_cleanup.dirs.push_back(mnt);
    // A limit, not an allocation: room for the memory images (and baseline
    // file), and at least 1 GiB for the scaling sections' images.
    std::string data =
        fmt("size=%" PRIu64 "m,mode=0700", std::max<uint64_t>(2 * o.size_mib + 256, 1024));
    if (mount("tmpfs", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, data.c_str()) == 0) {
      g_cleanup.mounts.push_back(mnt);
      tm.dir = mnt;
      tm.desc = "private mount";
    } else {
      warn(fmt("mount -t tmpfs on %s failed (%s); using /dev/shm", mnt.c_str(), strerror(errno)));
      tm.dir = make_temp_dir("/dev/shm", "ckpt-bench");
      g_cleanup.dirs.push_back(tm.dir);
      tm.desc = "/dev/shm";
    }
  }
  magic = 0;
  std::string tfs = fs_type(tm.dir, &magic);
  if (magic != kTmpfsMagic) warn("tmpfs dir " + tm.dir + " is on " + tfs + ", not tmpfs");
  tm.desc = tfs + ", " + tm.desc;
  // The page server's images are on the same tmpfs: the difference is the
  // loopback TCP hop (dump --page-server, `ckpt page-server` receiving).
  ps.dir = tm.dir + "/pgsrv";
  if (mkdir(ps.dir.c_str(), 0700) != 0) fail_errno("mkdir " + ps.dir);
  ps.desc = "page server on 127.0.0.1, images on " + tm.dir;
  lz.dir = tm.dir + "/lazy";
  if (mkdir(lz.dir.c_str(), 0700) != 0) fail_errno("mkdir " + lz.dir);
  lz.desc = "images on " + tm.dir + ", restore --lazy-pages from `ckpt lazy-pages`";

  const std::string work = dk.dir + "/work";
  if (mkdir(work.c_str(), 0700) != 0) fail_errno("mkdir " + work);
  write_file(work + "/victim.stdin", "");

  std::string sections;
  {
    std::istringstream all(section_names());  // in the order they run
    for (std::string name; std::getline(all, name, ',');) {
      name.erase(0, name.find_first_not_of(' '));
      if (o.on(name)) sections += (sections.empty() ? "" : ",") + name;
    }
  }
  printf("ckpt-bench: sections %s; best of %d run%s", sections.c_str(), o.runs,
         o.runs == 1 ? "" : "s");
  for (auto& [k, v] : ReportFields{{"ckpt", o.ckpt},
                                   {"sections", sections},
                                   {"runs", double(o.runs)},
                                   {"size_mib", double(o.size_mib)},
                                   {"tmpfs", tm.desc},
                                   {"disk", dk.desc},
                                   {"started_unix", double(time(nullptr))}})
    report().AddHeader(k, v);
  if (o.on("memory")) printf("; memory victim and baselines %" PRIu64 " MiB", o.size_mib);
  printf("\n");
  printf("  ckpt   %s\n", o.ckpt.c_str());
  printf("  tmpfs  %s (%s)\n", tm.dir.c_str(), tm.desc.c_str());
  printf("  disk   %s (%s)\n", dk.dir.c_str(), dk.desc.c_str());
  printf("  pgsrv  %s\n", ps.desc.c_str());
  printf("  lazy   %s\n", lz.desc.c_str());
  fflush(stdout);

  bool ok = true;
  std::string verified_str;
  auto verified = [&](const std::string& s) {
    verified_str += (verified_str.empty() ? "" : ", ") + s;
  };
  if (o.on("memory")) {  // bench_memory.cc
    MemoryBenchResult r =
        RunMemoryBench({o.ckpt, o.victim, work, o.size_mib, o.runs, o.timeout}, media);
    if (!r.ok) ok = false;
    verified(fmt("memory %d (checksums matched)", r.verified));
  }
  ScaleBenchOptions so{o.ckpt, o.victim, tm.dir, work, o.runs, o.timeout, {}, {}, {}, o.tree_fanout,
                       o.fd_files};
  if (o.on("tree")) so.tree_sizes = o.tree_sizes;
  if (o.on("threads")) so.thread_counts = o.thread_counts;
  if (o.on("fds")) so.fd_counts = o.fd_counts;
  if (!so.tree_sizes.empty() || !so.thread_counts.empty() || !so.fd_counts.empty()) {
    ScaleBenchResult r = RunScaleBench(so);  // bench_scale.cc
    if (!r.ok) ok = false;
    verified(r.verified);
  }
  if (o.on("tcp")) {  // bench_tcp.cc
    TcpBenchResult t =
        RunTcpBench({o.ckpt, o.victim, tm.dir, work, o.tcp_counts, o.runs, o.timeout, &g_stop});
    check_stop();
    if (!t.ok) ok = false;
    verified(fmt("tcp %d", t.verified));
  }
  if (o.on("container")) {  // bench_container.cc
    ContainerBenchResult ct =
        RunContainerBench({o.ckpt, o.victim, tm.dir, work, o.runs, o.timeout});
    if (!ct.ok) ok = false;
    verified(fmt("container %d", ct.verified));
  }

  if (o.on("freeze")) {  // bench_freeze.cc
    FreezeBenchResult fz =
        RunFreezeBench({o.ckpt, o.victim, tm.dir, work, o.size_mib, o.runs, o.timeout});
    check_stop();
    if (!fz.ok) ok = false;
    verified(fmt("freeze %d", fz.verified));
  }

  if (o.on("precopy")) {  // bench_precopy.cc
    PrecopyBenchResult pc = RunPrecopyBench(
        {o.ckpt, o.victim, tm.dir, work, o.size_mib, o.precopy_rate, 6, o.runs, o.timeout});
    check_stop();
    if (!pc.ok) ok = false;
    verified(fmt("precopy %d", pc.verified));
  }
  if (o.on("compress")) {  // bench_compress.cc
    CompressBenchResult cb = RunCompressBench(
        {o.ckpt, o.victim, tm.dir, work, o.size_mib, o.compress_levels, o.runs, o.timeout});
    if (!cb.ok) ok = false;
    verified(fmt("compress %d", cb.verified));
  }

  if (!report().notes().empty()) printf("\n");
  for (const auto& n : report().notes()) printf("note: %s\n", n.c_str());
  printf("\nresult: %s (verified restores: %s)\n", ok ? "PASS" : "FAIL", verified_str.c_str());
  if (!o.json.empty()) {
    report().AddHeader("result", std::string(ok ? "PASS" : "FAIL"));
    report().AddHeader("verified", verified_str);
    report().WriteTo(o.json);
    printf("report written to %s\n", o.json.c_str());
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  if (geteuid() != 0) {
    fprintf(stderr,
            "ckpt-bench: must run as root (ckpt needs it, and so does mounting the tmpfs)\n");
    return 2;
  }
  // Restored processes are reparented to the nearest child subreaper: us.
  // Also keeps any orphan ckpt leaves behind where we can reap it.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    perror("ckpt-bench: prctl(PR_SET_CHILD_SUBREAPER)");
    return 2;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;  // no SA_RESTART: waits wake up and see g_stop
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  int rc;
  try {
    rc = run(o);
  } catch (const Interrupted&) {
    progress_clear();
    fprintf(stderr, "ckpt-bench: interrupted, cleaning up\n");
    rc = 130;
  } catch (const std::exception& e) {
    progress_clear();
    fprintf(stderr, "ckpt-bench: error: %s\n", e.what());
    rc = 1;
  }
  cleanup_all();
  return rc;
}
