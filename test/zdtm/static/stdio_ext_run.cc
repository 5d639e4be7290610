// stdio_ext_run: a container's stdio, whose other ends the runtime holds
// outside the dumped tree (criu/files/inherit_fd.h, orphan_pty.h). This
// driver plays the runtime: it holds the other ends, dumps the victim
// (stdio_echo), and restores it the way runc does.
//
//   stdio_ext_run --ckpt CKPT --workdir DIR --victim STDIO_ECHO pipe|pty
//
// pipe: stdin and stdout are pipes to us. Before the dump a line goes
//   through both ways, and one more line is left unread in stdin. The dump
//   must succeed (external pipes); a restore without --inherit-fd must fail
//   naming the pid, fd 0 and pipe:[INO] and leave nothing running; the real
//   restore gets fresh pipes as ckpt's fds 0 and 1 and its --inherit-fd
//   options from a --config file (with a comment and restore-detached):
//   then the unread line comes out first, a new line goes both ways, and
//   the victim checks its fds and prints PASS.
// pty: stdin/stdout/stderr are the slave of a pty whose master we hold;
//   the victim's controlling terminal, set to no ECHO and no ONLCR. A dump
//   without --orphan-pts-master is refused and the victim goes on; with
//   it the dump succeeds; a restore without it is refused, nothing left
//   running; the real restore runs in this process (ckpt's Restore with an
//   orphan-pts-master listener, as an RPC client would have, minus the
//   SCM_RIGHTS hop the RPC tests cover) and gets the new master: a line
//   goes both ways through it, and the victim checks its terminal.
// tty-ext: the same pty slave, dumped with --external tty[RDEV:DEV] (no
//   orphan master), and its stderr file with --external file[MNT_ID:INODE];
//   refused without either --inherit-fd, then restored with the same slave
//   as ckpt's fd 0 and another file as fd 3: the slave is the controlling
//   terminal again, a line goes both ways through our master, and the
//   victim's last words go to the new file.
// Everything is killed at the end, pass or fail; the workdir is removed
// after a pass (unless STDIO_EXT_KEEP is set, for reading the logs).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "criu/kerndat.h"
#include "criu/options.h"
#include "criu/restore.h"
#include "harness.h"

namespace fs = std::filesystem;
using namespace zdtm;

namespace {

std::string g_workdir;

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "stdio_ext_run: FAIL: %s\n", why.c_str());
  kill_all_children();
  fprintf(stderr, "stdio_ext_run: images and logs kept in %s\n", g_workdir.c_str());
  exit(1);
}

// Reads up to and including '\n' within timeout_s; "" on timeout or EOF.
std::string ReadLine(int fd, double timeout_s) {
  std::string line;
  double deadline = now_s() + timeout_s;
  while (now_s() < deadline) {
    pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r <= 0) continue;
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return line;
    if (c == '\r') continue;
    if (c == '\n') return line;
    line += c;
  }
  return line + "<timeout>";
}

void WriteAll(int fd, const std::string& s) {
  if (write(fd, s.data(), s.size()) != ssize_t(s.size()))
    Die("write to the victim: " + std::string(strerror(errno)));
}

// Starts the victim in a session of its own with `in`/`out` as fds 0 and 1
// (pipe mode) or the pty slave `slave` as 0, 1, 2 and controlling terminal.
pid_t StartVictim(const std::string& bin, const char* mode, int in, int out,
                  const std::string& slave, const std::string& errpath) {
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    setsid();
    if (!slave.empty()) {
      int s = open(slave.c_str(), O_RDWR);
      if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) _exit(120);
      dup2(s, 0), dup2(s, 1), dup2(s, 2);
      if (s > 2) close(s);
      if (!errpath.empty()) {
        int e = open(errpath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(e, 2);
      }
    } else {
      int e = open(errpath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      dup2(in, 0), dup2(out, 1), dup2(e, 2);
    }
    closefrom(3);
    execl(bin.c_str(), bin.c_str(), mode, nullptr);
    _exit(127);
  }
  track_pid(pid);
  return pid;
}

// ckpt with its own fds 0 and 1 given (-1: /dev/null), `extra` as its fd
// 3, output captured.
CmdResult Ckpt(const std::vector<std::string>& argv, int in, int out, const std::string& capture,
               int extra = -1) {
  CmdResult r;
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    int nul = open("/dev/null", O_RDWR);
    int c = open(capture.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(in >= 0 ? in : nul, 0);
    dup2(out >= 0 ? out : c, 1);
    dup2(c, 2);
    if (extra >= 0) dup2(extra, 3);
    closefrom(extra >= 0 ? 4 : 3);
    std::vector<char*> av;
    for (const std::string& a : argv) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  track_pid(pid);
  if (!wait_exit(pid, 120, &r.status)) {
    r.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &r.status, 0);
    untrack_pid(pid);
  }
  r.output = read_text(capture);
  return r;
}

