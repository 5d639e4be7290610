// ckpt-bench: how fast does ckpt dump and restore a process, compared with
// what the machine can do at all (memcpy, write(2) to tmpfs, write(2)+fsync
// to disk), measured in the same run; and how its cost grows with the
// number of processes, threads and fds.
//
//   ckpt-bench --ckpt PATH [--only memory,tree,threads,fds,tcp,container,precopy] [--size-mib 1024]
//              [--disk-dir DIR] [--tmpfs-dir DIR] [--runs 3] [--timeout SEC]
//              [--victim PATH] [--tree-sizes 1,10,100,300,1000]
//              [--tree-fanout 8] [--thread-counts 1,10,100,300,1000]
//              [--fd-counts 0,1000,10000] [--fd-files 256] [--tcp-counts 100,1000]
//
// memory: for every run and every medium (tmpfs, disk) it starts
// ckpt-bench-victim holding SIZE MiB of random data, times
// `ckpt dump -t PID -D IMG`, reaps the victim, times `ckpt restore -D IMG -d`,
// then SIGTERMs the restored process, which exits 0 only if its memory
// checksum still matches.
//
// tree, threads, fds: the same round trip, images on tmpfs, for a victim of
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

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_baselines.h"
#include "bench_ckpt_run.h"
#include "bench_container.h"
#include "bench_precopy.h"
#include "bench_tcp.h"
#include "bench_util.h"

