// See bench_ckpt_run.h.
#include "bench_ckpt_run.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
  int st[2];
  if (pipe2(st, O_CLOEXEC) < 0) fail_errno("pipe");
  pid_t ps = fork();
  if (ps < 0) fail_errno("fork");
  if (ps == 0) {
    if (dup2(st[1], 3) < 0) _exit(127);
    std::string p = std::to_string(*port);
    execl(ckpt.c_str(), ckpt.c_str(), "page-server", "-D", dir.c_str(), "--address", "127.0.0.1",
          "--port", p.c_str(), "--status-fd", "3", "-o", log.c_str(), (char*)nullptr);
    _exit(127);
  }
  close(st[1]);
  struct pollfd pfd = {st[0], POLLIN, 0};
  char ch;
  bool up = poll(&pfd, 1, 30000) == 1 && read(st[0], &ch, 1) == 1;
  close(st[0]);
  if (!up) throw RunFailure(with_log("the page server did not start", {{"page server log", log}}));
  return ps;
}

double run_ckpt(const std::vector<std::string>& argv, const std::string& out,
                const std::string& log, double timeout_s, const std::string& what) {
  double t0 = now(), t1 = 0;
  pid_t pid = spawn(argv, {"/dev/null", out, out}, false);
  std::optional<int> st = wait_exit(pid, timeout_s, &t1);
  if (!st)
    throw RunFailure(
        with_log(fmt("%s did not finish within %.0f s; processes:\n", what.c_str(), timeout_s) +
                     describe_tree(pid),
                 {{"ckpt output", out}, {"log", log}}));
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
    throw RunFailure(
        with_log(what + " " + describe_status(*st), {{"ckpt output", out}, {"log", log}}));
  return t1 - t0;
}

}  // namespace bench
