// Unit tests for criu/proc_parse: the /proc text parsers on samples (as the
// kernel prints them) and on this process's own /proc files.
#include "criu/proc_parse.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "base/io.h"
#include "base/unique_fd.h"
#include "test/unit/test_util.h"

namespace ckpt::proc {
namespace {

using ckpt::testing::TempDir;
using ckpt::testing::WriteFileOrDie;

// ---------------------------------------------------------------------------
// ParseMaps

// As the kernel prints it: the path column is padded to a fixed width, a
// mapping without a path ends in "inode ", and names may hold spaces.
const char kMaps[] =
    "55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 247134                     /usr/bin/cat\n"
    "55d0c8a02000-55d0c8a07000 r-xp 00002000 fe:00 247134                     /usr/bin/cat\n"
    "55d0ca29f000-55d0ca2c0000 rw-p 00000000 00:00 0                          [heap]\n"
    "7fe357bd9000-7fe357c9d000 rw-p 00000000 00:00 0 \n"
    "7fe357c9d000-7fe357cf4000 r--p 7ffff000 103:02 18446744073709551615      /opt/my lib/lib "
    "(v2).so\n"
    "7fe357cf4000-7fe357cf5000 rw-s 00000000 00:01 1034                       /dev/zero (deleted)\n"
    "7fe357cf5000-7fe357cf6000 rw-s 00000000 00:01 99                         /memfd:my buf "
    "(deleted)\n"
    "7fe357cf6000-7fe357cf7000 r--p 00000000 fe:00 12                         /tmp/trailing space "
    "\n"
    "7fe357eed000-7fe357ef1000 r--p 00000000 00:00 0                          [vvar]\n"
    "7fe357ef1000-7fe357ef3000 r--p 00000000 00:00 0                          [vvar_vclock]\n"
    "7fe357ef3000-7fe357ef5000 r-xp 00000000 00:00 0                          [vdso]\n"
    "7ffc1e1a0000-7ffc1e1c1000 rw-p 00000000 00:00 0                          [stack]\n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";

TEST(ParseMaps, RealisticMaps) {
  auto r = ParseMaps(kMaps);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const auto& m = *r;
  ASSERT_EQ(m.size(), 13u);

  EXPECT_EQ(m[0].start, 0x55d0c8a00000u);
  EXPECT_EQ(m[0].end, 0x55d0c8a02000u);
  EXPECT_TRUE(m[0].r);
  EXPECT_FALSE(m[0].w);
  EXPECT_FALSE(m[0].x);
  EXPECT_FALSE(m[0].shared);
  EXPECT_EQ(m[0].dev_major, 0xfeu);
  EXPECT_EQ(m[0].dev_minor, 0u);
  EXPECT_EQ(m[0].inode, 247134u);
  EXPECT_EQ(m[0].path, "/usr/bin/cat");
  EXPECT_TRUE(m[0].vmflags.empty());

  EXPECT_TRUE(m[1].x);
  EXPECT_EQ(m[1].pgoff, 0x2000u);

  EXPECT_EQ(m[2].path, "[heap]");
  EXPECT_TRUE(m[2].r && m[2].w && !m[2].x);

  EXPECT_EQ(m[3].path, "");  // anonymous, no path
  EXPECT_EQ(m[3].inode, 0u);

  EXPECT_EQ(m[4].path, "/opt/my lib/lib (v2).so");
  EXPECT_EQ(m[4].pgoff, 0x7ffff000u);
  EXPECT_EQ(m[4].dev_major, 0x103u);
  EXPECT_EQ(m[4].dev_minor, 0x02u);
  EXPECT_EQ(m[4].inode, 18446744073709551615ull);

  EXPECT_EQ(m[5].path, "/dev/zero (deleted)");
  EXPECT_TRUE(m[5].shared);
  EXPECT_EQ(m[6].path, "/memfd:my buf (deleted)");
  EXPECT_EQ(m[7].path, "/tmp/trailing space ");  // trailing blanks belong to the name

  EXPECT_EQ(m[8].path, "[vvar]");
  EXPECT_EQ(m[9].path, "[vvar_vclock]");
  EXPECT_EQ(m[10].path, "[vdso]");
  EXPECT_TRUE(m[10].x);
  EXPECT_EQ(m[11].path, "[stack]");
  EXPECT_EQ(m[12].start, 0xffffffffff600000u);
  EXPECT_EQ(m[12].path, "[vsyscall]");
  EXPECT_TRUE(m[12].x && !m[12].r);
}

TEST(ParseMaps, SmapsWithFieldsAndVmFlags) {
  const char smaps[] =
      "55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 247134                     /usr/bin/my prog\n"
      "Size:                  8 kB\n"
      "KernelPageSize:        4 kB\n"
      "MMUPageSize:           4 kB\n"
      "Rss:                   8 kB\n"
      "Anonymous:             0 kB\n"
      "AnonHugePages:         0 kB\n"
      "FilePmdMapped:         0 kB\n"
      "THPeligible:           0\n"
      "ProtectionKey:         0\n"
      "VmFlags: rd mr mw me dw sd \n"
      "7fe357bd9000-7fe357c9d000 rw-p 00000000 00:00 0 \n"
      "Size:                784 kB\n"
      "VmFlags: rd wr mr mw me ac sd \n"
      "7fe357eed000-7fe357ef1000 r--p 00000000 00:00 0                          [vvar]\n"
      "Size:                 16 kB\n"
      "VmFlags: rd mr pf io de dd sd \n"
      "7ffc1e1a0000-7ffc1e1c1000 rw-p 00000000 00:00 0                          [stack]\n"
      "Size:                132 kB\n"
      "VmFlags: rd wr mr mw me gd ac \n";
  auto r = ParseMaps(smaps);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const auto& m = *r;
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].path, "/usr/bin/my prog");
  EXPECT_EQ(m[0].vmflags, (std::vector<std::string>{"rd", "mr", "mw", "me", "dw", "sd"}));
  EXPECT_TRUE(m[0].HasFlag("dw"));
  EXPECT_FALSE(m[0].HasFlag("wr"));
  EXPECT_FALSE(m[0].HasFlag("d"));  // whole words only
  EXPECT_EQ(m[1].path, "");
  EXPECT_TRUE(m[1].HasFlag("ac"));
  EXPECT_EQ(m[2].path, "[vvar]");
  EXPECT_TRUE(m[2].HasFlag("dd"));
  EXPECT_TRUE(m[2].HasFlag("io"));
  EXPECT_EQ(m[3].path, "[stack]");
  EXPECT_TRUE(m[3].HasFlag("gd"));
}

