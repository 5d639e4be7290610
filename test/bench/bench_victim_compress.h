// The "compress" mode of ckpt-bench-victim (bench_victim_compress.cc): a
// heap like a real program's for the compression benchmark, half
// text-like (log and JSON lines), half random bytes. Checked after restore.
#pragma once

// argv: {"ckpt-bench-victim", "compress", "SIZE_MIB"}.
// Returns the victim's exit status (0 restored right, 1 wrong, 2 setup error).
int bench_compress_victim_main(char** argv);
