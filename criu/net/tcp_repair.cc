#include "criu/net/tcp_repair.h"

#include <arpa/inet.h>
#include <linux/in6.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/net/netlock.h"

namespace ckpt::net {
namespace {

// TCP option kinds for TCP_REPAIR_OPTIONS (RFC 793/7323/2018 numbers).
constexpr uint32_t kOptMss = 2, kOptWindow = 3, kOptSackPerm = 4, kOptTimestamp = 8;

bool FinSent(int state) {
  return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
         state == TCP_LAST_ACK;
}
bool FinReceived(int state) {
  return state == TCP_CLOSE_WAIT || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

Status SetInt(int fd, int level, int opt, int v, const std::string& what, const char* name) {
  if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0) return Error::Errno(what + ": " + name);
  return Ok();
}

Result<uint32_t> QueueSeq(int fd, int queue, const std::string& what) {
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, what, "TCP_REPAIR_QUEUE"));
  uint32_t seq = 0;
  socklen_t len = sizeof(seq);
  if (getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) < 0)
    return Error::Errno(what + ": TCP_QUEUE_SEQ");
  return seq;
}

// Peeks `want` bytes of the selected queue (repair mode). The receive
// queue is peeked from the program's read position: SO_PEEK_OFF, if the
// program uses it, is moved to 0 for the peek and put back.
Result<std::string> PeekQueue(int fd, int queue, size_t want, const std::string& what) {
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, what, "TCP_REPAIR_QUEUE"));
  std::string out;
  if (want == 0) return out;
  out.resize(want);
  int peek_off = -1;
  socklen_t len = sizeof(peek_off);
  bool recvq = queue == TCP_RECV_QUEUE;
  if (recvq) {
    if (getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &peek_off, &len) < 0) peek_off = -1;
    if (peek_off >= 0) TRY(SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, 0, what, "SO_PEEK_OFF"));
  }
  size_t got = 0;
  Status st = Ok();
  // The send queue is copied whole by one peek; the receive queue too,
  // unless it stops at a boundary: then SO_PEEK_OFF steps through it.
  while (got < want) {
    ssize_t n = recv(fd, out.data() + got, want - got, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = n < 0 ? Error::Errno(what + ": peeking the " + (recvq ? "receive" : "send") + " queue")
                 : Error(what + ": the " + std::string(recvq ? "receive" : "send") +
                         " queue ended after " + std::to_string(got) + " of " +
                         std::to_string(want) + " bytes");
      break;
    }
    got += size_t(n);
    if (got < want && !recvq) {
      st = Error(what + ": short peek of the send queue");
      break;
    }
    if (got < want && peek_off < 0) {
      // Step on with a peek offset from here.
      Status s = SetInt(fd, SOL_SOCKET, SO_PEEK_OFF, int(got), what, "SO_PEEK_OFF");
      if (!s.ok()) {
        st = std::move(s);
        break;
      }
      peek_off = -2;  // put back to "off" afterwards
    }
  }
  if (recvq && peek_off != -1) {
    int back = peek_off == -2 ? -1 : peek_off;
    (void)setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &back, sizeof(back));
  }
  TRY(st);
  return out;
}

// Writes into the selected queue of a socket in repair mode, all of it.
Status FillQueue(int fd, int queue, const std::string& data, const std::string& what) {
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, what, "TCP_REPAIR_QUEUE"));
  const char* name = queue == TCP_RECV_QUEUE ? "receive" : "send";
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Error::Errno(what + ": refilling the " + std::string(name) + " queue (" +
                          std::to_string(done) + " of " + std::to_string(data.size()) + " bytes)");
    done += size_t(n);
  }
  return Ok();
}

// The kernel checks the send buffer only when a send needs a new skb, so a
// program's send queue may hold up to one skb (64 KiB with GSO) more than
// SO_SNDBUF, and our sends lay the bytes out in skbs of their own: refilled
// into the dumped SO_SNDBUF they need not fit, and nothing would make room
// (the peer acknowledges nothing before the restore is over: the lock, an
// address not announced yet, a closed window). So the limit is lifted while
// ckpt writes the send queue and put back after (PutSndbuf), the queue
// then over it as the program's was: its next send waits for the peer to
// take some, as it would have. Returns SO_SNDBUF as it was.
Result<int> LiftSndbuf(int fd, const std::string& what) {
  int was = 0;
  socklen_t len = sizeof(was);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &was, &len) < 0)
    return Error::Errno(what + ": SO_SNDBUF");
  TRY(SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, INT_MAX / 2, what, "SO_SNDBUFFORCE"));
  return was;
}

