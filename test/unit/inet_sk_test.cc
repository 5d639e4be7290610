// Unit tests for the inet socket handler's checks of image entries and its
// names for sockets in messages (criu/files/inet_sk.cc).
#include "criu/files/inet_sk.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/tcp.h>

#include <string>

namespace ckpt::files {
namespace {

std::string V4(const char* a) {
  in_addr x;
  inet_pton(AF_INET, a, &x);
  return std::string(reinterpret_cast<char*>(&x), 4);
}
std::string V6(const char* a) {
  in6_addr x;
  inet_pton(AF_INET6, a, &x);
  return std::string(reinterpret_cast<char*>(&x), 16);
}

pb::FileEntry Tcp(int state) {
  pb::FileEntry fe;
  fe.set_id(7);
  fe.set_kind(pb::FILE_INET_SK);
  pb::InetSkEntry* e = fe.mutable_inet_sk();
  e->set_ino(1);
  e->set_family(AF_INET);
  e->set_type(SOCK_STREAM);
  e->set_protocol(IPPROTO_TCP);
  e->set_state(uint32_t(state));
  e->set_flags(0);
  e->set_src_addr(V4("127.0.0.1"));
  e->set_src_port(41234);
  e->mutable_opts();
  if (state == TCP_ESTABLISHED) {
    e->set_dst_addr(V4("127.0.0.1"));
    e->set_dst_port(6379);
    e->set_has_stream(true);
  }
  return fe;
}

Status Validate(const pb::FileEntry& fe) {
  const FileHandler* h = HandlerFor(pb::FILE_INET_SK);
  EXPECT_NE(h, nullptr);
  return h->validate(fe);
}

TEST(InetSk, GoodEntriesPass) {
  EXPECT_TRUE(Validate(Tcp(TCP_ESTABLISHED)).ok());
  EXPECT_TRUE(Validate(Tcp(TCP_LISTEN)).ok());
  pb::FileEntry u = Tcp(TCP_CLOSE);
  u.mutable_inet_sk()->set_type(SOCK_DGRAM);
  u.mutable_inet_sk()->set_protocol(IPPROTO_UDP);
  u.mutable_inet_sk()->set_family(AF_INET6);
  u.mutable_inet_sk()->set_src_addr(V6("::1"));
  EXPECT_TRUE(Validate(u).ok());
}

TEST(InetSk, HostileEntriesAreRefused) {
  struct Case {
    const char* what;
    void (*spoil)(pb::InetSkEntry*);
  } cases[] = {
      {"family", [](pb::InetSkEntry* e) { e->set_family(AF_UNIX); }},
      {"type", [](pb::InetSkEntry* e) { e->set_type(SOCK_SEQPACKET); }},
      {"protocol", [](pb::InetSkEntry* e) { e->set_protocol(IPPROTO_UDP); }},  // stream + UDP
      {"state", [](pb::InetSkEntry* e) { e->set_state(99); }},
      {"local address", [](pb::InetSkEntry* e) { e->set_src_addr("12345"); }},
      {"peer address", [](pb::InetSkEntry* e) { e->set_dst_addr(V6("::1")); }},  // v6 on v4
      {"port", [](pb::InetSkEntry* e) { e->set_dst_port(70000); }},
      {"stream", [](pb::InetSkEntry* e) { e->clear_dst_addr(); }},  // a stream, no peer
      {"device",
       [](pb::InetSkEntry* e) { e->mutable_opts()->set_bound_dev(std::string(40, 'x')); }},
  };
  for (const Case& c : cases) {
    pb::FileEntry fe = Tcp(TCP_ESTABLISHED);
    c.spoil(fe.mutable_inet_sk());
    Status s = Validate(fe);
    EXPECT_FALSE(s.ok()) << c.what;
    if (!s.ok()) {
      EXPECT_NE(s.error().message().find("file 7"), std::string::npos) << c.what;
    }
  }
  pb::FileEntry none;
  none.set_id(7);
  none.set_kind(pb::FILE_INET_SK);
  EXPECT_FALSE(Validate(none).ok());
  pb::FileEntry dgram_listen = Tcp(TCP_LISTEN);
  dgram_listen.mutable_inet_sk()->set_type(SOCK_DGRAM);
  dgram_listen.mutable_inet_sk()->set_protocol(IPPROTO_UDP);
  EXPECT_FALSE(Validate(dgram_listen).ok());
}

TEST(InetSk, MessagesNameTheConnection) {
  EXPECT_EQ(DescribeInetSk(Tcp(TCP_ESTABLISHED).inet_sk()),
            "TCP 127.0.0.1:41234 -> 127.0.0.1:6379");
  pb::InetSkEntry u;
  u.set_family(AF_INET6);
  u.set_type(SOCK_DGRAM);
  u.set_protocol(IPPROTO_UDP);
  u.set_src_addr(V6("::1"));
  u.set_src_port(53);
  EXPECT_EQ(DescribeInetSk(u), "UDP [::1]:53");
  u.clear_src_addr();
  EXPECT_EQ(DescribeInetSk(u), "UDP (IPv6, unbound)");
  u.set_type(SOCK_RAW);
  u.set_protocol(IPPROTO_ICMPV6);
  EXPECT_EQ(DescribeInetSk(u), "raw (protocol 58) (IPv6, unbound)");
}

TEST(InetSk, AddressesRoundTrip) {
  socklen_t len = 0;
  sockaddr_storage a = MakeInetAddr(AF_INET6, V6("fe80::1"), 8080, 3, &len);
  ASSERT_EQ(len, sizeof(sockaddr_in6));
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&a);
  EXPECT_EQ(ntohs(s6->sin6_port), 8080);
  EXPECT_EQ(s6->sin6_scope_id, 3u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&s6->sin6_addr), 16), V6("fe80::1"));
  a = MakeInetAddr(AF_INET, "", 0, 0, &len);  // unbound: any address, port 0
  ASSERT_EQ(len, sizeof(sockaddr_in));
  EXPECT_EQ(reinterpret_cast<sockaddr_in*>(&a)->sin_addr.s_addr, 0u);
}

}  // namespace
}  // namespace ckpt::files
