// Where the lazy-pages daemon (criu/lazy_pages.h) reads the pages it owes:
// the pages files of the local image chain, or the dump that holds them
// (`ckpt dump --lazy-pages --port P`, this file's other half).
//
// Wire (page_xfer.h's framing, one TCP connection, the daemon asks):
//   kRead payload { u64 off, u64 len, name }  -> kData frame + len bytes,
//                                               or kError frame + message
//   kDone no payload: every page is in; the dump exits 0.
// A lazy dump keeps the private anonymous pages (criu/lazy_plan.h) in
// memfds and punches them out of DIR's pages files (same size, holes), and
// leaves DIR/lazy-pages.held: an ordinary restore of DIR is refused, a
// lazy one must use --page-server.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace ckpt {

inline constexpr char kLazyHeldMarker[] = "lazy-pages.held";

class PageSource {
 public:
  // Pages from the image chain in `dir`.
  static Result<std::unique_ptr<PageSource>> Local(const std::string& dir);
  // Pages of the dump's own pages files from the lazy dump at address:port,
  // those of parent images (pre-dumps) from `dir`.
  static Result<std::unique_ptr<PageSource>> Remote(const std::string& dir,
                                                    const std::string& address, int port);
  // As Remote, over an already connected stream socket; `peer` names the
  // other side in errors.
  static std::unique_ptr<PageSource> RemoteOver(const std::string& dir, UniqueFd sk,
                                                const std::string& peer);
  virtual ~PageSource() = default;
  // len bytes at `off` of pages source `src` (criu/page_chain.h ids).
  virtual Status Read(uint32_t src, uint64_t off, void* buf, uint64_t len) = 0;
  // Every page is in (a remote source may go).
  virtual Status Done() { return Ok(); }
  virtual std::string Describe() const = 0;
};

// Refuses to restore DIR without --lazy-pages if a lazy dump holds its pages.
Status RefuseHeldPages(const std::string& dir);

// Dump side. Before the dump: listens on address:port (fails early, the
// victim untouched). After a successful dump: keeps the lazy pages of DIR,
// serves them until the daemon says done, and returns. `on_ready` once
// the pages are held (a failure before leaves DIR a whole ordinary dump).
Result<UniqueFd> LazySourceListen(const std::string& address, int port);
Status ServeLazySource(const std::string& dir, int listen_fd,
                       const std::function<void()>& on_ready);

// One pages file a lazy dump holds: the whole file in memfd `fd`.
struct LazyHeldFile {
  UniqueFd fd;
  uint64_t size = 0;
};
// ServeLazySource's part once the daemon connected: answers its requests
// on connected stream socket `sk` from `held` (by pages file name) until
// it says done. The peer is not trusted (test/fuzz/fuzz_page_wire.cc): a
// request outside `held` gets a kError answer, a bad frame ends the serve
// with an error.
Status ServeLazyRequests(int sk, const std::map<std::string, LazyHeldFile>& held);

}  // namespace ckpt
