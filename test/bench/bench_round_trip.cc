#include "bench_round_trip.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "bench_ckpt_run.h"

namespace bench {
namespace {

// `ckpt lazy-pages -D img`, once it listens (criu/lazy_pages.h).
pid_t start_lazy_daemon(const std::string& ckpt, const std::string& img, const std::string& log) {
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) fail_errno("pipe");
  pid_t lp = fork();
  if (lp < 0) fail_errno("fork");
  if (lp == 0) {
    if (dup2(st[1], 3) < 0) _exit(127);
    execl(ckpt.c_str(), ckpt.c_str(), "lazy-pages", "-D", img.c_str(), "--status-fd", "3", "-o",
          log.c_str(), (char*)nullptr);
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

// Runs a ckpt command, waits for it and returns its wall time; throws
// RunFailure with the logs if it fails or hangs.
double timed_ckpt(const std::vector<std::string>& argv, const std::string& out,
                  const std::string& log, pid_t victim, double timeout, const char* what) {
  double t0 = now(), t1 = 0;
  pid_t p = spawn(argv, {"/dev/null", out, out}, false);
  std::optional<int> st = wait_exit(p, timeout, &t1);
  std::vector<std::pair<std::string, std::string>> logs = {{"ckpt output", out}};
  if (!log.empty()) logs.emplace_back("ckpt log", log);
  if (!st)
    throw RunFailure(with_log(fmt("ckpt %s did not finish within %.0f s; processes:\n", what,
                                  timeout) +
                                  describe_tree(p) + (victim ? describe_tree(victim) : ""),
                              logs));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(with_log(fmt("ckpt %s ", what) + describe_status(*st), logs));
  return t1 - t0;
}

}  // namespace

RoundTripResult RoundTrip(const RoundTripSpec& s) {
  const std::string img = s.dir + "/images";
  const std::string& pre = s.log_prefix;
  const std::string v_in = s.work + "/victim.stdin";
  const std::string v_out = pre + "victim.stdout", v_err = pre + "victim.stderr";
  const std::string d_log = pre + "dump.log", d_out = pre + "dump.out";
  const std::string r_out = pre + "restore.out", r_pid = pre + "restore.pid";
  auto note = [&](const std::string& n) {
    if (s.note) s.note(n);
  };
  RoundTripResult res;

  rm_rf(img);
  if (mkdir(img.c_str(), 0700) != 0) fail_errno("mkdir " + img);

  progress(s.step + ": starting victim");
  pid_t pid = spawn(s.victim_argv, {v_in, v_out, v_err}, true, s.work);
  wait_ready(pid, v_out, v_err, s.timeout);
  std::vector<pid_t> pids = s.after_ready ? s.after_ready(pid) : std::vector<pid_t>{pid};

  // ---- dump
  progress(s.step + ": ckpt dump");
  const std::string srv = s.dir + "/server", s_log = pre + "page-server.log";
  std::vector<std::string> dump_argv = {s.ckpt, "dump", "-t", std::to_string(pid),
                                        "-D",   img,    "-o", d_log};
  pid_t server = 0;
  if (s.page_server) {
    rm_rf(srv);
    int port = 0;
    server = start_page_server(s.ckpt, srv, s_log, &port);
    dump_argv.insert(dump_argv.end(),
                     {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port)});
  }
  res.dump_s = timed_ckpt(dump_argv, d_out, d_log, pid, s.timeout, "dump");
  if (server) join_page_server_images(server, srv, img, s_log);

  std::optional<int> vst = wait_exit(pid, 30);
  if (!vst)
    throw RunFailure(
        fmt("ckpt dump exited 0 but the dumped root %d is still alive 30 s later", pid));
  if (!WIFSIGNALED(*vst) || WTERMSIG(*vst) != SIGKILL)
    note("after ckpt dump the victim " + describe_status(*vst) + " (expected: killed by SIGKILL)");
  reap_until_gone(pids, 30);
  res.images = dir_usage(img);
  if (res.images.files == 0)
    throw RunFailure("ckpt dump exited 0 but wrote no image files into " + img);

  // ---- restore
  progress(s.step + ": ckpt restore");
  const std::string l_log = pre + "lazy-pages.log";
  std::vector<std::string> restore_argv = {s.ckpt, "restore", "-D", img, "-d", "--pidfile", r_pid};
  pid_t lazy = 0;
  if (s.lazy) {
    lazy = start_lazy_daemon(s.ckpt, img, l_log);
    restore_argv.push_back("--lazy-pages");
  }
  const double t_restore = now();
  res.restore_s = timed_ckpt(restore_argv, r_out, "", 0, s.timeout, "restore -d");
  if (lazy) {  // the victim runs; its memory arrives until the daemon exits
    double t1 = 0;
    std::optional<int> lst = wait_exit(lazy, s.timeout, &t1);
    if (!lst || !WIFEXITED(*lst) || WEXITSTATUS(*lst) != 0)
      throw RunFailure(
          with_log("the lazy-pages daemon did not end well", {{"lazy-pages log", l_log}}));
    res.all_in_s = t1 - t_restore;
    unlink(l_log.c_str());
  }

  std::string pf = read_file(r_pid);
  if (pf.empty())
    note("ckpt restore --pidfile wrote no pid file");
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
    if (s.victim_argv[0] != exe)
      throw RunFailure(
          fmt("restored process %d runs %s, not %s", pid, exe, s.victim_argv[0].c_str()));
  }
  if (ppid != getpid()) {
    // Not ours to reap, but it is the restored victim: do not leave it behind.
    if (n > 0) kill(pid, SIGKILL);
    throw RunFailure(fmt("restored root %d has parent %d, not ckpt-bench (%d), the child subreaper",
                         pid, ppid, getpid()));
  }
  if (state == 'Z') {
    std::optional<int> zst = wait_exit(pid, 5);
    throw RunFailure(with_log("restored root " +
                                  (zst ? describe_status(*zst) : std::string("is a zombie")) +
                                  " before it was signalled",
                              {{"victim stderr", v_err}, {"ckpt output", r_out}}));
  }
  for (pid_t p : pids) {
    if (p != pid && proc_stat(p, &state, &ppid) && state == 'Z')
      throw RunFailure(fmt("restored process %d is a zombie before it was signalled", p));
  }
  if (s.after_restore) s.after_restore(pid);

  // ---- verify: the victim checks itself on SIGTERM
  progress(s.step + ": verifying");
  if (kill(pid, SIGTERM) != 0) fail_errno(fmt("kill(%d, SIGTERM)", pid));
  vst = wait_exit(pid, s.timeout);
  if (!vst)
    throw RunFailure(
        with_log(fmt("restored root %d did not exit within %.0f s of SIGTERM; processes:\n", pid,
                     s.timeout) +
                     describe_tree(pid),
                 {{"victim stderr", v_err}}));
  if (!WIFEXITED(*vst) || WEXITSTATUS(*vst) != 0) {
    std::string why =
        WIFEXITED(*vst) && WEXITSTATUS(*vst) == 1 && !s.exit1_means.empty() ? " " + s.exit1_means
                                                                             : "";
    throw RunFailure(
        with_log("restored root " + describe_status(*vst) + why, {{"victim stderr", v_err}}));
  }

  int leftover = kill_all_children();
  if (leftover > 0)
    note(fmt("%d process(es) were left running after a dump/restore round trip (killed)",
             leftover));
  rm_rf(img);
  for (const auto& f : {v_out, v_err, d_log, d_out, r_out, r_pid}) unlink(f.c_str());
  return res;
}

}  // namespace bench
