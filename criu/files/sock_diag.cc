#include "criu/files/sock_diag.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "criu/net/sock_diag.h"

namespace ckpt::files {
namespace {

constexpr uint32_t kShowAll =
    UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;

Status Parse(const nlmsghdr* h, UnixDiag* d) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg))) return Error("sock_diag: short message");
  const auto* m = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
  d->ino = m->udiag_ino;
  d->type = m->udiag_type;
  d->state = m->udiag_state;
  int len = int(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
  // The attributes follow the message, each an rtattr (NLA alignment).
  for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    const void* p = RTA_DATA(a);
    size_t n = RTA_PAYLOAD(a);
    switch (a->rta_type) {
      case UNIX_DIAG_NAME:
        d->name.assign(static_cast<const char*>(p), n);
        break;
      case UNIX_DIAG_VFS:
        if (n >= sizeof(unix_diag_vfs)) {
          const auto* v = static_cast<const unix_diag_vfs*>(p);
          d->has_vfs = true;
          d->vfs_ino = v->udiag_vfs_ino;
          d->vfs_dev = v->udiag_vfs_dev;
        }
        break;
      case UNIX_DIAG_PEER:
        if (n >= 4) {
          d->has_peer = true;
          memcpy(&d->peer, p, 4);
        }
        break;
      case UNIX_DIAG_ICONS:
        for (size_t i = 0; i + 4 <= n; i += 4) {
          uint32_t v;
          memcpy(&v, static_cast<const char*>(p) + i, 4);
          d->icons.push_back(v);
        }
        break;
      case UNIX_DIAG_RQLEN:
        if (n >= sizeof(unix_diag_rqlen)) {
          const auto* q = static_cast<const unix_diag_rqlen*>(p);
          d->rqueue = q->udiag_rqueue;
          d->wqueue = q->udiag_wqueue;
        }
        break;
      case UNIX_DIAG_SHUTDOWN:
        if (n >= 1) d->shutdown = *static_cast<const uint8_t*>(p);
        break;
      default:
        break;
    }
  }
  return Ok();
}

// Sends one request and collects every socket in the answer.
Result<std::vector<UnixDiag>> Ask(const unix_diag_req& r, bool dump) {
  std::vector<UnixDiag> out;
  TRY(net::SockDiagRequest(SOCK_DIAG_BY_FAMILY, dump, &r, sizeof(r),
                           [&out](const nlmsghdr* h) -> Status {
                             UnixDiag d;
                             TRY(Parse(h, &d));
                             out.push_back(std::move(d));
                             return Ok();
                           }));
  return out;
}

}  // namespace

Result<UnixDiag> UnixDiagByIno(uint32_t ino) {
  unix_diag_req r = {};
  r.sdiag_family = AF_UNIX;
  r.udiag_states = ~0u;
  r.udiag_ino = ino;
  // UNIX_DIAG_SHUTDOWN comes with every answer; it has no show flag.
  r.udiag_show = kShowAll;
  r.udiag_cookie[0] = r.udiag_cookie[1] = ~0u;  // INET_DIAG_NOCOOKIE: any socket
  TRY_ASSIGN(std::vector<UnixDiag> v, Ask(r, false), "unix socket " + std::to_string(ino));
  if (v.empty()) return Error("sock_diag: no unix socket " + std::to_string(ino), ENOENT);
  return std::move(v[0]);
}

Result<std::vector<UnixDiag>> UnixDiagListeners() {
  unix_diag_req r = {};
  r.sdiag_family = AF_UNIX;
  r.udiag_states = 1u << TCP_LISTEN;
  r.udiag_show = UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
  return Ask(r, true);
}

Result<std::vector<UnixDiag>> UnixDiagBound() {
  unix_diag_req r = {};
  r.sdiag_family = AF_UNIX;
  r.udiag_states = ~0u;
  r.udiag_show = UDIAG_SHOW_VFS;
  TRY_ASSIGN(std::vector<UnixDiag> all, Ask(r, true));
  std::vector<UnixDiag> out;
  for (UnixDiag& d : all)
    if (d.has_vfs) out.push_back(std::move(d));
  return out;
}

}  // namespace ckpt::files