void Expect(int fd, const std::string& want, const std::string& what) {
  std::string got = ReadLine(fd, 30);
  if (got != want) Die(what + ": expected \"" + want + "\", read \"" + got + "\"");
}

void ReapVictim(pid_t pid) {
  int st = 0;
  if (!wait_exit(pid, 30, &st)) Die("the victim did not exit");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) Die("the victim: " + describe_status(st));
}

// After a refused restore: nothing of the tree may be left.
void ExpectNothingLeft(pid_t pid, const std::string& what) {
  if (kill(pid, 0) == 0 || errno != ESRCH) Die(what + ": pid " + std::to_string(pid) + " exists");
  for (pid_t c : our_children()) Die(what + ": left behind " + describe_pid(c));
}

void ExpectMentions(const std::string& text, const std::string& want, const std::string& what) {
  if (text.find(want) == std::string::npos) Die(what + " does not say \"" + want + "\":\n" + text);
}

uint64_t Ino(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) Die("fstat");
  return st.st_ino;
}

int RunPipe(const std::string& ckpt, const std::string& victim) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) Die("pipe");
  pid_t pid = StartVictim(victim, "pipe", in[0], out[1], "", g_workdir + "/victim.err");
  close(in[0]);
  close(out[1]);
  Expect(out[0], "READY", "start");
  WriteAll(in[1], "before\n");
  kill(pid, SIGUSR1);
  Expect(out[0], "echo:before", "before the dump");
  WriteAll(in[1], "unread\n");  // still in the pipe at dump time
  std::string in_key = "pipe:[" + std::to_string(Ino(in[1])) + "]";
  std::string out_key = "pipe:[" + std::to_string(Ino(out[0])) + "]";

  std::string img = g_workdir + "/img";
  CmdResult d = Ckpt({ckpt, "dump", "-t", std::to_string(pid), "-D", img, "-o", "dump.log", "-v4"},
                     -1, -1, g_workdir + "/dump.out");
  if (!d.ok()) Die("dump: " + d.describe() + "\n" + d.output + tail(img + "/dump.log"));
  int st;
  if (!wait_exit(pid, 30, &st)) Die("the dumped victim is still there");
  ExpectMentions(read_text(img + "/dump.log"), in_key + " is external", "the dump log about stdin");
  close(in[1]);
  close(out[0]);

  // Without --inherit-fd: refused before anything exists.
  CmdResult r = Ckpt({ckpt, "restore", "-D", img, "-d", "-o", "restore-refused.log"}, -1, -1,
                     g_workdir + "/refused.out");
  std::string why = r.output + read_text(img + "/restore-refused.log");
  if (r.ok()) Die("a restore without --inherit-fd succeeded");
  ExpectMentions(why, "pid " + std::to_string(pid) + " fd 0: " + in_key, "the refusal");
  ExpectMentions(why, "--inherit-fd fd[N]:" + in_key, "the refusal");
  ExpectNothingLeft(pid, "the refused restore");

  // As runc: fresh pipes as ckpt's stdin and stdout, keys from the dump,
  // here through a config file.
  std::string conf = g_workdir + "/restore.conf";
  {
    FILE* f = fopen(conf.c_str(), "w");
    if (!f) Die("write " + conf);
    fprintf(f,
            "# the container's stdio, as the runtime hands it over\n"
            "inherit-fd fd[0]:%s\n"
            "inherit-fd \"fd[1]:%s\"   # quoted, with a comment\n"
            "restore-detached\n",
            in_key.c_str(), out_key.c_str());
    fclose(f);
  }
  int in2[2], out2[2];
  if (pipe2(in2, O_CLOEXEC) < 0 || pipe2(out2, O_CLOEXEC) < 0) Die("pipe");
  // And a file by its path: the victim's stderr goes to another file.
  std::string err2 = g_workdir + "/victim-restored.err";
  int e2 = open(err2.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (e2 < 0) Die("open " + err2);
  r = Ckpt({ckpt, "restore", "-D", img, "--config", conf, "-o", "restore.log", "-v4",
            "--inherit-fd", "fd[3]:" + g_workdir + "/victim.err"},
           in2[0], out2[1], g_workdir + "/restore.out", e2);
  close(e2);
  close(in2[0]);
  close(out2[1]);
  if (!r.ok()) Die("restore: " + r.describe() + "\n" + r.output + tail(img + "/restore.log"));
  if (kill(pid, 0) < 0) Die("the restored victim is not there");
  track_pid(pid);
  kill(pid, SIGUSR1);
  Expect(out2[0], "echo:unread", "the line left unread at dump");
  WriteAll(in2[1], "after\n");
  kill(pid, SIGUSR1);
  Expect(out2[0], "echo:after", "after the restore");
  kill(pid, SIGTERM);
  Expect(out2[0], "PASS", "the victim's own checks");
  ReapVictim(pid);
  close(in2[1]);
  close(out2[0]);
  if (read_text(err2) != "stderr:bye\n")
    Die("the inherited stderr file got \"" + read_text(err2) + "\"");
  if (read_text(g_workdir + "/victim.err") != "") Die("the dumped stderr file was written to");
  printf("stdio_ext_run pipe: PASS\n");
  return 0;
}