TEST(ParseMaps, EmptyTextIsNoMappings) {
  auto r = ParseMaps("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(ParseMaps, MalformedLinesAreErrors) {
  const char* bad[] = {
      "00400000-00452000 r-xp 00000000 fe:00\n",            // no inode
      "00400000-00452000 r-xp\n",                           // cut short
      "00400000-00452000 r-x 00000000 fe:00 1 /bin/x\n",    // 3 perms
      "00400000-00452000 r-xpx 00000000 fe:00 1 /bin/x\n",  // 5 perms
      "00452000-00400000 r-xp 00000000 fe:00 1 /bin/x\n",   // start > end
      "00400000-00400000 r-xp 00000000 fe:00 1 /bin/x\n",   // empty
      "00400000-zz r-xp 00000000 fe:00 1 /bin/x\n",         // bad end
      "00400000-00452000 r-xp 00000000 fe00 1 /bin/x\n",    // bad dev
      "00400000-00452000 r-xp zzzz fe:00 1 /bin/x\n",       // bad offset
  };
  for (const char* line : bad) {
    std::string text = std::string(kMaps) + line;
    auto r = ParseMaps(text);
    EXPECT_FALSE(r.ok()) << "accepted: " << line;
    if (!r.ok()) {
      // The message names the line number (14: after kMaps' 13 lines).
      EXPECT_NE(r.error().message().find("14"), std::string::npos) << r.error().message();
    }
  }
}

// Regression (fixed): a line that is neither a maps header nor an smaps
// "Key: value" field is skipped silently, so a corrupt or mis-split maps
// text loses VMAs without any error. Expected: an error naming the line.
TEST(ParseMaps, BugGarbageLinesAreErrors) {
  const char* bad[] = {
      "this is not a maps line\n",
      "00400000 00452000 r-xp 00000000 fe:00 1 /bin/x\n",  // no dash
      "deadbeef\n",
  };
  for (const char* line : bad) {
    auto r = ParseMaps(std::string(kMaps) + line);
    EXPECT_FALSE(r.ok()) << "silently skipped: " << line;
  }
}

// ---------------------------------------------------------------------------
// ParseStatus

const char kStatus[] =
    "Name:\tmy prog: x\n"
    "Umask:\t0022\n"
    "State:\tS (sleeping)\n"
    "Tgid:\t4242\n"
    "Ngid:\t0\n"
    "Pid:\t4243\n"
    "PPid:\t17\n"
    "TracerPid:\t0\n"
    "Uid:\t1000\t1001\t1002\t1003\n"
    "Gid:\t100\t101\t102\t103\n"
    "FDSize:\t256\n"
    "Groups:\t4 24 27 1000 \n"
    "NStgid:\t4242\t7\n"
    "NSpid:\t4243\t8\n"
    "NSpgid:\t4000\t0\n"
    "NSsid:\t4242\t7\n"
    "VmPeak:\t    3060 kB\n"
    "Threads:\t3\n"
    "SigQ:\t0/96365\n"
    "SigPnd:\t0000000000000100\n"
    "ShdPnd:\t0000000000004000\n"
    "SigBlk:\t0000000000010002\n"
    "SigIgn:\t0000000000001000\n"
    "SigCgt:\t0000000180000000\n"
    "CapInh:\t0000000000000001\n"
    "CapPrm:\t000001fffeffffff\n"
    "CapEff:\t000001fffeffffff\n"
    "CapBnd:\t000001ffffffffff\n"
    "CapAmb:\t0000000000000002\n"
    "NoNewPrivs:\t0\n"
    "Cpus_allowed_list:\t0-1\n";

TEST(ParseStatus, AllFields) {
  auto r = ParseStatus(kStatus);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Status& s = *r;
  EXPECT_EQ(s.name, "my prog: x");
  EXPECT_EQ(s.state, 'S');
  EXPECT_EQ(s.tgid, 4242);
  EXPECT_EQ(s.pid, 4243);
  EXPECT_EQ(s.ppid, 17);
  EXPECT_EQ(s.uid[0], 1000u);
  EXPECT_EQ(s.uid[1], 1001u);
  EXPECT_EQ(s.uid[2], 1002u);
  EXPECT_EQ(s.uid[3], 1003u);
  EXPECT_EQ(s.gid[0], 100u);
  EXPECT_EQ(s.gid[3], 103u);
  EXPECT_EQ(s.groups, (std::vector<uint32_t>{4, 24, 27, 1000}));
  EXPECT_EQ(s.threads, 3);
  EXPECT_EQ(s.sigpnd, 0x100u);
  EXPECT_EQ(s.shdpnd, 0x4000u);
  EXPECT_EQ(s.sigblk, 0x10002u);
  EXPECT_EQ(s.cap_inh, 1u);
  EXPECT_EQ(s.cap_prm, 0x1fffeffffffull);
  EXPECT_EQ(s.cap_eff, 0x1fffeffffffull);
  EXPECT_EQ(s.cap_bnd, 0x1ffffffffffull);
  EXPECT_EQ(s.cap_amb, 2u);
  EXPECT_EQ(s.ns_pid, (std::vector<pid_t>{4243, 8}));
  EXPECT_EQ(s.ns_pgid, (std::vector<pid_t>{4000, 0}));
  EXPECT_EQ(s.ns_sid, (std::vector<pid_t>{4242, 7}));
}

TEST(ParseStatus, EmptyGroupsAndHighIds) {
  std::string t = kStatus;
  t.replace(t.find("Groups:\t4 24 27 1000 \n"), 22, "Groups:\t\n");
  t.replace(t.find("Uid:\t1000\t1001\t1002\t1003\n"), 25, "Uid:\t0\t4294967294\t0\t65534\n");
  auto r = ParseStatus(t);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->groups.empty());
  EXPECT_EQ(r->uid[1], 4294967294u);
  EXPECT_EQ(r->uid[3], 65534u);
}

