#include "bench_options.h"

#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace bench {
namespace {

struct Section {
  const char* name;
  const char* help;  // continuation lines indented to the help column
};

// Every section, in the order ckpt-bench runs them.
constexpr Section kSections[] = {
    {"memory", "a process with SIZE MiB; images on tmpfs, disk, a page server, lazy; baselines"},
    {"tree", "a tree of N processes; images on tmpfs"},
    {"threads", "a process with N threads; images on tmpfs"},
    {"fds", "a process with N fds besides stdio; images on tmpfs"},
    {"tcp", "a process with N loopback TCP connections (both ends); --tcp-established"},
    {"container", "100 processes under pid 1 of new pid, uts, ipc and net namespaces,\n"
                  "                            and the same tree without them; images on tmpfs"},
    {"freeze", "dump -R of a SIZE MiB process: time frozen, with and without the\n"
               "                            copy-on-write snapshot, 4 KiB pages and THP-backed"},
    {"precopy", "a SIZE MiB process rewriting pages: cold dump+restore against pre-dump\n"
                "                            rounds through a page server, then the final pause"},
    {"compress", "a SIZE MiB half-text heap dumped with --compress zstd per level against\n"
                 "                            no compression: ratio and throughput"},
};

[[noreturn]] void usage(int code) {
  fprintf(
      code ? stderr : stdout,
      "usage: ckpt-bench --ckpt PATH [--only SECTIONS] [--size-mib N] [--disk-dir DIR] "
      "[--tmpfs-dir DIR]\n"
      "                  [--runs N] [--timeout SEC] [--victim PATH] [--tree-sizes LIST] "
      "[--tree-fanout K]\n"
      "                  [--thread-counts LIST] [--fd-counts LIST] [--fd-files N] "
      "[--tcp-counts LIST] [--json FILE]\n"
      "  --ckpt PATH      the ckpt binary to benchmark (required)\n"
      "  --size-mib N     victim memory and baseline size in MiB (default 1024)\n"
      "  --disk-dir DIR   where disk images and files go (default /var/tmp)\n"
      "  --tmpfs-dir DIR  a tmpfs for images (default: mount a private tmpfs, else /dev/shm)\n"
      "  --runs N         runs of everything; the best is reported (default 3)\n"
      "  --timeout SEC    limit for each ckpt command and victim start (default 300)\n"
      "  --victim PATH    victim binary (default: ckpt-bench-victim next to ckpt-bench)\n"
      "  --only LIST      sections to run, comma-separated (default: all of them)\n"
      "  --json FILE      also write every table row as JSON to FILE\n");
  for (const Section& s : kSections)
    fprintf(code ? stderr : stdout, "                   %-9s%s\n", s.name, s.help);
  fprintf(code ? stderr : stdout,
      "  --precopy-rate N MiB/s the precopy victim rewrites at random (default 64)\n"
      "  --compress-levels L  zstd levels of the compress section (default 1,3)\n"
      "  --tree-sizes L   the N of the tree section (default 1,10,100,300,1000)\n"
      "  --thread-counts L  the N of the threads section (default 1,10,100,300,1000)\n"
      "  --fd-counts L    the N of the fds section (default 0,1000,10000)\n"
      "  --tcp-counts L   the N (connections) of the tcp section (default 100,1000)\n"
      "  --tree-fanout K  children per process in the tree (default 8)\n"
      "  --fd-files N     distinct files among the fds, the rest are dups of one (default 256)\n"
      "Needs root. Exit status 0 only if every dump and restore succeeded and every\n"
      "restored victim verified itself (memory checksum; tree shape and pids; thread\n"
      "ids; fds) and looked right from outside.\n");
  exit(code);
}

bool parse_num(const char* s, double lo, double hi, double* out) {
  char* end = nullptr;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
  *out = v;
  return true;
}

}  // namespace

