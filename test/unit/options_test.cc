// Unit tests for criu/options: the CRIU-compatible command line.
#include "criu/options.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace ckpt {
namespace {

// Runs ParseOptions on {"ckpt", args...} with writable argv storage.
Result<Options> Parse(std::initializer_list<std::string> args) {
  std::vector<std::string> store{"ckpt"};
  store.insert(store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(s.data());
  argv.push_back(nullptr);
  return ParseOptions(int(store.size()), argv.data());
}

std::string Err(const Result<Options>& r) { return r.ok() ? "(parsed fine)" : r.error().message(); }

#define EXPECT_PARSES(r) ASSERT_TRUE((r).ok()) << Err(r)
#define EXPECT_ERROR_MENTIONS(r, text)                                        \
  do {                                                                        \
    auto _r = (r);                                                            \
    ASSERT_FALSE(_r.ok()) << "expected an error mentioning " << (text);       \
    EXPECT_NE(_r.error().message().find(text), std::string::npos) << Err(_r); \
  } while (0)

TEST(Options, DumpShortOptions) {
  auto r = Parse({"dump", "-t", "1234", "-D", "/tmp/img", "-o", "dump.log", "-v4", "-R", "-j"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kDump);
  EXPECT_EQ(r->pid, 1234);
  EXPECT_EQ(r->images_dir, "/tmp/img");
  EXPECT_EQ(r->log_file, "dump.log");
  EXPECT_EQ(r->verbosity, 4);
  EXPECT_TRUE(r->leave_running);
  EXPECT_TRUE(r->shell_job);
  EXPECT_FALSE(r->restore_detached);
  EXPECT_FALSE(r->file_locks);
  EXPECT_FALSE(r->help);
  EXPECT_TRUE(r->args.empty());
}

TEST(Options, DumpLongOptions) {
  auto r = Parse({"dump", "--tree", "77", "--images-dir=/d", "--log-file", "x.log",
                  "--leave-running", "--shell-job", "--file-locks", "--verbosity=3"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->pid, 77);
  EXPECT_EQ(r->images_dir, "/d");
  EXPECT_EQ(r->log_file, "x.log");
  EXPECT_TRUE(r->leave_running);
  EXPECT_TRUE(r->shell_job);
  EXPECT_TRUE(r->file_locks);
  EXPECT_EQ(r->verbosity, 3);
}

TEST(Options, NoSync) {
  auto r = Parse({"dump", "-t", "1", "-D", "/d"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->sync);
  r = Parse({"dump", "-t", "1", "-D", "/d", "--no-sync"});
  EXPECT_PARSES(r);
  EXPECT_FALSE(r->sync);
}

TEST(Options, AttachedValues) {
  auto r = Parse({"dump", "-t42", "-D/img", "--tree=43"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->pid, 43);  // the last one wins
  EXPECT_EQ(r->images_dir, "/img");
}

TEST(Options, Verbosity) {
  struct Case {
    std::vector<std::string> v;
    int want;
  };
  const Case cases[] = {
      {{}, 2},
      {{"-v0"}, 0},
      {{"-v1"}, 1},
      {{"-v4"}, 4},
      {{"-v"}, 3},
      {{"-v", "-v"}, 4},
      {{"-vvv"}, 4},
      {{"-v0", "-v"}, 1},
      {{"-v1", "-vv"}, 3},
      {{"-v4", "-v"}, 4},
      {{"--verbosity=0"}, 0},
  };
  for (const auto& c : cases) {
    std::vector<std::string> a{"check"};
    a.insert(a.end(), c.v.begin(), c.v.end());
    std::vector<char*> argv;
    std::string prog = "ckpt";
    argv.push_back(prog.data());
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    auto r = ParseOptions(int(argv.size()) - 1, argv.data());
    ASSERT_TRUE(r.ok()) << Err(r);
    std::string shown;
    for (auto& s : a) shown += s + " ";
    EXPECT_EQ(r->verbosity, c.want) << shown;
  }
  EXPECT_ERROR_MENTIONS(Parse({"check", "-v5"}), "verbosity");
  EXPECT_ERROR_MENTIONS(Parse({"check", "-vx"}), "verbosity");
  EXPECT_ERROR_MENTIONS(Parse({"check", "-v-1"}), "verbosity");
}

TEST(Options, RestoreOptions) {
  auto r = Parse({"restore", "-D", "/img", "-d", "--pidfile", "/run/x.pid", "--shell-job", "-o",
                  "/var/log/r.log"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kRestore);
  EXPECT_EQ(r->images_dir, "/img");
  EXPECT_TRUE(r->restore_detached);
  EXPECT_EQ(r->pidfile, "/run/x.pid");
  EXPECT_TRUE(r->shell_job);
  EXPECT_EQ(r->pid, 0);
  auto l = Parse({"restore", "-D", "/img", "--restore-detached", "--pidfile=/p"});
  EXPECT_PARSES(l);
  EXPECT_TRUE(l->restore_detached);
  EXPECT_EQ(l->pidfile, "/p");
}

TEST(Options, RestoreWithPidIsAnError) {
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/img", "-t", "5"}), "-t");
}

TEST(Options, CheckAndShow) {
  auto c = Parse({"check"});
  EXPECT_PARSES(c);
  EXPECT_EQ(c->command, Command::kCheck);

  auto s = Parse({"show", "/img/core-1.img", "/img/mm-1.img"});
  EXPECT_PARSES(s);
  EXPECT_EQ(s->command, Command::kShow);
  EXPECT_EQ(s->args, (std::vector<std::string>{"/img/core-1.img", "/img/mm-1.img"}));

  auto sd = Parse({"show", "-D", "/img"});
  EXPECT_PARSES(sd);
  EXPECT_EQ(sd->images_dir, "/img");

  EXPECT_FALSE(Parse({"show"}).ok());
}

TEST(Options, OptionsBeforeTheCommand) {
  auto r = Parse({"-v4", "-D", "/img", "-t", "9", "-o", "l.log", "dump", "-R"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kDump);
  EXPECT_EQ(r->pid, 9);
  EXPECT_EQ(r->images_dir, "/img");
  EXPECT_EQ(r->log_file, "l.log");
  EXPECT_EQ(r->verbosity, 4);
  EXPECT_TRUE(r->leave_running);

  auto a = Parse({"--images-dir=/img", "--tree=9", "dump"});
  EXPECT_PARSES(a);
  EXPECT_EQ(a->pid, 9);
}

// Regression (fixed): the scan for the command word only knows that -t,
// -D and -o take a separate value, so the value of a long option given
// before the command ("--images-dir /img restore", "--pidfile /p restore")
// is taken for the command: "unknown command '/img'".
TEST(Options, BugLongOptionValuesBeforeTheCommand) {
  auto a = Parse({"--images-dir", "/img", "--tree", "9", "dump"});
  EXPECT_PARSES(a);
  EXPECT_EQ(a->command, Command::kDump);
  EXPECT_EQ(a->pid, 9);
  auto b = Parse({"--pidfile", "/p", "-D", "/img", "restore"});
  EXPECT_PARSES(b);
  EXPECT_EQ(b->pidfile, "/p");
  auto c = Parse({"--log-file", "x.log", "check"});
  EXPECT_PARSES(c);
}

TEST(Options, UnknownOptionIsNamed) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--bogus"}), "--bogus");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "-Q"}), "-Q");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--tcp-frobnicate"}),
                        "--tcp-frobnicate");
  EXPECT_ERROR_MENTIONS(Parse({"--bogus", "dump", "-t", "1", "-D", "/d"}), "--bogus");
  // The hint points at the command's help.
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--bogus"}), "dump --help");
}

// Regression (fixed): an unknown letter that is not the last of a cluster
// ("-QR") is reported as the previous argv word, because getopt has not yet
// advanced optind; the message should use optopt.
TEST(Options, BugUnknownLetterInsideACluster) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "-QR"}), "-Q");
}

