// zdtm-run: runs one test program through a ckpt round trip.
//
//   zdtm-run --ckpt PATH --mode MODE --workdir DIR [--ckpt-opt OPT]... -- TESTBIN [args]
//
// MODE is plain (no ckpt: SIGTERM and check), default (dump, restore),
// leave-running (dump -R, check the original, restore, check again) or
// dump-twice (dump -R, dump, restore). The test must print READY, then
// PASS after SIGTERM (see lib/zdtm.h). DIR is wiped and recreated; the
// test runs in it with its output in DIR/out.txt; images go to DIR/img*
// and are removed on success. Exit 0 = pass. On failure: the reason and
// the tails of the logs on stderr, every process left killed, exit 1.
// --ckpt-opt OPT (repeatable) appends OPT to every ckpt dump and restore
// command line, in order (e.g. --ckpt-opt --tcp-established); an option
// taking a value needs two: --ckpt-opt --network-lock --ckpt-opt skip.
// --ns LIST (comma-separated: pid,uts,ipc,net,time,cgroup,mnt,user) starts
// the test in new namespaces of those kinds (with pid: as the init of its
// own; with cgroup: rooted at a cgroup ckpt-zdtm-<runner pid> made for it;
// with mnt: in a container of its own, see harness.h enter_container; with
// user: as root of a user namespace mapping 0.. to 100000.., see harness.h).
// --page-server yes: every dump sends its memory to a `ckpt page-server`
// started for it on 127.0.0.1 (a free port); the server's files are moved
// into the image directory before restore, as a migration would copy them.
// --compress SPEC: every dump and pre-dump gets `--compress SPEC` (not the
// restore: it reads compressed images by itself); after each dump every
// pages image (through a page server too) must start with the zpages
// header (images/zpages.h), or the test fails.
// --nofile N: the runner, the test and ckpt all run under RLIMIT_NOFILE N
// (soft and hard): a restore must fit the fd numbers the process could use.
// --lazy local|remote|kill: lazy restore (criu/lazy_pages.h). local: a
// `ckpt lazy-pages -D IMG` is started before the restore, which gets
// --lazy-pages; the runner waits for the daemon to exit 0 with every page
// in (the test's memory all there while it runs) before the SIGTERM.
// remote: the dump runs with --lazy-pages on 127.0.0.1 and stays to serve
// the pages, the daemon pulls them with --page-server; both must exit 0.
// chain: as local, but the dump is the second step of an incremental
// chain (a pre-dump first): the daemon reads pages from the parent images.
// kill: as local, but once the test printed "INFO: TOUCHED" the daemon is
// SIGKILLed and its guard must poison what was owed (the test then
// expects SIGBUS, never zeros).
// --occupy-pid yes: before each restore a stand-in process takes the
// test's pid: a test in its own pid namespace must come back with another
// pid here (and the same ones inside).
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

constexpr double kReadyTimeout = 60, kCkptTimeout = 120, kExitTimeout = 60;

std::string g_ckpt, g_mode, g_workdir, g_out;
std::vector<std::string> g_test_argv;
std::vector<std::string> g_ckpt_opts;  // --ckpt-opt: appended to dump and restore
unsigned long g_ns_flags = 0;          // --ns: namespaces the test starts in
bool g_occupy_pid = false;             // --occupy-pid yes: restore finds the pid taken
bool g_page_server = false;            // --page-server yes: memory through a page server
std::string g_compress;                // --compress SPEC: dumps compress their pages
std::string g_lazy;                    // --lazy local|remote|kill: lazy restore
pid_t g_lazy_dump = 0;                 // --lazy remote: the dump serving the pages
int g_lazy_port = 0;
std::vector<pid_t> g_dumped_tids;      // the test's threads at the last dump
std::vector<std::string> g_logs;       // files whose tails a failure report shows
double g_start;

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: zdtm-run --ckpt PATH --mode plain|default|leave-running|dump-twice --workdir DIR "
          "[--ckpt-opt OPT]... [--ns pid,uts,ipc,net,time,cgroup,mnt,user] [--nofile N] -- TESTBIN [args]\n");
  exit(2);
}

unsigned long parse_ns(const std::string& list) {
  unsigned long flags = 0;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string k = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (k == "pid") flags |= CLONE_NEWPID;
    else if (k == "uts") flags |= CLONE_NEWUTS;
    else if (k == "ipc") flags |= CLONE_NEWIPC;
    else if (k == "net") flags |= CLONE_NEWNET;
    else if (k == "time") flags |= 0x80;  // CLONE_NEWTIME
    else if (k == "cgroup") flags |= CLONE_NEWCGROUP;
    else if (k == "mnt") flags |= CLONE_NEWNS;
    else if (k == "user") flags |= CLONE_NEWUSER;
    else usage();
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return flags;
}

