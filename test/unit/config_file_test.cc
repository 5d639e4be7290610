// Unit tests for criu/config_file: CRIU's config file syntax, the order
// of the files, and the options that came with them (--inherit-fd,
// --orphan-pts-master, --no-FLAG).
#include "criu/config_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "criu/options.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

Result<Options> Parse(std::initializer_list<std::string> args) {
  std::vector<std::string> store{"ckpt"};
  store.insert(store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(s.data());
  argv.push_back(nullptr);
  return ParseOptions(int(store.size()), argv.data());
}

std::string Err(const Status& s) { return s.ok() ? "(fine)" : s.error().message(); }
template <typename T>
std::string Err(const Result<T>& r) {
  return r.ok() ? "(fine)" : r.error().message();
}

// A temporary directory as $HOME, with CRIU_CONFIG_FILE unset; both are
// put back and the directory removed at the end.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckpt-config-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (const char* h = getenv("HOME")) old_home_ = h, had_home_ = true;
    if (const char* c = getenv("CRIU_CONFIG_FILE")) old_env_ = c, had_env_ = true;
    setenv("HOME", dir_.c_str(), 1);
    unsetenv("CRIU_CONFIG_FILE");
  }
  void TearDown() override {
    if (had_home_)
      setenv("HOME", old_home_.c_str(), 1);
    else
      unsetenv("HOME");
    if (had_env_)
      setenv("CRIU_CONFIG_FILE", old_env_.c_str(), 1);
    else
      unsetenv("CRIU_CONFIG_FILE");
    fs::remove_all(dir_);
  }
  std::string Write(const std::string& rel, const std::string& text) {
    std::string p = dir_ + "/" + rel;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }
  std::string dir_;

 private:
  std::string old_home_, old_env_;
  bool had_home_ = false, had_env_ = false;
};

TEST(ConfigText, CriusDocumentedExample) {
  auto r = ParseConfigText(
      "tcp-established\n"
      "work-dir \"/home/USERNAME/criu/my \\\"work\\\" directory\"\n"
      "#this is a comment\n"
      "no-restore-sibling   # this is another comment\n",
      "f");
  ASSERT_TRUE(r.ok()) << Err(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].name, "tcp-established");
  EXPECT_FALSE((*r)[0].has_value);
  EXPECT_EQ((*r)[0].line, 1);
  EXPECT_EQ((*r)[1].name, "work-dir");
  EXPECT_EQ((*r)[1].value, "/home/USERNAME/criu/my \"work\" directory");
  EXPECT_EQ((*r)[2].name, "no-restore-sibling");
  EXPECT_EQ((*r)[2].line, 4);
}

TEST(ConfigText, QuotesKeepHashAndOtherBackslashesAreLiteral) {
  auto r = ParseConfigText("root \"/a b#c\\\\d\"\n\n   \t\nlog-file x.log", "f");
  ASSERT_TRUE(r.ok()) << Err(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].value, "/a b#c\\\\d");
  EXPECT_EQ((*r)[1].value, "x.log");
  EXPECT_EQ((*r)[1].line, 4);  // no newline at the end
}