TEST(Options, MissingValue) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-D", "/d", "-t"}), "-t");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D"}), "-D");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--pidfile"}), "--pidfile");
}

TEST(Options, MissingRequiredOptions) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-D", "/d"}), "-t");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "5"}), "-D");
  EXPECT_ERROR_MENTIONS(Parse({"restore"}), "-D");
}

TEST(Options, BadPid) {
  for (const char* p : {"abc", "0", "-5", "12x", "", "99999999999", "1073741824"}) {
    EXPECT_ERROR_MENTIONS(Parse({"dump", "-D", "/d", "-t", p}), "pid");
  }
  auto max = Parse({"dump", "-D", "/d", "-t", "4194304"});
  EXPECT_PARSES(max);
  EXPECT_EQ(max->pid, 4194304);
}

TEST(Options, StrayArgumentsAreErrors) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "extra"}), "extra");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "more"}), "more");
}

TEST(Options, NoOrUnknownCommand) {
  std::string prog = "ckpt";
  char* argv[] = {prog.data(), nullptr};
  EXPECT_FALSE(ParseOptions(1, argv).ok());
  EXPECT_ERROR_MENTIONS(Parse({"-v4"}), "command");
  EXPECT_ERROR_MENTIONS(Parse({"-D", "/d"}), "command");
  EXPECT_ERROR_MENTIONS(Parse({"frobnicate", "-t", "1"}), "frobnicate");
}

