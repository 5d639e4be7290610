// Where a dump's memory goes: pagemap-PID.img and pages-ID.img, into the
// local image directory or, with --page-server, over TCP to a page server
// (`ckpt page-server`) while every other image is written locally (CRIU's
// split: the destination gets the memory, the source keeps the rest).
//
// Dump side (ckpt's process, criu/mem_dump.cc):
//   TRY_ASSIGN(auto target, PageTarget::Local(dir));   // or Remote(addr, port)
//   TRY(target->WriteFile("pagemap-42.img", bytes));   // small files whole
//   TRY_ASSIGN(int fd, target->Begin("pages-1.img"));  // big ones streamed:
//   TRY(target->Announce(len)); splice/write len bytes into fd; ...
//   TRY(target->End());
//   TRY(target->Commit());   // before the local inventory: all or nothing
// Pages are read by ckpt and written through a small ring of buffers
// (criu/page_copy.h), checksummed on the way. A remote target that
// is destroyed without Commit leaves nothing on the server.
//
// The wire (ckpt's own; little-endian, one TCP connection per dump):
//   frame = { u32 magic 'CKPS', u32 cmd, u64 len } then len payload bytes
//   kOpen  payload: a file name (no '/', not starting with '.')
//   kData  payload: bytes of the open file
//   kClose no payload
//   kZPages no payload: the open file is compressed (images/zpages.h)
//   kCommit no payload; the server syncs, renames the files into place
//          and answers one byte 'C' (a failure closes the connection)
//
// Server side (`ckpt page-server -D DIR --port P [--address A]`): serves
// one dump and exits 0 once it committed. Files arrive as ".NAME.part"
// (0600) and get their names only at commit, so a dump that drops midway
// leaves no file that could pass for a page image: they are removed.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_dir.h"

namespace ckpt {

class PageTarget {
 public:
  static Result<std::unique_ptr<PageTarget>> Local(images::ImageDir& dir);
  // Connects to a page server; `address` an IPv4 or IPv6 literal.
  static Result<std::unique_ptr<PageTarget>> Remote(const std::string& address, int port);
  virtual ~PageTarget() = default;

  // A whole file at once.
  virtual Status WriteFile(const std::string& name, const std::string& bytes) = 0;
  // Starts file `name`; returns the fd its bytes go into (owned by the
  // target), after an Announce of how many bytes come next.
  virtual Result<int> Begin(const std::string& name) = 0;
  virtual Status Announce(uint64_t bytes) = 0;
  // Before End: the size and CRC32C of the file, computed as it was
  // written (a local target lists them in checksums.img unread).
  virtual void Summed(uint64_t size, uint32_t crc) {}
  // Whether the bytes are to reach a disk at commit (a local target
  // without --no-sync): the writer may start the writeback early.
  virtual bool Durable() const { return false; }
  // Whether Summed is wanted: false when the other end checksums what it
  // receives (the page server), so the bytes may be spliced through.
  virtual bool WantsSum() const { return false; }
  virtual Status End() = 0;
  // The file being written (after Begin) holds zpages bytes
  // (images/zpages.h, criu/page_compress.h): recorded in checksums.img.
  virtual Status MarkZPages() = 0;
  // Every file is complete; for a remote target, the server has them.
  virtual Status Commit() = 0;
  // "pages to DIR" / "pages to the page server at A:P", for logs.
  virtual std::string Describe() const = 0;
};

// `ckpt page-server`: listens on address:port (address "" = every
// address; port 0 = one the kernel picks), serves one dump into `dir`
// (created 0700 if missing). `on_listening` gets the port once it listens
// (the command line writes one byte to --status-fd, as CRIU; the RPC
// service answers its client with it).
Status RunPageServer(const std::string& dir, const std::string& address, int port,
                     const std::function<void(int port)>& on_listening);
// RunPageServer's part once a dump connected: receives one dump from the
// connected stream socket `sk` into directory `dirfd`. Whatever the peer
// sends (it is not trusted: test/fuzz/fuzz_page_wire.cc), the result is an
// error naming the reason or a commit, and an error leaves no file in DIR.
Status ServePageStream(int dirfd, int sk);

namespace page_wire {
inline constexpr uint32_t kMagic = 0x53504b43;  // "CKPS"
enum Cmd : uint32_t { kOpen = 1, kData = 2, kClose = 3, kCommit = 4,
                      // lazy pages (criu/lazy_source.h)
                      kRead = 5, kDone = 6, kError = 7,
                      kZPages = 8 };
struct Frame {
  uint32_t magic;
  uint32_t cmd;
  uint64_t len;
};
inline constexpr uint64_t kMaxName = 255;
// A name the server accepts: what ckpt writes, nothing that leaves DIR.
bool NameOk(const std::string& name);
// An IPv4 or IPv6 literal ("" = any, when listen_any) and a port.
Result<socklen_t> MakeAddr(const std::string& address, int port, sockaddr_storage* ss,
                           bool listen_any);
// A TCP connection (TCP_NODELAY: frames are small) to address:port; *peer
// gets "A:P" ("[A]:P" for IPv6). `what` names the other side in errors
// ("the page server").
Result<UniqueFd> Connect(const std::string& address, int port, const std::string& what,
                         std::string* peer);
}  // namespace page_wire

}  // namespace ckpt
