// The page wire (criu/page_xfer.h, criu/lazy_source.h) against a hostile
// peer: the page server's ServePageStream, a lazy dump's
// ServeLazyRequests and the daemon's remote PageSource, each fed a byte
// stream through an AF_UNIX stream socket pair (the same code paths as
// TCP). test/fuzz/fuzz_page_wire.cc fuzzes the same three.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "criu/lazy_source.h"
#include "criu/page_xfer.h"
#include "test/unit/test_util.h"

namespace ckpt {
namespace {

std::string FrameBytes(uint32_t cmd, uint64_t len, uint32_t magic = page_wire::kMagic) {
  page_wire::Frame f = {magic, cmd, len};
  return std::string(reinterpret_cast<const char*>(&f), sizeof(f));
}

std::string OpenFile(const std::string& name) {
  return FrameBytes(page_wire::kOpen, name.size()) + name;
}

std::string DataBytes(const std::string& body) {
  return FrameBytes(page_wire::kData, body.size()) + body;
}

// Sends `bytes` from the peer's end, shuts it for writing and collects all
// the side under test answers until it closes its end.
class Peer {
 public:
  explicit Peer(std::string bytes) {
    int sk[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) abort();
    ours_.reset(sk[0]);
    theirs_.reset(sk[1]);
    thread_ = std::thread([this, b = std::move(bytes)] {
      size_t off = 0;
      while (off < b.size()) {
        ssize_t n = send(ours_.get(), b.data() + off, b.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += size_t(n);
      }
      shutdown(ours_.get(), SHUT_WR);
      char buf[4096];
      for (;;) {
        ssize_t n = recv(ours_.get(), buf, sizeof(buf), 0);
        if (n <= 0) break;
        answer_.append(buf, size_t(n));
      }
    });
  }
  ~Peer() { Finish(); }
  int fd() const { return theirs_.get(); }
  UniqueFd TakeFd() { return std::move(theirs_); }
  // Closes the side under test's end; returns everything it sent.
  const std::string& Finish() {
    theirs_.reset();
    if (thread_.joinable()) thread_.join();
    return answer_;
  }

 private:
  UniqueFd ours_, theirs_;
  std::thread thread_;
  std::string answer_;
};

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  while (struct dirent* e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) out.push_back(e->d_name);
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Status Serve(const testing::TempDir& dir, const std::string& stream) {
  UniqueFd dirfd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Peer peer(stream);
  Status st = ServePageStream(dirfd.get(), peer.fd());
  peer.Finish();
  return st;
}

TEST(PageServerWire, ACommittedDumpLeavesItsFilesAndChecksums) {
  testing::TempDir dir;
  std::string s = OpenFile("pages-1.img") + DataBytes(std::string(8192, 'p')) +
                  FrameBytes(page_wire::kClose, 0) + FrameBytes(page_wire::kCommit, 0);
  ASSERT_TRUE(Serve(dir, s).ok());
  EXPECT_EQ(Names(dir.path()), (std::vector<std::string>{"checksums1.img", "pages-1.img"}));
}

TEST(PageServerWire, RefusedStreamsLeaveNothing) {
  const std::string page(4096, 'x');
  const std::string open_data = OpenFile("pages-1.img") + DataBytes(page);
  const struct {
    const char* what;
    std::string stream;
    const char* error;
  } cases[] = {
      {"bad magic", FrameBytes(page_wire::kOpen, 11, 0x12345678) + "pages-1.img", "bad magic"},
      {"a name leaving DIR", OpenFile("pages-1.img/../../x.img"), "refusing file name"},
      {"a dot name", OpenFile(".pages-1.img"), "refusing file name"},
      {"a name that is no pages file", OpenFile("core-1.img"), "refusing file name"},
      {"a huge name length", FrameBytes(page_wire::kOpen, uint64_t(1) << 62), "bad name length"},
      {"data without a file", DataBytes(page), "without an open file"},
      {"open while open", open_data + OpenFile("pages-2.img"), "while pages-1.img is open"},
      {"a file sent twice",
       open_data + FrameBytes(page_wire::kClose, 0) + OpenFile("pages-1.img"), "sent twice"},
      {"more data announced than sent", OpenFile("pages-1.img") +
                                            FrameBytes(page_wire::kData, uint64_t(1) << 40) + page,
       "went away"},
      {"commit while open", open_data + FrameBytes(page_wire::kCommit, 0), "commit while"},
      {"an unknown command", open_data + FrameBytes(99, 0), "unknown command 99"},
      {"a cut header", open_data + FrameBytes(page_wire::kClose, 0).substr(0, 7), "went away"},
      {"no commit", open_data + FrameBytes(page_wire::kClose, 0), "went away"},
  };
  for (const auto& c : cases) {
    testing::TempDir dir;
    Status st = Serve(dir, c.stream);
    ASSERT_FALSE(st.ok()) << c.what;
    EXPECT_NE(st.error().message().find(c.error), std::string::npos)
        << c.what << ": " << st.error().message();
    EXPECT_TRUE(Names(dir.path()).empty()) << c.what;
  }
}

std::map<std::string, LazyHeldFile> Held() {
  std::map<std::string, LazyHeldFile> held;
  LazyHeldFile h;
  h.fd.reset(memfd_create("pages-1.img", MFD_CLOEXEC));
  std::string bytes(2 * 4096, '\0');
  for (size_t i = 0; i < bytes.size(); i++) bytes[i] = char(i % 251);
  if (write(h.fd.get(), bytes.data(), bytes.size()) != ssize_t(bytes.size())) abort();
  h.size = bytes.size();
  held.emplace("pages-1.img", std::move(h));
  return held;
}

std::string ReadRequest(const std::string& name, uint64_t off, uint64_t len) {
  uint64_t hdr[2] = {off, len};
  return FrameBytes(page_wire::kRead, 16 + name.size()) +
         std::string(reinterpret_cast<const char*>(hdr), sizeof(hdr)) + name;
}

TEST(LazySourceWire, OutOfRangeReadsGetAnErrorAnswer) {
  auto held = Held();
  const uint64_t huge = ~uint64_t(0);
  std::string s = ReadRequest("pages-1.img", 4096, huge) +         // off + len wraps
                  ReadRequest("pages-1.img", huge - 10, 20) +       // off beyond the file
                  ReadRequest("pages-9.img", 0, 4096) +             // not held
                  ReadRequest("pages-1.img", 4096, 4096) +          // the second page
                  FrameBytes(page_wire::kDone, 0);
  Peer peer(s);
  Status st = ServeLazyRequests(peer.fd(), held);
  EXPECT_TRUE(st.ok()) << st.error().message();
  std::string answer = peer.Finish();
  // Three kError frames with messages, then one kData frame and the page.
  size_t pos = 0;
  for (int i = 0; i < 3; i++) {
    ASSERT_GE(answer.size(), pos + sizeof(page_wire::Frame));
    page_wire::Frame f;
    memcpy(&f, answer.data() + pos, sizeof(f));
    EXPECT_EQ(f.cmd, uint32_t(page_wire::kError));
    pos += sizeof(f) + f.len;
  }
  page_wire::Frame f;
  ASSERT_EQ(answer.size(), pos + sizeof(f) + 4096);
  memcpy(&f, answer.data() + pos, sizeof(f));
  EXPECT_EQ(f.cmd, uint32_t(page_wire::kData));
  EXPECT_EQ(f.len, 4096u);
  EXPECT_EQ(uint8_t(answer[pos + sizeof(f)]), 4096 % 251);
}

TEST(LazySourceWire, BadFramesEndTheServe) {
  auto held = Held();
  for (const std::string& s :
       {FrameBytes(page_wire::kRead, 16 + 11, 0xdeadbeef), FrameBytes(page_wire::kRead, 16),
        FrameBytes(page_wire::kRead, uint64_t(1) << 63), FrameBytes(page_wire::kData, 0),
        ReadRequest("pages-1.img", 0, 4096).substr(0, 30), std::string()}) {
    Peer peer(s);
    EXPECT_FALSE(ServeLazyRequests(peer.fd(), held).ok());
  }
}

TEST(LazyDaemonWire, WrongAnswersAreErrors) {
  char buf[4096];
  const struct {
    const char* what;
    std::string stream;
  } cases[] = {
      {"bad magic", FrameBytes(page_wire::kData, 4096, 1) + std::string(4096, 'a')},
      {"a shorter answer", DataBytes(std::string(100, 'a'))},
      {"a longer answer", DataBytes(std::string(8192, 'a'))},
      {"a huge error message", FrameBytes(page_wire::kError, uint64_t(1) << 62)},
      {"a cut answer", FrameBytes(page_wire::kData, 4096) + std::string(10, 'a')},
      {"nothing", ""},
  };
  for (const auto& c : cases) {
    Peer peer(c.stream);
    auto src = PageSource::RemoteOver("/nonexistent", peer.TakeFd(), "test peer");
    EXPECT_FALSE(src->Read(1, 0, buf, sizeof(buf)).ok()) << c.what;
  }
  Peer peer(FrameBytes(page_wire::kError, 8) + "no pages");
  auto src = PageSource::RemoteOver("/nonexistent", peer.TakeFd(), "test peer");
  Status st = src->Read(1, 0, buf, sizeof(buf));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("test peer: no pages"), std::string::npos)
      << st.error().message();
}

}  // namespace
}  // namespace ckpt
