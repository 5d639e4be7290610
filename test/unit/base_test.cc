// Unit tests for base/: Result/Error and the TRY macros, and the io helpers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "base/io.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "test/unit/test_util.h"

namespace ckpt {
namespace {

using ckpt::testing::TempDir;
using ckpt::testing::WriteFileOrDie;

// ---------------------------------------------------------------------------
// Error and Result

TEST(Error, ErrnoCapturesErrnoAndStrerror) {
  errno = ENOENT;
  Error e = Error::Errno("open /x");
  EXPECT_EQ(e.err(), ENOENT);
  EXPECT_EQ(e.message(), std::string("open /x: ") + strerror(ENOENT));

  Error e2 = Error::Errno("bind", EADDRINUSE);
  EXPECT_EQ(e2.err(), EADDRINUSE);
  EXPECT_EQ(e2.message(), std::string("bind: ") + strerror(EADDRINUSE));

  Error plain("no such thing");
  EXPECT_EQ(plain.err(), 0);
  EXPECT_EQ(plain.message(), "no such thing");
}

TEST(Error, ContextPrependsAndKeepsErrno) {
  Error e("inner", EIO);
  e.Context("middle").Context("outer");
  EXPECT_EQ(e.message(), "outer: middle: inner");
  EXPECT_EQ(e.err(), EIO);
  e.Context("");  // empty context adds nothing, not ": "
  EXPECT_EQ(e.message(), "outer: middle: inner");
}

TEST(Result, ValueAndError) {
  Result<int> good(42);
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(static_cast<bool>(good));
  EXPECT_EQ(good.value(), 42);
  EXPECT_EQ(*good, 42);

  Result<int> bad(Error("nope", EINVAL));
  EXPECT_FALSE(bad.ok());
  EXPECT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(bad.error().message(), "nope");
  EXPECT_EQ(bad.error().err(), EINVAL);

  Result<std::string> s(std::string("abc"));
  EXPECT_EQ(s->size(), 3u);

  Result<std::unique_ptr<int>> mv(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(mv).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 7);
}

TEST(Result, StatusOkAndError) {
  Status ok = Ok();
  EXPECT_TRUE(ok.ok());
  Status bad = Error("x");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "x");
}

// A small call chain, as real code uses the macros.
Result<int> Leaf(bool fail) {
  if (fail) {
    errno = EACCES;
    return Error::Errno("open /secret");
  }
  return 5;
}
Status LeafStatus(bool fail) {
  if (fail) return Error("leaf status failed", ENOSPC);
  return Ok();
}
Result<int> Middle(bool fail) {
  TRY_ASSIGN(int v, Leaf(fail), "reading config");
  return v * 2;
}
Result<int> MiddleNoContext(bool fail) {
  TRY_ASSIGN(int v, Leaf(fail));
  return v + 1;
}
Status Top(bool fail) {
  TRY(Middle(fail), "pid 42");
  return Ok();
}
Status TopStatus(bool fail) {
  TRY(LeafStatus(fail));
  TRY(LeafStatus(false), "never fails");
  return Ok();
}
Result<int> AssignExisting(bool fail_second) {
  int v = 0;
  TRY_ASSIGN(v, Leaf(false), "first");
  TRY_ASSIGN(v, Leaf(fail_second), "second");
  return v;
}

TEST(TryMacros, SuccessPassesValuesThrough) {
  auto m = Middle(false);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(*m, 10);
  auto n = MiddleNoContext(false);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 6);
  EXPECT_TRUE(Top(false).ok());
  EXPECT_TRUE(TopStatus(false).ok());
  auto a = AssignExisting(false);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, 5);
}

TEST(TryMacros, ContextChainsOutward) {
  Status s = Top(true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            std::string("pid 42: reading config: open /secret: ") + strerror(EACCES));
  EXPECT_EQ(s.error().err(), EACCES);
}

TEST(TryMacros, NoContextLeavesMessageAlone) {
  auto n = MiddleNoContext(true);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error().message(), std::string("open /secret: ") + strerror(EACCES));

  Status s = TopStatus(true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "leaf status failed");
  EXPECT_EQ(s.error().err(), ENOSPC);
}

TEST(TryMacros, AssignToExistingVariable) {
  auto a = AssignExisting(true);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message(), std::string("second: open /secret: ") + strerror(EACCES));
}

// ---------------------------------------------------------------------------
// UniqueFd

TEST(UniqueFd, ClosesReleasesAndMoves) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  {
    UniqueFd a(p[0]);
    EXPECT_TRUE(static_cast<bool>(a));
    UniqueFd b(std::move(a));
    EXPECT_FALSE(static_cast<bool>(a));
    EXPECT_EQ(b.get(), p[0]);
  }
  EXPECT_EQ(fcntl(p[0], F_GETFD), -1);  // closed by b
  UniqueFd c(p[1]);
  int raw = c.release();
  EXPECT_EQ(c.get(), -1);
  EXPECT_NE(fcntl(raw, F_GETFD), -1);  // release did not close
  close(raw);
}

// ---------------------------------------------------------------------------
// io

struct Pipe {
  Pipe() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) r.reset(p[0]), w.reset(p[1]);
  }
  UniqueFd r, w;
};