TEST(Options, Help) {
  for (const char* h : {"--help", "-h", "help"}) {
    auto r = Parse({h});
    EXPECT_PARSES(r);
    EXPECT_EQ(r->command, Command::kHelp) << h;
  }
  auto v = Parse({"--version"});
  EXPECT_PARSES(v);
  EXPECT_EQ(v->command, Command::kVersion);

  // CMD --help needs none of CMD's required options.
  auto d = Parse({"dump", "--help"});
  EXPECT_PARSES(d);
  EXPECT_EQ(d->command, Command::kDump);
  EXPECT_TRUE(d->help);
  auto rh = Parse({"restore", "-h"});
  EXPECT_PARSES(rh);
  EXPECT_EQ(rh->command, Command::kRestore);
  EXPECT_TRUE(rh->help);
}

TEST(Options, ParsingTwiceGivesTheSameResult) {
  // getopt keeps global state; a failed parse must not poison the next.
  EXPECT_FALSE(Parse({"dump", "-t", "1", "-D", "/d", "-RQ"}).ok());
  for (int i = 0; i < 3; i++) {
    auto r = Parse({"dump", "-R", "-t", "3", "-D", "/d"});
    EXPECT_PARSES(r);
    EXPECT_EQ(r->pid, 3);
    EXPECT_TRUE(r->leave_running);
  }
}

