// zdtm-options: CRIU's dump/restore options as ckpt answers them (issue 14
// item 12).
//
//   zdtm-options --ckpt PATH --workdir DIR [--testbin DIR] [--only PREFIX]
//
// Sub-checks (each prints "[ OK ] name" or "[FAIL] name: reason"):
//   refused      every CRIU option ckpt does not implement, long and short
//                forms, with dump and with restore: non-zero exit, "--NAME
//                is not supported yet", no image directory made, the victim
//                untouched
//   ghost-limit  dump --ghost-limit 64K of a process holding a deleted 1 MiB
//                file: refused naming the file and the limit, victim untouched
//   timeout      dump --timeout 2 of a process in vfork's uninterruptible
//                wait: fails naming the task and the timeout (without it
//                ckpt would wait for ever), victim untouched
//   implemented  dump --display-stats --log-pid --timeout, then restore
//                --display-stats --pidfile --status-fd --exec-cmd: the
//                stats are printed, the log file gets ckpt's pid, the
//                status fd gets one byte, and the command ckpt execs is the
//                restored process's parent (it stops and reaps it)
// Also: zdtm-options --exec-cmd-helper PIDFILE (what --exec-cmd runs).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "errors_lib.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace zdtm;          // NOLINT(google-build-using-namespace): the harness
using namespace zdtm::errors;  // NOLINT(google-build-using-namespace)

namespace {

std::string g_self;  // this binary, for --exec-cmd

// The options ckpt refuses by name (criu/options_refused.cc): name, takes a value.
const std::vector<std::pair<const char*, bool>> kRefused = {
    {"allow-uprobes", false},       {"auto-ext-mnt", false},
    {"cgroup-dump-controller", true}, {"cgroup-props", true},
    {"cgroup-props-file", true},    {"cgroup-yard", true},
    {"cpu-cap", true},              {"enable-external-masters", false},
    {"enable-external-sharing", false}, {"enable-fs", true},
    {"ext-mount-map", true},        {"ghost-fiemap", false},
    {"irmap-scan-path", true},      {"leave-stopped", false},
    {"lsm-mount-context", true},    {"mntns-compat-mode", false},
    {"pre-dump-mode", true},        {"ps-socket", true},
    {"remote", false},              {"restore-sibling", false},
    {"skip-file-rwx-check", false}, {"stream", false},
    {"tls", false},                 {"tls-cacert", true},
    {"tls-cacrl", true},            {"tls-cert", true},
    {"tls-key", true},              {"tls-no-cn-verify", false},
    {"unprivileged", false},        {"veth-pair", true},
    {"work-dir", true},
};
// Short forms: letter, the long name the message gives, takes a value.
const std::vector<std::tuple<char, const char*, bool>> kRefusedShort = {
    {'s', "leave-stopped", false}, {'W', "work-dir", true}, {'M', "ext-mount-map", true}};

// --exec-cmd-helper PIDFILE: run by ckpt restore --exec-cmd in its place.
// The restored root must be our child: stop it with SIGTERM and reap it.
int ExecCmdHelper(const char* pidfile) {
  std::string text = read_text(pidfile);
  pid_t root = pid_t(atoi(text.c_str()));
  if (root <= 0) {
    printf("exec-cmd: no pid in %s\n", pidfile);
    return 3;
  }
  if (proc_ppid(root) != getpid()) {
    printf("exec-cmd: pid %d is not our child (parent %d)\n", root, proc_ppid(root));
    return 4;
  }
  kill(root, SIGTERM);
  int st = 0;
  if (!wait_exit(root, 60, &st)) {
    printf("exec-cmd: pid %d did not exit\n", root);
    return 5;
  }
  printf("exec-cmd: root %d %s\n", root, describe_status(st).c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 6;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && !strcmp(argv[1], "--exec-cmd-helper")) return ExecCmdHelper(argv[2]);
  harness_init();
  if (!ParseArgs(argc, argv, "zdtm-options")) return 2;
  g_self = fs::read_symlink("/proc/self/exe").string();

  check("refused", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string img = dir + "/img";
    auto one = [&](const std::string& cmd, const std::vector<std::string>& opt,
                   const std::string& name) {
      std::vector<std::string> args = {cmd};
      args.insert(args.end(), opt.begin(), opt.end());
      if (cmd == "dump") args.insert(args.end(), {"-t", std::to_string(h.pid)});
      args.insert(args.end(), {"-D", img});
      Ckpt r = ckpt(dir, cmd + "-" + name, args);
      expect_refused(r, cmd + " " + opt[0]);
      if (r.output.find("--" + name + ") is not supported yet") == std::string::npos &&
          r.output.find("--" + name + " is not supported yet") == std::string::npos)
        throw Fail(cmd + " " + opt[0] + ": the error does not say \"--" + name +
                   " is not supported yet\"\n" + indent(r.output));
      if (fs::exists(img)) throw Fail(cmd + " " + opt[0] + " made the image directory");
      expect_alive(h, "after " + cmd + " " + opt[0]);
    };
    for (const auto& [name, valued] : kRefused)
      for (const char* cmd : {"dump", "restore"}) {
        std::vector<std::string> opt = {std::string("--") + name};
        if (valued) opt.push_back("x");
        one(cmd, opt, name);
      }
    for (const auto& [letter, name, valued] : kRefusedShort) {
      std::vector<std::string> opt = {std::string("-") + letter};
      if (valued) opt.push_back("x");
      one("dump", opt, name);
    }
    finish_helper(h);
  });