std::string section_names() {
  std::string r;
  for (const Section& s : kSections) r += std::string(r.empty() ? "" : ", ") + s.name;
  return r;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (const Section& s : kSections) o.only.insert(s.name);
  static const struct option longopts[] = {{"ckpt", required_argument, nullptr, 'c'},
                                           {"size-mib", required_argument, nullptr, 's'},
                                           {"disk-dir", required_argument, nullptr, 'd'},
                                           {"tmpfs-dir", required_argument, nullptr, 't'},
                                           {"runs", required_argument, nullptr, 'r'},
                                           {"timeout", required_argument, nullptr, 'T'},
                                           {"victim", required_argument, nullptr, 'v'},
                                           {"help", no_argument, nullptr, 'h'},
                                           {"only", required_argument, nullptr, 'o'},
                                           {"tree-sizes", required_argument, nullptr, 'S'},
                                           {"tree-fanout", required_argument, nullptr, 'F'},
                                           {"thread-counts", required_argument, nullptr, 'H'},
                                           {"fd-counts", required_argument, nullptr, 'N'},
                                           {"fd-files", required_argument, nullptr, 'f'},
                                           {"tcp-counts", required_argument, nullptr, 'P'},
                                           {"precopy-rate", required_argument, nullptr, 'W'},
                                           {"json", required_argument, nullptr, 'j'},
                                           {"compress-levels", required_argument, nullptr, 'Z'},
                                           {nullptr, 0, nullptr, 0}};
  // "1,10,100": integers in [lo, hi], strictly increasing.
  auto parse_list = [](const char* name, const char* arg, long lo, long hi) {
    std::vector<long> r;
    std::istringstream in(arg);
    for (std::string item; std::getline(in, item, ',');) {
      double v;
      if (!parse_num(item.c_str(), static_cast<double>(lo), static_cast<double>(hi), &v) ||
          v != std::floor(v) || (!r.empty() && static_cast<long>(v) <= r.back())) {
        fprintf(stderr,
                "ckpt-bench: --%s wants increasing integers in [%ld, %ld], comma-separated\n", name,
                lo, hi);
        usage(2);
      }
      r.push_back(static_cast<long>(v));
    }
    if (r.empty()) {
      fprintf(stderr, "ckpt-bench: --%s is empty\n", name);
      usage(2);
    }
    return r;
  };
  int ch;
  double v;
  while ((ch = getopt_long(argc, argv, "h", longopts, nullptr)) != -1) {
    switch (ch) {
      case 'c':
        o.ckpt = optarg;
        break;
      case 'd':
        o.disk_dir = optarg;
        break;
      case 't':
        o.tmpfs_dir = optarg;
        break;
      case 'v':
        o.victim = optarg;
        break;
      case 's':
        if (!parse_num(optarg, 1, 1 << 20, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --size-mib wants an integer >= 1\n");
          usage(2);
        }
        o.size_mib = static_cast<uint64_t>(v);
        break;
      case 'r':
        if (!parse_num(optarg, 1, 1000, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --runs wants an integer in [1, 1000]\n");
          usage(2);
        }
        o.runs = static_cast<int>(v);
        break;
      case 'T':
        if (!parse_num(optarg, 1, 1e6, &v)) {
          fprintf(stderr, "ckpt-bench: --timeout wants seconds >= 1\n");
          usage(2);
        }
        o.timeout = v;
        break;
      case 'o': {
        o.only.clear();
        std::istringstream in(optarg);
        for (std::string item; std::getline(in, item, ',');) {
          bool known = item == "all";
          for (const Section& s : kSections) {
            if (item == "all" || item == s.name) o.only.insert(s.name);
            known = known || item == s.name;
          }
          if (!known) {
            fprintf(stderr, "ckpt-bench: --only: unknown section '%s' (%s)\n", item.c_str(),
                    section_names().c_str());
            usage(2);
          }
        }
        if (o.only.empty()) {
          fprintf(stderr, "ckpt-bench: --only selects no section\n");
          usage(2);
        }
        break;
      }
      case 'j':
        o.json = optarg;
        break;
      case 'S':
        o.tree_sizes = parse_list("tree-sizes", optarg, 1, 100000);
        break;
      case 'H':
        o.thread_counts = parse_list("thread-counts", optarg, 1, 100000);
        break;
      case 'N':
        o.fd_counts = parse_list("fd-counts", optarg, 0, 10000000);
        break;
      case 'P':
        o.tcp_counts = parse_list("tcp-counts", optarg, 1, 100000);
        break;
      case 'F':
        if (!parse_num(optarg, 1, 64, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --tree-fanout wants an integer in [1, 64]\n");
          usage(2);
        }
        o.tree_fanout = static_cast<long>(v);
        break;
      case 'f':
        if (!parse_num(optarg, 1, 1000000, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --fd-files wants an integer >= 1\n");
          usage(2);
        }
        o.fd_files = static_cast<long>(v);
        break;
      case 'W':
        if (!parse_num(optarg, 0, 1 << 20, &v) || v != std::floor(v)) {
          fprintf(stderr, "ckpt-bench: --precopy-rate wants an integer >= 0\n");
          usage(2);
        }
        o.precopy_rate = static_cast<uint64_t>(v);
        break;
      case 'Z':
        o.compress_levels = parse_list("compress-levels", optarg, -7, 19);
        break;
      case 'h':
        usage(0);
      default:
        usage(2);
    }
  }
  if (optind != argc) {
    fprintf(stderr, "ckpt-bench: unexpected argument '%s'\n", argv[optind]);
    usage(2);
  }
  if (o.ckpt.empty()) {
    fprintf(stderr, "ckpt-bench: --ckpt PATH is required\n");
    usage(2);
  }
  return o;
}

}  // namespace bench