TEST(Io, ReadFullExactAndShort) {
  Pipe p;
  ASSERT_TRUE(p.r && p.w);
  ASSERT_EQ(write(p.w.get(), "abcdefgh", 8), 8);
  char buf[8];
  ASSERT_TRUE(io::ReadFull(p.r.get(), buf, 5).ok());
  EXPECT_EQ(std::string(buf, 5), "abcde");
  p.w.reset();  // EOF after "fgh"
  Status s = io::ReadFull(p.r.get(), buf, 8, "core-1.img");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("core-1.img"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("truncated"), std::string::npos) << s.error().message();
  EXPECT_NE(s.error().message().find("got 3"), std::string::npos) << s.error().message();
}

TEST(Io, ReadFullOnBadFdIsAnErrnoError) {
  char c;
  Status s = io::ReadFull(-1, &c, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().err(), EBADF);
}

TEST(Io, ReadUpToStopsAtEof) {
  Pipe p;
  ASSERT_EQ(write(p.w.get(), "xyz", 3), 3);
  p.w.reset();
  char buf[100];
  auto n = io::ReadUpTo(p.r.get(), buf, sizeof(buf));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3u);
  auto z = io::ReadUpTo(p.r.get(), buf, sizeof(buf));
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(*z, 0u);
}

TEST(Io, WriteFullLargerThanPipeCapacity) {
  Pipe p;
  const size_t n = 4u << 20;  // far beyond the 64 KiB pipe buffer
  std::string data(n, '\0');
  for (size_t i = 0; i < n; i++) data[i] = char((i * 131) >> 3);
  std::string got;
  std::thread reader([&] {
    char buf[8192];
    for (;;) {
      ssize_t r = read(p.r.get(), buf, sizeof(buf));
      if (r <= 0) break;
      got.append(buf, size_t(r));
    }
  });
  Status s = io::WriteFull(p.w.get(), data.data(), data.size());
  p.w.reset();
  reader.join();
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(got.size(), n);
  EXPECT_TRUE(got == data);
}

void NoopHandler(int) {}

TEST(Io, WriteFullSurvivesSignalsWhileBlocked) {
  // A handler without SA_RESTART makes a blocked write return early (short
  // count or EINTR); WriteFull must carry on.
  struct sigaction sa = {}, old = {};
  sa.sa_handler = NoopHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);

  Pipe p;
  const size_t n = 1u << 20;
  std::string data(n, 'q');
  std::atomic<bool> done{false};
  pthread_t writer = pthread_self();
  std::string got;
  std::thread helper([&] {
    for (int i = 0; i < 20 && !done; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      pthread_kill(writer, SIGUSR1);
    }
    char buf[65536];
    for (;;) {
      ssize_t r = read(p.r.get(), buf, sizeof(buf));
      if (r <= 0) break;
      got.append(buf, size_t(r));
      if (!done) pthread_kill(writer, SIGUSR1);
    }
  });
  Status s = io::WriteFull(p.w.get(), data.data(), data.size());
  done = true;
  p.w.reset();
  helper.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(got.size(), n);
}

TEST(Io, WriteFullToClosedPipeFails) {
  struct sigaction ign = {}, old = {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ign, &old), 0);
  Pipe p;
  p.r.reset();
  Status s = io::WriteFull(p.w.get(), "x", 1);
  sigaction(SIGPIPE, &old, nullptr);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().err(), EPIPE);
}

TEST(Io, ReadFileSmallLargeAndProc) {
  TempDir tmp;
  WriteFileOrDie(tmp / "small", "hello\n");
  auto a = io::ReadFile(tmp / "small");
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(*a, "hello\n");

  WriteFileOrDie(tmp / "empty", "");
  auto e = io::ReadFile(tmp / "empty");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->empty());

  std::string big(300000, '\0');  // several internal read chunks, with NULs
  for (size_t i = 0; i < big.size(); i++) big[i] = char(i % 251);
  WriteFileOrDie(tmp / "big", big);
  auto b = io::ReadFile(tmp / "big");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(*b == big);

  // /proc files report size 0; they must still be read whole.
  auto st = io::ReadFile("/proc/self/status");
  ASSERT_TRUE(st.ok());
  EXPECT_NE(st->find("Pid:\t" + std::to_string(getpid()) + "\n"), std::string::npos);
}

TEST(Io, ReadFileErrors) {
  TempDir tmp;
  auto m = io::ReadFile(tmp / "missing");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().err(), ENOENT);
  EXPECT_NE(m.error().message().find(tmp / "missing"), std::string::npos) << m.error().message();
  auto d = io::ReadFile(tmp.path());  // a directory opens but cannot be read
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().err(), EISDIR);
}

TEST(Io, ReadLink) {
  TempDir tmp;
  std::string target = "some target with spaces/and/../dots";
  ASSERT_EQ(symlink(target.c_str(), (tmp / "link").c_str()), 0);
  auto l = io::ReadLink(tmp / "link");
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_EQ(*l, target);

  std::string longt(4000, 'a');
  ASSERT_EQ(symlink(longt.c_str(), (tmp / "long").c_str()), 0);
  auto ll = io::ReadLink(tmp / "long");
  ASSERT_TRUE(ll.ok());
  EXPECT_EQ(*ll, longt);

  auto m = io::ReadLink(tmp / "missing");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().err(), ENOENT);
  WriteFileOrDie(tmp / "file", "x");
  auto f = io::ReadLink(tmp / "file");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().err(), EINVAL);

  auto exe = io::ReadLink("/proc/self/exe");
  ASSERT_TRUE(exe.ok());
  EXPECT_NE(exe->find("unit_base"), std::string::npos) << *exe;
}

}  // namespace
}  // namespace ckpt
