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
  struct rusage ru = {};
  res.dump_s = run_ckpt(dump_argv, d_out, d_log, s.timeout, "ckpt dump", pid, &ru);
  res.dump_rss_kib = ru.ru_maxrss;
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
  ru = {};
  res.restore_s = run_ckpt(restore_argv, r_out, "", s.timeout, "ckpt restore -d", 0, &ru);
  res.restore_rss_kib = ru.ru_maxrss;
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