int RunPty(const std::string& ckpt, const std::string& victim) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) Die("posix_openpt");
  std::string slave = ptsname(m);
  pid_t pid = StartVictim(victim, "pty", -1, -1, slave, "");
  Expect(m, "READY", "start");
  WriteAll(m, "before\n");
  kill(pid, SIGUSR1);
  Expect(m, "echo:before", "before the dump");

  std::string img = g_workdir + "/img";
  std::vector<std::string> dump = {ckpt, "dump",     "-t", std::to_string(pid), "-D", img,
                                   "-o", "dump.log", "-v4"};
  CmdResult d = Ckpt(dump, -1, -1, g_workdir + "/refused-dump.out");
  if (d.ok())
    Die("a dump of a pty slave whose master is ours succeeded without --orphan-pts-master");
  ExpectMentions(d.output + read_text(img + "/dump.log"), "--orphan-pts-master",
                 "the refused dump");
  WriteAll(m, "between\n");  // the victim goes on
  kill(pid, SIGUSR1);
  Expect(m, "echo:between", "after the refused dump");
  fs::remove_all(img);
  dump.push_back("--orphan-pts-master");
  d = Ckpt(dump, -1, -1, g_workdir + "/dump.out");
  if (!d.ok()) Die("dump: " + d.describe() + "\n" + d.output + tail(img + "/dump.log"));
  int st;
  if (!wait_exit(pid, 30, &st)) Die("the dumped victim is still there");

  CmdResult r = Ckpt({ckpt, "restore", "-D", img, "-d", "-o", "restore-refused.log"}, -1, -1,
                     g_workdir + "/refused.out");
  if (r.ok()) Die("a restore without --orphan-pts-master succeeded");
  std::string why = r.output + read_text(img + "/restore-refused.log");
  ExpectMentions(why, "pid " + std::to_string(pid) + " fd 0: tty[", "the refusal");
  ExpectMentions(why, "--orphan-pts-master", "the refusal");
  ExpectNothingLeft(pid, "the refused restore");

  // ckpt's Restore here, with a listener for the new master.
  ckpt::Options o;
  o.command = ckpt::Command::kRestore;
  o.images_dir = img;
  o.restore_detached = true;
  o.orphan_pts_master = true;
  int master = -1, calls = 0;
  o.notify = [&](const ckpt::ActionEvent& e) -> ckpt::Status {
    if (e.action != ckpt::Action::kOrphanPtsMaster) return ckpt::Ok();
    calls++;
    if (e.pid != pid) return ckpt::Error("orphan-pts-master for pid " + std::to_string(e.pid));
    master = fcntl(e.fd, F_DUPFD_CLOEXEC, 3);
    return ckpt::Ok();
  };
  auto res = ckpt::Restore(o, ckpt::ProbeKernel());
  prctl(PR_SET_CHILD_SUBREAPER, 1);  // Restore gave it up
  if (!res.ok()) Die("restore: " + res.error().message());
  track_pid(pid);
  if (calls != 1 || master < 0) Die("orphan-pts-master ran " + std::to_string(calls) + " times");
  close(m);  // the old master: nothing of the tree holds its slave
  WriteAll(master, "after\n");
  kill(pid, SIGUSR1);
  Expect(master, "echo:after", "through the new master");
  kill(pid, SIGTERM);
  Expect(master, "PASS", "the victim's own checks");
  ReapVictim(pid);
  close(master);
  printf("stdio_ext_run pty: PASS\n");
  return 0;
}

