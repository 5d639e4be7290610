// Packet sockets (AF_PACKET, SOCK_RAW and SOCK_DGRAM).
//
// Dump. sock_diag (PACKET_DIAG, a dump of every packet socket of the
// namespace, picked by inode) gives the protocol, the bound interface,
// the memberships (PACKET_ADD_MEMBERSHIP: no getsockopt lists them), the
// rings, PACKET_COPY_THRESH and how much is queued. ckpt's own copy of
// the task's fd (pidfd_getfd) gives the SOL_PACKET options and the
// fanout group by getsockopt, and the socket-level options with the
// classic BPF filter (SO_GET_FILTER, sk_common.h). The interface index is
// saved with its name. PACKET_STATISTICS is not read: reading resets the
// counters the program reads.
//
// Refused (check, before the task is infected): SOCK_PACKET sockets; a
// socket of another network namespace; an mmap'ed ring (PACKET_RX_RING,
// PACKET_TX_RING: the ring's frames are shared memory between the kernel
// and the task's mapping of the socket, which the memory dump cannot
// rebuild); a fanout group steered by a BPF program (PACKET_FANOUT_CBPF/
// EBPF: the program cannot be read back); a socket bound to an interface
// that was removed; an eBPF filter or SO_TIMESTAMPING.
//
// Queued packets are dropped, with a warning naming the fd and the bytes:
// a packet socket taps a network that drops packets anyway (a full queue
// drops them too), and they cannot be sent again as received.
//
// Restore. A new socket of the type, options and filter first, then
// bound (protocol and interface) so nothing unfiltered arrives; then
// memberships (each as many times as it was added), then the fanout group
// is joined by its id (a group of several sockets forms again as each
// joins). The interface is looked up by name: if it does not exist, or
// has another index than at dump (the program may use the index it
// knows), the restore fails naming it.
//
// Not kept: the fanout group's member limit (PACKET_FANOUT_DATA /
// max_num_members cannot be read; the default is used), statistics.
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/packet_diag.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "criu/files/sk_common.h"

#ifndef PACKET_VNET_HDR_SZ
#define PACKET_VNET_HDR_SZ 24
#endif

namespace ckpt::files {
namespace {

constexpr size_t kMaxAddr = 32;            // MAX_ADDR_LEN: link-layer addresses
constexpr uint32_t kMaxMcCount = 1 << 20;  // memberships added more often than this: bad image

// PACKET_ADD_MEMBERSHIP's argument with the longest address the kernel
// takes (its packet_mreq_max; the uapi packet_mreq has 8 bytes).
struct MreqMax {
  int ifindex;
  uint16_t type;
  uint16_t alen;
  uint8_t addr[kMaxAddr];
};

struct PacketDiag {
  bool found = false;
  uint32_t protocol = 0;  // host byte order (pdiag_num already is)
  bool has_info = false;
  packet_diag_info info = {};
  std::vector<packet_diag_mclist> mclist;
  bool rx_ring = false, tx_ring = false;
  uint32_t rmem = 0;  // SK_MEMINFO_RMEM_ALLOC: memory of queued packets
};

Result<PacketDiag> DiagByIno(uint32_t ino) {
  packet_diag_req r = {};
  r.sdiag_family = AF_PACKET;  // sdiag_protocol must be 0
  r.pdiag_show = PACKET_SHOW_INFO | PACKET_SHOW_MCLIST | PACKET_SHOW_RING_CFG | PACKET_SHOW_MEMINFO;
  PacketDiag d;
  TRY(SockDiagDump(&r, sizeof(r),
                   [&](const nlmsghdr* h) -> Status {
                     if (h->nlmsg_len < NLMSG_LENGTH(sizeof(packet_diag_msg)))
                       return Error("short message");
                     const auto* m = static_cast<const packet_diag_msg*>(NLMSG_DATA(h));
                     if (m->pdiag_ino != ino || d.found) return Ok();
                     d.found = true;
                     d.protocol = m->pdiag_num;  // the kernel converts it to host order
                     int len = int(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
                     for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len);
                          a = RTA_NEXT(a, len)) {
                       const char* p = static_cast<const char*>(RTA_DATA(a));
                       size_t n = RTA_PAYLOAD(a);
                       switch (a->rta_type) {
                         case PACKET_DIAG_INFO:
                           if (n >= sizeof(d.info)) {
                             memcpy(&d.info, p, sizeof(d.info));
                             d.has_info = true;
                           }
                           break;
                         case PACKET_DIAG_MCLIST:
                           for (size_t i = 0; i + sizeof(packet_diag_mclist) <= n;
                                i += sizeof(packet_diag_mclist)) {
                             packet_diag_mclist ml;
                             memcpy(&ml, p + i, sizeof(ml));
                             d.mclist.push_back(ml);
                           }
                           break;
                         case PACKET_DIAG_RX_RING:
                           d.rx_ring = true;
                           break;
                         case PACKET_DIAG_TX_RING:
                           d.tx_ring = true;
                           break;
                         case PACKET_DIAG_MEMINFO:
                           if (n >= 4 * (SK_MEMINFO_RMEM_ALLOC + 1))
                             memcpy(&d.rmem, p + 4 * SK_MEMINFO_RMEM_ALLOC, 4);
                           break;
                         default:
                           break;
                       }
                     }
                     return Ok();
                   }),
      "packet sock_diag");
  if (d.found && !d.has_info) return Error("packet sock_diag: no PACKET_DIAG_INFO");
  return d;
}

Result<uint32_t> GetOpt(int sk, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(sk, SOL_PACKET, opt, &v, &len) < 0)
    return Error::Errno(std::string("get ") + name);
  return uint32_t(v);
}

