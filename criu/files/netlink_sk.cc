// Netlink sockets (AF_NETLINK, any protocol: route, uevent, generic,
// audit, ...).
//
// Dump. ckpt's own copy of the task's fd (pidfd_getfd) gives the type and
// protocol, the port id (getsockname), the multicast groups
// (NETLINK_LIST_MEMBERSHIPS: every group, not only the 32 of the legacy
// nl_groups mask), the SOL_NETLINK flags and the socket-level options
// with the classic BPF filter (udev filters its uevent socket).
// sock_diag (NETLINK_DIAG) tells what the fd cannot: the connect(2)ed
// destination (getpeername cannot tell "connected to the kernel" from
// "not connected"), whether a dump answer is still being produced, and
// how much is queued. An unbound socket that joined no group is not in
// the kernel's tables sock_diag walks: it has nothing more to tell.
//
// Refused (check, before the task is infected): a socket of another
// network namespace; one with unread messages ("... has unread messages
// queued (N bytes of its receive buffer)": the kernel's accounting of the
// queue, headers included); one the kernel is still answering a dump request on. A
// netlink socket's queue cannot be refilled faithfully (the kernel is the
// sender of most messages, and nobody can send as the kernel), and
// dropping it silently may lose the answer a program waits for, which
// would hang it forever after restore. The state is transient: a program
// reads its messages soon, so a later dump succeeds. Also refused: an
// eBPF filter and SO_TIMESTAMPING (sk_common.h).
//
// Restore. A new socket of the same type and protocol, options first,
// bound to the same port id (the kernel's choice at autobind or the
// program's, both kept: programs compare the nlmsg_pid of answers with
// it, and userspace peers address it). If another socket of the protocol
// holds that port id now, bind fails with EADDRINUSE and so does the
// restore, naming the port: a different port would silently break those
// programs. Groups are joined again with NETLINK_ADD_MEMBERSHIP (the
// same kernel state as bind's nl_groups for the first 32), then the
// destination is connected again.
//
// Not kept: a pending ENOBUFS error (reading SO_ERROR would clear it);
// generic netlink family and group ids are the restoring kernel's (the
// same on the same machine; another kernel may number them otherwise).
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/netlink_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "criu/files/sk_common.h"

#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

