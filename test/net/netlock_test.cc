// The network lock on real sockets (label `net`, root). Every test runs in a
// forked child inside a fresh network namespace, so the host's rules are
// never touched; it checks TCP on loopback (127.0.0.1 and ::1), reads the
// tables back through nf_tables netlink, and ends with no table left.
#include "criu/net/netlock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace ckpt::net {
namespace {

// How long a locked connection must stay silent, and the bound for data to
// arrive once it may (TCP retransmits with backoff after a drop).
constexpr int kSilentMs = 300;
constexpr int kArriveMs = 15000;

void BringLoUp() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s) << strerror(errno);
  ifreq ifr = {};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  ASSERT_EQ(ioctl(s.get(), SIOCGIFFLAGS, &ifr), 0) << strerror(errno);
  ifr.ifr_flags |= IFF_UP;
  ASSERT_EQ(ioctl(s.get(), SIOCSIFFLAGS, &ifr), 0) << strerror(errno);
}

std::vector<std::string> Tables() {
  auto t = ListInetTables();
  EXPECT_TRUE(t.ok()) << t.error().message();
  return t.ok() ? *t : std::vector<std::string>{};
}

bool HasTable(const std::string& name) {
  std::vector<std::string> t = Tables();
  return std::find(t.begin(), t.end(), name) != t.end();
}

// Runs `body` in a forked child in a new network namespace with lo up; the
// child's gtest failures are printed there and fail this test through its
// exit status. The namespace (and anything left in it) goes with the child,
// but the body must leave no table: that is checked last.
void InNetns(const std::function<void()>& body) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespace, nftables)";
  pid_t pid = fork();
  ASSERT_GE(pid, 0) << strerror(errno);
  if (pid == 0) {
    if (unshare(CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "unshare(CLONE_NEWNET): " << strerror(errno);
      _exit(1);
    }
    BringLoUp();
    if (!::testing::Test::HasFailure()) body();
    EXPECT_EQ(Tables(), std::vector<std::string>{}) << "a table was left behind";
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
}

struct Conn {
  UniqueFd client, server;
  LockedConn locked;  // as the client sees it
};

sockaddr_storage Loopback(int family) {
  sockaddr_storage ss = {};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
  }
  return ss;
}

void FillEnd(const sockaddr_storage& ss, std::array<uint8_t, 16>* addr, uint16_t* port) {
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    memcpy(addr->data(), &a->sin_addr, 4);
    *port = ntohs(a->sin_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    memcpy(addr->data(), &a->sin6_addr, 16);
    *port = ntohs(a->sin6_port);
  }
}