std::string Without(std::string t, const std::string& key) {
  size_t p = t.find(key);
  size_t e = t.find('\n', p);
  return t.erase(p, e - p + 1);
}

TEST(ParseStatus, MissingOrShortIdLinesAreErrors) {
  EXPECT_FALSE(ParseStatus(Without(kStatus, "Uid:")).ok());
  EXPECT_FALSE(ParseStatus(Without(kStatus, "Gid:")).ok());
  std::string shortuid = kStatus;
  shortuid.replace(shortuid.find("Uid:\t1000\t1001\t1002\t1003\n"), 25, "Uid:\t1000\t1001\t1002\n");
  auto r = ParseStatus(shortuid);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("Uid"), std::string::npos) << r.error().message();
  EXPECT_FALSE(ParseStatus("").ok());
  EXPECT_FALSE(ParseStatus("garbage without colons\n\n").ok());
}

// ---------------------------------------------------------------------------
// ParseStat

// Builds a 52-field stat line where field N (N >= 4) holds 1000 + N, so a
// parser reading the wrong column is caught.
std::string StatLine(pid_t pid, const std::string& comm, int nfields = 52) {
  std::string s = std::to_string(pid) + " (" + comm + ") R";
  for (int n = 4; n <= nfields; n++) s += " " + std::to_string(1000 + n);
  return s + "\n";
}

