#include "criu/options.h"
#include "criu/page_compress.h"

#include <getopt.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>

#include "base/io.h"
#include "criu/cgroup_v1.h"
#include "criu/config_file.h"
#include "criu/options_refused.h"

namespace ckpt {
namespace {

enum LongOnly {
  kOptPidfile = 1000,
  kOptFileLocks,
  kOptVersion,
  kOptExtUnixSk,
  kOptTcpEstablished,
  kOptTcpClose,
  kOptSkipInFlight,
  kOptNetworkLock,
  kOptExternal,
  kOptManageCgroups,
  kOptCgroupRoot,
  kOptFreezeCgroup,
  kOptRoot,  // mnt ns
  kOptPageServer,
  kOptAddress,
  kOptPort,
  kOptStatusFd,
  kOptActionScript,
  kOptDaemon,
  kOptEmptyNs,
  kOptInheritFd,
  kOptOrphanPtsMaster,
  kOptConfig,
  kOptNoDefaultConfig,
  kOptJoinNs,
  kOptLsmProfile,
  kOptPrevImagesDir,
  kOptTrackMem,
  kOptTrackMemTimeout,
  kOptCompress,
  kOptAutoDedup,
  kOptLazyPages,
  kOptExecCmd,
  kOptTimeout,
  kOptGhostLimit,
  kOptSkipMnt,
  kOptNegate = 1100,   // + index into kFlags: --no-FLAG
  kOptFlagOn = 1150,   // + index into kFlags: --FLAG, for flags without a case of their own
  kOptRefused = 1200,  // + index into RefusedOptions(): refused by name
};

// Boolean options CRIU lets a later source turn off again with --no-NAME
// (a config file sets one, the command line unsets it).
struct Flag {
  const char* name;
  bool Options::*field;
};
constexpr Flag kFlags[] = {
    {"leave-running", &Options::leave_running},
    {"restore-detached", &Options::restore_detached},
    {"shell-job", &Options::shell_job},
    {"file-locks", &Options::file_locks},
    {"ext-unix-sk", &Options::ext_unix_sk},
    {"tcp-established", &Options::tcp_established},
    {"tcp-close", &Options::tcp_close},
    {"skip-in-flight", &Options::skip_in_flight},
    {"orphan-pts-master", &Options::orphan_pts_master},
    {"display-stats", &Options::display_stats},
    {"log-pid", &Options::log_pid},
    {"link-remap", &Options::link_remap},
    {"weak-sysctls", &Options::weak_sysctls},
    {"evasive-devices", &Options::evasive_devices},
    {"force-irmap", &Options::force_irmap},
    {"cow-snapshot", &Options::cow_snapshot},
    {"sync", &Options::sync},
};
constexpr size_t kNumFlags = sizeof(kFlags) / sizeof(kFlags[0]);

// The long options, for getopt_long and for checking config files.
const std::vector<struct option>& LongOptions() {
  static const std::vector<struct option> table = [] {
    std::vector<struct option> t = {
        {"tree", required_argument, nullptr, 't'},
        {"images-dir", required_argument, nullptr, 'D'},
        {"log-file", required_argument, nullptr, 'o'},
        {"verbosity", optional_argument, nullptr, 'v'},
        {"leave-running", no_argument, nullptr, 'R'},
        {"restore-detached", no_argument, nullptr, 'd'},
        {"shell-job", no_argument, nullptr, 'j'},
        {"pidfile", required_argument, nullptr, kOptPidfile},
        {"file-locks", no_argument, nullptr, kOptFileLocks},
        {"ext-unix-sk", no_argument, nullptr, kOptExtUnixSk},
        {"tcp-established", no_argument, nullptr, kOptTcpEstablished},
        {"tcp-close", no_argument, nullptr, kOptTcpClose},
        {"skip-in-flight", no_argument, nullptr, kOptSkipInFlight},
        {"network-lock", required_argument, nullptr, kOptNetworkLock},
        {"external", required_argument, nullptr, kOptExternal},
        {"root", required_argument, nullptr, kOptRoot},  // mnt ns
        {"manage-cgroups", optional_argument, nullptr, kOptManageCgroups},
        {"cgroup-root", required_argument, nullptr, kOptCgroupRoot},
        {"freeze-cgroup", required_argument, nullptr, kOptFreezeCgroup},
        {"inherit-fd", required_argument, nullptr, kOptInheritFd},
        {"orphan-pts-master", no_argument, nullptr, kOptOrphanPtsMaster},
        {"config", required_argument, nullptr, kOptConfig},
        {"no-default-config", no_argument, nullptr, kOptNoDefaultConfig},
        {"page-server", no_argument, nullptr, kOptPageServer},
        {"address", required_argument, nullptr, kOptAddress},
        {"port", required_argument, nullptr, kOptPort},
        {"status-fd", required_argument, nullptr, kOptStatusFd},
        {"action-script", required_argument, nullptr, kOptActionScript},
        {"daemon", no_argument, nullptr, kOptDaemon},
        {"empty-ns", required_argument, nullptr, kOptEmptyNs},
        {"join-ns", required_argument, nullptr, kOptJoinNs},
        {"lsm-profile", required_argument, nullptr, kOptLsmProfile},
        {"prev-images-dir", required_argument, nullptr, kOptPrevImagesDir},
        {"track-mem", no_argument, nullptr, kOptTrackMem},
        {"track-mem-timeout", required_argument, nullptr, kOptTrackMemTimeout},
        {"compress", required_argument, nullptr, kOptCompress},
        {"auto-dedup", no_argument, nullptr, kOptAutoDedup},
        {"lazy-pages", no_argument, nullptr, kOptLazyPages},
        {"exec-cmd", no_argument, nullptr, kOptExecCmd},
        {"timeout", required_argument, nullptr, kOptTimeout},
        {"ghost-limit", required_argument, nullptr, kOptGhostLimit},
        {"skip-mnt", required_argument, nullptr, kOptSkipMnt},
        {"tcp-skip-in-flight", no_argument, nullptr, kOptSkipInFlight},  // CRIU's other name
        {"help", no_argument, nullptr, 'h'},
    };
    // Flags with no entry above: set through kOptFlagOn.
    for (size_t i = 0; i < kNumFlags; i++) {
      bool listed = false;
      for (const struct option& x : t) listed |= !strcmp(x.name, kFlags[i].name);
      if (!listed) t.push_back({kFlags[i].name, no_argument, nullptr, int(kOptFlagOn + i)});
    }
    for (size_t i = 0; i < NumRefusedOptions(); i++)
      t.push_back({RefusedOptions()[i].name,
                   RefusedOptions()[i].has_arg ? required_argument : no_argument, nullptr,
                   int(kOptRefused + i)});
    static std::vector<std::string> negated;
    negated.reserve(kNumFlags);
    for (size_t i = 0; i < kNumFlags; i++) negated.push_back(std::string("no-") + kFlags[i].name);
    for (size_t i = 0; i < kNumFlags; i++)
      t.push_back({negated[i].c_str(), no_argument, nullptr, int(kOptNegate + i)});
    t.push_back({nullptr, 0, nullptr, 0});
    return t;
  }();
  return table;
}

Result<Command> ParseCommand(const std::string& s) {
  if (s == "dump") return Command::kDump;
  if (s == "pre-dump") return Command::kPreDump;
  if (s == "restore") return Command::kRestore;
  if (s == "check") return Command::kCheck;
  if (s == "show") return Command::kShow;
  if (s == "unlock") return Command::kUnlock;
  if (s == "page-server") return Command::kPageServer;
  if (s == "lazy-pages") return Command::kLazyPages;
  if (s == "swrk") return Command::kSwrk;
  if (s == "service") return Command::kService;
  if (s == "help" || s == "--help" || s == "-h") return Command::kHelp;
  if (s == "--version" || s == "-V") return Command::kVersion;
  return Error("unknown command '" + s + "' (try: ckpt --help)");
}

Result<CgroupMode> ParseCgroupMode(const std::string& s) {
  if (s == "none") return CgroupMode::kNone;
  if (s == "props") return CgroupMode::kProps;
  if (s == "soft") return CgroupMode::kSoft;
  if (s == "full") return CgroupMode::kFull;
  if (s == "strict") return CgroupMode::kStrict;
  if (s == "ignore") return CgroupMode::kIgnore;
  return Error("bad --manage-cgroups mode '" + s +
               "' (use none, props, soft, full, strict or ignore)");
}

// "[CONTROLLER:]PATH". cgroup v2 has one tree for every controller, so a
// CONTROLLER prefix (CRIU's v1 syntax) is accepted but every --cgroup-root
// must then name the same PATH. A CONTROLLER with a v1 hierarchy on this
// host (hybrid hosts; runc sends one per hierarchy) is that hierarchy's,
// which ckpt does not manage: kept in `v1` and ignored (criu/cgroup_v1.h).
Status ParseCgroupRoot(const std::string& arg, std::string& root, std::vector<std::string>& v1) {
  std::string path = arg;
  size_t colon = arg.find(':');
  if (colon != std::string::npos && arg[0] != '/') path = arg.substr(colon + 1);
  if (colon != std::string::npos && colon > 0 && arg[0] != '/' &&
      cgroupv1::IsV1Controller(arg.substr(0, colon))) {
    v1.push_back(arg);
    return Ok();
  }
  if (path.empty() || path[0] != '/')
    return Error("bad --cgroup-root '" + arg + "' (use [CONTROLLER:]/PATH, a cgroup path)");
  if (path.find("/../") != std::string::npos || path.find("/./") != std::string::npos ||
      (path.size() >= 3 && path.compare(path.size() - 3, 3, "/..") == 0) ||
      (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0))
    return Error("bad --cgroup-root '" + arg + "': '.' and '..' are not allowed");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (!root.empty() && root != path)
    return Error("--cgroup-root given as " + root + " and " + path +
                 ": cgroup v2 has one hierarchy for every controller, so one root only");
  root = path;
  return Ok();
}

bool ParseInt(const char* s, long& out) {
  char* end;
  errno = 0;
  out = strtol(s, &end, 10);
  return errno == 0 && end != s && *end == 0;
}

// A size: digits with an optional K, M or G suffix (CRIU's --ghost-limit).
Result<uint64_t> ParseSize(const char* s, const char* what) {
  char* end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  uint64_t mul = 1;
  if (*end == 'K' || *end == 'k') mul = 1ull << 10;
  if (*end == 'M' || *end == 'm') mul = 1ull << 20;
  if (*end == 'G' || *end == 'g') mul = 1ull << 30;
  if (mul != 1) end++;
  if (errno || end == s || *end || s[0] == '-' || v > (~0ull) / mul)
    return Error(std::string("bad ") + what + " '" + s + "' (bytes, or with K, M or G)");
  return uint64_t(v) * mul;
}

// "fd[N]:KEY", CRIU's syntax (the brackets are literal).
Result<Options::InheritFd> ParseInheritFd(const std::string& arg) {
  auto bad = [&](const std::string& why) {
    return Error("bad --inherit-fd '" + arg + "': " + why +
                 " (use fd[N]:KEY, e.g. fd[0]:pipe:[12345] or fd[3]:tty[8800:d])");
  };
  if (arg.rfind("fd[", 0) != 0) return bad("it must start with fd[");
  size_t close = arg.find("]:");
  if (close == std::string::npos || close == 3) return bad("no ]: after the fd number");
  long n;
  std::string num = arg.substr(3, close - 3);
  if (!ParseInt(num.c_str(), n) || n < 0 || n > 0x7fffffff) return bad("'" + num + "' is no fd");
  std::string key = arg.substr(close + 2);
  if (key.empty()) return bad("no KEY after ':'");
  return Options::InheritFd{key, int(n)};
}

// Applies the options of av (getopt_long over av[0..ac), av[0] a program
// name) onto o. Returns the index of the first positional argument.
Result<int> ApplyArgs(int ac, char** av, Options& o, const std::string& cmd) {
  optind = 0;  // full re-initialisation of getopt
  opterr = 0;
  for (;;) {
    int c = getopt_long(ac, av, ":t:D:o:v::Rdjhxr:J:sW:M:", LongOptions().data(), nullptr);
    if (c == -1) break;
    long n;
    switch (c) {
      case 't':
        if (!ParseInt(optarg, n) || n <= 0 || n > 0x3fffffff)
          return Error("bad pid '" + std::string(optarg) + "' for -t");
        o.pid = pid_t(n);
        break;
      case 'D':
        o.images_dir = optarg;
        break;
      case 'o':
        o.log_file = optarg;
        break;
      case 'v':
        if (!optarg) {
          o.verbosity++;
        } else if (optarg[0] == 'v') {  // -vvv
          o.verbosity += 1 + int(strspn(optarg, "v"));
        } else if (ParseInt(optarg, n) && n >= 0 && n <= 4) {
          o.verbosity = int(n);
        } else {
          return Error("bad verbosity '" + std::string(optarg) + "' (use -v0 .. -v4)");
        }
        break;
      case 'R':
        o.leave_running = true;
        break;
      case 'd':
        o.restore_detached = true;
        break;
      case 'j':
        o.shell_job = true;
        break;
      case kOptPidfile:
        o.pidfile = optarg;
        break;
      case 'r':
      case kOptRoot:  // mnt ns
        o.root = optarg;
        break;
      case kOptExternal:
        if (!*optarg) return Error("--external needs a value, e.g. veth[eth0]:host-veth0");
        o.external.push_back(optarg);
        break;
      case kOptActionScript:
        if (!*optarg) return Error("--action-script needs a program");
        o.action_scripts.push_back(optarg);
        break;
      case kOptAddress:
        o.address = optarg;
        break;
      case 'J':
      case kOptJoinNs: {
        // CRIU's NS:{PID|NS_FILE}[,EXTRA]; no extra options here.
        std::string v = optarg;
        size_t colon = v.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == v.size() ||
            v.find(',') != std::string::npos)
          return Error("bad --join-ns '" + v + "' (use NS:PID or NS:FILE, e.g. net:/run/netns/x)");
        JoinNs j{v.substr(0, colon), v.substr(colon + 1)};
        if (j.ns != "net" && j.ns != "uts")
          return Error("bad --join-ns '" + v + "': only net and uts namespaces can be joined");
        long pid;
        if (ParseInt(j.file.c_str(), pid) && pid > 0)
          j.file = "/proc/" + std::to_string(pid) + "/ns/" + j.ns;
        o.join_ns.push_back(j);
        break;
      }
      case kOptLsmProfile: {
        std::string v = optarg;
        size_t colon = v.find(':');
        std::string lsm = v.substr(0, colon);
        if (colon == std::string::npos || colon + 1 == v.size() ||
            (lsm != "apparmor" && lsm != "selinux" && lsm != "smack"))
          return Error("bad --lsm-profile '" + v +
                       "' (use apparmor:NAME, selinux:LABEL or smack:LABEL)");
        o.lsm_profile = v;
        break;
      }
      case kOptDaemon:
        o.daemon = true;
        break;
      case kOptEmptyNs:
        if (strcmp(optarg, "net") != 0)
          return Error("bad --empty-ns '" + std::string(optarg) + "' (only net is supported)");
        o.empty_ns |= CLONE_NEWNET;
        break;
      case kOptFileLocks:
        o.file_locks = true;
        break;
      case 'x':
      case kOptExtUnixSk:
        o.ext_unix_sk = true;
        break;
      case kOptTcpEstablished:
        o.tcp_established = true;
        break;
      case kOptTcpClose:
        o.tcp_close = true;
        break;
      case kOptSkipInFlight:
        o.skip_in_flight = true;
        break;
      case kOptNetworkLock:
        if (!strcmp(optarg, "nftables"))
          o.network_lock = true;
        else if (!strcmp(optarg, "skip"))
          o.network_lock = false;
        else
          return Error("bad --network-lock '" + std::string(optarg) + "' (use nftables or skip)");
        break;
      case kOptManageCgroups:
        o.manage_cgroups = true;
        if (optarg) {
          TRY_ASSIGN(o.cgroup_mode, ParseCgroupMode(optarg));
        }
        break;
      case kOptCgroupRoot:
        TRY(ParseCgroupRoot(optarg, o.cgroup_root, o.cgroup_root_v1));
        break;
      case kOptFreezeCgroup:
        if (!optarg[0]) return Error("--freeze-cgroup needs a cgroup directory");
        o.freeze_cgroup = optarg;
        break;
      case kOptPageServer:
        o.page_server = true;
        break;
      case kOptLazyPages:
        o.lazy_pages = true;
        break;
      case kOptPort:
        if (!ParseInt(optarg, n) || n <= 0 || n > 65535)
          return Error("bad --port '" + std::string(optarg) + "' (1..65535)");
        o.port = int(n);
        break;
      case kOptStatusFd:
        if (!ParseInt(optarg, n) || n < 0 || n > 1 << 20)
          return Error("bad --status-fd '" + std::string(optarg) + "'");
        o.status_fd = int(n);
        break;
      case kOptPrevImagesDir:
        if (!optarg[0]) return Error("--prev-images-dir needs a directory");
        o.prev_images_dir = optarg;
        break;
      case kOptTrackMem:
        o.track_mem = true;
        break;
      case kOptTrackMemTimeout:
        if (!ParseInt(optarg, n) || n <= 0 || n > 7 * 86400)
          return Error("bad --track-mem-timeout '" + std::string(optarg) +
                       "' (seconds, 1..604800)");
        o.track_mem_timeout = int(n);
        break;
      case kOptCompress:
        TRY(ParseCompress(optarg, &o.compress, &o.compress_level));
        break;
      case kOptExecCmd:
        o.exec_cmd.push_back("");  // marker: the words after "--" (ParseOptions)
        break;
      case kOptTimeout:
        if (!ParseInt(optarg, n) || n <= 0 || n > 86400)
          return Error("bad --timeout '" + std::string(optarg) + "' (seconds, 1..86400)");
        o.timeout = int(n);
        break;
      case kOptGhostLimit: {
        TRY_ASSIGN(o.ghost_limit, ParseSize(optarg, "--ghost-limit"));
        break;
      }
      case kOptSkipMnt:
        if (optarg[0] != '/') return Error("bad --skip-mnt '" + std::string(optarg) + "' (a mount point)");
        o.skip_mnt.push_back(optarg);
        break;
      case kOptAutoDedup:
        return Error("--auto-dedup is not supported: the parent images keep every page they hold");
      case kOptInheritFd: {
        TRY_ASSIGN(Options::InheritFd f, ParseInheritFd(optarg));
        o.inherit_fds.push_back(std::move(f));
        break;
      }
      case kOptOrphanPtsMaster:
        o.orphan_pts_master = true;
        break;
      case kOptConfig:
        o.config_file = optarg;  // read before the command line (ParseOptions)
        break;
      case kOptNoDefaultConfig:
        o.no_default_config = true;
        break;
      case 'h':
        o.help = true;
        break;
      case ':':
        return Error(std::string("option '") + av[optind - 1] + "' needs a value");
      default: {
        if (c >= kOptNegate && c < int(kOptNegate + kNumFlags)) {
          o.*(kFlags[c - kOptNegate].field) = false;
          break;
        }
        if (c >= kOptFlagOn && c < int(kOptFlagOn + kNumFlags)) {
          o.*(kFlags[c - kOptFlagOn].field) = true;
          break;
        }
        if (c >= kOptRefused && c < int(kOptRefused + NumRefusedOptions())) {
          const RefusedOption& r = RefusedOptions()[c - kOptRefused];
          return Error(std::string("--") + r.name + " is not supported yet (" + r.why + ")");
        }
        for (size_t i = 0; c > 0 && c < 128 && i < NumRefusedOptions(); i++)
          if (RefusedOptions()[i].short_name == c)
            return Error(std::string("-") + char(c) + " (--" + RefusedOptions()[i].name +
                         ") is not supported yet (" + RefusedOptions()[i].why + ")");
        std::string bad = optopt ? std::string("-") + char(optopt)
                                 : std::string(optind > 0 ? av[optind - 1] : "?");
        return Error("unknown option '" + bad + "' (try: ckpt " + cmd + " --help)");
      }
    }
  }
  return optind;
}

}  // namespace