TEST(ConfigText, SyntaxErrorsNameFileAndLine) {
  auto r = ParseConfigText("tcp-established\nroot \"/unterminated\n", "/etc/x.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("/etc/x.conf:2: unterminated quote"), std::string::npos)
      << Err(r);
  r = ParseConfigText("external a b\n", "x.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("x.conf:1:"), std::string::npos) << Err(r);
  r = ParseConfigText("--tcp-established\n", "x.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("without the leading"), std::string::npos) << Err(r);
}

TEST_F(ConfigFiles, UnknownOptionNamesFileAndLine) {
  std::string f = Write("bad.conf", "# fine\ntcp-established\nno-such-option 3\n");
  Options o;
  Status s = ApplyConfigFile(f, o, false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Err(s).find(f + ":3: unknown option 'no-such-option'"), std::string::npos) << Err(s);
  f = Write("cmd.conf", "dump\n");
  s = ApplyConfigFile(f, o, false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Err(s).find(f + ":1: unknown option 'dump' (a command cannot"), std::string::npos)
      << Err(s);
}

TEST_F(ConfigFiles, ValuesAreCheckedWithLine) {
  Options o;
  std::string f = Write("v.conf", "tree 12\nshell-job yes\n");
  Status s = ApplyConfigFile(f, o, false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Err(s).find(f + ":2: option 'shell-job' takes no value"), std::string::npos) << Err(s);
  f = Write("w.conf", "pidfile\n");
  s = ApplyConfigFile(f, o, false);
  EXPECT_NE(Err(s).find(f + ":1: option 'pidfile' needs a value"), std::string::npos) << Err(s);
  f = Write("x.conf", "\ntree abc\n");
  s = ApplyConfigFile(f, o, false);
  EXPECT_NE(Err(s).find(f + ":2: bad pid 'abc'"), std::string::npos) << Err(s);
  f = Write("y.conf", "config other.conf\n");
  s = ApplyConfigFile(f, o, false);
  EXPECT_NE(Err(s).find("command line only"), std::string::npos) << Err(s);
}

TEST_F(ConfigFiles, MissingFiles) {
  Options o;
  EXPECT_TRUE(ApplyConfigFile(dir_ + "/absent.conf", o, true).ok());
  Status s = ApplyConfigFile(dir_ + "/absent.conf", o, false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(Err(s).find("absent.conf"), std::string::npos);
  auto r = Parse({"restore", "-D", "/img", "--config", dir_ + "/absent.conf"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("config file " + dir_ + "/absent.conf"), std::string::npos) << Err(r);
}

TEST_F(ConfigFiles, OrderAndCommandLineOverrides) {
  Write(".criu/default.conf", "log-file home.log\nshell-job\nverbosity 1\n");
  std::string env = Write("env.conf", "log-file env.log\nexternal veth[a]:b\n");
  std::string cfg = Write("cfg.conf",
                          "images-dir /from-config\nexternal veth[c]:d\n"
                          "inherit-fd fd[0]:pipe:[77]\norphan-pts-master\n");
  setenv("CRIU_CONFIG_FILE", env.c_str(), 1);
  auto r = Parse({"restore", "--config", cfg, "-D", "/from-cli", "--no-shell-job"});
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_EQ(r->images_dir, "/from-cli");  // the command line wins
  EXPECT_EQ(r->log_file, "env.log");      // $CRIU_CONFIG_FILE after ~/.criu
  EXPECT_FALSE(r->shell_job);             // set by a file, unset by --no-shell-job
  EXPECT_EQ(r->verbosity, 1);
  EXPECT_TRUE(r->orphan_pts_master);
  EXPECT_EQ(r->config_file, cfg);
  ASSERT_EQ(r->external.size(), 2u);  // repeatable options add up, in order
  EXPECT_EQ(r->external[0], "veth[a]:b");
  EXPECT_EQ(r->external[1], "veth[c]:d");
  ASSERT_EQ(r->inherit_fds.size(), 1u);
  EXPECT_EQ(r->inherit_fds[0].fd, 0);
  EXPECT_EQ(r->inherit_fds[0].key, "pipe:[77]");

  // --no-default-config skips ~/.criu/default.conf, not $CRIU_CONFIG_FILE.
  r = Parse({"restore", "-D", "/img", "--no-default-config"});
  ASSERT_TRUE(r.ok()) << Err(r);
  EXPECT_FALSE(r->shell_job);
  EXPECT_EQ(r->log_file, "env.log");
  EXPECT_EQ(r->verbosity, 2);
}

TEST_F(ConfigFiles, RpcOrderLeavesConfigFileForLater) {
  std::string cfg = Write("rpc.conf", "tcp-established\n");
  Options o;
  o.no_default_config = true;
  o.config_file = cfg;
  ASSERT_TRUE(ApplyConfigFiles(o, false).ok());
  EXPECT_FALSE(o.tcp_established);
  ASSERT_TRUE(ApplyConfigFile(o.config_file, o, true).ok());
  EXPECT_TRUE(o.tcp_established);
}

TEST(InheritFdOption, Syntax) {
  auto r = Parse({"restore", "-D", "/i", "--inherit-fd", "fd[3]:tty[8800:d]", "--inherit-fd",
                  "fd[12]:/var/log/app.log", "--no-default-config"});
  ASSERT_TRUE(r.ok()) << Err(r);
  ASSERT_EQ(r->inherit_fds.size(), 2u);
  EXPECT_EQ(r->inherit_fds[0].fd, 3);
  EXPECT_EQ(r->inherit_fds[0].key, "tty[8800:d]");
  EXPECT_EQ(r->inherit_fds[1].fd, 12);
  EXPECT_EQ(r->inherit_fds[1].key, "/var/log/app.log");
  for (const char* bad : {"3:pipe:[1]", "fd[x]:pipe:[1]", "fd[3]:", "fd[-1]:a", "fd[]:a"}) {
    auto b = Parse({"restore", "-D", "/i", "--no-default-config", "--inherit-fd", bad});
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(Err(b).find("bad --inherit-fd"), std::string::npos) << Err(b);
  }
}

}  // namespace
}  // namespace ckpt
