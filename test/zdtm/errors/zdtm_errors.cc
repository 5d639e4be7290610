// zdtm-errors: checks that ckpt fails cleanly on bad input.
//
//   zdtm-errors --ckpt PATH --workdir DIR [--testbin DIR]
//
// --only PREFIX runs only the sub-checks whose names start with PREFIX.
// --testbin is the directory holding the test programs (same_pid,
// unsupported_fd, scm_unsupported); default: ../static next to this binary. Every sub-check
// prints "[ OK ] name" or "[FAIL] name: reason" and leaves no process
// behind. Exit 0 when all pass. "Failing cleanly" means: exit code non-zero
// and < 128 (no crash), a message naming the problem, no process left with
// the dumped pid, and a live victim left running untouched.
// restore-port-taken needs sk_tcp_inflight in --testbin.
//
// The sub-checks are grouped by file: errors_dump.cc, errors_restore.cc,
// errors_chain.cc; what they share with zdtm-options is errors_lib.h.
#include "errors_checks.h"
#include "errors_lib.h"
#include "harness.h"

int main(int argc, char** argv) {
  zdtm::harness_init();
  if (!zdtm::errors::ParseArgs(argc, argv, "zdtm-errors")) return 2;
  RunDumpChecks();
  RunRestoreChecks();
  RunChainChecks();
  return zdtm::errors::Summary("zdtm-errors");
}