Status ApplyConfigFile(const std::string& path, Options& o, bool missing_ok) {
  auto text = io::ReadFile(path);
  if (!text.ok()) {
    // A default file may be missing, or in a HOME the caller cannot enter
    // (another user's, inherited through setpriv or sudo).
    if (missing_ok && (text.error().err() == ENOENT || text.error().err() == EACCES)) return Ok();
    return Error("config file " + path + ": " + text.error().message());
  }
  TRY_ASSIGN(std::vector<ConfigLine> lines, ParseConfigText(*text, path));
  for (const ConfigLine& l : lines) {
    std::string where = path + ":" + std::to_string(l.line);
    const struct option* opt = nullptr;
    for (const struct option& x : LongOptions())
      if (x.name && l.name == x.name) opt = &x;
    if (!opt || l.name == "help")
      return Error(where + ": unknown option '" + l.name + "'" +
                   (l.name == "dump" || l.name == "restore" || l.name == "check"
                        ? " (a command cannot be given in a config file)"
                        : ""));
    if (l.name == "config" || l.name == "no-default-config")
      return Error(where + ": '" + l.name + "' is for the command line only");
    if (opt->has_arg == no_argument && l.has_value)
      return Error(where + ": option '" + l.name + "' takes no value");
    if (opt->has_arg == required_argument && !l.has_value)
      return Error(where + ": option '" + l.name + "' needs a value");
    std::vector<std::string> words = {"ckpt"};
    if (opt->has_arg == optional_argument && l.has_value) {
      words.push_back("--" + l.name + "=" + l.value);
    } else {
      words.push_back("--" + l.name);
      if (l.has_value) words.push_back(l.value);
    }
    std::vector<char*> av;
    for (std::string& w : words) av.push_back(w.data());
    av.push_back(nullptr);
    auto r = ApplyArgs(int(words.size()), av.data(), o, "dump");
    if (!r.ok()) return Error(where + ": " + r.error().message());
  }
  return Ok();
}