// SO_SNDBUF back to `was` (getsockopt's value, which setsockopt doubles).
Status PutSndbuf(int fd, int was, const std::string& what) {
  return SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, was / 2, what, "SO_SNDBUFFORCE");
}

uint16_t Checksum(const std::vector<uint8_t>& pseudo, const uint8_t* seg, size_t len) {
  uint32_t sum = 0;
  auto add = [&sum](const uint8_t* p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
    if (n & 1) sum += uint32_t(p[n - 1] << 8);
  };
  add(pseudo.data(), pseudo.size());
  add(seg, len);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(uint16_t(~sum));
}

// The peer's FIN, as the peer would have sent it: a bare FIN|ACK segment
// from the peer's address and port to ours, at our rcv_nxt, sent through a
// raw socket and marked so the network lock lets it pass. No timestamp
// option: the restored socket has no ts_recent yet, so any value we made
// up could make it refuse the peer's real segments later (PAWS).
Status InjectFin(int fd, int family, const sockaddr* dst, const pb::TcpStreamEntry& e,
                 uint32_t snd_una, const std::string& what) {
  sockaddr_storage local = {};
  socklen_t llen = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) < 0)
    return Error::Errno(what + ": getsockname");
  uint8_t tcp[20] = {};
  uint16_t sport, dport;  // the peer's, ours
  const uint8_t *saddr, *daddr;
  size_t alen;
  if (family == AF_INET) {
    auto* p = reinterpret_cast<const sockaddr_in*>(dst);
    auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    sport = p->sin_port, dport = l->sin_port;
    saddr = reinterpret_cast<const uint8_t*>(&p->sin_addr);
    daddr = reinterpret_cast<const uint8_t*>(&l->sin_addr);
    alen = 4;
  } else {
    auto* p = reinterpret_cast<const sockaddr_in6*>(dst);
    auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    sport = p->sin6_port, dport = l->sin6_port;
    saddr = reinterpret_cast<const uint8_t*>(&p->sin6_addr);
    daddr = reinterpret_cast<const uint8_t*>(&l->sin6_addr);
    alen = 16;
  }
  uint32_t seq = htonl(e.rcv_seq() - 1), ack = htonl(snd_una);
  memcpy(tcp + 0, &sport, 2);
  memcpy(tcp + 2, &dport, 2);
  memcpy(tcp + 4, &seq, 4);
  memcpy(tcp + 8, &ack, 4);
  tcp[12] = 5 << 4;       // data offset: 5 words, no options
  tcp[13] = 0x01 | 0x10;  // FIN | ACK
  uint32_t wnd = e.snd_wnd() >> (e.opt_mask() & TCPI_OPT_WSCALE ? e.snd_wscale() : 0);
  uint16_t w = htons(uint16_t(wnd > 0xffff ? 0xffff : wnd));
  memcpy(tcp + 14, &w, 2);
  std::vector<uint8_t> pseudo(saddr, saddr + alen);
  pseudo.insert(pseudo.end(), daddr, daddr + alen);
  if (family == AF_INET) {
    pseudo.insert(pseudo.end(), {0, IPPROTO_TCP, 0, sizeof(tcp)});
  } else {
    pseudo.insert(pseudo.end(), {0, 0, 0, sizeof(tcp), 0, 0, 0, IPPROTO_TCP});
  }
  uint16_t sum = Checksum(pseudo, tcp, sizeof(tcp));
  memcpy(tcp + 16, &sum, 2);

  std::vector<uint8_t> pkt;
  sockaddr_storage to = {};
  socklen_t tolen;
  UniqueFd raw(socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!raw) return Error::Errno(what + ": raw socket for the peer's FIN");
  if (family == AF_INET) {
    ip h = {};
    h.ip_v = 4;
    h.ip_hl = 5;
    h.ip_ttl = 64;
    h.ip_p = IPPROTO_TCP;
    h.ip_len = htons(sizeof(h) + sizeof(tcp));
    memcpy(&h.ip_src, saddr, 4);
    memcpy(&h.ip_dst, daddr, 4);
    pkt.assign(reinterpret_cast<uint8_t*>(&h), reinterpret_cast<uint8_t*>(&h) + sizeof(h));
    auto* t = reinterpret_cast<sockaddr_in*>(&to);
    t->sin_family = AF_INET;
    memcpy(&t->sin_addr, daddr, 4);
    tolen = sizeof(*t);
  } else {
    ip6_hdr h = {};
    h.ip6_flow = htonl(6u << 28);
    h.ip6_plen = htons(sizeof(tcp));
    h.ip6_nxt = IPPROTO_TCP;
    h.ip6_hlim = 64;
    memcpy(&h.ip6_src, saddr, 16);
    memcpy(&h.ip6_dst, daddr, 16);
    pkt.assign(reinterpret_cast<uint8_t*>(&h), reinterpret_cast<uint8_t*>(&h) + sizeof(h));
    auto* t = reinterpret_cast<sockaddr_in6*>(&to);
    t->sin6_family = AF_INET6;
    memcpy(&t->sin6_addr, daddr, 16);
    t->sin6_scope_id = reinterpret_cast<const sockaddr_in6*>(&local)->sin6_scope_id;
    tolen = sizeof(*t);
    // IPPROTO_RAW v6 sockets send the header we give (IPV6_HDRINCL).
    int one = 1;
    (void)setsockopt(raw.get(), IPPROTO_IPV6, IPV6_HDRINCL, &one, sizeof(one));
  }
  pkt.insert(pkt.end(), tcp, tcp + sizeof(tcp));
  uint32_t mark = kLockBypassMark;
  if (setsockopt(raw.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
    return Error::Errno(what + ": SO_MARK on the raw socket");
  if (sendto(raw.get(), pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&to), tolen) < 0)
    return Error::Errno(what + ": sending the peer's FIN");
  // Delivery over loopback or a local device happens in the send path's
  // softirq; give the stack a moment and check the socket saw it.
  for (int i = 0; i < 200; i++) {
    tcp_info ti = {};
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        (ti.tcpi_state == TCP_CLOSE_WAIT || ti.tcpi_state == TCP_CLOSING ||
         ti.tcpi_state == TCP_LAST_ACK || ti.tcpi_state == TCP_TIME_WAIT ||
         ti.tcpi_state == TCP_CLOSE))
      return Ok();
    usleep(1000);
  }
  return Error(what + ": the restored socket did not take the peer's FIN");
}

}  // namespace

