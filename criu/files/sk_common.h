// What the netlink and packet socket handlers (netlink_sk.cc, packet_sk.cc)
// share: telling a socket's family, a copy of the task's fd, the network
// namespace check, sock_diag dumps, and the socket-level (SOL_SOCKET)
// options with the classic BPF filter.
#pragma once

#include <linux/filter.h>
#include <linux/netlink.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "criu/files/file_types.h"
#include "criu/net/sock_diag.h"

namespace ckpt::files {

// The "system.sockprotoname" attribute of /proc/PID/fd/FD: the kernel's
// name of the socket's protocol ("NETLINK", "PACKET", "UNIX-STREAM",
// "TCP", ...); "" if the fd is not a socket or the attribute is unreadable.
std::string SockProtoName(pid_t pid, int fd);

// ckpt's own copy of a task's fd (pidfd_getfd(2)): the same open socket,
// so reading its options or peeking changes nothing the task sees.
Result<UniqueFd> GrabTaskSocket(pid_t pid, int fd);

// Ok if socket `sk` lives in ckpt's own network namespace (SIOCGSKNS
// gives the socket's namespace, compared with /proc/self/ns/net). Else
// "<what> belongs to another network namespace ...".
Status CheckSameNetns(int sk, const std::string& what);

// sock_diag requests: criu/net/sock_diag.h.
using net::SockDiagDump;

// Socket-level options a program may set on any socket. A default-built
// SockOpts is what a new socket has, except the buffer sizes.
struct SockOpts {
  uint32_t rcvbuf = 0;  // SO_RCVBUF / SO_SNDBUF as getsockopt returns them
  uint32_t sndbuf = 0;  // (the kernel doubles what setsockopt asked for)
  bool passcred = false;
  uint32_t priority = 0;
  uint32_t mark = 0;
  bool timestamp = false;    // SO_TIMESTAMP
  bool timestampns = false;  // SO_TIMESTAMPNS
  uint64_t rcvtimeo_us = 0;
  uint64_t sndtimeo_us = 0;
  std::vector<sock_filter> filter;  // classic BPF (SO_ATTACH_FILTER); empty: none
  bool filter_locked = false;       // SO_LOCK_FILTER
};

// Reads the options of sk. Fails for what cannot be set back: an eBPF
// program (SO_ATTACH_BPF), which SO_GET_FILTER cannot return, and
// SO_TIMESTAMPING.
Result<SockOpts> ReadSockOpts(int sk);
// Sets o on sk, a socket just created: buffer sizes only where a new
// socket has others (setting them disables nothing netlink or packet
// sockets tune), SO_RCVBUFFORCE/SO_SNDBUFFORCE with half the value; the
// filter is attached and locked last.
Status SetSockOpts(int sk, const SockOpts& o);

// setsockopt(SO_SNDBUFFORCE or SO_RCVBUFFORCE, half): past [rw]mem_max.
// FORCE needs CAP_NET_ADMIN in the initial user namespace, which a task
// restoring inside a user namespace of the tree's own lacks: then the
// plain option, capped as the tree's own calls were (criu/ns/user_ns.h).
Status SetBufForce(int sk, int force_opt, int half, const char* name);

// A BPF instruction as one number (code | jt << 16 | jf << 24 | k << 32),
// the way the images keep filters.
inline uint64_t PackInsn(const sock_filter& f) {
  return uint64_t(f.code) | uint64_t(f.jt) << 16 | uint64_t(f.jf) << 24 | uint64_t(f.k) << 32;
}
inline sock_filter UnpackInsn(uint64_t v) {
  return sock_filter{uint16_t(v & 0xffff), uint8_t(v >> 16), uint8_t(v >> 24), uint32_t(v >> 32)};
}

// The same SOL_SOCKET fields in pb::NetlinkSkEntry and pb::PacketSkEntry.
template <class E>
void SockOptsToPb(const SockOpts& o, E* e) {
  e->set_rcvbuf(o.rcvbuf);
  e->set_sndbuf(o.sndbuf);
  if (o.passcred) e->set_passcred(true);
  if (o.priority) e->set_priority(o.priority);
  if (o.mark) e->set_mark(o.mark);
  if (o.timestamp) e->set_so_timestamp(true);
  if (o.timestampns) e->set_so_timestampns(true);
  if (o.rcvtimeo_us) e->set_rcvtimeo_us(o.rcvtimeo_us);
  if (o.sndtimeo_us) e->set_sndtimeo_us(o.sndtimeo_us);
  for (const sock_filter& f : o.filter) e->add_filter(PackInsn(f));
  if (o.filter_locked) e->set_filter_locked(true);
}

template <class E>
SockOpts SockOptsFromPb(const E& e) {
  SockOpts o;
  o.rcvbuf = e.rcvbuf();
  o.sndbuf = e.sndbuf();
  o.passcred = e.passcred();
  o.priority = e.priority();
  o.mark = e.mark();
  o.timestamp = e.so_timestamp();
  o.timestampns = e.so_timestampns();
  o.rcvtimeo_us = e.rcvtimeo_us();
  o.sndtimeo_us = e.sndtimeo_us();
  for (uint64_t v : e.filter()) o.filter.push_back(UnpackInsn(v));
  o.filter_locked = e.filter_locked();
  return o;
}

// What validate() checks of those fields: a filter the kernel could hold
// (at most BPF_MAXINSNS instructions; a lock only on a filter).
Status ValidateSockOpts(const SockOpts& o);

}  // namespace ckpt::files
