// The "precopy" mode of ckpt-bench-victim (bench_victim_precopy.cc): a
// large process that keeps writing pages at random at a steady rate, the
// load iterative pre-copy has to chase. Checked after restore.
#pragma once

// argv: {"ckpt-bench-victim", "precopy", "SIZE_MIB", "RATE_MIB_S"}.
// Returns the victim's exit status (0 restored right, 1 wrong, 2 setup error).
int bench_precopy_victim_main(char** argv);
