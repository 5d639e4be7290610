// The "tcp" mode of ckpt-bench-victim (bench_victim_tcp.cc): N established
// loopback TCP connections in one process, checked after restore.
#pragma once

// argv: {"ckpt-bench-victim", "tcp", "N"}. Returns or _exits with the
// victim's exit status (0 restored right, 1 wrong, 2 setup error, 3 limit).
int bench_tcp_victim_main(char** argv);
