// Process plumbing shared by zdtm-run and zdtm-errors: start a test
// program, wait for READY, run ckpt with a timeout, inspect /proc, and
// kill and reap everything we (as a child subreaper) may have inherited.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace zdtm {

// Makes us a child subreaper (restored processes get reparented to us) and
// installs SIGINT/SIGTERM/SIGHUP handlers that SIGKILL the tracked pids.
void harness_init();
// Pids the signal handlers kill (the test, a running ckpt); 0 = free slot.
void track_pid(pid_t pid);
void untrack_pid(pid_t pid);

// Forks and execs argv as a test: setsid(), chdir(workdir), stdin
// /dev/null, stdout+stderr appended to out_path. Returns the pid (-1 on
// fork failure).
// ns_flags (CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET,
// CLONE_NEWTIME, CLONE_NEWUSER) start it in new namespaces: with
// CLONE_NEWPID it is pid 1 of its own; a new time namespace gets clock
// offsets of +1000 s (monotonic) and +2000 s (boottime).
// With CLONE_NEWCGROUP the test first moves into cgroup_dir (a cgroup2
// directory) and unshares its cgroup namespace there.
// A new user namespace (which owns the others but time, made by us) gets
// setgroups "deny" and uid and gid maps "0 kUsernsBase kUsernsCount"
// written by us before the test runs; the test starts as the namespace's
// root (uid and gid 0), with the supplementary groups kUsernsGroups (host
// ids; the unmapped one is the overflow gid inside), in a workdir we chown
// to the namespace's root.
inline constexpr unsigned kUsernsBase = 100000, kUsernsCount = 65536;
inline constexpr unsigned kUsernsGroups[] = {5, kUsernsBase + 5, kUsernsBase + 7};
pid_t start_test(const std::vector<std::string>& argv, const std::string& workdir,
                 const std::string& out_path, unsigned long ns_flags = 0,
                 const std::string& cgroup_dir = "");
// With CLONE_NEWNS the test starts in a container: see enter_container.
bool enter_container(const std::string& workdir, const std::string& out_name,
                     unsigned long ns_flags, std::vector<std::string>* argv);
// The first cgroup2 mountpoint ("" if none).
std::string cgroup2_mount();
// Polls every 10 ms until out_path has a line "READY". Fails early if the
// process exits. Returns "" or an error message.
std::string wait_ready(pid_t pid, const std::string& out_path, double timeout_s);

struct CmdResult {
  bool timed_out = false;
  int status = 0;                // waitpid status
  std::string output;            // captured stdout+stderr
  bool ok() const;               // exited 0
  bool crashed() const;          // killed by a signal or exit code >= 128
  std::string describe() const;  // "exit 1", "killed by signal 11", "timed out"
};
// Runs argv with stdin /dev/null and stdout+stderr captured in
// capture_path; SIGKILLs it after timeout_s.
CmdResult run_cmd(const std::vector<std::string>& argv, const std::string& capture_path,
                  double timeout_s);

// Waits for our child pid to exit. Returns false on timeout or if pid is
// not our child (errno == ECHILD then).
bool wait_exit(pid_t pid, double timeout_s, int* status);
std::string describe_status(int status);

// /proc/PID/stat state letter, or 0 if there is no such process.
char proc_state(pid_t pid);
// Parent pid from /proc/PID/stat, or -1.
pid_t proc_ppid(pid_t pid);
// Our current children (from /proc), zombies included.
std::vector<pid_t> our_children();
// "pid 123 (comm) state S" for messages.
std::string describe_pid(pid_t pid);
// SIGKILLs and reaps every child (and everything reparented to us
// meanwhile) except those in keep. Returns descriptions of what it killed.
// A killed ckpt's cure guard ("ckpt-cureguard") is waited for (10 s at
// most) and not reported when it exits by itself.
std::vector<std::string> kill_all_children(const std::vector<pid_t>& keep = {});

std::string read_text(const std::string& path);
// The last `lines` lines of a file, each prefixed with "  | ".
std::string tail(const std::string& path, int lines = 30);
// The first `max` lines containing `word`, prefixed like tail().
std::string grep(const std::string& path, const std::string& word, int max = 10);
// Number of lines exactly equal to `line`.
int count_lines(const std::string& path, const std::string& line);
// Whether text contains number n not adjacent to other digits.
bool mentions_number(const std::string& text, long n);
double now_s();
// A TCP port of 127.0.0.1 nobody listens on (just now); -1 with errno set
// if none could be found.
int free_loopback_port();

}  // namespace zdtm