bool IsRepairableState(int state) {
  return state == TCP_ESTABLISHED || FinSent(state) || FinReceived(state);
}

Status EnterRepair(int fd, const std::string& what) {
  return SetInt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, what, "TCP_REPAIR on");
}

Status LeaveRepair(int fd, bool reuseaddr, bool probe, const std::string& what) {
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR, probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP, what,
             "TCP_REPAIR off"));
  return SetInt(fd, SOL_SOCKET, SO_REUSEADDR, reuseaddr ? 1 : 0, what, "SO_REUSEADDR");
}

Result<pb::TcpStreamEntry> ReadTcpStream(int fd, int state, const std::string& what) {
  pb::TcpStreamEntry e;
  int outq = 0, unsent = 0;
  if (ioctl(fd, SIOCOUTQ, &outq) < 0) return Error::Errno(what + ": SIOCOUTQ");
  if (ioctl(fd, SIOCOUTQNSD, &unsent) < 0) return Error::Errno(what + ": SIOCOUTQNSD");
  TRY_ASSIGN(uint32_t snd_seq, QueueSeq(fd, TCP_SEND_QUEUE, what));
  TRY_ASSIGN(uint32_t rcv_seq, QueueSeq(fd, TCP_RECV_QUEUE, what));
  int inq = 0;
  if (ioctl(fd, SIOCINQ, &inq) < 0) return Error::Errno(what + ": SIOCINQ");
  // The FINs take a sequence number each but are not bytes of a queue.
  bool fin_sent = FinSent(state), fin_rcvd = FinReceived(state);
  size_t out_bytes = size_t(outq);
  if (fin_sent && out_bytes > 0) out_bytes--;  // FIN not yet acknowledged
  TRY_ASSIGN(std::string sndq, PeekQueue(fd, TCP_SEND_QUEUE, out_bytes, what));
  TRY_ASSIGN(std::string rcvq, PeekQueue(fd, TCP_RECV_QUEUE, size_t(inq), what));
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, what, "TCP_REPAIR_QUEUE"));

  tcp_info ti = {};
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
    return Error::Errno(what + ": TCP_INFO");
  int mss = 0;
  len = sizeof(mss);
  if (getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len) < 0)
    return Error::Errno(what + ": TCP_MAXSEG");
  e.set_snd_seq(snd_seq);
  e.set_rcv_seq(rcv_seq);
  e.set_inq_len(uint32_t(rcvq.size()));
  e.set_outq_len(uint32_t(sndq.size()));
  size_t unsq = fin_sent && unsent > 0 ? size_t(unsent) - 1 : size_t(unsent);
  e.set_unsq_len(uint32_t(std::min(unsq, sndq.size())));
  e.set_opt_mask(ti.tcpi_options);
  e.set_snd_wscale(ti.tcpi_snd_wscale);
  e.set_rcv_wscale(ti.tcpi_rcv_wscale);
  e.set_mss(uint32_t(mss));
  if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) {
    uint32_t ts = 0;
    len = sizeof(ts);
    if (getsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, &len) < 0)
      return Error::Errno(what + ": TCP_TIMESTAMP");
    e.set_timestamp(ts);
  }
  tcp_repair_window w = {};
  len = sizeof(w);
  if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) < 0)
    return Error::Errno(what + ": TCP_REPAIR_WINDOW");
  e.set_snd_wl1(w.snd_wl1);
  e.set_snd_wnd(w.snd_wnd);
  e.set_max_window(w.max_window);
  e.set_rcv_wnd(w.rcv_wnd);
  e.set_rcv_wup(w.rcv_wup);
  if (!rcvq.empty()) e.set_inq(std::move(rcvq));
  if (!sndq.empty()) e.set_outq(std::move(sndq));
  if (fin_sent) e.set_fin_sent(true);
  if (fin_rcvd) e.set_fin_received(true);
  LOG_DBG(what + ": snd_seq " + std::to_string(snd_seq) + " rcv_seq " + std::to_string(rcv_seq) +
          ", " + std::to_string(e.inq_len()) + " bytes unread, " + std::to_string(e.outq_len()) +
          " unacknowledged (" + std::to_string(e.unsq_len()) + " never sent), mss " +
          std::to_string(mss) + ", options " + std::to_string(ti.tcpi_options));
  return e;
}