Status ApplyConfigFiles(Options& o, bool with_config_file) {
  if (!o.no_default_config) {
    TRY(ApplyConfigFile("/etc/criu/default.conf", o, true));
    const char* home = getenv("HOME");
    if (home && *home) TRY(ApplyConfigFile(std::string(home) + "/.criu/default.conf", o, true));
  }
  const char* env = getenv("CRIU_CONFIG_FILE");
  if (env && *env) TRY(ApplyConfigFile(env, o, false));
  if (with_config_file && !o.config_file.empty()) TRY(ApplyConfigFile(o.config_file, o, false));
  return Ok();
}

Result<Options> ParseOptions(int argc, char** argv) {
  Options o;
  if (argc < 2) return Error("no command given (try: ckpt --help)");
  // CRIU accepts options before the command too: find the first non-option.
  int cmd_index = -1;
  for (int i = 1; i < argc; i++) {
    if (argv[i][0] != '-' || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
        !strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
      cmd_index = i;
      break;
    }
    // Skip the value of options that take one as a separate word.
    static const char* const kWithValue[] = {"-t",
                                             "-D",
                                             "-o",
                                             "--tree",
                                             "--images-dir",
                                             "--log-file",
                                             "--pidfile",
                                             "--network-lock",
                                             "--cgroup-root",
                                             "--freeze-cgroup",
                                             "--external",
                                             "--inherit-fd",
                                             "--config",
                                             "--root",  // mnt ns
                                             "--address",
                                             "--port",
                                             "--status-fd",
                                             "--action-script",
                                             "--empty-ns",
                                             "--prev-images-dir",
                                             "--track-mem-timeout",
                                             "--join-ns",
                                             "--lsm-profile",
                                             "--timeout",
                                             "--ghost-limit",
                                             "--skip-mnt",
                                             "-r",
                                             "-J"};
    bool valued = false;
    for (const char* w : kWithValue) valued |= !strcmp(argv[i], w);
    for (size_t k = 0; k < NumRefusedOptions(); k++)
      valued |= RefusedOptions()[k].has_arg && argv[i][0] == '-' && argv[i][1] == '-' &&
                !strcmp(argv[i] + 2, RefusedOptions()[k].name);
    if (valued) i++;
  }
  if (cmd_index < 0) return Error("no command given (try: ckpt --help)");
  TRY_ASSIGN(o.command, ParseCommand(argv[cmd_index]));
  if (o.command == Command::kHelp || o.command == Command::kVersion) return o;

  // What CRIU reads before the command line: the default files (unless
  // --no-default-config), $CRIU_CONFIG_FILE, then --config FILE.
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--no-default-config") o.no_default_config = true;
    if (a == "--config" && i + 1 < argc) o.config_file = argv[i + 1];
    if (a.rfind("--config=", 0) == 0) o.config_file = a.substr(9);
  }
  TRY(ApplyConfigFiles(o));

  std::vector<char*> av;
  for (int i = 0; i < argc; i++)
    if (i != cmd_index) av.push_back(argv[i]);
  av.push_back(nullptr);
  int ac = int(av.size()) - 1;
  TRY_ASSIGN(int first_arg, ApplyArgs(ac, av.data(), o, argv[cmd_index]));
  if (o.verbosity > 4) o.verbosity = 4;
  for (int i = first_arg; i < ac; i++) o.args.push_back(av[i]);
  if (o.help) return o;

  switch (o.command) {
    case Command::kDump:
      if (o.pid == 0) return Error("dump needs -t PID");
      if (o.images_dir.empty()) return Error("dump needs -D DIR");
      if (o.page_server && (o.address.empty() || o.port == 0))
        return Error("--page-server needs --address and --port of the page server");
      if (o.lazy_pages && o.page_server)
        return Error("dump --lazy-pages serves the pages itself: drop --page-server");
      if (o.lazy_pages && o.port == 0)
        return Error("dump --lazy-pages needs --port (where the lazy-pages daemon pulls the pages)");
      if (!o.page_server && !o.lazy_pages && o.port)
        return Error("--port goes with --page-server or --lazy-pages");
      if (o.lazy_pages && o.compress)
        return Error("dump --lazy-pages serves pages from the pages images by offset: drop "
                     "--compress (a compressed dump can be restored lazily from its images "
                     "with `ckpt lazy-pages -D DIR`)");
      break;
    case Command::kPreDump:
      if (o.pid == 0) return Error("pre-dump needs -t PID");
      if (o.images_dir.empty()) return Error("pre-dump needs -D DIR");
      if (o.leave_running) return Error("pre-dump always leaves the tree running: drop -R");
      if (o.page_server && (o.address.empty() || o.port == 0))
        return Error("--page-server needs --address and --port of the page server");
      break;
    case Command::kLazyPages:
      if (o.images_dir.empty()) return Error("lazy-pages needs -D DIR");
      if (o.page_server && (o.address.empty() || o.port == 0))
        return Error("lazy-pages --page-server needs --address and --port of the lazy dump");
      if (!o.page_server && o.port) return Error("--port goes with --page-server");
      break;
    case Command::kPageServer:
      if (o.images_dir.empty()) return Error("page-server needs -D DIR");
      if (o.port == 0) return Error("page-server needs --port");
      break;
    case Command::kRestore:
      if (o.images_dir.empty()) return Error("restore needs -D DIR");
      if (o.pid) return Error("restore takes no -t: the pids come from the images");
      if (!o.freeze_cgroup.empty()) return Error("--freeze-cgroup is a dump option");
      break;
    case Command::kShow:
      if (o.args.empty() && o.images_dir.empty()) return Error("show needs a FILE or DIR");
      break;
    case Command::kUnlock:
      if (o.images_dir.empty()) return Error("unlock needs -D DIR");
      break;
    case Command::kSwrk: {
      long fd;
      if (o.args.size() != 1 || !ParseInt(o.args[0].c_str(), fd) || fd < 0 || fd > 0x7fffffff)
        return Error("swrk needs the fd of its socket: ckpt swrk FD");
      break;
    }
    case Command::kService:
      if (o.address.empty()) return Error("service needs --address PATH (a unix socket path)");
      if (!o.args.empty()) return Error("unexpected argument '" + o.args[0] + "'");
      break;
    default:
      break;
  }
  if (!o.exec_cmd.empty()) {
    if (o.command != Command::kRestore) return Error("--exec-cmd is a restore option");
    if (o.args.empty()) return Error("--exec-cmd needs a command after --: --exec-cmd -- PROG ARGS");
    o.exec_cmd = o.args;
    o.args.clear();
    o.restore_detached = true;  // as CRIU: the command waits for the tree, not ckpt
  }
  // --timeout, --link-remap, --ghost-limit, --skip-mnt (dump) and
  // --status-fd (restore, page-server) are ignored elsewhere, as CRIU does
  // (a shared config file may set them).
  if (o.command != Command::kService && o.daemon) return Error("--daemon is a service option");
  if (o.command != Command::kRestore && !o.join_ns.empty())
    return Error("--join-ns is a restore option");
  if (o.command != Command::kRestore && !o.lsm_profile.empty())
    return Error("--lsm-profile is a restore option");
  if (!o.address.empty() && o.command != Command::kService && o.command != Command::kPageServer &&
      !((o.command == Command::kDump || o.command == Command::kPreDump) && o.page_server) &&
      !(o.command == Command::kDump && o.lazy_pages) &&
      !(o.command == Command::kLazyPages && o.page_server))
    return Error("--address goes with service, page-server, dump --page-server/--lazy-pages or "
                 "lazy-pages --page-server");
  if (o.compress && o.command != Command::kDump && o.command != Command::kPreDump)
    return Error("--compress is a dump or pre-dump option (restore reads compressed images "
                 "by itself)");
  if (o.lazy_pages && o.command != Command::kDump && o.command != Command::kRestore)
    return Error("--lazy-pages is a dump or restore option");
  if (o.command != Command::kDump && o.command != Command::kPreDump &&
      (!o.prev_images_dir.empty() || o.track_mem))
    return Error("--prev-images-dir and --track-mem go with dump or pre-dump");
  if ((o.command == Command::kDump || o.command == Command::kPreDump ||
       o.command == Command::kRestore) &&
      !o.args.empty())
    return Error("unexpected argument '" + o.args[0] + "'");
  return o;
}

std::string LogPath(const Options& o) {
  if (o.log_file.empty() || o.log_file == "-") return "";
  if (o.log_file[0] == '/' || o.images_dir.empty()) return o.log_file;
  return o.images_dir + "/" + o.log_file;
}

}  // namespace ckpt