TEST(ParseStat, FieldsLandInTheRightPlaces) {
  auto r = ParseStat(StatLine(321, "cat"));
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Stat& s = *r;
  EXPECT_EQ(s.pid, 321);
  EXPECT_EQ(s.comm, "cat");
  EXPECT_EQ(s.state, 'R');
  EXPECT_EQ(s.ppid, 1004);
  EXPECT_EQ(s.pgid, 1005);
  EXPECT_EQ(s.sid, 1006);
  EXPECT_EQ(s.start_code, 1026u);
  EXPECT_EQ(s.end_code, 1027u);
  EXPECT_EQ(s.start_stack, 1028u);
  EXPECT_EQ(s.start_data, 1045u);
  EXPECT_EQ(s.end_data, 1046u);
  EXPECT_EQ(s.start_brk, 1047u);
  EXPECT_EQ(s.arg_start, 1048u);
  EXPECT_EQ(s.arg_end, 1049u);
  EXPECT_EQ(s.env_start, 1050u);
  EXPECT_EQ(s.env_end, 1051u);
  EXPECT_EQ(s.exit_code, 1052);
}

TEST(ParseStat, RealKernelLine) {
  const char line[] =
      "19255 (cat) R 19249 19249 15316 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 286007 3133440 "
      "418 18446744073709551615 94340996710400 94340996730281 140736518803856 0 0 0 0 0 0 0 0 "
      "0 17 1 0 0 0 0 0 94340996746288 94340996747904 94341220614144 140736518810249 "
      "140736518810269 140736518810269 140736518811627 0\n";
  auto r = ParseStat(line);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pid, 19255);
  EXPECT_EQ(r->ppid, 19249);
  EXPECT_EQ(r->sid, 15316);
  EXPECT_EQ(r->start_code, 94340996710400u);
  EXPECT_EQ(r->end_code, 94340996730281u);
  EXPECT_EQ(r->start_stack, 140736518803856u);
  EXPECT_EQ(r->start_brk, 94341220614144u);
  EXPECT_EQ(r->arg_start, 140736518810249u);
  EXPECT_EQ(r->env_end, 140736518811627u);
  EXPECT_EQ(r->exit_code, 0);
}

TEST(ParseStat, CommWithSpacesAndParentheses) {
  for (const std::string comm : {"a) (b", "x y z", "((", "))", ") R 1 2 3", "", "cat)"}) {
    auto r = ParseStat(StatLine(77, comm));
    ASSERT_TRUE(r.ok()) << comm << ": " << r.error().message();
    EXPECT_EQ(r->comm, comm);
    EXPECT_EQ(r->pid, 77);
    EXPECT_EQ(r->state, 'R');
    EXPECT_EQ(r->ppid, 1004) << comm;
    EXPECT_EQ(r->exit_code, 1052) << comm;
  }
}

TEST(ParseStat, OlderKernelsWithoutTrailingFieldsAreErrors) {
  auto r = ParseStat(StatLine(5, "x", 51));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("too few"), std::string::npos) << r.error().message();
  EXPECT_FALSE(ParseStat(StatLine(5, "x", 10)).ok());
  EXPECT_FALSE(ParseStat("5 (x)").ok());
}

TEST(ParseStat, MalformedCommIsAnError) {
  EXPECT_FALSE(ParseStat("").ok());
  EXPECT_FALSE(ParseStat("123 no parens R 1 2 3").ok());
  EXPECT_FALSE(ParseStat("123 )x( R 1 2 3").ok());
}

// ---------------------------------------------------------------------------
// ParseFdInfo