  check("ghost-limit", [](const std::string& dir) {
    Helper h = start_helper("deleted_file", dir + "/run");
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img,
                                     "--ghost-limit", "64K"});
    expect_refused(r, "dump --ghost-limit 64K");
    if (r.output.find("--ghost-limit 65536") == std::string::npos ||
        r.output.find("ghost.dat") == std::string::npos)
      throw Fail("the error does not name ghost.dat and the limit\n" + indent(r.output));
    expect_alive(h, "after the refused dump");
    finish_helper(h);
  });

  check("timeout", [](const std::string& dir) {
    Helper h = start_helper("vfork_wait", dir + "/run");
    std::string img = dir + "/img";
    Ckpt r = ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img,
                                     "--timeout", "2"});
    expect_refused(r, "dump --timeout 2 of a task in vfork");
    if (r.output.find("--timeout") == std::string::npos || !mentions_number(r.output, h.pid))
      throw Fail("the error does not name the task and --timeout\n" + indent(r.output));
    expect_alive(h, "after the refused dump");
    // Let the parent out of vfork: kill the child that holds it.
    std::string kids = read_text("/proc/" + std::to_string(h.pid) + "/task/" +
                                 std::to_string(h.pid) + "/children");
    pid_t child = pid_t(atoi(kids.c_str()));
    if (child <= 0) throw Fail("the vfork child is gone");
    kill(child, SIGKILL);
    finish_helper(h);
  });

  check("implemented", [](const std::string& dir) {
    Helper h = start_helper("same_pid", dir + "/run");
    std::string img = dir + "/img";
    Ckpt d = ckpt(dir, "dump", {"dump", "-t", std::to_string(h.pid), "-D", img,
                                     "--display-stats", "--log-pid", "-o", "dump.log",
                                     "--timeout", "30"});
    if (!d.ok()) throw Fail("dump: " + d.describe() + "\n" + indent(d.output));
    if (d.output.find("Displaying dump stats:") == std::string::npos ||
        d.output.find("Memory pages written: ") == std::string::npos)
      throw Fail("dump --display-stats printed no stats\n" + indent(d.output));
    bool with_pid = false;
    for (const auto& e : fs::directory_iterator(img))
      with_pid |= e.path().filename().string().rfind("dump.log.", 0) == 0;
    if (!with_pid || fs::exists(img + "/dump.log"))
      throw Fail("--log-pid: no dump.log.PID in " + img);
    int st;
    if (!wait_exit(h.pid, 30, &st)) throw Fail("the dumped process was not killed");
    std::string pidfile = dir + "/restored.pid", status = dir + "/status.bin";
    std::string cmd = "exec '" + g_ckpt + "' restore -D '" + img +
                      "' --display-stats --pidfile '" + pidfile + "' --status-fd 3 --exec-cmd -- '" +
                      g_self + "' --exec-cmd-helper '" + pidfile + "' 3>'" + status + "'";
    CmdResult r = run_cmd({"/bin/sh", "-c", cmd}, dir + "/restore.out", 120);
    if (r.output.find("Displaying restore stats:") == std::string::npos)
      throw Fail("restore --display-stats printed no stats\n" + indent(r.output));
    if (r.output.find("exec-cmd: root " + std::to_string(h.pid) + " exit 0") == std::string::npos ||
        !r.ok())
      throw Fail("the --exec-cmd command did not reap the restored process (" + r.describe() +
                 ")\n" + indent(r.output));
    if (fs::file_size(status) != 1) throw Fail("--status-fd got " + std::to_string(fs::file_size(status)) + " bytes, want 1");
    if (count_lines(h.out, "PASS") != 1)
      throw Fail("the restored process did not pass\n" + indent(read_text(h.out)));
  });

  return Summary("zdtm-options");
}