namespace {

using namespace bench;  // NOLINT(google-build-using-namespace): the bench's own plumbing

// ---------------------------------------------------------- baselines ----

struct Timing {
  std::vector<double> runs;
  std::string error;  // non-empty: failed
  double best() const { return runs.empty() ? NAN : *std::min_element(runs.begin(), runs.end()); }
};

struct Buffer {
  uint8_t* p = nullptr;
  size_t n = 0;
  explicit Buffer(size_t bytes) : n(bytes) {
    void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) fail_errno(fmt("mmap %zu bytes", n));
    p = static_cast<uint8_t*>(m);
  }
  ~Buffer() {
    if (p) munmap(p, n);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void fill_pattern(Buffer& b) {
  uint64_t x = 0x243f6a8885a308d3ULL;
  auto* w = reinterpret_cast<uint64_t*>(b.p);
  for (size_t i = 0; i < b.n / 8; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = x;
  }
}

Timing bench_memcpy(const Buffer& src, int runs) {
  Buffer dst(src.n);
  memset(dst.p, 1, dst.n);  // pre-fault
  Timing t;
  for (int i = 0; i < runs; i++) {
    check_stop();
    progress(fmt("baseline memcpy run %d/%d", i + 1, runs));
    double t0 = now();
    memcpy(dst.p, src.p, src.n);
    asm volatile("" : : "r"(dst.p) : "memory");
    t.runs.push_back(now() - t0);
  }
  return t;
}

Timing bench_write(const Buffer& src, const std::string& dir, bool do_fsync, int runs,
                   const char* label) {
  constexpr size_t kChunk = 8 << 20;
  Timing t;
  std::string path = dir + "/write-baseline.dat";
  for (int i = 0; i < runs; i++) {
    check_stop();
    progress(fmt("baseline %s run %d/%d", label, i + 1, runs));
    double t0 = now();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) fail_errno("open " + path);
    size_t off = 0;
    while (off < src.n) {
      ssize_t r = write(fd, src.p + off, std::min(kChunk, src.n - off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        int e = errno;
        close(fd);
        unlink(path.c_str());
        errno = e;
        fail_errno("write " + path);
      }
      off += static_cast<size_t>(r);
    }
    if (do_fsync && fsync(fd) != 0) {
      int e = errno;
      close(fd);
      unlink(path.c_str());
      errno = e;
      fail_errno("fsync " + path);
    }
    close(fd);
    t.runs.push_back(now() - t0);
    unlink(path.c_str());
  }
  return t;
}

// --------------------------------------------------------------- ckpt ----

struct Options {
  std::string ckpt;
  std::string victim;
  uint64_t size_mib = 1024;
  std::string disk_dir;
  std::string tmpfs_dir;
  int runs = 3;
  double timeout = 300;
  // Sections (--only) and their sizes.
  bool memory = true, tree = true, threads = true, fds = true, tcp = true, container = true,
       precopy = true;
  uint64_t precopy_rate = 64;  // MiB/s the precopy victim rewrites
  std::vector<long> tree_sizes{1, 10, 100, 300, 1000};
  long tree_fanout = 8;
  std::vector<long> thread_counts{1, 10, 100, 300, 1000};
  std::vector<long> fd_counts{0, 1000, 10000};
  long fd_files = 256;  // distinct files among the fds; the rest are dups
  std::vector<long> tcp_counts{100, 1000};
};

struct Medium {
  const char* name;          // "tmpfs" / "disk" / "pgsrv" (memory through a page server, on tmpfs)
  bool page_server = false;  // dump --page-server to a `ckpt page-server` on loopback
  bool lazy = false;         // restore --lazy-pages with a `ckpt lazy-pages` (images on tmpfs)
  Timing all_in;             // lazy: from restore start until the daemon has every page in
  std::string dir;           // our private temp dir on that medium
  std::string desc;          // how it was set up, for the header
  Timing write;              // write(2) baseline on this medium
  std::vector<double> read_touch;              // restore baseline (bench_baselines.h)
  std::vector<long> dump_rss, restore_rss;     // ckpt's ru_maxrss, KiB
  Timing dump, restore;
  std::optional<Usage> images;
  std::string error;  // first failure, if any
  int verified = 0;   // restores whose memory checksum matched
};

struct Ctx {
  Options opt;
  std::string work;                // logs and the victim's stdio files (on the disk dir)
  std::vector<std::string> notes;  // non-fatal ckpt oddities, printed at the end
};

void note_once(Ctx& c, const std::string& s) {
  if (std::find(c.notes.begin(), c.notes.end(), s) == c.notes.end()) {
    c.notes.push_back(s);
    warn(s);
  }
}

// `ckpt lazy-pages -D img`, once it listens (criu/lazy_pages.h).
pid_t start_lazy_daemon(Ctx& c, const std::string& img, const std::string& log) {
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) fail_errno("pipe");
  pid_t lp = fork();
  if (lp < 0) fail_errno("fork");
  if (lp == 0) {
    if (dup2(st[1], 3) < 0) _exit(127);
    execl(c.opt.ckpt.c_str(), c.opt.ckpt.c_str(), "lazy-pages", "-D", img.c_str(), "--status-fd",
          "3", "-o", log.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(st[1]);
  struct pollfd pfd = {st[0], POLLIN, 0};
  char ch;
  bool up = poll(&pfd, 1, 30000) == 1 && read(st[0], &ch, 1) == 1;
  close(st[0]);
  if (!up)
    throw RunFailure(with_log("the lazy-pages daemon did not start", {{"lazy-pages log", log}}));
  return lp;
}

// After a dump through a page server: waits for the server to end and moves
// its files into the image directory, as a migration would copy them.
void join_page_server_images(pid_t server, const std::string& srv, const std::string& img,
                             const std::string& s_log) {
  std::optional<int> sst = wait_exit(server, 30);
  if (!sst || !WIFEXITED(*sst) || WEXITSTATUS(*sst) != 0)
    throw RunFailure(with_log("the page server did not end well", {{"page server log", s_log}}));
  for (const auto& e : std::filesystem::directory_iterator(srv))
    std::filesystem::rename(e.path(), img + "/" + e.path().filename().string());
  rm_rf(srv);
  unlink(s_log.c_str());
}

// One dump+restore round trip of a fresh victim with images on medium m.
void ckpt_round_trip(Ctx& c, Medium& m, int run) {
  const std::string img = m.dir + "/images";
  const std::string pre = fmt("%s/%s-run%d-", c.work.c_str(), m.name, run);
  const std::string v_in = c.work + "/victim.stdin";
  const std::string v_out = pre + "victim.stdout", v_err = pre + "victim.stderr";
  const std::string d_log = pre + "dump.log", d_out = pre + "dump.out";
  const std::string r_out = pre + "restore.out", r_pid = pre + "restore.pid";

  rm_rf(img);
  if (mkdir(img.c_str(), 0700) != 0) fail_errno("mkdir " + img);

  progress(fmt("run %d/%d %s: starting victim (%" PRIu64 " MiB)", run, c.opt.runs, m.name,
               c.opt.size_mib));
  pid_t pid =
      spawn({c.opt.victim, std::to_string(c.opt.size_mib)}, {v_in, v_out, v_err}, true, c.work);
  wait_ready(pid, v_out, v_err, c.opt.timeout);

  // ---- dump
  progress(fmt("run %d/%d %s: ckpt dump", run, c.opt.runs, m.name));
  const std::string srv = m.dir + "/server", s_log = pre + "page-server.log";
  std::vector<std::string> dump_argv = {c.opt.ckpt, "dump", "-t", std::to_string(pid),
                                        "-D",       img,    "-o", d_log};
  pid_t server = 0;
  if (m.page_server) {
    rm_rf(srv);
    int port = 0;
    server = start_page_server(c.opt.ckpt, srv, s_log, &port);
    dump_argv.insert(dump_argv.end(),
                     {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port)});
  }
  double t0 = now(), t1 = 0;
  struct rusage d_ru = {}, r_ru = {};
  pid_t d = spawn(dump_argv, {"/dev/null", d_out, d_out}, false);
  std::optional<int> st = wait_exit(d, c.opt.timeout, &t1, &d_ru);
  if (!st)
    throw RunFailure(
        with_log(fmt("ckpt dump did not finish within %.0f s; processes:\n", c.opt.timeout) +
                     describe_tree(d) + describe_tree(pid),
                 {{"ckpt output", d_out}, {"dump log", d_log}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(with_log("ckpt dump " + describe_status(*st),
                              {{"ckpt output", d_out}, {"dump log", d_log}}));
  double dump_s = t1 - t0;
  if (server) join_page_server_images(server, srv, img, s_log);

  std::optional<int> vst = wait_exit(pid, 30);
  if (!vst)
    throw RunFailure(
        fmt("ckpt dump exited 0 but the dumped task %d is still alive 30 s later", pid));
  if (!WIFSIGNALED(*vst) || WTERMSIG(*vst) != SIGKILL)
    note_once(c, "after ckpt dump the victim " + describe_status(*vst) +
                     " (expected: killed by SIGKILL)");
  m.images = dir_usage(img);
  if (m.images->files == 0)
    throw RunFailure("ckpt dump exited 0 but wrote no image files into " + img);

  // ---- restore
  progress(fmt("run %d/%d %s: ckpt restore", run, c.opt.runs, m.name));
  const std::string l_log = pre + "lazy-pages.log";
  std::vector<std::string> restore_argv = {c.opt.ckpt, "restore", "-D", img, "-d", "--pidfile",
                                           r_pid};
  pid_t lazy = 0;
  if (m.lazy) {
    lazy = start_lazy_daemon(c, img, l_log);
    restore_argv.push_back("--lazy-pages");
  }
  t0 = now();
  pid_t r = spawn(restore_argv, {"/dev/null", r_out, r_out}, false);
  st = wait_exit(r, c.opt.timeout, &t1, &r_ru);
  if (!st)
    throw RunFailure(
        with_log(fmt("ckpt restore -d did not return within %.0f s; processes:\n", c.opt.timeout) +
                     describe_tree(r),
                 {{"ckpt output", r_out}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(with_log("ckpt restore " + describe_status(*st), {{"ckpt output", r_out}}));
  double restore_s = t1 - t0;
  double all_in_s = 0;
  if (lazy) {  // the victim runs; its memory arrives until the daemon exits
    std::optional<int> lst = wait_exit(lazy, c.opt.timeout, &t1);
    if (!lst || !WIFEXITED(*lst) || WEXITSTATUS(*lst) != 0)
      throw RunFailure(with_log("the lazy-pages daemon did not end well", {{"lazy-pages log", l_log}}));
    all_in_s = t1 - t0;
    unlink(l_log.c_str());
  }

  std::string pf = read_file(r_pid);
  if (pf.empty())
    note_once(c, "ckpt restore --pidfile wrote no pid file");
  else if (atoi(pf.c_str()) != pid)
    throw RunFailure(
        fmt("ckpt restore --pidfile says pid %d, dumped pid was %d", atoi(pf.c_str()), pid));

  char state = 0;
  pid_t ppid = 0;
  if (!proc_stat(pid, &state, &ppid))
    throw RunFailure(with_log(fmt("ckpt restore exited 0 but there is no process %d", pid),
                              {{"ckpt output", r_out}}));
  char exe[PATH_MAX];
  ssize_t n = readlink(fmt("/proc/%d/exe", pid).c_str(), exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = 0;
    if (c.opt.victim != exe)
      throw RunFailure(fmt("restored process %d runs %s, not %s", pid, exe, c.opt.victim.c_str()));
  }
  if (ppid != getpid()) {
    // Not ours to reap, but it is the restored victim: do not leave it behind.
    if (n > 0) kill(pid, SIGKILL);
    throw RunFailure(
        fmt("restored process %d has parent %d, not ckpt-bench (%d), the child subreaper", pid,
            ppid, getpid()));
  }
  if (state == 'Z') {
    std::optional<int> zst = wait_exit(pid, 5);
    throw RunFailure(with_log("restored process " +
                                  (zst ? describe_status(*zst) : std::string("is a zombie")) +
                                  " before it was signalled",
                              {{"victim stderr", v_err}, {"ckpt output", r_out}}));
  }

  // ---- verify: the victim checks its memory on SIGTERM
  progress(fmt("run %d/%d %s: verifying restored memory", run, c.opt.runs, m.name));
  if (kill(pid, SIGTERM) != 0) fail_errno(fmt("kill(%d, SIGTERM)", pid));
  vst = wait_exit(pid, c.opt.timeout);
  if (!vst)
    throw RunFailure(
        fmt("restored process %d did not exit within %.0f s of SIGTERM", pid, c.opt.timeout));
  if (!WIFEXITED(*vst) || WEXITSTATUS(*vst) != 0) {
    std::string why = WIFEXITED(*vst) && WEXITSTATUS(*vst) == 1
                          ? " (memory checksum mismatch: wrong restore)"
                          : "";
    throw RunFailure(
        with_log("restored process " + describe_status(*vst) + why, {{"victim stderr", v_err}}));
  }
  m.verified++;
  m.dump.runs.push_back(dump_s);
  m.restore.runs.push_back(restore_s);
  m.dump_rss.push_back(d_ru.ru_maxrss);
  m.restore_rss.push_back(r_ru.ru_maxrss);
  if (m.lazy) m.all_in.runs.push_back(all_in_s);

  int leftover = kill_all_children();
  if (leftover > 0)
    note_once(c, fmt("%d process(es) were left running after a dump/restore round trip (killed)",
                     leftover));
  rm_rf(img);
  for (const auto& f : {v_out, v_err, d_log, d_out, r_out, r_pid}) unlink(f.c_str());
}

// ------------------------------------------------- scaling sections ----
//
// Process trees, threads and fds: one row per size N, each row a fresh
// victim per run, images on tmpfs (the cost measured is per object, not
// I/O). The victim verifies itself on SIGTERM; ckpt-bench also compares
// what /proc shows before the dump and after the restore.

enum class Kind { Tree, Threads, Fds };

struct ScaleRow {
  long n = 0;
  Timing dump, restore;
  std::optional<Usage> images;
  std::string error;  // first failure, if any; the row is not run again
  int verified = 0;
};

struct Section {
  Kind kind;
  const char* key;   // --only name
  const char* unit;  // "proc", "thread", "fd"
  const char* per;   // per-unit column label, e.g. "ms/proc"
  double per_scale;  // seconds -> that column's unit
  std::vector<ScaleRow> rows;
};

// What /proc shows of a victim: id -> parent id. Tree: pid -> ppid of
// every process from the root down. Threads: tid -> pid. Fds: fd -> 0.
using Snapshot = std::map<long, long>;

std::vector<long> list_dir_numbers(const std::string& path) {
  std::vector<long> r;
  DIR* d = opendir(path.c_str());
  if (!d) return r;
  while (struct dirent* e = readdir(d))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') r.push_back(atol(e->d_name));
  closedir(d);
  return r;
}

Snapshot snapshot(Kind k, pid_t root) {
  Snapshot s;
  if (k == Kind::Threads) {
    for (long t : list_dir_numbers(fmt("/proc/%d/task", root))) s[t] = root;
  } else if (k == Kind::Fds) {
    for (long fd : list_dir_numbers(fmt("/proc/%d/fd", root))) s[fd] = 0;
  } else {
    char state;
    pid_t ppid;
    if (!proc_stat(root, &state, &ppid)) return s;
    s[root] = ppid;
    std::vector<pid_t> todo{root};
    while (!todo.empty()) {
      pid_t p = todo.back();
      todo.pop_back();
      std::istringstream kids(read_file(fmt("/proc/%d/task/%d/children", p, p)));
      for (pid_t c; kids >> c;) {
        if (s.count(c)) continue;
        s[c] = p;
        todo.push_back(c);
      }
    }
  }
  return s;
}

// "" if equal, else what differs, with a few examples.
std::string diff_snapshots(Kind k, const Snapshot& before, const Snapshot& after) {
  const char* what = k == Kind::Tree ? "pid" : k == Kind::Threads ? "tid" : "fd";
  std::vector<long> missing, extra;
  std::vector<std::string> moved;
  for (const auto& [id, parent] : before) {
    auto it = after.find(id);
    if (it == after.end())
      missing.push_back(id);
    else if (it->second != parent)
      moved.push_back(fmt("%s %ld has parent %ld, had %ld", what, id, it->second, parent));
  }
  for (const auto& [id, parent] : after)
    if (!before.count(id)) extra.push_back(id);
  if (missing.empty() && extra.empty() && moved.empty()) return "";
  auto some = [](const std::vector<long>& v) {
    std::string r;
    for (size_t i = 0; i < v.size() && i < 5; i++) r += fmt("%s%ld", i ? ", " : "", v[i]);
    return r + (v.size() > 5 ? ", ..." : "");
  };
  std::string r = fmt("after restore /proc shows %zu %ss, before the dump %zu", after.size(), what,
                      before.size());
  if (!missing.empty()) r += fmt("; %zu missing (%s)", missing.size(), some(missing).c_str());
  if (!extra.empty()) r += fmt("; %zu unexpected (%s)", extra.size(), some(extra).c_str());
  if (!moved.empty())
    r += fmt("; %zu with another parent (%s%s)", moved.size(), moved[0].c_str(),
             moved.size() > 1 ? ", ..." : "");
  return r;
}

// Reaps children until none of `pids` exists any more (zombies included:
// they still hold their pid, and the restore needs it).
void reap_until_gone(const std::vector<pid_t>& pids, double timeout_s) {
  double deadline = now() + timeout_s;
  for (;;) {
    int st;
    while (waitpid(-1, &st, WNOHANG) > 0) {
    }
    size_t alive = 0;
    pid_t example = 0;
    for (pid_t p : pids) {
      if (kill(p, 0) == 0 || errno != ESRCH) {
        if (alive++ == 0) example = p;
      }
    }
    if (alive == 0) return;
    check_stop();
    if (now() > deadline) {
      char state = '?';
      pid_t ppid = 0;
      proc_stat(example, &state, &ppid);
      throw RunFailure(
          fmt("ckpt dump exited 0 but %zu of the %zu dumped processes still exist %.0f s later "
              "(e.g. pid %d, state %c, parent %d)",
              alive, pids.size(), timeout_s, example, state, ppid));
    }
    sleep_ms(2);
  }
}

std::vector<std::string> victim_argv(const Ctx& c, Kind k, long n, const std::string& fd_dir) {
  switch (k) {
    case Kind::Tree:
      return {c.opt.victim, "tree", std::to_string(n), std::to_string(c.opt.tree_fanout)};
    case Kind::Threads:
      return {c.opt.victim, "threads", std::to_string(n)};
    case Kind::Fds:
      return {c.opt.victim, "fds", std::to_string(n), fd_dir, std::to_string(c.opt.fd_files)};
  }
  return {};
}

// How many entries the snapshot of a ready victim of size n must have.
size_t expected_entries(Kind k, long n) { return static_cast<size_t>(k == Kind::Fds ? n + 3 : n); }

// One dump+restore round trip of a fresh size-n victim, images on medium m.
void scale_round_trip(Ctx& c, Section& sec, ScaleRow& row, Medium& m, int run) {
  const long n = row.n;
  const std::string img = m.dir + "/images";
  const std::string pre = fmt("%s/%s-%ld-run%d-", c.work.c_str(), sec.key, n, run);
  const std::string v_in = c.work + "/victim.stdin";
  const std::string v_out = pre + "victim.stdout", v_err = pre + "victim.stderr";
  const std::string d_log = pre + "dump.log", d_out = pre + "dump.out";
  const std::string r_out = pre + "restore.out", r_pid = pre + "restore.pid";
  const std::string fd_dir = c.work + "/fd-files";
  const std::string step = fmt("run %d/%d %s N=%ld", run, c.opt.runs, sec.key, n);

  rm_rf(img);
  if (mkdir(img.c_str(), 0700) != 0) fail_errno("mkdir " + img);
  if (sec.kind == Kind::Fds) {
    rm_rf(fd_dir);
    if (mkdir(fd_dir.c_str(), 0700) != 0) fail_errno("mkdir " + fd_dir);
  }

  progress(step + ": starting victim");
  pid_t pid = spawn(victim_argv(c, sec.kind, n, fd_dir), {v_in, v_out, v_err}, true, c.work);
  wait_ready(pid, v_out, v_err, c.opt.timeout);

  const Snapshot before = snapshot(sec.kind, pid);
  if (before.size() != expected_entries(sec.kind, n))
    throw RunFailure(with_log(fmt("the READY victim shows %zu entries in /proc, expected %zu",
                                  before.size(), expected_entries(sec.kind, n)),
                              {{"victim stderr", v_err}}));
  std::vector<pid_t> pids{pid};
  if (sec.kind == Kind::Tree) {
    pids.clear();
    for (const auto& e : before) pids.push_back(static_cast<pid_t>(e.first));
  }

  // ---- dump
  progress(step + ": ckpt dump");
  const std::string srv = m.dir + "/server", s_log = pre + "page-server.log";
  std::vector<std::string> dump_argv = {c.opt.ckpt, "dump", "-t", std::to_string(pid),
                                        "-D",       img,    "-o", d_log};
  pid_t server = 0;
  if (m.page_server) {
    rm_rf(srv);
    int port = 0;
    server = start_page_server(c.opt.ckpt, srv, s_log, &port);
    dump_argv.insert(dump_argv.end(),
                     {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port)});
  }
  double t0 = now(), t1 = 0;
  pid_t d = spawn(dump_argv, {"/dev/null", d_out, d_out}, false);
  std::optional<int> st = wait_exit(d, c.opt.timeout, &t1);
  if (!st)
    throw RunFailure(
        with_log(fmt("ckpt dump did not finish within %.0f s; processes:\n", c.opt.timeout) +
                     describe_tree(d) + describe_tree(pid),
                 {{"ckpt output", d_out}, {"dump log", d_log}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(with_log("ckpt dump " + describe_status(*st),
                              {{"ckpt output", d_out}, {"dump log", d_log}}));
  const double dump_s = t1 - t0;
  if (server) join_page_server_images(server, srv, img, s_log);

  std::optional<int> vst = wait_exit(pid, 30);
  if (!vst)
    throw RunFailure(
        fmt("ckpt dump exited 0 but the dumped root %d is still alive 30 s later", pid));
  if (!WIFSIGNALED(*vst) || WTERMSIG(*vst) != SIGKILL)
    note_once(c, "after ckpt dump the victim " + describe_status(*vst) +
                     " (expected: killed by SIGKILL)");
  reap_until_gone(pids, 30);
  row.images = dir_usage(img);
  if (row.images->files == 0)
    throw RunFailure("ckpt dump exited 0 but wrote no image files into " + img);

  // ---- restore
  progress(step + ": ckpt restore");
  t0 = now();
  pid_t r = spawn({c.opt.ckpt, "restore", "-D", img, "-d", "--pidfile", r_pid},
                  {"/dev/null", r_out, r_out}, false);
  st = wait_exit(r, c.opt.timeout, &t1);
  if (!st)
    throw RunFailure(
        with_log(fmt("ckpt restore -d did not return within %.0f s; processes:\n", c.opt.timeout) +
                     describe_tree(r),
                 {{"ckpt output", r_out}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(with_log("ckpt restore " + describe_status(*st), {{"ckpt output", r_out}}));
  const double restore_s = t1 - t0;

  std::string pf = read_file(r_pid);
  if (pf.empty())
    note_once(c, "ckpt restore --pidfile wrote no pid file");
  else if (atoi(pf.c_str()) != pid)
    throw RunFailure(
        fmt("ckpt restore --pidfile says pid %d, dumped pid was %d", atoi(pf.c_str()), pid));

  char state = 0;
  pid_t ppid = 0;
  if (!proc_stat(pid, &state, &ppid))
    throw RunFailure(with_log(fmt("ckpt restore exited 0 but there is no process %d", pid),
                              {{"ckpt output", r_out}}));
  if (ppid != getpid())
    throw RunFailure(fmt("restored root %d has parent %d, not ckpt-bench (%d), the child subreaper",
                         pid, ppid, getpid()));
  if (state == 'Z') {
    std::optional<int> zst = wait_exit(pid, 5);
    throw RunFailure(with_log("restored root " +
                                  (zst ? describe_status(*zst) : std::string("is a zombie")) +
                                  " before it was signalled",
                              {{"victim stderr", v_err}, {"ckpt output", r_out}}));
  }
  const Snapshot after = snapshot(sec.kind, pid);
  std::string diff = diff_snapshots(sec.kind, before, after);
  if (!diff.empty()) throw RunFailure(diff);
  if (sec.kind == Kind::Tree) {
    for (pid_t p : pids) {
      if (proc_stat(p, &state, &ppid) && state == 'Z')
        throw RunFailure(fmt("restored process %d is a zombie before it was signalled", p));
    }
  }

  // ---- verify: the victim checks itself on SIGTERM
  progress(step + ": verifying");
  if (kill(pid, SIGTERM) != 0) fail_errno(fmt("kill(%d, SIGTERM)", pid));
  vst = wait_exit(pid, c.opt.timeout);
  if (!vst)
    throw RunFailure(
        with_log(fmt("restored root %d did not exit within %.0f s of SIGTERM; processes:\n", pid,
                     c.opt.timeout) +
                     describe_tree(pid),
                 {{"victim stderr", v_err}}));
  if (!WIFEXITED(*vst) || WEXITSTATUS(*vst) != 0) {
    std::string why = WIFEXITED(*vst) && WEXITSTATUS(*vst) == 1
                          ? " (the victim found its restored state wrong)"
                          : "";
    throw RunFailure(
        with_log("restored root " + describe_status(*vst) + why, {{"victim stderr", v_err}}));
  }
  row.verified++;
  row.dump.runs.push_back(dump_s);
  row.restore.runs.push_back(restore_s);

  int leftover = kill_all_children();
  if (leftover > 0)
    note_once(c, fmt("%d process(es) were left running after a %s round trip (killed)", leftover,
                     sec.key));
  rm_rf(img);
  if (sec.kind == Kind::Fds) rm_rf(fd_dir);
  for (const auto& f : {v_out, v_err, d_log, d_out, r_out, r_pid}) unlink(f.c_str());
}

void run_section(Ctx& c, Section& sec, Medium& m) {
  // The fds victim inherits our RLIMIT_NOFILE; say up front if the hard
  // limit cannot hold a row (the victim would exit 3 anyway).
  if (sec.kind == Kind::Fds) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    for (ScaleRow& row : sec.rows) {
      rlim_t need = static_cast<rlim_t>(row.n) + 3 + 8;
      if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        row.error =
            fmt("RLIMIT_NOFILE hard limit %llu is too low for %ld fds (needs %llu; raise it, e.g. "
                "ulimit -Hn %llu)",
                static_cast<unsigned long long>(rl.rlim_max), row.n,
                static_cast<unsigned long long>(need), static_cast<unsigned long long>(need));
    }
  }
  // Sizes interleaved per run, so slow drifts hit all sizes alike.
  for (int run = 1; run <= c.opt.runs; run++) {
    for (ScaleRow& row : sec.rows) {
      if (!row.error.empty()) continue;
      try {
        scale_round_trip(c, sec, row, m, run);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        row.error = fmt("run %d: ", run) + e.what();
        progress_clear();
        fprintf(stderr, "ckpt-bench: FAIL (%s, N=%ld) %s\n", sec.key, row.n, row.error.c_str());
        kill_all_children();
        rm_rf(m.dir + "/images");
        rm_rf(c.work + "/fd-files");
      }
    }
  }
  progress_clear();
}

// -------------------------------------------------------------- output ----

constexpr double kGB = 1e9;

std::string runs_str(const Timing& t) {
  std::string s;
  for (double r : t.runs) s += fmt(" %.3f", r);
  return s.empty() ? s : s.substr(1);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string ratio_str(double r) { return std::isfinite(r) ? fmt("%.2fx", r) : std::string("-"); }

void print_report(const Ctx& c, const Timing& mc, const std::vector<Medium>& media) {
  const uint64_t bytes = c.opt.size_mib << 20;
  const double gb = static_cast<double>(bytes) / kGB;
  auto gbps = [&](const Timing& t) { return t.runs.empty() ? NAN : gb / t.best(); };
  // Columns: label, best s, GB/s, [vs memcpy, vs write], all runs.
  const char* row = "  %-24s %8.3f %8.2f";
  auto header = [](const std::string& title, bool ratios) {
    printf("\n%-26s %8s %8s", title.c_str(), "best s", "GB/s");
    if (ratios) printf(" %10s %9s", "vs memcpy", "vs write");
    printf("   %s\n", "all runs (s)");
  };

  header(fmt("baselines, %" PRIu64 " MiB", c.opt.size_mib), false);
  printf(row, "memcpy", mc.best(), gbps(mc));
  printf("   %s\n", runs_str(mc).c_str());
  for (const Medium& m : media) {
    std::string label =
        std::string("write(2)") + (std::string(m.name) == "disk" ? "+fsync " : " ") + m.name;
    if (!m.write.error.empty()) {
      printf("  %-24s FAILED: %s\n", label.c_str(), first_line(m.write.error).c_str());
      continue;
    }
    printf(row, label.c_str(), m.write.best(), gbps(m.write));
    printf("   %s\n", runs_str(m.write).c_str());
  }

  header(fmt("ckpt, victim %" PRIu64 " MiB", c.opt.size_mib), true);
  for (const char* op : {"dump", "restore"}) {
    for (const Medium& m : media) {
      const Timing& t = std::string(op) == "dump" ? m.dump : m.restore;
      std::string label = fmt("%-8s images on %s", op, m.name);
      if (t.runs.empty()) {
        printf("  %-24s FAILED (no verified round trip)\n", label.c_str());
        continue;
      }
      double g = gbps(t);
      printf(row, label.c_str(), t.best(), g);
      printf(" %10s %9s   %s%s\n", ratio_str(g / gbps(mc)).c_str(),
             ratio_str(g / gbps(m.write)).c_str(), runs_str(t).c_str(),
             m.error.empty() ? "" : " then FAILED");
    }
  }
  for (const Medium& m : media) {
    if (!m.lazy || m.all_in.runs.empty()) continue;
    double g = gbps(m.all_in);
    printf(row, "all pages in, lazy", m.all_in.best(), g);
    printf(" %10s %9s   %s\n", ratio_str(g / gbps(mc)).c_str(),
           ratio_str(g / gbps(m.write)).c_str(), runs_str(m.all_in).c_str());
  }
  printf(
      "  vs X = ckpt GB/s / baseline GB/s ('write' = the write(2) baseline on the same medium); GB "
      "= 1e9 B\n"
      "  lazy = images on tmpfs, `ckpt restore -d --lazy-pages` with `ckpt lazy-pages`: restore\n"
      "  until the task runs again; all pages in = from restore start until the daemon exits\n"
      "  dump = `ckpt dump` until it exits (task killed); restore = `ckpt restore -d` until it "
      "returns\n"
      "  (task running); disk restores read images the dump just wrote, mostly from the page "
      "cache\n");

  printf("\nimages vs victim memory (%" PRIu64 " MiB)\n", c.opt.size_mib);
  for (const Medium& m : media) {
    if (!m.images) {
      printf("  %-6s no images\n", m.name);
      continue;
    }
    const Usage& u = *m.images;
    auto mib = [](uint64_t v) { return static_cast<double>(v) / (1 << 20); };
    auto rel = [&](uint64_t v) { return static_cast<double>(v) / static_cast<double>(bytes); };
    printf("  %-6s %9.1f MiB allocated (%.3fx), %9.1f MiB apparent (%.3fx), %" PRIu64 " files\n",
           m.name, mib(u.allocated), rel(u.allocated), mib(u.apparent), rel(u.apparent), u.files);
  }

  bool header_done = false;
  for (const Medium& m : media) {
    if (m.error.empty()) continue;
    if (!header_done) printf("\nfailures (details on stderr)\n");
    header_done = true;
    printf("  %-6s %s\n", m.name, first_line(m.error).c_str());
  }
}

// Least-squares line t = a + b*n through the rows' best times; false if
// fewer than two distinct sizes succeeded.
bool fit_line(const std::vector<std::pair<double, double>>& pts, double* a, double* b, double* r2) {
  if (pts.size() < 2) return false;
  double sx = 0, sy = 0;
  for (auto [x, y] : pts) sx += x, sy += y;
  const double k = static_cast<double>(pts.size()), mx = sx / k, my = sy / k;
  double sxx = 0, sxy = 0, syy = 0;
  for (auto [x, y] : pts)
    sxx += (x - mx) * (x - mx), sxy += (x - mx) * (y - my), syy += (y - my) * (y - my);
  if (sxx <= 0) return false;
  *b = sxy / sxx;
  *a = my - *b * mx;
  *r2 = syy > 0 ? sxy * sxy / (sxx * syy) : 1;
  return true;
}

void print_section(const Ctx& c, const Section& sec) {
  const char* per_time = sec.per_scale >= 1e6 ? "us" : "ms";
  switch (sec.kind) {
    case Kind::Tree:
      printf(
          "\nprocess tree of N processes (each forks up to %ld children, all sleep in pause()), "
          "images on tmpfs\n",
          c.opt.tree_fanout);
      break;
    case Kind::Threads:
      printf(
          "\nthreads: one process with N threads (N-1 workers in FUTEX_WAIT), images on tmpfs\n");
      break;
    case Kind::Fds:
      printf(
          "\nfds: one process with N fds besides stdio (%ld distinct regular files, the rest dups "
          "of one), images on tmpfs\n",
          c.opt.fd_files);
      break;
  }
  const ScaleRow* base = nullptr;
  for (const ScaleRow& r : sec.rows)
    if (!r.dump.runs.empty() && !r.restore.runs.empty()) {
      base = &r;
      break;
    }
  const std::string vs = base ? fmt("vs N=%ld", base->n) : std::string("vs N=?");
  const std::string added = fmt("%s/added", per_time);
  // Rows: "  " N(6) " " img(8), then per op "   " + 8+1+8+1+8+1+10 = 37 columns.
  auto banner = [](const char* w) {
    std::string s = fmt(" %s ", w);
    size_t left = (37 - s.size()) / 2;
    return std::string(left, '-') + s + std::string(37 - left - s.size(), '-');
  };
  printf("  %6s %8s   %s   %s\n", "", "", banner("dump").c_str(), banner("restore").c_str());
  printf("  %6s %8s   %8s %8s %8s %10s   %8s %8s %8s %10s\n", "N", "img MiB", "best s", sec.per,
         vs.c_str(), added.c_str(), "best s", sec.per, vs.c_str(), added.c_str());
  const ScaleRow* prev = nullptr;
  std::vector<std::pair<double, double>> pd, pr;
  for (const ScaleRow& r : sec.rows) {
    if (r.dump.runs.empty() || r.restore.runs.empty()) {
      printf("  %6ld  FAILED: %s\n", r.n,
             r.error.empty() ? "no verified round trip" : first_line(r.error).c_str());
      continue;
    }
    double img = r.images ? static_cast<double>(r.images->allocated) / (1 << 20) : NAN;
    printf("  %6ld %8.1f", r.n, img);
    for (int op = 0; op < 2; op++) {
      const Timing& t = op == 0 ? r.dump : r.restore;
      const Timing* tb = base ? (op == 0 ? &base->dump : &base->restore) : nullptr;
      const Timing* tp = prev ? (op == 0 ? &prev->dump : &prev->restore) : nullptr;
      std::string per =
          r.n > 0 ? fmt("%.2f", t.best() / static_cast<double>(r.n) * sec.per_scale) : "-";
      std::string add = tp && r.n != prev->n
                            ? fmt("%.2f", (t.best() - tp->best()) /
                                              static_cast<double>(r.n - prev->n) * sec.per_scale)
                            : "-";
      printf("   %8.3f %8s %8s %10s", t.best(), per.c_str(),
             ratio_str(tb ? t.best() / tb->best() : NAN).c_str(), add.c_str());
    }
    printf("%s\n", r.error.empty() ? "" : "   then FAILED");
    pd.emplace_back(static_cast<double>(r.n), r.dump.best());
    pr.emplace_back(static_cast<double>(r.n), r.restore.best());
    prev = &r;
  }
  double a, b, r2;
  std::string fit;
  if (fit_line(pd, &a, &b, &r2))
    fit += fmt("dump %.1f ms + %.3f %s/%s (r^2 %.3f)", a * 1e3, b * sec.per_scale, per_time,
               sec.unit, r2);
  if (fit_line(pr, &a, &b, &r2))
    fit += fmt("%srestore %.1f ms + %.3f %s/%s (r^2 %.3f)", fit.empty() ? "" : "; ", a * 1e3,
               b * sec.per_scale, per_time, sec.unit, r2);
  if (!fit.empty()) printf("  least-squares line over the best times: %s\n", fit.c_str());
  // Local growth exponent k (time ~ N^k) between the two largest sizes: 1 is
  // linear, above 1 each added object costs more than the ones before it.
  if (pd.size() >= 2 && pd[pd.size() - 2].first > 0) {
    auto k = [](const std::vector<std::pair<double, double>>& v) {
      auto [n1, t1] = v[v.size() - 2];
      auto [n2, t2] = v.back();
      return std::log(t2 / t1) / std::log(n2 / n1);
    };
    printf(
        "  growth from N=%.0f to N=%.0f: dump ~ N^%.2f, restore ~ N^%.2f (time ~ N^k; k = 1 is "
        "linear)\n",
        pd[pd.size() - 2].first, pd.back().first, k(pd), k(pr));
  }
  printf("  all runs (s):\n");
  for (const ScaleRow& r : sec.rows)
    if (!r.dump.runs.empty())
      printf("  %6ld   dump %s   restore %s\n", r.n, runs_str(r.dump).c_str(),
             runs_str(r.restore).c_str());
  printf(
      "  %s = best s / N; %s = best(N) / best(%ld); %s = (best(N) - best(N above)) / (N - N "
      "above)\n",
      sec.per, vs.c_str(), base ? base->n : 0L, added.c_str());
}

// --------------------------------------------------------------- main ----

[[noreturn]] void usage(int code) {
  fprintf(
      code ? stderr : stdout,
      "usage: ckpt-bench --ckpt PATH [--only SECTIONS] [--size-mib N] [--disk-dir DIR] "
      "[--tmpfs-dir DIR]\n"
      "                  [--runs N] [--timeout SEC] [--victim PATH] [--tree-sizes LIST] "
      "[--tree-fanout K]\n"
      "                  [--thread-counts LIST] [--fd-counts LIST] [--fd-files N] "
      "[--tcp-counts LIST]\n"
      "  --ckpt PATH      the ckpt binary to benchmark (required)\n"
      "  --size-mib N     victim memory and baseline size in MiB (default 1024)\n"
      "  --disk-dir DIR   where disk images and files go (default /var/tmp)\n"
      "  --tmpfs-dir DIR  a tmpfs for images (default: mount a private tmpfs, else /dev/shm)\n"
      "  --runs N         runs of everything; the best is reported (default 3)\n"
      "  --timeout SEC    limit for each ckpt command and victim start (default 300)\n"
      "  --victim PATH    victim binary (default: ckpt-bench-victim next to ckpt-bench)\n"
      "  --only LIST      sections to run, comma-separated (default: all of them)\n"
      "                   memory   a process with SIZE MiB; images on tmpfs and disk; baselines\n"
      "                   tree     a tree of N processes; images on tmpfs\n"
      "                   threads  a process with N threads; images on tmpfs\n"
      "                   fds      a process with N fds besides stdio; images on tmpfs\n"
      "                   tcp      a process with N loopback TCP connections (both ends);\n"
      "                            --tcp-established; images on tmpfs\n"
      "                   container  100 processes under pid 1 of new pid, uts, ipc and net\n"
      "                            namespaces, and the same tree without them; images on tmpfs\n"
      "                   precopy  a SIZE MiB process rewriting pages: cold dump+restore against\n"
      "                            pre-dump rounds through a page server, then the final pause\n"
      "  --precopy-rate N MiB/s the precopy victim rewrites at random (default 64)\n"
      "  --tree-sizes L   the N of the tree section (default 1,10,100,300,1000)\n"
      "  --thread-counts L  the N of the threads section (default 1,10,100,300,1000)\n"
      "  --fd-counts L    the N of the fds section (default 0,1000,10000)\n"
      "  --tcp-counts L   the N (connections) of the tcp section (default 100,1000)\n"
      "  --tree-fanout K  children per process in the tree (default 8)\n"
      "  --fd-files N     distinct files among the fds, the rest are dups of one (default 256)\n"
      "Needs root. Exit status 0 only if every dump and restore succeeded and every\n"
      "restored victim verified itself (memory checksum; tree shape and pids; thread\n"
      "ids; fds) and looked right from outside.\n");
  exit(code);
}

bool parse_num(const char* s, double lo, double hi, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

Options parse_args(int argc, char** argv) {
  Options o;
  static const struct option longopts[] = {{"ckpt", required_argument, nullptr, 'c'},
                                           {"size-mib", required_argument, nullptr, 's'},
                                           {"disk-dir", required_argument, nullptr, 'd'},
                                           {"tmpfs-dir", required_argument, nullptr, 't'},
                                           {"runs", required_argument, nullptr, 'r'},
                                           {"timeout", required_argument, nullptr, 'T'},
                                           {"victim", required_argument, nullptr, 'v'},
                                           {"help", no_argument, nullptr, 'h'},
                                           {"only", required_argument, nullptr, 'o'},
                                           {"tree-sizes", required_argument, nullptr, 'S'},
                                           {"tree-fanout", required_argument, nullptr, 'F'},
                                           {"thread-counts", required_argument, nullptr, 'H'},
                                           {"fd-counts", required_argument, nullptr, 'N'},
                                           {"fd-files", required_argument, nullptr, 'f'},
                                           {"tcp-counts", required_argument, nullptr, 'P'},
                                           {"precopy-rate", required_argument, nullptr, 'W'},
                                           {nullptr, 0, nullptr, 0}};
  // "1,10,100": integers in [lo, hi], strictly increasing.
  auto parse_list = [](const char* name, const char* arg, long lo, long hi) {
    std::vector<long> r;
    std::istringstream in(arg);
    for (std::string item; std::getline(in, item, ',');) {
      double v;
      if (!parse_num(item.c_str(), static_cast<double>(lo), static_cast<double>(hi), &v) ||
          v != std::floor(v) || (!r.empty() && static_cast<long>(v) <= r.back())) {
        fprintf(stderr,
                "ckpt-bench: --%s wants increasing integers in [%ld, %ld], comma-separated\n", name,
                lo, hi);
        usage(2);
      }
      r.push_back(static_cast<long>(v));
    }
    if (r.empty()) {
      fprintf(stderr, "ckpt-bench: --%s is empty\n", name);
      usage(2);
    }
    return r;
  };
  int ch;
  double v;
  while ((ch = getopt_long(argc, argv, "h", longopts, nullptr)) != -1) {
    switch (ch) {
      case 'c':
        o.ckpt = optarg;
        break;
      case 'd':
        o.disk_dir = optarg;
        break;
      case 't':
        o.tmpfs_dir = optarg;
        break;
      case 'v':
        o.victim = optarg;
        break;
      case 's':
        if (!parse_num(optarg, 1, 1 << 20, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --size-mib wants an integer >= 1\n");
          usage(2);
        }
        o.size_mib = static_cast<uint64_t>(v);
        break;
      case 'r':
        if (!parse_num(optarg, 1, 1000, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --runs wants an integer in [1, 1000]\n");
          usage(2);
        }
        o.runs = static_cast<int>(v);
        break;
      case 'T':
        if (!parse_num(optarg, 1, 1e6, &v)) {
          fprintf(stderr, "ckpt-bench: --timeout wants seconds >= 1\n");
          usage(2);
        }
        o.timeout = v;
        break;
      case 'o': {
        o.memory = o.tree = o.threads = o.fds = o.tcp = o.container = o.precopy = false;
        std::istringstream in(optarg);
        for (std::string item; std::getline(in, item, ',');) {
          if (item == "memory")
            o.memory = true;
          else if (item == "tree")
            o.tree = true;
          else if (item == "threads")
            o.threads = true;
          else if (item == "fds")
            o.fds = true;
          else if (item == "tcp")
            o.tcp = true;
          else if (item == "container")
            o.container = true;
          else if (item == "precopy")
            o.precopy = true;
          else if (item == "all")
            o.memory = o.tree = o.threads = o.fds = o.tcp = o.container = o.precopy = true;
          else {
            fprintf(stderr,
                    "ckpt-bench: --only: unknown section '%s' (memory, tree, threads, fds, tcp, "
                    "container, precopy)\n",
                    item.c_str());
            usage(2);
          }
        }
        if (!o.memory && !o.tree && !o.threads && !o.fds && !o.tcp && !o.container && !o.precopy) {
          fprintf(stderr, "ckpt-bench: --only selects no section\n");
          usage(2);
        }
        break;
      }
      case 'S':
        o.tree_sizes = parse_list("tree-sizes", optarg, 1, 100000);
        break;
      case 'H':
        o.thread_counts = parse_list("thread-counts", optarg, 1, 100000);
        break;
      case 'N':
        o.fd_counts = parse_list("fd-counts", optarg, 0, 10000000);
        break;
      case 'P':
        o.tcp_counts = parse_list("tcp-counts", optarg, 1, 100000);
        break;
      case 'F':
        if (!parse_num(optarg, 1, 64, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --tree-fanout wants an integer in [1, 64]\n");
          usage(2);
        }
        o.tree_fanout = static_cast<long>(v);
        break;
      case 'f':
        if (!parse_num(optarg, 1, 1000000, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --fd-files wants an integer >= 1\n");
          usage(2);
        }
        o.fd_files = static_cast<long>(v);
        break;
      case 'W':
        if (!parse_num(optarg, 0, 1 << 20, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --precopy-rate wants an integer >= 0\n");
          usage(2);
        }
        o.precopy_rate = static_cast<uint64_t>(v);
        break;
      case 'h':
        usage(0);
      default:
        usage(2);
    }
  }
  if (optind != argc) {
    fprintf(stderr, "ckpt-bench: unexpected argument '%s'\n", argv[optind]);
    usage(2);
  }
  if (o.ckpt.empty()) {
    fprintf(stderr, "ckpt-bench: --ckpt PATH is required\n");
    usage(2);
  }
  return o;
}

int run(Ctx& c) {
  Options& o = c.opt;
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
  lz.name = "lazy";
  lz.lazy = true;
  tm.name = "tmpfs";
  dk.name = "disk";
  ps.name = "pgsrv";
  ps.page_server = true;

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

  c.work = dk.dir + "/work";
  if (mkdir(c.work.c_str(), 0700) != 0) fail_errno("mkdir " + c.work);
  write_file(c.work + "/victim.stdin", "");

  std::string sections;
  for (auto [on, name] : {std::pair{o.memory, "memory"},
                          {o.tree, "tree"},
                          {o.threads, "threads"},
                          {o.fds, "fds"},
                          {o.tcp, "tcp"},
                          {o.container, "container"},
                          {o.precopy, "precopy"}})
    if (on) sections += std::string(sections.empty() ? "" : ",") + name;
  printf("ckpt-bench: sections %s; best of %d run%s", sections.c_str(), o.runs,
         o.runs == 1 ? "" : "s");
  if (o.memory) printf("; memory victim and baselines %" PRIu64 " MiB", o.size_mib);
  printf("\n");
  printf("  ckpt   %s\n", o.ckpt.c_str());
  printf("  tmpfs  %s (%s)\n", tm.dir.c_str(), tm.desc.c_str());
  printf("  disk   %s (%s)\n", dk.dir.c_str(), dk.desc.c_str());
  printf("  pgsrv  %s\n", ps.desc.c_str());
  printf("  lazy   %s\n", lz.desc.c_str());
  fflush(stdout);

  bool ok = true;
  std::string verified_str;
  if (o.memory) {
    // ---- baselines
    const size_t bytes = o.size_mib << 20;
    Timing mc;
    {
      Buffer src(bytes);
      progress("baseline: filling buffers");
      fill_pattern(src);
      mc = bench_memcpy(src, o.runs);
      for (Medium& m : media) {
        try {
          bool disk = &m == &dk;
          if (&m == &ps || &m == &lz) {  // same medium as tmpfs: its baseline
            m.write = tm.write;
            continue;
          }
          m.write =
              bench_write(src, m.dir, disk, o.runs, disk ? "write+fsync disk" : "write tmpfs");
          m.read_touch = ReadTouchBaseline(m.dir, bytes, o.runs);
        } catch (const Interrupted&) {
          throw;
        } catch (const std::exception& e) {
          m.write.error = e.what();
          warn(std::string("baseline write on ") + m.name + ": " + e.what());
        }
      }
    }

    // ---- ckpt, media interleaved per run so slow drifts hit both alike
    for (int run = 1; run <= o.runs; run++) {
      for (Medium& m : media) {
        if (!m.error.empty()) continue;
        try {
          ckpt_round_trip(c, m, run);
        } catch (const Interrupted&) {
          throw;
        } catch (const std::exception& e) {
          m.error = e.what();
          progress_clear();
          m.error = fmt("run %d: ", run) + m.error;
          fprintf(stderr, "ckpt-bench: FAIL (images on %s) %s\n", m.name, m.error.c_str());
          kill_all_children();
          rm_rf(m.dir + "/images");
        }
      }
    }
    progress_clear();

    print_report(c, mc, media);
    std::vector<MemoryRow> extras;
    for (const Medium& m : media)
      extras.push_back({m.name, m.read_touch, m.restore.runs, m.dump_rss, m.restore_rss});
    PrintMemoryExtras(extras, bytes);
    int verified = 0;
    for (const Medium& m : media) {
      verified += m.verified;
      if (!m.error.empty() || !m.write.error.empty()) ok = false;
    }
    verified_str = fmt("memory %d (checksums matched)", verified);
  }

  // ---- scaling sections, images on tmpfs
  std::vector<Section> secs;
  auto add = [&](bool on, Kind k, const char* key, const char* unit, const char* per, double scale,
                 const std::vector<long>& sizes) {
    if (!on) return;
    Section sec{k, key, unit, per, scale, {}};
    for (long n : sizes) sec.rows.push_back(ScaleRow{n, {}, {}, {}, {}, 0});
    secs.push_back(std::move(sec));
  };
  add(o.tree, Kind::Tree, "tree", "proc", "ms/proc", 1e3, o.tree_sizes);
  add(o.threads, Kind::Threads, "threads", "thread", "ms/thr", 1e3, o.thread_counts);
  add(o.fds, Kind::Fds, "fds", "fd", "us/fd", 1e6, o.fd_counts);
  for (Section& sec : secs) {
    run_section(c, sec, tm);
    print_section(c, sec);
    int verified = 0;
    for (const ScaleRow& r : sec.rows) {
      verified += r.verified;
      if (!r.error.empty()) ok = false;
    }
    verified_str += fmt("%s%s %d", verified_str.empty() ? "" : ", ", sec.key, verified);
  }
  if (o.tcp) {  // bench_tcp.cc
    TcpBenchResult t =
        RunTcpBench({o.ckpt, o.victim, tm.dir, c.work, o.tcp_counts, o.runs, o.timeout, &g_stop});
    check_stop();
    if (!t.ok) ok = false;
    verified_str += fmt("%stcp %d", verified_str.empty() ? "" : ", ", t.verified);
  }
  if (o.container) {  // bench_container.cc
    ContainerBenchResult ct =
        RunContainerBench({o.ckpt, o.victim, tm.dir, c.work, o.runs, o.timeout});
    if (!ct.ok) ok = false;
    verified_str += fmt("%scontainer %d", verified_str.empty() ? "" : ", ", ct.verified);
  }

  if (o.precopy) {  // bench_precopy.cc
    PrecopyBenchResult pc = RunPrecopyBench(
        {o.ckpt, o.victim, tm.dir, c.work, o.size_mib, o.precopy_rate, 6, o.runs, o.timeout});
    check_stop();
    if (!pc.ok) ok = false;
    verified_str += fmt("%sprecopy %d", verified_str.empty() ? "" : ", ", pc.verified);
  }

  bool header_done = false;
  for (const Section& sec : secs) {
    for (const ScaleRow& r : sec.rows) {
      if (r.error.empty()) continue;
      if (!header_done) printf("\nfailures in the scaling sections (details on stderr)\n");
      header_done = true;
      printf("  %-7s N=%-6ld %s\n", sec.key, r.n, first_line(r.error).c_str());
    }
  }

  if (!c.notes.empty()) printf("\n");
  for (const auto& n : c.notes) printf("note: %s\n", n.c_str());
  printf("\nresult: %s (verified restores: %s)\n", ok ? "PASS" : "FAIL", verified_str.c_str());
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Ctx c;
  c.opt = parse_args(argc, argv);
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
    rc = run(c);
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
