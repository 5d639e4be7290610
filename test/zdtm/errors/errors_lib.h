// What the checks that are not round trips share (zdtm-errors,
// zdtm-options and static/*_checks, sk_tcp_inflight): running ckpt and the test
// programs they use as victims, the checks that a refusal was clean (a
// non-zero exit below 128, a message, the victim alive and untouched, no
// process left behind), and the named sub-check runner that prints
// "[ OK ] name" or "[FAIL] name: reason".
#pragma once

#include <sys/types.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness.h"

namespace zdtm::errors {

// A sub-check failed; the message says why.
struct Fail : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Set by ParseArgs: the ckpt binary, the work directory, the test programs'
// directory, and --only PREFIX; g_failed counts failed sub-checks.
extern std::string g_ckpt, g_workdir, g_testbin, g_only;
extern int g_failed;

// --ckpt PATH --workdir DIR [--testbin DIR] [--only PREFIX]; the work dir
// is emptied. Returns false (usage printed) when a required one is missing.
bool ParseArgs(int argc, char** argv, const char* prog);

// Prints the summary line; the exit status of the binary.
int Summary(const char* prog);

// text, each line prefixed "    | ", at most max_lines of it.
std::string indent(const std::string& text, size_t max_lines = 25);

// Runs ckpt. r.output is what the user sees (stdout+stderr); the given
// log files are appended to r.logs. Checks that a message names a pid look
// at r.output only: the logs name the pid anyway.
struct Ckpt : CmdResult {
  std::string logs;
  std::string all() const { return output + logs; }
};
Ckpt ckpt(const std::string& dir, const std::string& name, std::vector<std::string> args,
          const std::vector<std::string>& logs = {});

// A non-zero exit below 128 within the time limit: refused, not crashed.
void expect_refused(const Ckpt& r, const std::string& what);

// A test program (g_testbin/TEST ARGS) started in dir and READY.
struct Helper {
  pid_t pid;
  std::string out;
};
// ns_flags: CLONE_NEW* namespaces the helper starts in (start_test).
Helper start_helper(const std::string& test, const std::string& dir,
                    const std::vector<std::string>& args = {}, unsigned long ns_flags = 0);
// Still running and still our child.
void expect_alive(const Helper& h, const std::string& when);
// SIGTERM; the helper must verify its state and pass.
void finish_helper(const Helper& h);
// No process holds pid (checked twice, 200 ms apart).
void expect_no_pid(pid_t pid, const std::string& when);
// A TCP port of 127.0.0.1 nobody listens on (just now).
int free_port();
// A pid that was just free.
pid_t free_pid();

// Runs one named sub-check in its own directory g_workdir/name (if its name
// starts with g_only); kills whatever it left running.
void check(const std::string& name, const std::function<void(const std::string& dir)>& fn);

}  // namespace zdtm::errors