TEST(ParseFdInfo, OctalFlagsPosMntId) {
  auto r = ParseFdInfo("pos:\t4294967301\nflags:\t02102002\nmnt_id:\t29\nino:\t1234\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pos, 4294967301ull);
  EXPECT_EQ(r->flags, 02102002u);  // CLOEXEC|LARGEFILE|APPEND|RDWR, octal
  EXPECT_EQ(r->flags & O_ACCMODE, unsigned(O_RDWR));
  EXPECT_TRUE(r->flags & O_APPEND);
  EXPECT_TRUE(r->flags & O_CLOEXEC);
  EXPECT_EQ(r->mnt_id, 29);
}

TEST(ParseFdInfo, ExtraLinesAreIgnored) {
  auto r = ParseFdInfo(
      "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t3\neventfd-count:                0\n"
      "tfd:        5 events:       19 data:                5  pos:0 ino:3 sdev:f\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pos, 0u);
  EXPECT_EQ(r->flags, 2u);
  EXPECT_EQ(r->mnt_id, 15);
}

TEST(ParseFdInfo, MissingFields) {
  EXPECT_FALSE(ParseFdInfo("flags:\t02\nmnt_id:\t15\n").ok());  // no pos
  EXPECT_FALSE(ParseFdInfo("pos:\t0\nmnt_id:\t15\n").ok());     // no flags
  EXPECT_FALSE(ParseFdInfo("").ok());
  auto r = ParseFdInfo("pos:\t9\nflags:\t0\n");  // mnt_id is optional
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->mnt_id, -1);
  EXPECT_EQ(r->pos, 9u);
}

// ---------------------------------------------------------------------------
// This process's own /proc files

const MapEntry* Containing(const std::vector<MapEntry>& m, uint64_t addr) {
  for (const auto& e : m)
    if (addr >= e.start && addr < e.end) return &e;
  return nullptr;
}

TEST(ProcSelf, SmapsHasOurStackCodeAndVdso) {
  auto r = ReadSmaps(getpid());
  ASSERT_TRUE(r.ok()) << r.error().message();
  const auto& m = *r;
  ASSERT_FALSE(m.empty());
  for (size_t i = 0; i < m.size(); i++) {
    EXPECT_LT(m[i].start, m[i].end);
    EXPECT_FALSE(m[i].vmflags.empty()) << "smaps gives every VMA its VmFlags";
    if (i) {
      EXPECT_LE(m[i - 1].end, m[i].start) << "VMAs sorted and disjoint";
    }
  }
  int local = 0;
  const MapEntry* stack = Containing(m, reinterpret_cast<uint64_t>(&local));
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->path, "[stack]");
  EXPECT_TRUE(stack->r && stack->w);
  EXPECT_TRUE(stack->HasFlag("gd"));

  const MapEntry* code =
      Containing(m, reinterpret_cast<uint64_t>(reinterpret_cast<void*>(&Containing)));
  ASSERT_NE(code, nullptr);
  EXPECT_TRUE(code->x);
  EXPECT_NE(code->path.find("unit_proc_parse"), std::string::npos) << code->path;
  EXPECT_NE(code->inode, 0u);

  EXPECT_TRUE(
      std::any_of(m.begin(), m.end(), [](const MapEntry& e) { return e.path == "[vdso]"; }));
}

TEST(ProcSelf, StatMatchesUs) {
  auto r = ReadStat(getpid());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pid, getpid());
  EXPECT_EQ(r->ppid, getppid());
  EXPECT_EQ(r->pgid, getpgrp());
  EXPECT_EQ(r->sid, getsid(0));
  auto comm = io::ReadFile("/proc/self/comm");
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ(r->comm + "\n", *comm);
  EXPECT_LT(r->start_code, r->end_code);
  EXPECT_LT(r->arg_start, r->arg_end);
  EXPECT_LE(r->arg_end, r->env_start);
  EXPECT_LT(r->env_start, r->env_end);

  auto maps = ReadSmaps(getpid());
  ASSERT_TRUE(maps.ok());
  const MapEntry* st = Containing(*maps, r->start_stack);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->path, "[stack]");
  const MapEntry* args = Containing(*maps, r->arg_start);
  ASSERT_NE(args, nullptr);
  EXPECT_EQ(args->path, "[stack]");
  const MapEntry* code = Containing(*maps, r->start_code);
  ASSERT_NE(code, nullptr);
  EXPECT_TRUE(code->x);
}

TEST(ProcSelf, StatusMatchesUs) {
  // Block a signal on this (main, leader) thread and see it in SigBlk.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  auto r = ReadStatus(getpid());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pid, getpid());
  EXPECT_EQ(r->tgid, getpid());
  EXPECT_EQ(r->ppid, getppid());
  EXPECT_EQ(r->uid[0], getuid());
  EXPECT_EQ(r->uid[1], geteuid());
  EXPECT_EQ(r->gid[0], getgid());
  EXPECT_EQ(r->gid[1], getegid());
  EXPECT_GE(r->threads, 1);
  EXPECT_EQ(r->state, 'R');
  EXPECT_TRUE(r->sigblk & (1ull << (SIGUSR2 - 1))) << std::hex << r->sigblk;
  auto comm = io::ReadFile("/proc/self/comm");
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ(r->name + "\n", *comm);
  int ngroups = getgroups(0, nullptr);
  EXPECT_EQ(r->groups.size(), size_t(ngroups));
}

