#include "errors_lib.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace zdtm::errors {

using namespace zdtm;  // NOLINT(google-build-using-namespace): the harness

constexpr double kCkptTimeout = 120;

std::string g_ckpt, g_workdir, g_testbin, g_only;
int g_failed = 0;

bool ParseArgs(int argc, char** argv, const char* prog) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--ckpt")
      g_ckpt = argv[i + 1];
    else if (a == "--workdir")
      g_workdir = argv[i + 1];
    else if (a == "--testbin")
      g_testbin = argv[i + 1];
    else if (a == "--only")
      g_only = argv[i + 1];
  }
  if (g_ckpt.empty() || g_workdir.empty()) {
    fprintf(stderr, "usage: %s --ckpt PATH --workdir DIR [--testbin DIR] [--only PREFIX]\n", prog);
    return false;
  }
  if (g_testbin.empty())
    g_testbin = fs::read_symlink("/proc/self/exe").parent_path().string() + "/../static";
  g_ckpt = fs::absolute(g_ckpt).string();
  g_testbin = fs::absolute(g_testbin).string();
  g_workdir = fs::absolute(g_workdir).string();
  fs::remove_all(g_workdir);
  fs::create_directories(g_workdir);
  return true;
}

int Summary(const char* prog) {
  kill_all_children();
  printf("%s: %d sub-check(s) failed\n", prog, g_failed);
  return g_failed ? 1 : 0;
}

std::string indent(const std::string& text, size_t max_lines) {
  std::string out;
  size_t lines = 0, pos = 0;
  while (pos < text.size() && lines < max_lines) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out += "    | " + text.substr(pos, nl - pos) + "\n";
    pos = nl + 1;
    lines++;
  }
  if (pos < text.size()) out += "    | ...\n";
  return out.empty() ? "    (no output)\n" : out;
}

Ckpt ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
          const std::vector<std::string>& logs) {
  args.insert(args.begin(), g_ckpt);
  Ckpt r;
  static_cast<CmdResult&>(r) = run_cmd(args, dir + "/ckpt-" + name + ".out", kCkptTimeout);
  for (const auto& l : logs) r.logs += read_text(l);
  return r;
}

// A non-zero exit below 128: refused, not crashed.
void expect_refused(const Ckpt& r, const std::string& what) {
  if (r.ok()) throw Fail(what + " succeeded, want a failure\n" + indent(r.all()));
  if (r.crashed() || r.timed_out)
    throw Fail(what + ": " + r.describe() + "\n" + indent(r.all()));
}


Helper start_helper(const std::string& test, const std::string& dir,
                    const std::vector<std::string>& args, unsigned long ns_flags) {
  fs::create_directories(dir);
  Helper h{0, dir + "/out.txt"};
  std::vector<std::string> argv = {g_testbin + "/" + test};
  argv.insert(argv.end(), args.begin(), args.end());
  h.pid = start_test(argv, dir, h.out, ns_flags);
  if (h.pid < 0) throw Fail("setup: fork failed");
  std::string err = wait_ready(h.pid, h.out, 60);
  if (!err.empty())
    throw Fail("setup: helper " + test + ": " + err + "\n" + indent(read_text(h.out)));
  return h;
}

void expect_alive(const Helper& h, const std::string& when) {
  char st = proc_state(h.pid);
  if (st != 'R' && st != 'S' && st != 'D')
    throw Fail("victim not running " + when + ": " + describe_pid(h.pid));
  if (proc_ppid(h.pid) != getpid())
    throw Fail("victim pid " + std::to_string(h.pid) + " is no longer our child " + when);
}

// SIGTERM; the helper must verify its state and pass.
void finish_helper(const Helper& h) {
  kill(h.pid, SIGTERM);
  int status;
  if (!wait_exit(h.pid, 60, &status))
    throw Fail("victim did not exit after SIGTERM: " + describe_pid(h.pid));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || count_lines(h.out, "PASS") != 1)
    throw Fail("victim failed its own verification (" + describe_status(status) + ")\n" +
               indent(read_text(h.out)));
}

void expect_no_pid(pid_t pid, const std::string& when) {
  for (int i = 0; i < 2; i++) {
    if (proc_state(pid)) throw Fail(when + " left " + describe_pid(pid));
    usleep(200000);
  }
}

int free_port() {
  int port = free_loopback_port();
  if (port < 0) throw Fail(std::string("setup: finding a free port: ") + strerror(errno));
  return port;
}

// Runs one named sub-check; cleans up whatever it left.
void check(const std::string& name, const std::function<void(const std::string& dir)>& fn) {
  if (name.rfind(g_only, 0) != 0) return;
  std::string dir = g_workdir + "/" + name;
  fs::create_directories(dir);
  std::string err;
  try {
    fn(dir);
  } catch (const Fail& f) {
    err = f.what();
  } catch (const std::exception& e) {
    err = std::string("exception: ") + e.what();
  }
  auto left = kill_all_children();
  if (err.empty() && !left.empty()) {
    err = "processes left behind:";
    for (const auto& l : left) err += " [" + l + "]";
  }
  if (err.empty()) {
    printf("[ OK ] %s\n", name.c_str());
  } else {
    printf("[FAIL] %s: %s\n", name.c_str(), err.c_str());
    g_failed++;
  }
  fflush(stdout);
}

pid_t free_pid() {
  pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

}  // namespace zdtm::errors