void step(const std::string& what) {
  printf("zdtm-run: [%6.2fs] %s\n", now_s() - g_start, what.c_str()), fflush(stdout);
}

// Removes what the test declared with test_cleanup_path (lib/zdtm.h).
std::string g_cgroup_dir;  // --ns cgroup: the test's cgroup, removed at the end

void remove_declared_files() {
  if (!g_cgroup_dir.empty()) rmdir(g_cgroup_dir.c_str());
  std::string list = read_text(g_workdir + "/zdtm-cleanup");
  size_t at = 0;
  while (at < list.size()) {
    size_t nl = list.find('\n', at);
    if (nl == std::string::npos) nl = list.size();
    std::string path = list.substr(at, nl - at);
    if (!path.empty()) remove(path.c_str());  // a file, or an emptied directory
    at = nl + 1;
  }
}

[[noreturn]] void die(const std::string& reason) {
  fflush(stdout);
  fprintf(stderr, "zdtm-run: FAIL (%s, mode %s): %s\n", g_test_argv[0].c_str(), g_mode.c_str(),
          reason.c_str());
  for (const auto& log : g_logs) {
    if (!fs::exists(log)) continue;
    std::string errors = grep(log, "Error", 10);
    if (!errors.empty()) fprintf(stderr, "--- errors in %s\n%s", log.c_str(), errors.c_str());
    fprintf(stderr, "--- tail of %s\n%s", log.c_str(), tail(log).c_str());
  }
  fprintf(stderr, "--- tail of %s\n%s", g_out.c_str(), tail(g_out).c_str());
  for (const auto& k : kill_all_children())
    fprintf(stderr, "zdtm-run: killed leftover %s\n", k.c_str());
  remove_declared_files();
  exit(1);
}

void add_log(const std::string& path) {
  for (const auto& l : g_logs)
    if (l == path) return;
  g_logs.push_back(path);
}

// Runs `ckpt args...`; dies unless it exits 0.
void ckpt(const std::string& name, std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), g_ckpt);
  std::string capture = g_workdir + "/ckpt-" + name + ".out";
  add_log(capture);
  add_log(log);
  std::string cmd;
  for (const auto& a : args) cmd += (cmd.empty() ? "" : " ") + a;
  step("run: " + cmd);
  double t0 = now_s();
  CmdResult r = run_cmd(args, capture, kCkptTimeout);
  if (!r.ok()) die("ckpt " + name + " failed: " + r.describe());
  char took[32];
  snprintf(took, sizeof(took), "%.2f", now_s() - t0);
  step("ckpt " + name + " ok (" + took + " s)");
}

int free_port() {
  int port = free_loopback_port();
  if (port < 0) die(std::string("finding a free port: ") + strerror(errno));
  return port;
}

// `ckpt ARGS... --status-fd 3` in the background, its output in
// WORKDIR/NAME.out; returns its pid once it wrote its status byte.
pid_t spawn_ckpt(const std::string& name, const std::vector<std::string>& args) {
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) die(std::string("pipe: ") + strerror(errno));
  std::string capture = g_workdir + "/" + name + ".out";
  add_log(capture);
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  step("start: ckpt" + cmd);
  pid_t ps = fork();
  if (ps < 0) die(std::string("fork: ") + strerror(errno));
  if (ps == 0) {
    int out = open(capture.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || dup2(st[1], 3) < 0) _exit(127);
    std::vector<char*> av;
    av.push_back(const_cast<char*>(g_ckpt.c_str()));
    for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(const_cast<char*>("--status-fd"));
    av.push_back(const_cast<char*>("3"));
    av.push_back(nullptr);
    execv(g_ckpt.c_str(), av.data());
    _exit(127);
  }
  close(st[1]);
  track_pid(ps);
  struct pollfd pfd = {st[0], POLLIN, 0};
  char c;
  if (poll(&pfd, 1, 120000) != 1 || read(st[0], &c, 1) != 1)
    die("ckpt " + name + " did not get ready (see " + capture + ")");
  close(st[0]);
  step("ckpt " + name + " ready, pid " + std::to_string(ps));
  return ps;
}

