// libnl plumbing for the network-namespace code: answers are matched by
// sequence number here (libnl's own check is off, so a stale answer of an
// earlier request can never be taken for the current one).
#include "criu/ns/netlink_util.h"

#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <sched.h>
#include <sys/socket.h>

#include <thread>

namespace ckpt::ns {
namespace {

struct MsgFree {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
struct CbFree {
  void operator()(nl_cb* c) const { nl_cb_put(c); }
};

// The state of one request while its answers are read.
struct Wait {
  uint32_t seq = 0;
  bool done = false;
  int err = 0;      // the kernel's errno
  std::string ext;  // its extended-ack message
  const std::function<Status(nlmsghdr*)>* each = nullptr;
  Status each_status;
};

std::string ExtAck(const nlmsgerr* e) {
  const auto* h =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(e) - NLMSG_HDRLEN);
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
  if (off > h->nlmsg_len) return "";
  const char* p = reinterpret_cast<const char*>(h) + off;
  int left = int(h->nlmsg_len - off);
  for (auto* a = reinterpret_cast<const nlattr*>(p); nla_ok(a, left); a = nla_next(a, &left)) {
    if (nla_type(a) == NLMSGERR_ATTR_MSG && nla_len(a) > 0)
      return std::string(static_cast<const char*>(nla_data(a)),
                         strnlen(static_cast<const char*>(nla_data(a)), nla_len(a)));
  }
  return "";
}

int OnError(sockaddr_nl*, nlmsgerr* e, void* arg) {
  auto* w = static_cast<Wait*>(arg);
  if (e->msg.nlmsg_seq != w->seq) return NL_SKIP;  // an earlier request's answer
  w->err = -e->error;
  w->ext = ExtAck(e);
  w->done = true;
  return NL_STOP;
}

int OnAck(nl_msg* m, void* arg) {
  auto* w = static_cast<Wait*>(arg);
  if (nlmsg_hdr(m)->nlmsg_seq != w->seq) return NL_SKIP;
  w->done = true;
  return NL_STOP;
}

int OnFinish(nl_msg* m, void* arg) {
  auto* w = static_cast<Wait*>(arg);
  if (nlmsg_hdr(m)->nlmsg_seq != w->seq) return NL_SKIP;
  w->done = true;
  return NL_STOP;
}

int OnValid(nl_msg* m, void* arg) {
  auto* w = static_cast<Wait*>(arg);
  nlmsghdr* h = nlmsg_hdr(m);
  if (h->nlmsg_seq != w->seq || !w->each || !w->each_status.ok()) return NL_SKIP;
  w->each_status = (*w->each)(h);
  return NL_OK;
}

// Reads answers until the request `w` is finished (ack, error or end of dump).
Status ReadAnswers(nl_sock* sk, Wait& w, const std::string& what) {
  std::unique_ptr<nl_cb, CbFree> cb(nl_cb_alloc(NL_CB_DEFAULT));
  if (!cb) return Error("out of memory", ENOMEM);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, OnError, &w);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, OnAck, &w);
  nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, OnFinish, &w);
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, OnValid, &w);
  // Bounded: every pass consumes at least one datagram; the kernel answers
  // a request it has already handled, so this cannot wait forever.
  for (int pass = 0; !w.done; pass++) {
    int r = nl_recvmsgs(sk, cb.get());
    if (w.done) break;
    if (r < 0 && r != -NLE_INTR && r != -NLE_AGAIN)
      return NlError(what + ": reading the answer", r);
    if (pass > 1000000) return Error(what + ": no end to the kernel's answer", EPROTO);
  }
  if (!w.each_status.ok()) return w.each_status;
  if (w.err) {
    Error e = Error::Errno(what, w.err);
    if (!w.ext.empty()) e = Error(e.message() + " (" + w.ext + ")", w.err);
    return e;
  }
  return Ok();
}

}  // namespace

Status RunInNetns(int nsfd, const std::function<Status()>& fn) {
  Status st;
  std::thread t([&] {
    if (setns(nsfd, CLONE_NEWNET) < 0) {
      st = Error::Errno("entering the network namespace");
      return;
    }
    st = fn();
  });
  t.join();
  return st;
}

Status RunInNewNetns(const std::function<Status()>& fn) {
  Status st;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) < 0) {
      st = Error::Errno("unshare(CLONE_NEWNET)");
      return;
    }
    st = fn();
  });
  t.join();
  return st;
}

Result<NlSock> OpenRtnl() {
  NlSock sk(nl_socket_alloc());
  if (!sk) return Error("allocating a netlink socket", ENOMEM);
  nl_socket_disable_seq_check(sk.get());
  nl_socket_disable_auto_ack(sk.get());  // RtnlSend asks for acks itself
  int r = nl_connect(sk.get(), NETLINK_ROUTE);
  if (r < 0) return NlError("rtnetlink socket", r);
  int one = 1;
  // Errors carry the kernel's explanation; answers to a big dump fit.
  (void)setsockopt(nl_socket_get_fd(sk.get()), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)setsockopt(nl_socket_get_fd(sk.get()), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  (void)nl_socket_set_buffer_size(sk.get(), 1 << 20, 1 << 20);
  nl_socket_set_msg_buf_size(sk.get(), 64 * 1024);
  return sk;
}

Error NlError(const std::string& what, int nlerr) {
  return Error(what + ": " + nl_geterror(nlerr), EIO);
}

Status RtnlSend(nl_sock* sk, nl_msg* raw, const std::string& what,
                const std::function<Status(nlmsghdr*)>* each) {
  std::unique_ptr<nl_msg, MsgFree> msg(raw);
  nlmsghdr* h = nlmsg_hdr(msg.get());
  h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nl_complete_msg(sk, msg.get());
  Wait w;
  w.seq = h->nlmsg_seq;
  w.each = each;
  int r = nl_send(sk, msg.get());
  if (r < 0) return NlError(what + ": sending", r);
  return ReadAnswers(sk, w, what);
}

Status RtnlRequest(nl_sock* sk, int type, int flags, const void* payload, size_t len,
                   const std::string& what) {
  nl_msg* msg = nlmsg_alloc_simple(type, flags);
  if (!msg || nlmsg_append(msg, const_cast<void*>(payload), len, NLMSG_ALIGNTO) < 0) {
    if (msg) nlmsg_free(msg);
    return Error(what + ": message too big (" + std::to_string(len) + " bytes)", EMSGSIZE);
  }
  return RtnlSend(sk, msg, what);
}

Status RtnlDump(nl_sock* sk, int type, int family, const std::function<Status(nlmsghdr*)>& each) {
  std::string what = "rtnetlink dump " + std::to_string(type) + " family " + std::to_string(family);
  std::unique_ptr<nl_msg, MsgFree> msg(nlmsg_alloc_simple(type, NLM_F_REQUEST | NLM_F_DUMP));
  if (!msg) return Error("out of memory", ENOMEM);
  rtgenmsg g = {};
  g.rtgen_family = uint8_t(family);
  if (nlmsg_append(msg.get(), &g, sizeof(g), NLMSG_ALIGNTO) < 0)
    return Error("out of memory", ENOMEM);
  nl_complete_msg(sk, msg.get());
  Wait w;
  w.seq = nlmsg_hdr(msg.get())->nlmsg_seq;
  w.each = &each;
  int r = nl_send(sk, msg.get());
  if (r < 0) return NlError(what + ": sending", r);
  return ReadAnswers(sk, w, what);
}

Result<UniqueFd> OpenOwnNetns() {
  UniqueFd fd(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::Errno("open /proc/thread-self/ns/net");
  return fd;
}

}  // namespace ckpt::ns