namespace ckpt::files {
namespace {

constexpr uint32_t kMaxProtocol = 32;       // MAX_LINKS in the kernel
constexpr size_t kMaxGroupWords = 1 << 16;  // 2M groups: far beyond any family

// For messages: "NETLINK_ROUTE", "netlink protocol 25".
std::string ProtoName(uint32_t p) {
  static const char* const kNames[] = {
      "NETLINK_ROUTE",          "NETLINK_UNUSED",     "NETLINK_USERSOCK",
      "NETLINK_FIREWALL",       "NETLINK_SOCK_DIAG",  "NETLINK_NFLOG",
      "NETLINK_XFRM",           "NETLINK_SELINUX",    "NETLINK_ISCSI",
      "NETLINK_AUDIT",          "NETLINK_FIB_LOOKUP", "NETLINK_CONNECTOR",
      "NETLINK_NETFILTER",      "NETLINK_IP6_FW",     "NETLINK_DNRTMSG",
      "NETLINK_KOBJECT_UEVENT", "NETLINK_GENERIC",    "netlink protocol 17",
      "NETLINK_SCSITRANSPORT",  "NETLINK_ECRYPTFS",   "NETLINK_RDMA",
      "NETLINK_CRYPTO",         "NETLINK_SMC"};
  if (p < sizeof(kNames) / sizeof(kNames[0])) return kNames[p];
  return "netlink protocol " + std::to_string(p);
}

// "netlink socket (NETLINK_ROUTE, port 1234)".
std::string Describe(uint32_t protocol, uint32_t portid) {
  std::string s = "netlink socket (" + ProtoName(protocol);
  if (portid) s += ", port " + std::to_string(portid);
  return s + ")";
}

// What NETLINK_DIAG says of one socket.
struct NetlinkDiag {
  bool found = false;
  uint8_t state = 0;  // NETLINK_CONNECTED (1) or NETLINK_UNCONNECTED (0)
  uint32_t dst_portid = 0;
  uint32_t dst_group = 0;
  uint32_t flags = 0;  // NDIAG_FLAG_*
  uint32_t rmem = 0;   // SK_MEMINFO_RMEM_ALLOC: memory of queued messages
  constexpr static uint8_t kConnected = 1;
};

Result<NetlinkDiag> DiagByIno(uint32_t protocol, uint32_t ino) {
  // Dumps are per protocol and cannot be asked for one inode.
  netlink_diag_req r = {};
  r.sdiag_family = AF_NETLINK;
  r.sdiag_protocol = uint8_t(protocol);
  r.ndiag_show = NDIAG_SHOW_MEMINFO | NDIAG_SHOW_FLAGS;
  NetlinkDiag d;
  TRY(SockDiagDump(&r, sizeof(r),
                   [&](const nlmsghdr* h) -> Status {
                     if (h->nlmsg_len < NLMSG_LENGTH(sizeof(netlink_diag_msg)))
                       return Error("short message");
                     const auto* m = static_cast<const netlink_diag_msg*>(NLMSG_DATA(h));
                     if (m->ndiag_ino != ino || d.found) return Ok();
                     d.found = true;
                     d.state = m->ndiag_state;
                     d.dst_portid = m->ndiag_dst_portid;
                     d.dst_group = m->ndiag_dst_group;
                     int len = int(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
                     for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len);
                          a = RTA_NEXT(a, len)) {
                       if (a->rta_type == NETLINK_DIAG_FLAGS && RTA_PAYLOAD(a) >= 4)
                         memcpy(&d.flags, RTA_DATA(a), 4);
                       if (a->rta_type == NETLINK_DIAG_MEMINFO &&
                           RTA_PAYLOAD(a) >= 4 * (SK_MEMINFO_RMEM_ALLOC + 1))
                         memcpy(&d.rmem,
                                static_cast<const char*>(RTA_DATA(a)) + 4 * SK_MEMINFO_RMEM_ALLOC,
                                4);
                     }
                     return Ok();
                   }),
      "netlink sock_diag");
  return d;
}

Result<bool> GetFlag(int sk, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(sk, SOL_NETLINK, opt, &v, &len) < 0)
    return Error::Errno(std::string("get ") + name);
  return v != 0;
}

Result<std::vector<uint32_t>> Memberships(int sk) {
  std::vector<uint32_t> words(32);
  for (;;) {
    socklen_t len = socklen_t(words.size() * 4);
    if (getsockopt(sk, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, words.data(), &len) < 0)
      return Error::Errno("get NETLINK_LIST_MEMBERSHIPS");
    // The kernel says how much it needs (all groups of the protocol).
    if (len <= words.size() * 4) {
      words.resize(len / 4);
      break;
    }
    if (len / 4 > kMaxGroupWords) return Error("too many netlink groups");
    words.resize(len / 4);
  }
  while (!words.empty() && words.back() == 0) words.pop_back();
  return words;
}