// tty-ext: the terminal named at dump by --external tty[RDEV:DEV] and
// given back at restore as ckpt's fd 0 (the same pty, whose master we kept).
int RunTtyExt(const std::string& ckpt, const std::string& victim) {
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) Die("posix_openpt");
  std::string slave = ptsname(m);
  struct stat st;
  if (stat(slave.c_str(), &st) < 0) Die("stat " + slave);
  char key[64];
  snprintf(key, sizeof(key), "tty[%llx:%llx]", (unsigned long long)st.st_rdev,
           (unsigned long long)st.st_dev);
  // Its stderr: a file named by --external file[MNT_ID:INODE].
  std::string err = g_workdir + "/victim.err";
  pid_t pid = StartVictim(victim, "pty", -1, -1, slave, err);
  Expect(m, "READY", "start");
  std::string file_key;
  {
    int e = open(err.c_str(), O_RDONLY | O_CLOEXEC);
    auto mnt = read_text("/proc/self/fdinfo/" + std::to_string(e));
    size_t at = mnt.find("mnt_id:");
    if (e < 0 || at == std::string::npos) Die("mnt_id of " + err);
    char k[96];
    snprintf(k, sizeof(k), "file[%lx:%llx]", strtoul(mnt.c_str() + at + 7, nullptr, 10),
             (unsigned long long)Ino(e));
    file_key = k;
    close(e);
  }
  std::string img = g_workdir + "/img";
  CmdResult d = Ckpt({ckpt, "dump", "-t", std::to_string(pid), "-D", img, "-o", "dump.log", "-v4",
                      "--external", key, "--external", file_key},
                     -1, -1, g_workdir + "/dump.out");
  if (!d.ok()) Die("dump: " + d.describe() + "\n" + d.output + tail(img + "/dump.log"));
  int wst;
  if (!wait_exit(pid, 30, &wst)) Die("the dumped victim is still there");

  CmdResult r = Ckpt({ckpt, "restore", "-D", img, "-d", "-o", "restore-refused.log"}, -1, -1,
                     g_workdir + "/refused.out");
  if (r.ok()) Die("a restore without --inherit-fd for the external terminal succeeded");
  std::string why = r.output + read_text(img + "/restore-refused.log");
  ExpectMentions(why, "pid " + std::to_string(pid) + " fd 0: " + key, "the refusal");
  ExpectMentions(why, std::string("--inherit-fd fd[N]:") + key, "the refusal");
  ExpectNothingLeft(pid, "the refused restore");

  int s = open(slave.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (s < 0) Die("reopen " + slave);
  std::string err2 = g_workdir + "/victim-restored.err";
  int e2 = open(err2.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (e2 < 0) Die("open " + err2);
  // Without the file's: refused, naming it.
  r = Ckpt({ckpt, "restore", "-D", img, "-d", "-o", "restore-refused2.log", "--inherit-fd",
            std::string("fd[0]:") + key},
           s, -1, g_workdir + "/refused2.out");
  if (r.ok()) Die("a restore without --inherit-fd for the external file succeeded");
  ExpectMentions(r.output, "pid " + std::to_string(pid) + " fd 2: " + file_key, "the refusal");
  ExpectNothingLeft(pid, "the second refused restore");
  r = Ckpt({ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4", "--inherit-fd",
            std::string("fd[0]:") + key, "--inherit-fd", "fd[3]:" + file_key},
           s, -1, g_workdir + "/restore.out", e2);
  close(s);
  close(e2);
  if (!r.ok()) Die("restore: " + r.describe() + "\n" + r.output + tail(img + "/restore.log"));
  track_pid(pid);
  WriteAll(m, "after\n");
  kill(pid, SIGUSR1);
  Expect(m, "echo:after", "through the inherited terminal");
  kill(pid, SIGTERM);
  Expect(m, "PASS", "the victim's own checks");
  ReapVictim(pid);
  close(m);
  if (read_text(err2) != "stderr:bye\n")
    Die("the inherited stderr file got \"" + read_text(err2) + "\"");
  if (read_text(err) != "") Die("the dumped stderr file was written to");
  printf("stdio_ext_run tty-ext: PASS\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string ckpt, victim, mode;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--ckpt" && i + 1 < argc)
      ckpt = argv[++i];
    else if (a == "--workdir" && i + 1 < argc)
      g_workdir = argv[++i];
    else if (a == "--victim" && i + 1 < argc)
      victim = argv[++i];
    else
      mode = a;
  }
  if (ckpt.empty() || g_workdir.empty() || victim.empty() ||
      (mode != "pipe" && mode != "pty" && mode != "tty-ext")) {
    fprintf(stderr,
            "usage: stdio_ext_run --ckpt CKPT --workdir DIR --victim BIN pipe|pty|tty-ext\n");
    return 2;
  }
  harness_init();
  signal(SIGPIPE, SIG_IGN);
  g_workdir = fs::absolute(g_workdir).string();
  fs::remove_all(g_workdir);
  fs::create_directories(g_workdir);
  ckpt = fs::absolute(ckpt).string();
  int rc = mode == "pipe"  ? RunPipe(ckpt, victim)
           : mode == "pty" ? RunPty(ckpt, victim)
                           : RunTtyExt(ckpt, victim);
  kill_all_children();
  if (rc == 0 && !getenv("STDIO_EXT_KEEP")) fs::remove_all(g_workdir);
  return rc;
}