TEST(Options, CowSnapshotIsTheDefaultAndCanBeTurnedOff) {
  auto r = Parse({"dump", "-t", "1", "-D", "/d", "-R"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->cow_snapshot);
  r = Parse({"dump", "-t", "1", "-D", "/d", "-R", "--no-cow-snapshot"});
  EXPECT_PARSES(r);
  EXPECT_FALSE(r->cow_snapshot);
  r = Parse({"dump", "-t", "1", "-D", "/d", "-R", "--no-cow-snapshot", "--cow-snapshot"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->cow_snapshot);
}

TEST(Options, LogPath) {
  Options o;
  EXPECT_EQ(LogPath(o), "");  // stderr
  o.log_file = "-";
  EXPECT_EQ(LogPath(o), "");
  o.log_file = "dump.log";
  EXPECT_EQ(LogPath(o), "dump.log");  // no -D: as given
  o.images_dir = "/img";
  EXPECT_EQ(LogPath(o), "/img/dump.log");
  o.images_dir = "rel/img";
  EXPECT_EQ(LogPath(o), "rel/img/dump.log");
  o.log_file = "/var/log/ckpt.log";
  EXPECT_EQ(LogPath(o), "/var/log/ckpt.log");

  auto r = Parse({"dump", "-t", "1", "-D", "/img", "-o", "d.log"});
  EXPECT_PARSES(r);
  EXPECT_EQ(LogPath(*r), "/img/d.log");
}

TEST(Options, UsagePerCommand) {
  for (Command c : {Command::kNone, Command::kDump, Command::kRestore, Command::kCheck,
                    Command::kShow, Command::kHelp, Command::kVersion}) {
    EXPECT_FALSE(Usage(c).empty()) << int(c);
    EXPECT_NE(Usage(c).find("usage:"), std::string::npos) << int(c);
  }
  EXPECT_NE(Usage(Command::kDump).find("ckpt dump"), std::string::npos);
  EXPECT_NE(Usage(Command::kDump).find("-t"), std::string::npos);
  EXPECT_NE(Usage(Command::kDump).find("--leave-running"), std::string::npos);
  EXPECT_NE(Usage(Command::kRestore).find("ckpt restore"), std::string::npos);
  EXPECT_NE(Usage(Command::kRestore).find("--pidfile"), std::string::npos);
  EXPECT_NE(Usage(Command::kCheck).find("ckpt check"), std::string::npos);
  EXPECT_NE(Usage(Command::kShow).find("ckpt show"), std::string::npos);
  for (const char* cmd : {"dump", "restore", "check", "show"})
    EXPECT_NE(Usage(Command::kNone).find(cmd), std::string::npos) << cmd;
}


// Incremental dumps (criu/predump.h, criu/mem_track.h): CRIU's options.
TEST(Options, PreDumpAndChains) {
  auto r = Parse({"pre-dump", "-t", "42", "-D", "d2", "--prev-images-dir", "../d1",
                  "--track-mem-timeout", "30"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kPreDump);
  EXPECT_EQ(r->prev_images_dir, "../d1");
  EXPECT_EQ(r->track_mem_timeout, 30);
  r = Parse({"--prev-images-dir", "../d2", "dump", "-t", "42", "-D", "d3", "--track-mem"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kDump);
  EXPECT_EQ(r->prev_images_dir, "../d2");
  EXPECT_TRUE(r->track_mem);
  EXPECT_EQ(Parse({"pre-dump", "-t", "42", "-D", "d"})->track_mem_timeout, 600);
  EXPECT_ERROR_MENTIONS(Parse({"pre-dump", "-D", "d"}), "-t");
  EXPECT_ERROR_MENTIONS(Parse({"pre-dump", "-t", "42", "-D", "d", "-R"}), "-R");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "42", "-D", "d", "--auto-dedup"}), "--auto-dedup");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "d", "--prev-images-dir", "x"}),
                        "--prev-images-dir");
  EXPECT_ERROR_MENTIONS(Parse({"pre-dump", "-t", "1", "-D", "d", "--track-mem-timeout", "0"}),
                        "--track-mem-timeout");
}

// Issue 14 item 12: CRIU's options, implemented or refused by name.
TEST(Options, CriuShortForms) {
  auto r = Parse({"dump", "-t", "1", "-D", "/d", "-x"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->ext_unix_sk);
  r = Parse({"restore", "-D", "/d", "-r", "/new/root", "-J", "net:/run/netns/x"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->root, "/new/root");
  ASSERT_EQ(r->join_ns.size(), 1u);
}

TEST(Options, RefusedByName) {
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--lsm-mount-context", "x"}),
                        "--lsm-mount-context is not supported yet");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--tls"}), "--tls is not supported yet");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "-s"}),
                        "-s (--leave-stopped) is not supported yet");
  // A refused option with a value, before the command: the value is skipped.
  EXPECT_ERROR_MENTIONS(Parse({"--cpu-cap", "fpu", "dump", "-t", "1", "-D", "/d"}),
                        "--cpu-cap is not supported yet");
}

