// The "freeze" mode of ckpt-bench-victim (bench_victim_freeze.cc): SIZE MiB
// of random data (4 KiB pages, or THP-backed with "thp") and a loop that
// wakes every 100 us and records the longest gap it saw between two
// wake-ups: how long the process was stopped, measured from inside.
// SIGUSR1 resets the record, SIGUSR2 prints "STALL <us>" on stdout, SIGTERM
// checks the memory's checksum (exit 0 right, 1 wrong).
#pragma once

// argv: {"ckpt-bench-victim", "freeze", "SIZE_MIB", "4k"|"thp"}.
int bench_freeze_victim_main(char** argv);