// Everything of one socket, refusing what cannot come back. Used by check
// and again by dump: messages may have arrived in between. Errors do not
// name the fd (the callers do).
Result<pb::NetlinkSkEntry> Inspect(const FdContext& c) {
  TRY_ASSIGN(UniqueFd sk, GrabTaskSocket(c.pid, c.fd), "netlink socket");
  TRY(CheckSameNetns(sk.get(), "netlink socket"));
  pb::NetlinkSkEntry e;
  e.set_ino(c.st.st_ino);
  e.set_flags(c.info.flags);
  int v;
  socklen_t len = sizeof(v);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_TYPE, &v, &len) < 0)
    return Error::Errno("netlink socket: get SO_TYPE");
  e.set_type(uint32_t(v));
  len = sizeof(v);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_PROTOCOL, &v, &len) < 0)
    return Error::Errno("netlink socket: get SO_PROTOCOL");
  e.set_protocol(uint32_t(v));
  sockaddr_nl sa = {};
  len = sizeof(sa);
  if (getsockname(sk.get(), reinterpret_cast<sockaddr*>(&sa), &len) < 0)
    return Error::Errno("netlink socket: getsockname");
  e.set_portid(sa.nl_pid);
  std::string what = Describe(e.protocol(), e.portid());

  TRY_ASSIGN(std::vector<uint32_t> groups, Memberships(sk.get()), what);
  for (uint32_t w : groups) e.add_groups(w);

  TRY_ASSIGN(NetlinkDiag d, DiagByIno(e.protocol(), uint32_t(c.st.st_ino)), what);
  if (!d.found && (e.portid() != 0 || !groups.empty()))
    return Error(what + ": not found by sock_diag (another network namespace?)");
  if (d.flags & NDIAG_FLAG_CB_RUNNING)
    return Error(what +
                 ": the kernel is still sending the answer to a dump request; the rest "
                 "of it cannot be asked for again after restore (retry the dump)");
  if (d.rmem)
    return Error(what + " has unread messages queued (" + std::to_string(d.rmem) +
                 " bytes of its receive buffer); a netlink queue cannot be refilled, so the "
                 "dump is refused (retry once the program has read them)");
  if (d.state == NetlinkDiag::kConnected) {
    e.set_connected(true);
    e.set_dst_portid(d.dst_portid);
    e.set_dst_group(d.dst_group);
  }

  bool f;
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_PKTINFO, "NETLINK_PKTINFO"), what);
  if (f) e.set_pktinfo(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_BROADCAST_ERROR, "NETLINK_BROADCAST_ERROR"), what);
  if (f) e.set_broadcast_error(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS"), what);
  if (f) e.set_no_enobufs(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_LISTEN_ALL_NSID, "NETLINK_LISTEN_ALL_NSID"), what);
  if (f) e.set_listen_all_nsid(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_CAP_ACK, "NETLINK_CAP_ACK"), what);
  if (f) e.set_cap_ack(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_EXT_ACK, "NETLINK_EXT_ACK"), what);
  if (f) e.set_ext_ack(true);
  TRY_ASSIGN(f, GetFlag(sk.get(), NETLINK_GET_STRICT_CHK, "NETLINK_GET_STRICT_CHK"), what);
  if (f) e.set_get_strict_chk(true);

  TRY_ASSIGN(SockOpts o, ReadSockOpts(sk.get()), what);
  SockOptsToPb(o, &e);
  return e;
}

bool Match(const FdContext& c) {
  return S_ISSOCK(c.st.st_mode) && SockProtoName(c.pid, c.fd) == "NETLINK";
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  TRY_ASSIGN(pb::NetlinkSkEntry e, Inspect(c), Where(c));
  (void)e;
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* fe) {
  TRY_ASSIGN(*fe->mutable_netlink_sk(), Inspect(c));
  return Ok();
}

Status SetFlag(int sk, int opt, const char* name) {
  int one = 1;
  if (setsockopt(sk, SOL_NETLINK, opt, &one, sizeof(one)) < 0)
    return Error::Errno(std::string("set ") + name);
  return Ok();
}

