// See bench_ckpt_run.h.
#include "bench_ckpt_run.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "bench_util.h"

namespace bench {

std::string with_log(const std::string& msg,
                     const std::vector<std::pair<std::string, std::string>>& files) {
  std::string r = msg;
  for (const auto& [label, path] : files) {
    std::string t = tail_lines(path, 25);
    if (t.empty()) continue;
    r += "\n  --- " + label + " (last lines of " + path + ") ---\n";
    std::istringstream in(t);
    std::string line;
    while (std::getline(in, line)) r += "  | " + line + "\n";
  }
  while (!r.empty() && r.back() == '\n') r.pop_back();
  return r;
}

void wait_ready(pid_t pid, const std::string& out, const std::string& err, double timeout_s) {
  double deadline = now() + timeout_s;
  for (;;) {
    check_stop();
    if (read_file(out).find("READY") != std::string::npos) return;
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      throw std::runtime_error(
          with_log("victim " + describe_status(st) + " before READY", {{"victim stderr", err}}));
    if (now() > deadline) throw std::runtime_error(fmt("victim not READY after %.0f s", timeout_s));
    sleep_ms(2);
  }
}

pid_t start_page_server(const std::string& ckpt, const std::string& dir, const std::string& log,
                        int* port) {
  int sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (sk < 0 || bind(sk, reinterpret_cast<sockaddr*>(&a), len) < 0 ||
      getsockname(sk, reinterpret_cast<sockaddr*>(&a), &len) < 0)
    fail_errno("finding a free port");
  close(sk);
  *port = ntohs(a.sin_port);
  return start_ckpt_daemon({ckpt, "page-server", "-D", dir, "--address", "127.0.0.1", "--port",
                            std::to_string(*port), "-o", log},
                           log, "page server");
}

pid_t start_lazy_daemon(const std::string& ckpt, const std::string& img, const std::string& log) {
  return start_ckpt_daemon({ckpt, "lazy-pages", "-D", img, "-o", log}, log, "lazy-pages daemon");
}

pid_t start_ckpt_daemon(std::vector<std::string> argv, const std::string& log,
                        const std::string& what) {
  argv.insert(argv.end(), {"--status-fd", "3"});
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) fail_errno("pipe");
  pid_t pid = fork();
  if (pid < 0) fail_errno("fork");
  if (pid == 0) {
    if (dup2(st[1], 3) < 0) _exit(127);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(st[1]);
  struct pollfd pfd = {st[0], POLLIN, 0};
  char ch;
  bool up = poll(&pfd, 1, 30000) == 1 && read(st[0], &ch, 1) == 1;
  close(st[0]);
  if (!up) throw RunFailure(with_log("the " + what + " did not start", {{what + " log", log}}));
  return pid;
}

void reap_until_gone(const std::vector<pid_t>& pids, double timeout_s) {
  double deadline = now() + timeout_s;
  for (;;) {
    int st;
    while (waitpid(-1, &st, WNOHANG) > 0) {
    }
    size_t alive = 0;
    pid_t example = 0;
    for (pid_t p : pids)
      if ((kill(p, 0) == 0 || errno != ESRCH) && alive++ == 0) example = p;
    if (alive == 0) return;
    check_stop();
    if (now() > deadline) {
      char state = '?';
      pid_t ppid = 0;
      proc_stat(example, &state, &ppid);
      throw RunFailure(fmt(
          "ckpt dump exited 0 but %zu of the %zu dumped processes still exist %.0f s later (e.g. "
          "pid %d, state %c, parent %d)",
          alive, pids.size(), timeout_s, example, state, ppid));
    }
    sleep_ms(2);
  }
}

double run_ckpt(const std::vector<std::string>& argv, const std::string& out,
                const std::string& log, double timeout_s, const std::string& what, pid_t victim,
                struct rusage* ru) {
  double t0 = now(), t1 = 0;
  pid_t pid = spawn(argv, {"/dev/null", out, out}, false);
  std::optional<int> st = wait_exit(pid, timeout_s, &t1, ru);
  if (!st)
    throw RunFailure(
        with_log(fmt("%s did not finish within %.0f s; processes:\n", what.c_str(), timeout_s) +
                     describe_tree(pid) + (victim > 0 ? describe_tree(victim) : ""),
                 {{"ckpt output", out}, {"log", log}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(
        with_log(what + " " + describe_status(*st), {{"ckpt output", out}, {"log", log}}));
  return t1 - t0;
}

}  // namespace bench