// An established connection over loopback.
Conn Connect(int family) {
  Conn c;
  UniqueFd l(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage ss = Loopback(family);
  socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  EXPECT_EQ(bind(l.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << strerror(errno);
  EXPECT_EQ(listen(l.get(), 4), 0);
  EXPECT_EQ(getsockname(l.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
  c.client.reset(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(connect(c.client.get(), reinterpret_cast<sockaddr*>(&ss), len), 0) << strerror(errno);
  c.server.reset(accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(c.server) << strerror(errno);
  sockaddr_storage local = {}, peer = {};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  getsockname(c.client.get(), reinterpret_cast<sockaddr*>(&local), &ll);
  getpeername(c.client.get(), reinterpret_cast<sockaddr*>(&peer), &pl);
  c.locked.family = family;
  FillEnd(local, &c.locked.local_addr, &c.locked.local_port);
  FillEnd(peer, &c.locked.remote_addr, &c.locked.remote_port);
  return c;
}

void Send(int fd, char ch) { ASSERT_EQ(send(fd, &ch, 1, MSG_NOSIGNAL), 1) << strerror(errno); }

// Whether a byte arrives within `ms`; if so, checks it is `ch`.
bool Arrives(int fd, char ch, int ms) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) != 1) return false;
  char got = 0;
  EXPECT_EQ(recv(fd, &got, 1, 0), 1);
  EXPECT_EQ(got, ch);
  return true;
}

class NetLockTest : public ::testing::TestWithParam<int> {};

TEST_P(NetLockTest, DropsBothDirectionsOfLockedConnectionOnly) {
  InNetns([] {
    const int family = GetParam();
    Conn locked = Connect(family);
    Conn other = Connect(family);
    auto lock = NetLock::Lock("test", {locked.locked});
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    EXPECT_TRUE(lock->active());
    EXPECT_TRUE(HasTable(lock->table()));
    EXPECT_EQ(lock->table().rfind(kRunTablePrefix, 0), 0u) << lock->table();

    Send(locked.client.get(), 'a');
    Send(locked.server.get(), 'b');
    EXPECT_FALSE(Arrives(locked.server.get(), 'a', kSilentMs)) << "client->server passed the lock";
    EXPECT_FALSE(Arrives(locked.client.get(), 'b', kSilentMs)) << "server->client passed the lock";

    Send(other.client.get(), 'c');
    Send(other.server.get(), 'd');
    EXPECT_TRUE(Arrives(other.server.get(), 'c', kArriveMs)) << "another connection was blocked";
    EXPECT_TRUE(Arrives(other.client.get(), 'd', kArriveMs)) << "another connection was blocked";

    ASSERT_TRUE(lock->Unlock().ok());
    EXPECT_FALSE(lock->active());
    EXPECT_TRUE(lock->Unlock().ok()) << "Unlock is idempotent";
    EXPECT_TRUE(Arrives(locked.server.get(), 'a', kArriveMs)) << "no retransmit after unlock";
    EXPECT_TRUE(Arrives(locked.client.get(), 'b', kArriveMs)) << "no retransmit after unlock";
  });
}

TEST_P(NetLockTest, BypassMarkPasses) {
  InNetns([] {
    const int family = GetParam();
    Conn marked = Connect(family);
    Conn wrong_mark = Connect(family);
    auto lock = NetLock::Lock("test", {marked.locked, wrong_mark.locked});
    ASSERT_TRUE(lock.ok()) << lock.error().message();

    uint32_t mark = kLockBypassMark;
    ASSERT_EQ(setsockopt(marked.client.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)), 0);
    Send(marked.client.get(), 'm');
    EXPECT_TRUE(Arrives(marked.server.get(), 'm', kArriveMs)) << "marked packet was dropped";

    mark = kLockBypassMark + 1;
    ASSERT_EQ(setsockopt(wrong_mark.client.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)), 0);
    Send(wrong_mark.client.get(), 'w');
    EXPECT_FALSE(Arrives(wrong_mark.server.get(), 'w', kSilentMs)) << "another mark passed";
  });
}

INSTANTIATE_TEST_SUITE_P(Families, NetLockTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "v4" : "v6"; });

TEST(NetLock, ManyConnectionsInOneBatch) {
  // Thousands of set elements span many netlink messages and a batch larger
  // than the default socket buffer; the one real connection is still locked.
  InNetns([] {
    Conn real4 = Connect(AF_INET);
    Conn real6 = Connect(AF_INET6);
    std::vector<LockedConn> conns = {real4.locked, real6.locked};
    for (int i = 0; i < 3000; i++) {
      LockedConn c;
      c.family = i % 2 ? AF_INET : AF_INET6;
      c.local_addr = {10, uint8_t(i >> 8), uint8_t(i), 1};
      c.remote_addr = {10, 200, uint8_t(i >> 8), uint8_t(i)};
      c.local_port = uint16_t(1000 + i);
      c.remote_port = 80;
      conns.push_back(c);
    }
    conns.push_back(real4.locked);  // duplicates are fine
    auto lock = NetLock::Lock("many", conns);
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    Send(real4.client.get(), '4');
    Send(real6.client.get(), '6');
    EXPECT_FALSE(Arrives(real4.server.get(), '4', kSilentMs));
    EXPECT_FALSE(Arrives(real6.server.get(), '6', kSilentMs));
    ASSERT_TRUE(lock->Unlock().ok());
    EXPECT_TRUE(Arrives(real4.server.get(), '4', kArriveMs));
    EXPECT_TRUE(Arrives(real6.server.get(), '6', kArriveMs));
  });
}

TEST(NetLock, EmptyIsInactiveAndCreatesNoTable) {
  InNetns([] {
    auto lock = NetLock::Lock("empty", {});
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    EXPECT_FALSE(lock->active());
    EXPECT_EQ(Tables(), std::vector<std::string>{});
    auto kept = lock->TryPersist();
    ASSERT_TRUE(kept.ok());
    EXPECT_EQ(*kept, "");
  });
}

TEST(NetLock, DestructorAndMoveUnlock) {
  InNetns([] {
    Conn c = Connect(AF_INET);
    {
      auto lock = NetLock::Lock("scoped", {c.locked});
      ASSERT_TRUE(lock.ok()) << lock.error().message();
      NetLock moved = std::move(*lock);
      EXPECT_TRUE(moved.active());
      EXPECT_FALSE(lock->active());
      auto second = NetLock::Lock("second", {c.locked});
      ASSERT_TRUE(second.ok()) << second.error().message();
      std::string first_table = moved.table();
      moved = std::move(*second);  // drops the first lock
      EXPECT_FALSE(HasTable(first_table));
      EXPECT_TRUE(HasTable(moved.table()));
    }
    EXPECT_EQ(Tables(), std::vector<std::string>{});
  });
}

TEST(NetLock, PersistOutlivesTheObjectUntilRemoved) {
  InNetns([] {
    Conn c = Connect(AF_INET);
    std::string kept;
    {
      auto lock = NetLock::Lock("dump-42", {c.locked});
      ASSERT_TRUE(lock.ok()) << lock.error().message();
      std::string run = lock->table();
      kept = lock->Persist();
      ASSERT_NE(kept, "");
      EXPECT_EQ(kept.rfind(kKeptTablePrefix, 0), 0u) << kept;
      EXPECT_FALSE(lock->active());
      EXPECT_EQ(Tables(), std::vector<std::string>{kept}) << "the owned table should be gone";
    }
    EXPECT_TRUE(HasTable(kept));
    Send(c.client.get(), 'p');
    EXPECT_FALSE(Arrives(c.server.get(), 'p', kSilentMs)) << "the persisted lock lets data pass";
    ASSERT_TRUE(CleanStaleLocks().ok());
    EXPECT_TRUE(HasTable(kept)) << "CleanStaleLocks removed a persisted lock";

    ASSERT_TRUE(RemoveLockTable(kept).ok());
    EXPECT_FALSE(HasTable(kept));
    EXPECT_TRUE(RemoveLockTable(kept).ok()) << "a missing table is not an error";
    EXPECT_TRUE(Arrives(c.server.get(), 'p', kArriveMs));
  });
}

// A child that takes a lock (owned or not), reports the table name through a
// pipe and waits to be killed. Returns its pid and the table name.
std::pair<pid_t, std::string> LockingChild(const LockedConn& conn, bool owned) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    auto lock = internal::LockWithOwnership("child", {conn}, owned);
    std::string name = lock.ok() ? lock->table() : "";
    (void)!write(p[1], name.data(), name.size());
    close(p[1]);
    for (;;) pause();
  }
  close(p[1]);
  char buf[512];
  ssize_t n = read(p[0], buf, sizeof(buf));
  close(p[0]);
  return {pid, n > 0 ? std::string(buf, size_t(n)) : ""};
}

