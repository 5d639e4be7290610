// Running ckpt and the victims from ckpt-bench's sections: error messages
// with the tails of logs, waiting for a victim's READY, a `ckpt page-server`
// on loopback or a `ckpt lazy-pages`, waiting for dumped processes to be
// gone, and one timed ckpt command. All throw RunFailure (ckpt
// misbehaved) or std::runtime_error (setup), and Interrupted on SIGINT.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace bench {

// msg, then the last lines of each (label, path) file that is not empty.
std::string with_log(const std::string& msg,
                     const std::vector<std::pair<std::string, std::string>>& files);

// Waits for our child `pid` to write READY into the file `out`; throws if
// it dies first (with the tail of `err`) or after timeout_s.
void wait_ready(pid_t pid, const std::string& out, const std::string& err, double timeout_s);

// A `ckpt page-server` into dir on 127.0.0.1 (a free port, in *port),
// started and listening (its --status-fd said so); returns its pid.
pid_t start_page_server(const std::string& ckpt, const std::string& dir, const std::string& log,
                        int* port);

// `ckpt lazy-pages -D img` (criu/lazy_pages.h), started and listening.
pid_t start_lazy_daemon(const std::string& ckpt, const std::string& img, const std::string& log);

// Starts argv (a ckpt daemon command; "--status-fd 3" is appended) and
// returns its pid once it says it is ready; throws RunFailure naming
// `what`, with the tail of `log`, if it does not within 30 s.
pid_t start_ckpt_daemon(std::vector<std::string> argv, const std::string& log,
                        const std::string& what);

// Reaps children until none of `pids` exists any more (zombies included:
// they still hold their pids, which a restore needs); throws RunFailure
// after timeout_s.
void reap_until_gone(const std::vector<pid_t>& pids, double timeout_s);

// Runs argv (a ckpt command) with stdout+stderr into `out` and waits at
// most timeout_s; returns its wall time in seconds. A failure or a
// timeout throws RunFailure naming `what`, with the tails of `out` and
// `log` (the -o log of the command), and on a timeout what the processes
// of the command and of `victim` (if > 0) are blocked in.
// `ru` (optional): the command's resource usage (e.g. ru_maxrss).
double run_ckpt(const std::vector<std::string>& argv, const std::string& out,
                const std::string& log, double timeout_s, const std::string& what,
                pid_t victim = 0, struct rusage* ru = nullptr);

}  // namespace bench
