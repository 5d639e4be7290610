#include "criu/net/sock_diag.h"

#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "base/unique_fd.h"

namespace ckpt::net {

static_assert(SOCK_DIAG_BY_FAMILY == 20);

Status SockDiagRequest(uint16_t type, bool dump, const void* req, size_t len,
                       const SockDiagEach& each) {
  UniqueFd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) return Error::Errno("sock_diag: socket(NETLINK_SOCK_DIAG)");
  std::vector<char> msg(NLMSG_LENGTH(len));
  auto* h = reinterpret_cast<nlmsghdr*>(msg.data());
  h->nlmsg_len = uint32_t(msg.size());
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK);
  h->nlmsg_seq = 1;
  memcpy(NLMSG_DATA(h), req, len);
  sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (sendto(nl.get(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
    return Error::Errno("sock_diag: send");
  std::vector<char> buf(256 * 1024);
  for (;;) {
    ssize_t n = recv(nl.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("sock_diag: recv");
    }
    if (n == 0) return Error("sock_diag: unexpected end of answer");
    int left = int(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(m, left);
         m = NLMSG_NEXT(m, left)) {
      if (m->nlmsg_type == NLMSG_DONE) return Ok();
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(m));
        if (e->error == 0) return Ok();  // the ack that ends an exact request
        return Error::Errno("sock_diag", -e->error);
      }
      if (m->nlmsg_type == SOCK_DIAG_BY_FAMILY) TRY(each(m));
    }
  }
}

}  // namespace ckpt::net