void Kill(pid_t pid) {
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
}

// The kernel drops an owned table while the socket is released on exit;
// allow it a bounded moment anyway.
bool GoneWithin(const std::string& table, int ms) {
  for (int waited = 0; waited <= ms; waited += 50) {
    if (!HasTable(table)) return true;
    usleep(50 * 1000);
  }
  return false;
}

TEST(NetLock, KilledOwnerLeavesNoTable) {
  InNetns([] {
    Conn c = Connect(AF_INET);
    auto [pid, table] = LockingChild(c.locked, /*owned=*/true);
    ASSERT_NE(table, "") << "the child could not lock";
    EXPECT_TRUE(HasTable(table));
    EXPECT_EQ(table.rfind(kRunTablePrefix + std::to_string(pid) + "-", 0), 0u) << table;
    Kill(pid);
    EXPECT_TRUE(GoneWithin(table, 5000)) << table << " outlived its killed owner";
  });
}

TEST(NetLock, CleanStaleLocksRemovesDeadPidsTablesOnly) {
  InNetns([] {
    Conn c = Connect(AF_INET);
    // An un-owned in-progress lock (a kernel without table ownership) of a
    // ckpt that was killed: it stays until the next run cleans it.
    auto [dead, stale] = LockingChild(c.locked, /*owned=*/false);
    ASSERT_NE(stale, "");
    Kill(dead);
    EXPECT_TRUE(HasTable(stale));
    // Locks of live processes, owned or not, and persisted ones stay.
    auto [alive, live_unowned] = LockingChild(c.locked, /*owned=*/false);
    ASSERT_NE(live_unowned, "");
    auto mine = NetLock::Lock("mine", {c.locked});
    ASSERT_TRUE(mine.ok()) << mine.error().message();
    auto kept_lock = NetLock::Lock("kept", {c.locked});
    ASSERT_TRUE(kept_lock.ok()) << kept_lock.error().message();
    auto kept = kept_lock->TryPersist();
    ASSERT_TRUE(kept.ok()) << kept.error().message();

    ASSERT_TRUE(CleanStaleLocks().ok());
    EXPECT_FALSE(HasTable(stale)) << "the dead ckpt's lock was not removed";
    EXPECT_TRUE(HasTable(live_unowned));
    EXPECT_TRUE(HasTable(mine->table()));
    EXPECT_TRUE(HasTable(*kept));

    Kill(alive);
    ASSERT_TRUE(CleanStaleLocks().ok());
    EXPECT_FALSE(HasTable(live_unowned));
    EXPECT_TRUE(mine->Unlock().ok());
    EXPECT_TRUE(RemoveLockTable(*kept).ok());
  });
}