TEST(Options, ImplementedCriuOptions) {
  auto r = Parse({"dump", "-t", "1", "-D", "/d", "--timeout", "7", "--display-stats", "--log-pid",
                  "--link-remap", "--ghost-limit", "2M", "--skip-mnt", "/mnt/x",
                  "--evasive-devices", "--force-irmap", "--tcp-skip-in-flight"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->timeout, 7);
  EXPECT_TRUE(r->display_stats && r->log_pid && r->link_remap && r->evasive_devices &&
              r->force_irmap && r->skip_in_flight);
  EXPECT_EQ(r->ghost_limit, 2u << 20);
  ASSERT_EQ(r->skip_mnt.size(), 1u);
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--ghost-limit", "lots"}),
                        "--ghost-limit");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--timeout", "0"}), "--timeout");
  r = Parse({"restore", "-D", "/d", "--weak-sysctls", "--status-fd", "5", "--exec-cmd", "--",
             "prog", "--its-option", "arg"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->weak_sysctls);
  EXPECT_EQ(r->status_fd, 5);
  EXPECT_TRUE(r->restore_detached);  // implied
  ASSERT_EQ(r->exec_cmd.size(), 3u);
  EXPECT_EQ(r->exec_cmd[0], "prog");
  EXPECT_EQ(r->exec_cmd[1], "--its-option");
  EXPECT_TRUE(r->args.empty());
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--exec-cmd"}), "--exec-cmd needs a command");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--exec-cmd", "--", "x"}),
                        "--exec-cmd is a restore option");
}

}  // namespace
TEST(Options, NetworkOptions) {
  auto r = Parse({"dump", "-t", "1", "-D", "/d", "--tcp-established", "--skip-in-flight",
                  "--network-lock", "skip"});
  EXPECT_PARSES(r);
  EXPECT_TRUE(r->tcp_established);
  EXPECT_TRUE(r->skip_in_flight);
  EXPECT_FALSE(r->network_lock);
  auto d = Parse({"restore", "-D", "/d", "--tcp-close"});
  EXPECT_PARSES(d);
  EXPECT_TRUE(d->tcp_close);
  EXPECT_FALSE(d->tcp_established);
  EXPECT_TRUE(d->network_lock);  // nftables unless told otherwise
  // The value may come before the command, as CRIU allows.
  auto b = Parse({"--network-lock", "nftables", "dump", "-t", "1", "-D", "/d"});
  EXPECT_PARSES(b);
  EXPECT_TRUE(b->network_lock);
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--network-lock", "iptables"}),
                        "iptables");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--network-lock"}), "needs a value");
}