Result<int> Open(const pb::FileEntry& fe, const RestoreOpts&) {
  const pb::NetlinkSkEntry& e = fe.netlink_sk();
  std::string what = Describe(e.protocol(), e.portid());
  int type = int(e.type()) | SOCK_CLOEXEC | ((e.flags() & O_NONBLOCK) ? SOCK_NONBLOCK : 0);
  UniqueFd sk(socket(AF_NETLINK, type, int(e.protocol())));
  if (!sk) {
    if (errno == EPROTONOSUPPORT)
      return Error::Errno(what + ": this kernel has no " + ProtoName(e.protocol()) +
                          " (module not loaded?)");
    return Error::Errno(what + ": socket");
  }
  // Options first: the filter must be in place before anything can arrive.
  TRY(SetSockOpts(sk.get(), SockOptsFromPb(e)), what);
  if (e.portid()) {
    sockaddr_nl sa = {};
    sa.nl_family = AF_NETLINK;
    sa.nl_pid = e.portid();
    if (bind(sk.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) {
      if (errno == EADDRINUSE)
        return Error::Errno(what + ": port id " + std::to_string(e.portid()) +
                            " is held by another " + ProtoName(e.protocol()) +
                            " socket now; the program knows its port, so it cannot get another");
      return Error::Errno(what + ": bind");
    }
  }
  for (int w = 0; w < e.groups_size(); w++)
    for (int b = 0; b < 32; b++) {
      if (!(e.groups(w) & (1u << b))) continue;
      int g = w * 32 + b + 1;
      if (setsockopt(sk.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) < 0)
        return Error::Errno(what + ": join group " + std::to_string(g));
    }
  if (e.pktinfo()) TRY(SetFlag(sk.get(), NETLINK_PKTINFO, "NETLINK_PKTINFO"), what);
  if (e.broadcast_error())
    TRY(SetFlag(sk.get(), NETLINK_BROADCAST_ERROR, "NETLINK_BROADCAST_ERROR"), what);
  if (e.no_enobufs()) TRY(SetFlag(sk.get(), NETLINK_NO_ENOBUFS, "NETLINK_NO_ENOBUFS"), what);
  if (e.listen_all_nsid())
    TRY(SetFlag(sk.get(), NETLINK_LISTEN_ALL_NSID, "NETLINK_LISTEN_ALL_NSID"), what);
  if (e.cap_ack()) TRY(SetFlag(sk.get(), NETLINK_CAP_ACK, "NETLINK_CAP_ACK"), what);
  if (e.ext_ack()) TRY(SetFlag(sk.get(), NETLINK_EXT_ACK, "NETLINK_EXT_ACK"), what);
  if (e.get_strict_chk())
    TRY(SetFlag(sk.get(), NETLINK_GET_STRICT_CHK, "NETLINK_GET_STRICT_CHK"), what);
  if (e.connected()) {
    sockaddr_nl sa = {};
    sa.nl_family = AF_NETLINK;
    sa.nl_pid = e.dst_portid();
    sa.nl_groups = e.dst_group() ? 1u << (e.dst_group() - 1) : 0;
    if (connect(sk.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
      return Error::Errno(what + ": connect to port " + std::to_string(e.dst_portid()) + " group " +
                          std::to_string(e.dst_group()));
  }
  return sk.release();
}

Status Validate(const pb::FileEntry& fe) {
  std::string what = "file " + std::to_string(fe.id()) + ": netlink socket";
  if (!fe.has_netlink_sk()) return Error(what + " entry missing");
  const pb::NetlinkSkEntry& e = fe.netlink_sk();
  if (e.type() != SOCK_RAW && e.type() != SOCK_DGRAM)
    return Error(what + ": bad type " + std::to_string(e.type()));
  if (e.protocol() >= kMaxProtocol)
    return Error(what + ": bad protocol " + std::to_string(e.protocol()));
  if (size_t(e.groups_size()) > kMaxGroupWords) return Error(what + ": too many groups");
  // connect() binds an unbound socket, so a connected one has a port.
  if (e.connected() && e.portid() == 0) return Error(what + ": connected without a port id");
  if (!e.connected() && (e.dst_portid() || e.dst_group()))
    return Error(what + ": a destination but not connected");
  if (e.dst_group() > 32) return Error(what + ": bad destination group");
  TRY(ValidateSockOpts(SockOptsFromPb(e)), what);
  return Ok();
}

}  // namespace

const FileHandler kNetlinkSkHandler = {.kind = pb::FILE_NETLINK_SK,
                                       .name = "netlink socket",
                                       .match = Match,
                                       .check = Check,
                                       .dump = Dump,
                                       .open = Open,
                                       .validate = Validate,
                                       .deps = nullptr,
                                       .in_task = nullptr};

}  // namespace ckpt::files