TEST(NetLock, RemoveLockTableOfOwnedTableFromAnotherSocketFails) {
  InNetns([] {
    Conn c = Connect(AF_INET);
    auto lock = NetLock::Lock("owned", {c.locked});
    ASSERT_TRUE(lock.ok()) << lock.error().message();
    Status s = RemoveLockTable(lock->table());
    EXPECT_FALSE(s.ok());
    if (!s.ok()) {
      EXPECT_NE(s.error().message().find(lock->table()), std::string::npos);
    }
    EXPECT_TRUE(lock->Unlock().ok());
  });
}

TEST(NetLock, BadInputIsRefused) {
  InNetns([] {
    LockedConn unix_conn;
    unix_conn.family = AF_UNIX;
    auto r = NetLock::Lock("bad", {unix_conn});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().err(), EINVAL);
    Conn c = Connect(AF_INET);
    auto t = NetLock::Lock("no spaces", {c.locked});
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.error().err(), EINVAL);
    // The same name twice: an owned table is not even visible as such to
    // another socket (EPERM), an un-owned one exists (EEXIST); the error
    // names the table either way.
    auto a = NetLock::Lock("same", {c.locked});
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto b = NetLock::Lock("same", {c.locked});
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.error().err(), EPERM);
    EXPECT_NE(b.error().message().find(a->table()), std::string::npos) << b.error().message();
    auto u1 = internal::LockWithOwnership("same-unowned", {c.locked}, false);
    ASSERT_TRUE(u1.ok()) << u1.error().message();
    auto u2 = internal::LockWithOwnership("same-unowned", {c.locked}, false);
    ASSERT_FALSE(u2.ok());
    EXPECT_EQ(u2.error().err(), EEXIST);
    EXPECT_NE(u2.error().message().find(u1->table()), std::string::npos) << u2.error().message();
    // The failed attempts removed nothing.
    EXPECT_TRUE(HasTable(a->table()));
    EXPECT_TRUE(HasTable(u1->table()));
  });
}

TEST(NetLock, NftablesUsable) {
  InNetns([] { EXPECT_TRUE(NftablesUsable()); });
}

}  // namespace
}  // namespace ckpt::net