Status SetOpt(int sk, int opt, uint32_t v, const char* name) {
  int i = int(v);
  if (setsockopt(sk, SOL_PACKET, opt, &i, sizeof(i)) < 0)
    return Error::Errno(std::string("set ") + name + " to " + std::to_string(v));
  return Ok();
}

// The name of interface `index` in our namespace, or an error for one that
// went away (the kernel shows -1 for a socket whose device was removed).
Result<std::string> IfName(uint32_t index) {
  char name[IF_NAMESIZE] = {};
  if (int(index) <= 0 || !if_indextoname(index, name))
    return Error("bound to an interface that no longer exists (index " +
                 std::to_string(int(index)) + ")");
  return std::string(name);
}

// The index of `name` now, which must still be `index`.
Result<int> IfIndex(const std::string& name, uint32_t index) {
  unsigned now = if_nametoindex(name.c_str());
  if (now == 0)
    return Error("interface " + name + " (index " + std::to_string(index) +
                 " at dump) does not exist here");
  if (now != index)
    return Error("interface " + name + " has index " + std::to_string(now) + ", it had " +
                 std::to_string(index) + " at dump");
  return int(now);
}

std::string TypeName(uint32_t type) { return type == SOCK_DGRAM ? "datagram" : "raw"; }

// "packet socket (raw, protocol 0x0003, lo)".
std::string Describe(const pb::PacketSkEntry& e) {
  char proto[16];
  snprintf(proto, sizeof(proto), "0x%04x", e.protocol());
  std::string s = "packet socket (" + TypeName(e.type()) + ", protocol " + proto;
  if (!e.ifname().empty()) s += ", " + e.ifname();
  return s + ")";
}

