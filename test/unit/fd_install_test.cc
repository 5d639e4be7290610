// files::InstallTaskFds: a task's fd table made from the tree's open files
// with moves that never overwrite a file still needed (chains, swaps,
// longer cycles, several fds of one file), on real fds of this process.
#include "criu/files/fd_install.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>

#include <gtest/gtest.h>

namespace ckpt::files {
namespace {

// A distinct open file (one pipe end each), placed at fd number `at`.
ino_t OpenAt(int at) {
  int p[2];
  EXPECT_EQ(pipe(p), 0);
  EXPECT_EQ(dup2(p[0], at), at);
  close(p[0]);
  close(p[1]);
  struct stat st;
  EXPECT_EQ(fstat(at, &st), 0);
  return st.st_ino;
}

ino_t InoAt(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

pb::FdinfoEntry Fd(int fd, uint32_t file, bool cloexec = false) {
  pb::FdinfoEntry e;
  e.set_fd(uint32_t(fd));
  e.set_file_id(file);
  e.set_cloexec(cloexec);
  return e;
}

class FdInstall : public ::testing::Test {
 protected:
  // Numbers 100..199 are the task's table, 300.. the spare area.
  void TearDown() override {
    for (int fd = 100; fd < 400; fd++) close(fd);
  }
};

TEST_F(FdInstall, SwapsChainsAndCyclesEndWhereTheyMust) {
  // Files 1..6 open at 101..106. Wanted: a swap (101<->102), a chain
  // (103->104->105: file 3 at 104, file 4 at 105), a 3-cycle is built
  // below, file 6 in place with a second fd, file 5 unused (closed).
  std::map<uint32_t, int> sources;
  std::map<uint32_t, ino_t> ino;
  for (uint32_t f = 1; f <= 6; f++) {
    sources[f] = 100 + int(f);
    ino[f] = OpenAt(sources[f]);
  }
  std::vector<pb::FdinfoEntry> fds = {
      Fd(101, 2), Fd(102, 1, true),    // swap
      Fd(104, 3), Fd(105, 4),          // chain, 105's file 5 not wanted
      Fd(106, 6), Fd(120, 6, true),    // in place, plus a second fd
  };
  ASSERT_TRUE(InstallTaskFds(fds, sources, {}, 300).ok());
  EXPECT_EQ(InoAt(101), ino[2]);
  EXPECT_EQ(InoAt(102), ino[1]);
  EXPECT_EQ(InoAt(104), ino[3]);
  EXPECT_EQ(InoAt(105), ino[4]);
  EXPECT_EQ(InoAt(106), ino[6]);
  EXPECT_EQ(InoAt(120), ino[6]);
  EXPECT_EQ(InoAt(103), 0u) << "file 3's old number is no fd of the task";
  EXPECT_EQ(fcntl(102, F_GETFD), FD_CLOEXEC);
  EXPECT_EQ(fcntl(101, F_GETFD), 0);
  EXPECT_EQ(fcntl(120, F_GETFD), FD_CLOEXEC);
  for (int fd = 300; fd < 310; fd++) EXPECT_EQ(InoAt(fd), 0u) << "spare " << fd << " left open";
}

TEST_F(FdInstall, ThreeCycleAndServiceFdsUntouched) {
  std::map<uint32_t, int> sources = {{1, 110}, {2, 111}, {3, 112}};
  std::map<uint32_t, ino_t> ino;
  for (auto& [f, at] : sources) ino[f] = OpenAt(at);
  ino_t service = OpenAt(150);
  std::vector<pb::FdinfoEntry> fds = {Fd(110, 3), Fd(111, 1), Fd(112, 2)};
  ASSERT_TRUE(InstallTaskFds(fds, sources, {150}, 300).ok());
  EXPECT_EQ(InoAt(110), ino[3]);
  EXPECT_EQ(InoAt(111), ino[1]);
  EXPECT_EQ(InoAt(112), ino[2]);
  EXPECT_EQ(InoAt(150), service);
  for (int fd = 300; fd < 310; fd++) EXPECT_EQ(InoAt(fd), 0u) << "spare " << fd << " left open";
}

TEST_F(FdInstall, RefusesAMissingFileOrAServiceNumber) {
  std::map<uint32_t, int> sources = {{1, 130}};
  OpenAt(130);
  auto r = InstallTaskFds({Fd(131, 9)}, sources, {}, 300);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("file 9"), std::string::npos) << r.error().message();
  r = InstallTaskFds({Fd(150, 1)}, sources, {150}, 300);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("service"), std::string::npos) << r.error().message();
}

TEST(FdHomes, LowestNumberOfEachFile) {
  auto h = HomesOf({Fd(9, 1), Fd(4, 1), Fd(7, 2)});
  EXPECT_EQ(h.at(1), 4);
  EXPECT_EQ(h.at(2), 7);
}

}  // namespace
}  // namespace ckpt::files