TEST(Options, Unlock) {
  auto r = Parse({"unlock", "-D", "/d"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kUnlock);
  EXPECT_EQ(r->images_dir, "/d");
  EXPECT_ERROR_MENTIONS(Parse({"unlock"}), "unlock needs -D DIR");
  EXPECT_NE(Usage(Command::kNone).find("unlock"), std::string::npos);
}

TEST(Options, CgroupOptions) {
  auto d = Parse({"dump", "-t", "1", "-D", "/d"});
  EXPECT_PARSES(d);
  EXPECT_FALSE(d->manage_cgroups);
  EXPECT_EQ(d->cgroup_mode, CgroupMode::kSoft);  // CRIU's default
  EXPECT_TRUE(d->cgroup_root.empty());
  EXPECT_TRUE(d->freeze_cgroup.empty());

  auto m = Parse({"dump", "-t", "1", "-D", "/d", "--manage-cgroups", "--freeze-cgroup",
                  "/sys/fs/cgroup/job", "--cgroup-root", "/job"});
  EXPECT_PARSES(m);
  EXPECT_TRUE(m->manage_cgroups);
  EXPECT_EQ(m->cgroup_mode, CgroupMode::kSoft);
  EXPECT_EQ(m->freeze_cgroup, "/sys/fs/cgroup/job");
  EXPECT_EQ(m->cgroup_root, "/job");
  EXPECT_TRUE(m->args.empty()) << "--manage-cgroups took the next word as its mode";

  const std::pair<const char*, CgroupMode> modes[] = {
      {"none", CgroupMode::kNone},     {"props", CgroupMode::kProps},
      {"soft", CgroupMode::kSoft},     {"full", CgroupMode::kFull},
      {"strict", CgroupMode::kStrict}, {"ignore", CgroupMode::kIgnore}};
  for (auto& [name, mode] : modes) {
    auto r = Parse({"restore", "-D", "/d", std::string("--manage-cgroups=") + name});
    EXPECT_PARSES(r);
    EXPECT_TRUE(r->manage_cgroups);
    EXPECT_EQ(r->cgroup_mode, mode) << name;
  }
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--manage-cgroups=loose"}), "loose");

  // --cgroup-root [CONTROLLER:]PATH: one tree in v2, so one PATH.
  // (io and misc: never v1 hierarchies on a hybrid host; a v1 controller's
  // root is ignored there, test/runc checks that with runc's.)
  auto c = Parse({"restore", "-D", "/d", "--cgroup-root", "io:/a/b/"});
  EXPECT_PARSES(c);
  EXPECT_EQ(c->cgroup_root, "/a/b");
  auto same = Parse({"restore", "-D", "/d", "--cgroup-root=io:/a", "--cgroup-root", "misc:/a"});
  EXPECT_PARSES(same);
  EXPECT_EQ(same->cgroup_root, "/a");
  auto colon = Parse({"restore", "-D", "/d", "--cgroup-root", "/with:colon"});
  EXPECT_PARSES(colon);
  EXPECT_EQ(colon->cgroup_root, "/with:colon");
  auto before = Parse({"--cgroup-root", "/x", "restore", "-D", "/d"});
  EXPECT_PARSES(before);
  EXPECT_EQ(before->cgroup_root, "/x");
  EXPECT_ERROR_MENTIONS(
      Parse({"restore", "-D", "/d", "--cgroup-root", "io:/a", "--cgroup-root", "misc:/b"}),
      "one root only");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--cgroup-root", "relative"}),
                        "bad --cgroup-root");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--cgroup-root", "/a/../b"}), "'..'");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--cgroup-root"}), "needs a value");
  EXPECT_ERROR_MENTIONS(Parse({"restore", "-D", "/d", "--freeze-cgroup", "/sys/fs/cgroup/x"}),
                        "--freeze-cgroup is a dump option");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--freeze-cgroup", ""}),
                        "needs a cgroup directory");
  EXPECT_NE(Usage(Command::kDump).find("--freeze-cgroup"), std::string::npos);
  EXPECT_NE(Usage(Command::kRestore).find("--manage-cgroups[=MODE]"), std::string::npos);
}

// RPC (criu/rpc/): the swrk and service commands, --action-script.
TEST(Options, RpcCommandsAndActionScripts) {
  auto r = Parse({"swrk", "3"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kSwrk);
  ASSERT_EQ(r->args.size(), 1u);
  EXPECT_EQ(r->args[0], "3");
  EXPECT_ERROR_MENTIONS(Parse({"swrk"}), "swrk needs the fd");
  EXPECT_ERROR_MENTIONS(Parse({"swrk", "x"}), "swrk needs the fd");
  r = Parse({"service", "--address", "/run/ckpt.sock", "--daemon", "--pidfile", "/run/p"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kService);
  EXPECT_EQ(r->address, "/run/ckpt.sock");
  EXPECT_TRUE(r->daemon);
  EXPECT_EQ(r->pidfile, "/run/p");
  EXPECT_ERROR_MENTIONS(Parse({"service"}), "--address");
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--daemon"}), "service option");
  r = Parse({"dump", "-t", "1", "-D", "/d", "--action-script", "/a", "--action-script", "/b"});
  EXPECT_PARSES(r);
  ASSERT_EQ(r->action_scripts.size(), 2u);
  EXPECT_EQ(r->action_scripts[1], "/b");
  // Options before the command skip --action-script's value.
  r = Parse({"--action-script", "/a", "restore", "-D", "/d"});
  EXPECT_PARSES(r);
  EXPECT_EQ(r->command, Command::kRestore);
  EXPECT_ERROR_MENTIONS(Parse({"dump", "-t", "1", "-D", "/d", "--action-script", ""}),
                        "needs a program");
  EXPECT_NE(Usage(Command::kRestore).find("--action-script"), std::string::npos);
  EXPECT_NE(Usage(Command::kNone).find("swrk"), std::string::npos);
}

}  // namespace ckpt