// Everything of one socket, refusing what cannot come back; `rmem` gets
// the memory of queued packets. Errors do not name the fd (callers do).
Result<pb::PacketSkEntry> Inspect(const FdContext& c, uint32_t* rmem) {
  TRY_ASSIGN(UniqueFd sk, GrabTaskSocket(c.pid, c.fd), "packet socket");
  TRY(CheckSameNetns(sk.get(), "packet socket"));
  pb::PacketSkEntry e;
  e.set_ino(c.st.st_ino);
  e.set_flags(c.info.flags);
  int v;
  socklen_t len = sizeof(v);
  if (getsockopt(sk.get(), SOL_SOCKET, SO_TYPE, &v, &len) < 0)
    return Error::Errno("packet socket: get SO_TYPE");
  if (v == SOCK_PACKET) return Error("SOCK_PACKET socket (obsolete) is not supported");
  if (v != SOCK_RAW && v != SOCK_DGRAM)
    return Error("packet socket of type " + std::to_string(v) + " is not supported");
  e.set_type(uint32_t(v));

  TRY_ASSIGN(PacketDiag d, DiagByIno(uint32_t(c.st.st_ino)), "packet socket");
  if (!d.found) return Error("packet socket not found by sock_diag (another network namespace?)");
  e.set_protocol(d.protocol);
  e.set_ifindex(d.info.pdi_index);
  if (d.info.pdi_index != 0) {
    TRY_ASSIGN(std::string name, IfName(d.info.pdi_index), Describe(e));
    e.set_ifname(name);
  }
  std::string what = Describe(e);
  if (d.rx_ring || d.tx_ring)
    return Error(what + " with an mmap'ed ring (" +
                 (d.rx_ring && d.tx_ring ? "PACKET_RX_RING and PACKET_TX_RING"
                  : d.rx_ring            ? "PACKET_RX_RING"
                                         : "PACKET_TX_RING") +
                 ") is not supported");
  for (const packet_diag_mclist& ml : d.mclist) {
    pb::PacketMclist* m = e.add_mclist();
    m->set_ifindex(ml.pdmc_index);
    TRY_ASSIGN(std::string name, IfName(ml.pdmc_index), what + ": membership");
    m->set_ifname(name);
    m->set_type(ml.pdmc_type);
    if (ml.pdmc_alen) m->set_addr(ml.pdmc_addr, std::min<size_t>(ml.pdmc_alen, kMaxAddr));
    m->set_count(ml.pdmc_count);
  }
  uint32_t u;
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_FANOUT, "PACKET_FANOUT"), what);
  if (u) {
    uint32_t type = (u >> 16) & 0xff;
    if (type == PACKET_FANOUT_CBPF || type == PACKET_FANOUT_EBPF)
      return Error(what + " in fanout group " + std::to_string(u & 0xffff) +
                   " steered by a BPF program (its program cannot be read back) is not supported");
    e.set_fanout(u);
  }
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_VERSION, "PACKET_VERSION"), what);
  if (u) e.set_version(u);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_AUXDATA, "PACKET_AUXDATA"), what);
  if (u) e.set_auxdata(true);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_ORIGDEV, "PACKET_ORIGDEV"), what);
  if (u) e.set_origdev(true);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_VNET_HDR, "PACKET_VNET_HDR"), what);
  if (u) e.set_vnet_hdr(true);
  // PACKET_VNET_HDR_SZ is Linux 6.2+; without it the size follows VNET_HDR.
  auto sz = GetOpt(sk.get(), PACKET_VNET_HDR_SZ, "PACKET_VNET_HDR_SZ");
  if (sz.ok() && *sz) e.set_vnet_hdr_sz(*sz);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_TIMESTAMP, "PACKET_TIMESTAMP"), what);
  if (u) e.set_timestamp(u);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_RESERVE, "PACKET_RESERVE"), what);
  if (u) e.set_reserve(u);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_LOSS, "PACKET_LOSS"), what);
  if (u) e.set_loss(true);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_QDISC_BYPASS, "PACKET_QDISC_BYPASS"), what);
  if (u) e.set_qdisc_bypass(true);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING"), what);
  if (u) e.set_ignore_outgoing(true);
  TRY_ASSIGN(u, GetOpt(sk.get(), PACKET_TX_HAS_OFF, "PACKET_TX_HAS_OFF"), what);
  if (u) e.set_tx_has_off(true);
  if (d.info.pdi_copy_thresh) e.set_copy_thresh(d.info.pdi_copy_thresh);

  TRY_ASSIGN(SockOpts o, ReadSockOpts(sk.get()), what);
  SockOptsToPb(o, &e);
  *rmem = d.rmem;
  return e;
}