Status RestoreTcpStream(int fd, int family, const sockaddr* dst, socklen_t dst_len,
                        const pb::TcpStreamEntry& e, const std::string& what) {
  if (e.inq().size() != e.inq_len() || e.outq().size() != e.outq_len() ||
      e.unsq_len() > e.outq_len())
    return Error(what + ": queue lengths do not match the queued bytes");
  bool fin_sent = e.fin_sent(), fin_rcvd = e.fin_received();
  // Sequence numbers of the first byte of each queue (FINs come after).
  uint32_t snd_start = e.snd_seq() - e.outq_len() - (fin_sent ? 1 : 0);
  uint32_t rcv_start = e.rcv_seq() - e.inq_len() - (fin_rcvd ? 1 : 0);
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, what, "TCP_REPAIR_QUEUE"));
  if (setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &snd_start, sizeof(snd_start)) < 0)
    return Error::Errno(what + ": TCP_QUEUE_SEQ (send)");
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE, what, "TCP_REPAIR_QUEUE"));
  if (setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &rcv_start, sizeof(rcv_start)) < 0)
    return Error::Errno(what + ": TCP_QUEUE_SEQ (receive)");
  if (e.has_timestamp()) {
    uint32_t ts = e.timestamp();
    if (setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &ts, sizeof(ts)) < 0)
      return Error::Errno(what + ": TCP_TIMESTAMP");
  }
  // connect() computes the MSS the socket sends with (mss_cache) from the
  // MSS clamp, on a new socket the 536-byte default; the clamp that
  // TCP_REPAIR_OPTIONS sets below does not recompute it, so the connection
  // would go on with 524-byte segments (and skbs of 125 x 524 bytes in the
  // send queue) until the kernel happens to resync it. A user MSS
  // (TCP_MAXSEG) before connect() is the clamp connect() uses (TCP_MAXSEG
  // takes at most 32767: above, as on loopback, the segments are at least
  // that big); it is cleared after (the dump cannot read a program's own
  // TCP_MAXSEG on a connected socket, so the restored one never has any).
  if (e.mss())
    TRY(SetInt(fd, IPPROTO_TCP, TCP_MAXSEG, int(std::min<uint32_t>(e.mss(), 32767)), what,
               "TCP_MAXSEG"));
  if (connect(fd, dst, dst_len) < 0) {
    int err = errno;
    if (err == EADDRINUSE || err == EADDRNOTAVAIL)
      return Error::Errno(what + ": the connection cannot be recreated here", err);
    return Error::Errno(what + ": connect in repair mode", err);
  }
  if (e.mss()) TRY(SetInt(fd, IPPROTO_TCP, TCP_MAXSEG, 0, what, "TCP_MAXSEG"));
  tcp_repair_opt opts[4];
  int n = 0;
  opts[n++] = {kOptMss, e.mss()};
  if (e.opt_mask() & TCPI_OPT_WSCALE)
    opts[n++] = {kOptWindow, e.snd_wscale() | e.rcv_wscale() << 16};
  if (e.opt_mask() & TCPI_OPT_SACK) opts[n++] = {kOptSackPerm, 0};
  if (e.opt_mask() & TCPI_OPT_TIMESTAMPS) opts[n++] = {kOptTimestamp, 0};
  if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, socklen_t(n * sizeof(opts[0]))) < 0)
    return Error::Errno(what + ": TCP_REPAIR_OPTIONS");
  TRY(FillQueue(fd, TCP_RECV_QUEUE, e.inq(), what));
  // Bytes the peer may already have seen go in as sent (the kernel
  // retransmits them until acknowledged). In the FIN-sent states the FIN
  // follows every byte, so all of them go in before it.
  size_t sent = fin_sent ? e.outq_len() : e.outq_len() - e.unsq_len();
  int sndbuf = 0;
  if (sent) {
    TRY_ASSIGN(sndbuf, LiftSndbuf(fd, what));
  }
  TRY(FillQueue(fd, TCP_SEND_QUEUE, e.outq().substr(0, sent), what));
  if (sent) TRY(PutSndbuf(fd, sndbuf, what));
  if (fin_sent) {
    // With the send queue selected, the FIN is queued as sent, not sent.
    TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE, what, "TCP_REPAIR_QUEUE"));
    if (shutdown(fd, SHUT_WR) < 0) return Error::Errno(what + ": replaying our FIN");
  }
  if (fin_rcvd) TRY(InjectFin(fd, family, dst, e, snd_start, what));
  // Last: the kernel checks the window against rcv_nxt, which the refilled
  // queue and the peer's FIN have only now brought to its dumped value.
  if (e.has_snd_wnd()) {
    tcp_repair_window w = {e.snd_wl1(), e.snd_wnd(), e.max_window(), e.rcv_wnd(), e.rcv_wup()};
    if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
      return Error::Errno(what + ": TCP_REPAIR_WINDOW");
  }
  TRY(SetInt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, what, "TCP_REPAIR_QUEUE"));
  return Ok();
}

Status FinishTcpStream(int fd, const pb::TcpStreamEntry& e, bool reuseaddr,
                       const std::string& what) {
  TRY(LeaveRepair(fd, reuseaddr, true, what));
  if (e.fin_sent() || e.unsq_len() == 0) return Ok();
  // Never sent: the program's write(2) just happened a little later.
  const std::string& q = e.outq();
  size_t done = q.size() - e.unsq_len();
  TRY_ASSIGN(int sndbuf, LiftSndbuf(fd, what));
  while (done < q.size()) {
    ssize_t n = send(fd, q.data() + done, q.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p = {fd, POLLOUT, 0};
      if (poll(&p, 1, 5000) <= 0)
        return Error(what + ": the unsent bytes do not fit the send buffer");
      continue;
    }
    if (n <= 0) return Error::Errno(what + ": sending the bytes never sent");
    done += size_t(n);
  }
  return PutSndbuf(fd, sndbuf, what);
}

}  // namespace ckpt::net
