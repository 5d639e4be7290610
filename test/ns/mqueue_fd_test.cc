// The POSIX message queue fd handler (criu/files/mqueue.cc) on this
// process's own descriptors. Root; linked into ipc_ns_test, whose global
// environment puts the process in an IPC namespace of its own first, so
// the queues made here go away with it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "criu/files/file_context.h"
#include "criu/files/file_types.h"
#include "criu/net/net_dump.h"
#include "images/image_dir.h"
#include "test/unit/test_util.h"

namespace ckpt {
namespace {

using ckpt::testing::TempDir;

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

TEST(MqueueFd, DumpsNameAndFlagsAndReopens) {
  struct mq_attr a = {};
  a.mq_maxmsg = 2;
  a.mq_msgsize = 8;
  Fd q{mq_open("/fdq", O_CREAT | O_WRONLY | O_NONBLOCK, 0600, &a)};
  ASSERT_GE(q.fd, 0);
  auto c = files::InspectFd(getpid(), q.fd, {});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->link, "/fdq");
  auto h = files::Classify(*c);
  ASSERT_TRUE(h.ok()) << h.error().message();
  ASSERT_EQ(*h, &files::kMqueueHandler);
  ASSERT_TRUE((*h)->check(*c, {*c}).ok());
  TempDir tmp;
  auto dir = images::ImageDir::Create(tmp.path());
  ASSERT_TRUE(dir.ok());
  net::NetDump net;
  files::DumpContext ctx(**dir, net);
  pb::FileEntry e;
  e.set_id(1);
  e.set_kind(pb::FILE_MQUEUE);
  ASSERT_TRUE((*h)->dump(*c, ctx, &e).ok());
  EXPECT_EQ(e.mqueue().name(), "/fdq");
  EXPECT_EQ(e.mqueue().flags(), uint32_t(O_WRONLY | O_NONBLOCK));
  ASSERT_TRUE((*h)->validate(e).ok());
  files::RestoreOpts o{};
  auto fd = (*h)->open(e, o);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  Fd reopened{*fd};
  struct stat s1, s2;
  ASSERT_EQ(fstat(q.fd, &s1), 0);
  ASSERT_EQ(fstat(reopened.fd, &s2), 0);
  EXPECT_EQ(s1.st_ino, s2.st_ino);
  EXPECT_EQ(fcntl(reopened.fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_WRONLY | O_NONBLOCK);
  EXPECT_EQ(fcntl(reopened.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  // Bad entries.
  pb::FileEntry bad = e;
  bad.mutable_mqueue()->set_name("/a/b");
  EXPECT_FALSE((*h)->validate(bad).ok());
  bad = e;
  bad.mutable_mqueue()->set_flags(O_CREAT);
  EXPECT_FALSE((*h)->validate(bad).ok());
  // Gone by restore time: a clear error.
  ASSERT_EQ(mq_unlink("/fdq"), 0);
  auto gone = (*h)->open(e, o);
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.error().message().find("POSIX message queue /fdq"), std::string::npos);
  // Unlinked while open: refused at dump.
  auto c2 = files::InspectFd(getpid(), q.fd, {});
  ASSERT_TRUE(c2.ok());
  ASSERT_EQ(files::Classify(*c2).value(), &files::kMqueueHandler);
  Status st = files::kMqueueHandler.check(*c2, {*c2});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("POSIX message queue /fdq was unlinked while open"),
            std::string::npos)
      << st.error().message();
}

TEST(MqueueFd, RegistrationIsRefused) {
  Fd q{mq_open("/notified", O_CREAT | O_RDONLY, 0600, nullptr)};
  ASSERT_GE(q.fd, 0);
  struct Unlink {
    ~Unlink() { mq_unlink("/notified"); }
  } unlink_it;
  struct sigevent ev = {};
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGUSR2;
  ASSERT_EQ(mq_notify(q.fd, &ev), 0);
  auto c = files::InspectFd(getpid(), q.fd, {});
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(files::Classify(*c).value(), &files::kMqueueHandler);
  Status st = files::kMqueueHandler.check(*c, {*c});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(
      st.error().message().find("pid " + std::to_string(getpid()) + " fd " + std::to_string(q.fd) +
                                ": POSIX message queue /notified has an mq_notify "
                                "registration (SIGEV_SIGNAL (signal " +
                                std::to_string(SIGUSR2) + "), pid " + std::to_string(getpid()) +
                                "): not supported"),
      std::string::npos)
      << st.error().message();
}

TEST(MqueueFd, RegularFileIsNotAQueue) {
  TempDir tmp;
  testing::WriteFileOrDie(tmp / "f", "x");
  Fd f{open((tmp / "f").c_str(), O_RDONLY | O_CLOEXEC)};
  ASSERT_GE(f.fd, 0);
  auto c = files::InspectFd(getpid(), f.fd, {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(files::Classify(*c).value(), &files::kRegFileHandler);
}

}  // namespace
}  // namespace ckpt