bool Match(const FdContext& c) {
  return S_ISSOCK(c.st.st_mode) && SockProtoName(c.pid, c.fd) == "PACKET";
}

Status Check(const FdContext& c, const std::vector<FdContext>&) {
  uint32_t rmem;
  TRY_ASSIGN(pb::PacketSkEntry e, Inspect(c, &rmem), Where(c));
  (void)e;
  return Ok();
}

Status Dump(const FdContext& c, DumpContext&, pb::FileEntry* fe) {
  uint32_t rmem = 0;
  TRY_ASSIGN(*fe->mutable_packet_sk(), Inspect(c, &rmem));
  if (rmem)
    LOG_WARN(Where(c) + ": " + Describe(fe->packet_sk()) + ": dropping queued packets (" +
             std::to_string(rmem) + " bytes, kernel accounting)");
  return Ok();
}

Result<int> Open(const pb::FileEntry& fe, const RestoreOpts&) {
  const pb::PacketSkEntry& e = fe.packet_sk();
  std::string what = Describe(e);
  int ifindex = 0;
  if (e.ifindex()) {
    TRY_ASSIGN(ifindex, IfIndex(e.ifname(), e.ifindex()), what);
  }
  int type = int(e.type()) | SOCK_CLOEXEC | ((e.flags() & O_NONBLOCK) ? SOCK_NONBLOCK : 0);
  // Protocol 0: receives nothing until bind() below, after the filter.
  UniqueFd sk(socket(AF_PACKET, type, 0));
  if (!sk) return Error::Errno(what + ": socket");
  TRY(SetSockOpts(sk.get(), SockOptsFromPb(e)), what);
  // VERSION, RESERVE, LOSS, VNET_HDR and TX_HAS_OFF are only taken before a
  // ring exists (there is none) and are independent of the binding.
  if (e.version()) TRY(SetOpt(sk.get(), PACKET_VERSION, e.version(), "PACKET_VERSION"), what);
  if (e.reserve()) TRY(SetOpt(sk.get(), PACKET_RESERVE, e.reserve(), "PACKET_RESERVE"), what);
  if (e.auxdata()) TRY(SetOpt(sk.get(), PACKET_AUXDATA, 1, "PACKET_AUXDATA"), what);
  if (e.origdev()) TRY(SetOpt(sk.get(), PACKET_ORIGDEV, 1, "PACKET_ORIGDEV"), what);
  if (e.vnet_hdr()) TRY(SetOpt(sk.get(), PACKET_VNET_HDR, 1, "PACKET_VNET_HDR"), what);
  if (e.has_vnet_hdr_sz()) {
    TRY_ASSIGN(uint32_t now, GetOpt(sk.get(), PACKET_VNET_HDR_SZ, "PACKET_VNET_HDR_SZ"), what);
    if (now != e.vnet_hdr_sz())
      TRY(SetOpt(sk.get(), PACKET_VNET_HDR_SZ, e.vnet_hdr_sz(), "PACKET_VNET_HDR_SZ"), what);
  }
  if (e.timestamp())
    TRY(SetOpt(sk.get(), PACKET_TIMESTAMP, e.timestamp(), "PACKET_TIMESTAMP"), what);
  if (e.loss()) TRY(SetOpt(sk.get(), PACKET_LOSS, 1, "PACKET_LOSS"), what);
  if (e.qdisc_bypass()) TRY(SetOpt(sk.get(), PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS"), what);
  if (e.ignore_outgoing())
    TRY(SetOpt(sk.get(), PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING"), what);
  if (e.tx_has_off()) TRY(SetOpt(sk.get(), PACKET_TX_HAS_OFF, 1, "PACKET_TX_HAS_OFF"), what);
  if (e.copy_thresh())
    TRY(SetOpt(sk.get(), PACKET_COPY_THRESH, e.copy_thresh(), "PACKET_COPY_THRESH"), what);

  if (e.protocol() || ifindex) {
    sockaddr_ll sa = {};
    sa.sll_family = AF_PACKET;
    sa.sll_protocol = htons(uint16_t(e.protocol()));
    sa.sll_ifindex = ifindex;
    if (bind(sk.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0)
      return Error::Errno(what + ": bind");
  }
  // sock_diag lists the newest membership first (each is pushed on the
  // front of the socket's list): add them oldest first to list the same.
  for (int i = e.mclist_size() - 1; i >= 0; i--) {
    const pb::PacketMclist& m = e.mclist(i);
    MreqMax mr = {};
    TRY_ASSIGN(mr.ifindex, IfIndex(m.ifname(), m.ifindex()), what + ": membership");
    mr.type = uint16_t(m.type());
    mr.alen = uint16_t(m.addr().size());
    memcpy(mr.addr, m.addr().data(), m.addr().size());
    for (uint32_t n = 0; n < m.count(); n++)
      if (setsockopt(sk.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
        return Error::Errno(what + ": PACKET_ADD_MEMBERSHIP on " + m.ifname() + " (type " +
                            std::to_string(m.type()) + ")");
  }
  if (e.fanout()) {
    // getsockopt gives id | type << 16 | flags << 24 with the flags shifted
    // down by 8 from how setsockopt takes them (PACKET_FANOUT_FLAG_*).
    uint32_t id = e.fanout() & 0xffff;
    uint32_t type_flags = ((e.fanout() >> 16) & 0xff) | ((e.fanout() >> 24) << 8);
    int v = int(id | type_flags << 16);
    if (setsockopt(sk.get(), SOL_PACKET, PACKET_FANOUT, &v, sizeof(v)) < 0)
      return Error::Errno(what + ": join fanout group " + std::to_string(id) +
                          " (the group exists with other settings, or the socket is not "
                          "running: interface down?)");
  }
  return sk.release();
}

Status Validate(const pb::FileEntry& fe) {
  std::string what = "file " + std::to_string(fe.id()) + ": packet socket";
  if (!fe.has_packet_sk()) return Error(what + " entry missing");
  const pb::PacketSkEntry& e = fe.packet_sk();
  if (e.type() != SOCK_RAW && e.type() != SOCK_DGRAM)
    return Error(what + ": bad type " + std::to_string(e.type()));
  if (e.protocol() > 0xffff) return Error(what + ": bad protocol");
  auto bad_name = [](const std::string& n) {
    return n.empty() || n.size() >= IF_NAMESIZE || n.find('/') != std::string::npos ||
           n.find('\0') != std::string::npos;
  };
  if (e.ifindex() && (int(e.ifindex()) < 0 || bad_name(e.ifname())))
    return Error(what + ": bad interface");
  for (const pb::PacketMclist& m : e.mclist()) {
    if (m.ifindex() == 0 || int(m.ifindex()) < 0 || bad_name(m.ifname()))
      return Error(what + ": membership on a bad interface");
    if (m.type() > PACKET_MR_UNICAST || m.addr().size() > kMaxAddr || m.count() == 0 ||
        m.count() > kMaxMcCount)
      return Error(what + ": bad membership");
  }
  uint32_t ftype = (e.fanout() >> 16) & 0xff;
  if (ftype == PACKET_FANOUT_CBPF || ftype == PACKET_FANOUT_EBPF || ftype > PACKET_FANOUT_EBPF)
    return Error(what + ": bad fanout");
  if (e.version() > TPACKET_V3) return Error(what + ": bad version");
  if (e.vnet_hdr() && e.type() != SOCK_RAW)
    return Error(what + ": vnet header on a non-raw socket");
  TRY(ValidateSockOpts(SockOptsFromPb(e)), what);
  return Ok();
}

}  // namespace

const FileHandler kPacketSkHandler = {.kind = pb::FILE_PACKET_SK,
                                      .name = "packet socket",
                                      .match = Match,
                                      .check = Check,
                                      .dump = Dump,
                                      .open = Open,
                                      .validate = Validate,
                                      .deps = nullptr,
                                      .in_task = nullptr};

}  // namespace ckpt::files