// Waits for a background ckpt; dies unless it exits 0.
void expect_exit0(pid_t p, const std::string& what) {
  int status;
  if (!wait_exit(p, kExitTimeout, &status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die(what + " did not end well: " + describe_status(status));
  untrack_pid(p);
  step(what + " exited 0");
}

// --page-server: a page server for one dump, listening on 127.0.0.1:port
// with its images in dir; returns its pid once it listens.
pid_t start_page_server(const std::string& dir, int* port) {
  *port = free_port();
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) die(std::string("pipe: ") + strerror(errno));
  std::string capture = g_workdir + "/page-server.out";
  add_log(capture);
  pid_t ps = fork();
  if (ps < 0) die(std::string("fork: ") + strerror(errno));
  if (ps == 0) {
    int out = open(capture.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || dup2(st[1], 3) < 0) _exit(127);
    std::string p = std::to_string(*port);
    execl(g_ckpt.c_str(), g_ckpt.c_str(), "page-server", "-D", dir.c_str(), "--address",
          "127.0.0.1", "--port", p.c_str(), "--status-fd", "3", "-v4", (char*)nullptr);
    _exit(127);
  }
  close(st[1]);
  track_pid(ps);
  struct pollfd pfd = {st[0], POLLIN, 0};
  char c;
  if (poll(&pfd, 1, 30000) != 1 || read(st[0], &c, 1) != 1)
    die("the page server did not start listening (see " + capture + ")");
  close(st[0]);
  step("page server pid " + std::to_string(ps) + " on 127.0.0.1:" + std::to_string(*port));
  return ps;
}

void expect_compressed(const std::string& img);

void dump(pid_t pid, const std::string& img, bool leave_running) {
  fs::create_directories(img);
  pid_t page_server = 0;
  int port = 0;
  const std::string srv = img + "-pages";
  if (g_page_server) page_server = start_page_server(srv, &port);
  g_dumped_tids.clear();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
    g_dumped_tids.push_back(pid_t(atol(e.path().filename().c_str())));
  std::vector<std::string> args = {"dump", "-t", std::to_string(pid), "-D",
                                   img,    "-o", "dump.log",          "-v4"};
  if (leave_running) args.push_back("--leave-running");
  if (g_lazy == "chain") {  // a pre-dump first: most pages end up in the parent
    std::vector<std::string> pre = {"pre-dump", "-t", std::to_string(pid), "-D", img + "-pre",
                                    "-o",       "pre-dump.log", "-v4"};
    if (!g_compress.empty()) pre.insert(pre.end(), {"--compress", g_compress});
    ckpt("pre-dump", pre, img + "-pre/pre-dump.log");
    args.insert(args.end(), {"--prev-images-dir", "../img-pre", "--track-mem"});
  }
  if (page_server)
    args.insert(args.end(), {"--page-server", "--address", "127.0.0.1", "--port",
                             std::to_string(port)});
  args.insert(args.end(), g_ckpt_opts.begin(), g_ckpt_opts.end());
  if (!g_compress.empty()) args.insert(args.end(), {"--compress", g_compress});
  if (g_lazy == "remote") {  // the dump stays to serve the memory
    g_lazy_port = free_port();
    args.insert(args.end(), {"--lazy-pages", "--address", "127.0.0.1", "--port",
                             std::to_string(g_lazy_port)});
    add_log(img + "/dump.log");
    g_lazy_dump = spawn_ckpt("dump-lazy", args);
    // The held pages are punched out of the local pages images: what the
    // restored test reads must come over the connection.
    uint64_t apparent = 0, allocated = 0;
    for (const auto& e : fs::directory_iterator(img)) {
      if (e.path().filename().string().rfind("pages-", 0) != 0) continue;
      struct stat st;
      if (stat(e.path().c_str(), &st) == 0)
        apparent += uint64_t(st.st_size), allocated += uint64_t(st.st_blocks) * 512;
    }
    if (apparent == 0 || allocated * 2 > apparent)
      die("the lazy dump left " + std::to_string(allocated) + " of " + std::to_string(apparent) +
          " bytes of pages images in place: the memory was not held back");
    step("pages images: " + std::to_string(allocated) + " of " + std::to_string(apparent) +
         " bytes left locally");
    return;
  }
  ckpt(leave_running ? "dump-R-" + fs::path(img).filename().string()
                     : "dump-" + fs::path(img).filename().string(),
       args, img + "/dump.log");
  if (page_server) {
    int status;
    if (!wait_exit(page_server, kExitTimeout, &status) || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      die("the page server did not end well: " + describe_status(status));
    untrack_pid(page_server);
    // The memory must be on the server, not here.
    int moved = 0;
    for (const auto& e : fs::directory_iterator(srv)) {
      std::string name = e.path().filename().string();
      if (fs::exists(img + "/" + name)) die("the dump also wrote " + name + " locally");
      fs::rename(e.path(), img + "/" + name);
      moved++;
    }
    fs::remove(srv);
    if (moved == 0) die("the page server received nothing");
    step(std::to_string(moved) + " files from the page server moved into " + img);
  }
  if (!g_compress.empty()) expect_compressed(img);
  // Every image of every kind of dump must print (ckpt show is the first
  // tool for a bug report).
  ckpt("show-" + fs::path(img).filename().string(), {"show", img}, img + "/dump.log");
}

// --compress: every pages image of `img` starts with the zpages header
// (a skippable zstd frame carrying "CKZP": images/zpages.h).
void expect_compressed(const std::string& img) {
  int pages = 0;
  for (const auto& e : fs::directory_iterator(img)) {
    std::string name = e.path().filename().string();
    if (name.rfind("pages-", 0) != 0) continue;
    uint32_t h[3] = {};
    int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, h, sizeof(h));
    if (fd >= 0) close(fd);
    if (n != ssize_t(sizeof(h)) || h[0] != 0x184D2A5C || h[2] != 0x505A4B43)
      die(img + "/" + name + " is not a compressed pages image (--compress " + g_compress + ")");
    pages++;
  }
  if (pages == 0) die("--compress: no pages image in " + img);
  step(std::to_string(pages) + " compressed pages image(s) in " + img);
}

// The original must have been SIGKILLed by the dump.
void expect_killed(pid_t pid) {
  int status;
  if (!wait_exit(pid, 10, &status))
    die("pid " + std::to_string(pid) + " was not killed by the dump: " + describe_pid(pid));
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    die("after the dump pid " + std::to_string(pid) + " ended with " + describe_status(status) +
        ", want SIGKILL");
  // The rest of the dumped tree died with it and was reparented to us (we
  // are the subreaper): reap it, or its zombies hold the pids restore needs.
  int reaped = 0;
  for (pid_t z; (z = waitpid(-1, &status, WNOHANG)) > 0;) {
    untrack_pid(z);
    reaped++;
  }
  step("original pid " + std::to_string(pid) + " was killed" +
       (reaped ? " (and " + std::to_string(reaped) + " more reaped)" : ""));
}

// pid must exist, be our child and be running (not zombie or stopped).
void expect_running(pid_t pid, const std::string& what) {
  double deadline = now_s() + 2;
  for (;;) {
    char st = proc_state(pid);
    if (st == 0) die(what + ": pid " + std::to_string(pid) + " does not exist");
    if (st == 'Z' || st == 'X') die(what + ": pid " + std::to_string(pid) + " is a zombie");
    if (st == 'R' || st == 'S' || st == 'D') break;
    if (now_s() > deadline)
      die(what + ": " + describe_pid(pid) + " is not running (stopped or traced)");
    usleep(10000);
  }
  if (proc_ppid(pid) != getpid())
    die(what + ": pid " + std::to_string(pid) + " has parent " + std::to_string(proc_ppid(pid)) +
        ", not the runner (a child subreaper)");
}

// --occupy-pid: stand-ins holding the test's pid and its threads' tids
// (as they were at the last dump) while it is restored.
std::vector<pid_t> g_occupiers;
void occupy(pid_t pid) {
  std::vector<pid_t> ids = g_dumped_tids;
  if (ids.empty()) ids.push_back(pid);
  for (pid_t id : ids) {
    struct clone_args ca;
    memset(&ca, 0, sizeof(ca));
    ca.exit_signal = SIGCHLD;
    ca.set_tid = uint64_t(uintptr_t(&id));
    ca.set_tid_size = 1;
    pid_t r = pid_t(syscall(SYS_clone3, &ca, sizeof(ca)));
    if (r == 0) {
      for (;;) pause();
    }
    if (r != id) die("cannot occupy pid " + std::to_string(id) + ": " + strerror(errno));
    g_occupiers.push_back(r);
    track_pid(r);
  }
  step(std::to_string(ids.size()) + " pid(s) of the test taken by stand-ins");
}

// Returns the restored test's pid: the dumped one, or with --occupy-pid
// (a test in its own pid namespace) the one the kernel picked instead.
pid_t restore(pid_t pid, const std::string& img) {
  if (g_occupy_pid) occupy(pid);
  std::string pidfile = g_workdir + "/pidfile";
  unlink(pidfile.c_str());
  std::vector<std::string> args = {"restore",     "-D",  img,         "-d",   "-o",
                                   "restore.log", "-v4", "--pidfile", pidfile};
  args.insert(args.end(), g_ckpt_opts.begin(), g_ckpt_opts.end());
  pid_t daemon = 0;
  if (!g_lazy.empty()) {
    std::vector<std::string> d = {"lazy-pages", "-D", img, "-o", "lazy-pages.log", "-v4"};
    if (g_lazy == "remote")
      d.insert(d.end(), {"--page-server", "--address", "127.0.0.1", "--port",
                         std::to_string(g_lazy_port)});
    add_log(img + "/lazy-pages.log");
    daemon = spawn_ckpt("lazy-pages", d);
    args.push_back("--lazy-pages");
  }
  ckpt("restore-" + fs::path(img).filename().string(), args, img + "/restore.log");
  std::string text = read_text(pidfile);
  if (text.empty()) die("restore wrote no pidfile " + pidfile);
  pid_t got = pid_t(atol(text.c_str()));
  if (g_occupy_pid) {
    if (got == pid) die("pidfile says " + text + ", but pid " + std::to_string(pid) + " is taken");
    step("restored as pid " + std::to_string(got) + " (" + std::to_string(pid) + " was taken)");
  } else if (got != pid) {
    die("pidfile says " + text + ", want " + std::to_string(pid));
  }
  track_pid(got);
  expect_running(got, "after restore");
  if (g_lazy == "kill") {
    // Once the test has its stack in, the daemon dies; its guard (our
    // child once reparented: we are the subreaper) poisons what is owed.
    double deadline = now_s() + kReadyTimeout;
    while (read_text(g_out).find("INFO: TOUCHED") == std::string::npos) {
      if (now_s() > deadline) die("the test did not print TOUCHED after the lazy restore");
      usleep(2000);
    }
    std::string kids = read_text("/proc/" + std::to_string(daemon) + "/task/" +
                                 std::to_string(daemon) + "/children");
    pid_t guard = pid_t(atol(kids.c_str()));
    if (guard <= 0) die("the lazy-pages daemon has no guard process");
    kill(daemon, SIGKILL);
    int status;
    if (!wait_exit(daemon, kExitTimeout, &status)) die("the killed lazy-pages daemon lingers");
    untrack_pid(daemon);
    step("lazy-pages daemon SIGKILLed; waiting for its guard " + std::to_string(guard));
    track_pid(guard);
    if (!wait_exit(guard, kExitTimeout, &status)) die("the guard did not finish");
    untrack_pid(guard);
    if (read_text(img + "/lazy-pages.log").find("never arrived") == std::string::npos)
      die("the guard did not report the pages it poisoned");
  } else if (daemon) {
    expect_exit0(daemon, "the lazy-pages daemon");
    std::string log = read_text(img + "/lazy-pages.log");
    size_t at = log.find("every page is in");
    if (at == std::string::npos) die("the lazy-pages daemon did not report every page in");
    step(log.substr(at, log.find('\n', at) - at));
    if (g_lazy_dump) expect_exit0(g_lazy_dump, "the lazy dump");
    g_lazy_dump = 0;
  }
  return got;
}

// SIGTERMs pid and checks it exited 0 with `passes` PASS lines in total.
void finish(pid_t pid, int passes) {
  step("SIGTERM pid " + std::to_string(pid));
  kill(pid, SIGTERM);
  int status;
  if (!wait_exit(pid, kExitTimeout, &status)) {
    if (errno == ECHILD)
      die("pid " + std::to_string(pid) + " is not our child; cannot collect its exit status");
    die("pid " + std::to_string(pid) +
        " did not exit within 60 s of SIGTERM: " + describe_pid(pid));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die("test ended with " + describe_status(status));
  if (read_text(g_out).find("FAIL:") != std::string::npos) die("test printed FAIL");
  int n = count_lines(g_out, "PASS");
  if (n != passes)
    die("out.txt has " + std::to_string(n) + " PASS lines, want " + std::to_string(passes));
  step("test passed (" + std::to_string(n) + " PASS)");
}

}  // namespace

int main(int argc, char** argv) {
  harness_init();
  g_start = now_s();
  int i = 1;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") {
      i++;
      break;
    }
    if (i + 1 >= argc) usage();
    if (a == "--ckpt")
      g_ckpt = argv[++i];
    else if (a == "--mode")
      g_mode = argv[++i];
    else if (a == "--workdir")
      g_workdir = argv[++i];
    else if (a == "--ckpt-opt")
      g_ckpt_opts.push_back(argv[++i]);
    else if (a == "--ns")
      g_ns_flags = parse_ns(argv[++i]);
    else if (a == "--occupy-pid" && ++i)
      g_occupy_pid = std::string(argv[i]) == "yes";
    else if (a == "--compress")
      g_compress = argv[++i];
    else if (a == "--page-server" && ++i)
      g_page_server = std::string(argv[i]) == "yes";
    else if (a == "--nofile" && ++i) {
      struct rlimit nf = {strtoul(argv[i], nullptr, 10), strtoul(argv[i], nullptr, 10)};
      if (nf.rlim_max < 64 || setrlimit(RLIMIT_NOFILE, &nf) < 0) die("--nofile: bad limit");
    } else if (a == "--lazy")
      g_lazy = argv[++i];
    else
      usage();
  }
  for (; i < argc; i++) g_test_argv.push_back(argv[i]);
  if (g_test_argv.empty() || g_workdir.empty() || g_mode.empty()) usage();
  if (g_mode != "plain" && g_mode != "default" && g_mode != "leave-running" &&
      g_mode != "dump-twice")
    usage();
  if (g_mode != "plain" && g_ckpt.empty()) usage();
  if (!g_lazy.empty() && ((g_lazy != "local" && g_lazy != "remote" && g_lazy != "kill" &&
                           g_lazy != "chain") ||
                          g_mode != "default"))
    usage();
  g_test_argv[0] = fs::absolute(g_test_argv[0]).string();
  g_workdir = fs::absolute(g_workdir).string();
  g_out = g_workdir + "/out.txt";

  std::error_code ec;
  fs::remove_all(g_workdir, ec);
  fs::create_directories(g_workdir, ec);
  if (ec) die("cannot create workdir " + g_workdir + ": " + ec.message());

  if (g_ns_flags & CLONE_NEWCGROUP) {
    std::string mnt = cgroup2_mount();
    if (mnt.empty()) die("--ns cgroup: no cgroup2 mount");
    g_cgroup_dir = mnt + "/ckpt-zdtm-" + std::to_string(getpid());
    if (mkdir(g_cgroup_dir.c_str(), 0755) < 0) die("mkdir " + g_cgroup_dir + ": " + strerror(errno));
  }
  pid_t pid = start_test(g_test_argv, g_workdir, g_out, g_ns_flags, g_cgroup_dir);
  if (pid < 0) die(std::string("fork: ") + strerror(errno));
  step("started " + g_test_argv[0] + " as pid " + std::to_string(pid));
  std::string err = wait_ready(pid, g_out, kReadyTimeout);
  if (!err.empty()) die(err);
  step("READY");

  const std::string img = g_workdir + "/img", img1 = g_workdir + "/img1",
                    img2 = g_workdir + "/img2";
  if (g_mode == "plain") {
    finish(pid, 1);
  } else if (g_mode == "default") {
    dump(pid, img, false);
    expect_killed(pid);
    pid = restore(pid, img);
    finish(pid, 1);
  } else if (g_mode == "leave-running") {
    dump(pid, img, true);
    expect_running(pid, "after dump --leave-running");
    finish(pid, 1);
    pid = restore(pid, img);
    finish(pid, 2);
  } else {  // dump-twice
    dump(pid, img1, true);
    expect_running(pid, "after the first dump (--leave-running)");
    dump(pid, img2, false);
    expect_killed(pid);
    pid = restore(pid, img2);
    finish(pid, 1);
  }

  for (pid_t o : g_occupiers) {
    kill(o, SIGKILL);
    waitpid(o, nullptr, 0);
    untrack_pid(o);
  }
  auto left = kill_all_children();
  if (!left.empty()) {
    std::string all;
    for (const auto& l : left) all += (all.empty() ? "" : ", ") + l;
    die("processes left behind: " + all);
  }
  for (const auto& d : {img, img1, img2}) {
    fs::remove_all(d, ec);
    fs::remove_all(d + "-pages", ec);
    fs::remove_all(d + "-pre", ec);
  }
  remove_declared_files();
  step("PASS");
  return 0;
}