TEST(ProcSelf, FdInfoAndListFds) {
  TempDir tmp;
  WriteFileOrDie(tmp / "f", std::string(1000, 'x'));
  UniqueFd fd(open((tmp / "f").c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd);
  ASSERT_EQ(lseek(fd.get(), 123, SEEK_SET), 123);
  auto r = ReadFdInfo(getpid(), fd.get());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->pos, 123u);
  EXPECT_EQ(r->flags & O_ACCMODE, unsigned(O_RDWR));
  EXPECT_TRUE(r->flags & O_APPEND);
  EXPECT_TRUE(r->flags & O_CLOEXEC);
  EXPECT_GE(r->mnt_id, 0);

  auto fds = ListFds(getpid());
  ASSERT_TRUE(fds.ok()) << fds.error().message();
  EXPECT_TRUE(std::is_sorted(fds->begin(), fds->end()));
  EXPECT_NE(std::find(fds->begin(), fds->end(), fd.get()), fds->end());
  // A high number, so ListFds's own directory fd cannot reuse it.
  int closed = fcntl(fd.get(), F_DUPFD_CLOEXEC, 900);
  ASSERT_GE(closed, 900);
  auto with = ListFds(getpid());
  ASSERT_TRUE(with.ok());
  EXPECT_NE(std::find(with->begin(), with->end(), closed), with->end());
  close(closed);
  auto after = ListFds(getpid());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::find(after->begin(), after->end(), closed), after->end());
  EXPECT_FALSE(ReadFdInfo(getpid(), closed).ok());
}

TEST(ProcSelf, MissingPidIsAnError) {
  // Beyond the largest pid_max the kernel allows (4194304).
  const pid_t nopid = 0x3ffffff0;
  EXPECT_FALSE(ReadSmaps(nopid).ok());
  EXPECT_FALSE(ReadStatus(nopid).ok());
  EXPECT_FALSE(ReadStat(nopid).ok());
  EXPECT_FALSE(ReadFdInfo(nopid, 0).ok());
  auto l = ListFds(nopid);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().err(), ENOENT);
}

// ParseHardLimits / ReadHardLimits: the Hard Limit column of /proc/PID/limits.
TEST(ParseHardLimits, NumbersAndUnlimited) {
  const char* text =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max cpu time              unlimited            unlimited            seconds   \n"
      "Max open files            1024                 524288               files     \n"
      "Max realtime timeout      unlimited            200000               us        \n";
  auto r = ParseHardLimits(text);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(*r, (std::vector<uint64_t>{UINT64_MAX, 524288, 200000}));
}

TEST(ParseHardLimits, Malformed) {
  EXPECT_FALSE(ParseHardLimits("").ok());
  EXPECT_FALSE(ParseHardLimits("Max cpu time unlimited\n").ok());  // no header
  EXPECT_FALSE(ParseHardLimits("Limit  Soft Limit  Hard Limit  Units\n").ok());  // no rows
  EXPECT_FALSE(ParseHardLimits("Limit   Soft Limit   Hard Limit   Units\nMax cpu time 1 2\n").ok());
  EXPECT_FALSE(ParseHardLimits(
                   "Limit                     Soft Limit           Hard Limit           Units\n"
                   "Max cpu time              unlimited            12x                  seconds\n")
                   .ok());
}

TEST(ProcSelf, HardLimitsMatchGetrlimit) {
  auto r = ReadHardLimits(getpid());
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_GE(r->size(), size_t(RLIMIT_NOFILE) + 1);
  struct rlimit l;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &l), 0);
  EXPECT_EQ((*r)[RLIMIT_NOFILE], l.rlim_max == RLIM_INFINITY ? UINT64_MAX : uint64_t(l.rlim_max));
  ASSERT_EQ(getrlimit(RLIMIT_STACK, &l), 0);
  EXPECT_EQ((*r)[RLIMIT_STACK], l.rlim_max == RLIM_INFINITY ? UINT64_MAX : uint64_t(l.rlim_max));
}

}  // namespace
}  // namespace ckpt::proc
