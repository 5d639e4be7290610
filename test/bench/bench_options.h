// ckpt-bench's command line: the sections to run (--only) and their sizes.
// A new section adds one line to kSections (bench_options.cc) and, if it
// has sizes of its own, a field here and its option there.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace bench {

struct Options {
  std::string ckpt;
  std::string victim;
  uint64_t size_mib = 1024;
  std::string disk_dir;
  std::string tmpfs_dir;
  std::string json;  // --json FILE: the report as JSON too (bench_report.h)
  int runs = 3;
  double timeout = 300;
  std::set<std::string> only;  // sections to run; all of them by default
  uint64_t precopy_rate = 64;  // MiB/s the precopy victim rewrites
  std::vector<long> compress_levels{1, 3};  // zstd levels the compress section tries
  std::vector<long> tree_sizes{1, 10, 100, 300, 1000};
  long tree_fanout = 8;
  std::vector<long> thread_counts{1, 10, 100, 300, 1000};
  std::vector<long> fd_counts{0, 1000, 10000};
  long fd_files = 256;  // distinct files among the fds; the rest are dups
  std::vector<long> tcp_counts{100, 1000};

  bool on(const std::string& section) const { return only.count(section) != 0; }
};

// Every section, in the order they run: "memory,tree,...".
std::string section_names();

// Parses argv; prints usage and exits 2 on a bad option, 0 on --help.
Options parse_args(int argc, char** argv);

}  // namespace bench
