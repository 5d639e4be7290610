// ParseMqStatus: the status line the kernel gives for a POSIX message queue.
#include "criu/files/mqueue.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace ckpt::files {
namespace {

TEST(MqStatus, ParsesTheKernelsLine) {
  auto s = ParseMqStatus("QSIZE:129        NOTIFY:0     SIGNO:10    NOTIFY_PID:4242  \n");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->qsize, 129u);
  EXPECT_EQ(s->notify, 0);
  EXPECT_EQ(s->signo, 10);
  EXPECT_EQ(s->notify_pid, 4242);
  EXPECT_EQ(MqNotifyName(*s), "SIGEV_SIGNAL (signal 10)");
}

TEST(MqStatus, NoRegistration) {
  auto s = ParseMqStatus("QSIZE:0          NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->notify_pid, 0);
  EXPECT_EQ(s->qsize, 0u);
}

TEST(MqStatus, UnknownFieldsAreSkipped) {
  auto s = ParseMqStatus("QSIZE:1 NOTIFY:2 SIGNO:0 NOTIFY_PID:7 LATER:99\n");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->notify_pid, 7);
  EXPECT_EQ(MqNotifyName(*s), "SIGEV_THREAD");
}

TEST(MqStatus, BadLinesAreErrors) {
  for (const char* bad : {"", "QSIZE:1 NOTIFY:0 SIGNO:0", "QSIZE:x NOTIFY:0 SIGNO:0 NOTIFY_PID:0",
                          "QSIZE:-1 NOTIFY:0 SIGNO:0 NOTIFY_PID:0", "garbage",
                          "QSIZE:1 NOTIFY:0 SIGNO:0 NOTIFY_PID:12abc"}) {
    auto s = ParseMqStatus(bad);
    EXPECT_FALSE(s.ok()) << bad;
  }
  auto s = ParseMqStatus("QSIZE:1 NOTIFY:0 SIGNO:0");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "mqueue status: no NOTIFY_PID");
}

}  // namespace
}  // namespace ckpt::files
