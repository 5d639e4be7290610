// The plumbing ckpt-bench's sections share: errors and progress output,
// files and directories, the cleanup registry, and child processes (ckpt,
// the victims), which ckpt-bench reaps as a child subreaper.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Set by SIGINT/SIGTERM/SIGHUP (on_stop_signal); check_stop() throws
// Interrupted once it is.
extern volatile sig_atomic_t g_stop;
void on_stop_signal(int);
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by signal") {}
};
void check_stop();

// A run failed: ckpt misbehaved or the restore was wrong. Caught per medium.
struct RunFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
// Throws std::runtime_error("what: strerror(errno)").
[[noreturn]] void fail_errno(const std::string& what);
double now();  // CLOCK_MONOTONIC, seconds
void sleep_ms(int ms);

// One progress line on a terminal, overwritten by the next; nothing otherwise.
bool tty_progress();
void progress(const std::string& s);
void progress_clear();
void warn(const std::string& s);

std::string read_file(const std::string& path);  // "" if unreadable
std::string tail_lines(const std::string& path, size_t n);
void write_file(const std::string& path, const std::string& data);  // throws

// Recursive remove that stays on one filesystem and never follows symlinks.
void rm_rf(const std::string& path);
struct Usage {
  uint64_t apparent = 0;   // sum of st_size
  uint64_t allocated = 0;  // sum of st_blocks * 512
  uint64_t files = 0;
};
Usage dir_usage(const std::string& path);
// "tmpfs", "ext4", ... of the filesystem holding path; its magic in *magic_out.
std::string fs_type(const std::string& path, long* magic_out = nullptr);
constexpr long kTmpfsMagic = 0x01021994;
std::string make_temp_dir(const std::string& parent, const std::string& prefix);
std::string abs_path(const std::string& p);

// What cleanup_all() undoes: mounts first, then directories, last first.
struct Cleanup {
  std::vector<std::string> dirs;    // removed recursively, last first
  std::vector<std::string> mounts;  // unmounted before dirs are removed
};
extern Cleanup g_cleanup;
std::vector<pid_t> list_children();
// SIGKILL and reap every child (as subreaper we also inherit orphans of
// children, e.g. a process ckpt restore created). Returns how many live
// processes had to be killed.
int kill_all_children();
void cleanup_all();

struct Redirect {
  std::string in = "/dev/null";
  std::string out;  // created/truncated
  std::string err;  // created/truncated; same as out is allowed
};
// fork+exec with stdio redirected to files and every other fd closed.
pid_t spawn(const std::vector<std::string>& argv, const Redirect& r, bool new_session,
            const std::string& cwd = "");
// Raw syscall: glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
int pidfd_open(pid_t pid, unsigned flags);
// Waits until `pid` (a child, or a process that will become one) exits.
// Returns the wait status, or nullopt on timeout. Throws on interrupt.
// `ru` (optional): the child's resource usage (wait4), e.g. ru_maxrss.
std::optional<int> wait_exit(pid_t pid, double timeout_s, double* t_exit = nullptr,
                             struct rusage* ru = nullptr);
std::string describe_status(int st);
// Field 3 (state) and field 4 (ppid) of /proc/PID/stat.
bool proc_stat(pid_t pid, char* state, pid_t* ppid);
// "pid comm state wchan" for `pid` and its descendants: what a hung ckpt and
// the task it works on are blocked in.
std::string describe_tree(pid_t pid, int depth = 0);

}  // namespace bench
