// The numbered record stream of the sk_tcp_migrate test, shared by the
// victim (sk_tcp_migrate.cc) and its peer server (sk_tcp_migrate_run.cc).
//
// Each direction of the connection carries 8-byte records; record i is
// (tag << 56) | i in host byte order (both ends run on this machine), the
// tag naming the sender ('V' victim, 'P' peer). A receiver checks every
// record against the next number it expects, so a lost, repeated or
// reordered byte shows at the first wrong record, with both numbers.
//
// Sender and Receiver never block: they move what the socket takes or has
// and keep a partly sent or received record for the next call.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace tcpm {

constexpr uint64_t kVictimTag = 'V', kPeerTag = 'P';
constexpr uint64_t kIndexMask = (1ull << 56) - 1;
constexpr size_t kMaxBurst = 512;  // records per Sender::Pump call

inline uint64_t Record(uint64_t tag, uint64_t i) { return tag << 56 | (i & kIndexMask); }

class Sender {
 public:
  explicit Sender(uint64_t tag) : tag_(tag) {}

  // Sends what is left of a partly sent record, then up to n (at most
  // kMaxBurst) new records. Returns 0, or the errno of a failed send other
  // than EAGAIN/EINTR.
  int Pump(int fd, size_t n) {
    unsigned char buf[8 * (kMaxBurst + 1)];
    size_t head = part_off_ < 8 ? 8 - part_off_ : 0;
    memcpy(buf, part_ + part_off_, head);
    if (n > kMaxBurst) n = kMaxBurst;
    for (size_t k = 0; k < n; k++) {
      uint64_t r = Record(tag_, started_ + k);
      memcpy(buf + head + 8 * k, &r, 8);
    }
    size_t len = head + 8 * n;
    if (len == 0) return 0;
    ssize_t w = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EINTR ? 0 : errno;
    size_t done = size_t(w);
    if (done < head) {
      part_off_ += done;
      return 0;
    }
    done -= head;
    part_off_ = 8;
    started_ += done / 8;
    if (done % 8) {
      uint64_t r = Record(tag_, started_);
      memcpy(part_, &r, 8);
      part_off_ = done % 8;
      started_++;
    }
    return 0;
  }

  // Whether no record is partly sent.
  bool Flushed() const { return part_off_ >= 8; }
  // Records wholly handed to the kernel.
  uint64_t sent() const { return Flushed() ? started_ : started_ - 1; }

 private:
  uint64_t tag_;
  uint64_t started_ = 0;  // records of which at least one byte was sent
  unsigned char part_[8] = {};
  size_t part_off_ = 8;  // bytes of part_ already sent; 8 = none pending
};

class Receiver {
 public:
  enum Result { kOk, kEof, kError };

  explicit Receiver(uint64_t tag) : tag_(tag) {}

  // Reads and checks what the socket holds, at most max_bytes (and a
  // bounded number of reads). kEof at the end of the stream (error() says if it ended inside a
  // record), kError on a failed recv (err() is its errno) or a wrong
  // record (err() is 0, error() says which).
  Result Pump(int fd, size_t max_bytes = SIZE_MAX) {
    unsigned char buf[65536 + 8];
    for (int reads = 0; reads < 64 && max_bytes > 0; reads++) {
      memcpy(buf, part_, part_len_);
      size_t want = sizeof(buf) - 8 < max_bytes ? sizeof(buf) - 8 : max_bytes;
      ssize_t r = recv(fd, buf + part_len_, want, MSG_DONTWAIT);
      if (r == 0) {
        if (part_len_) error_ = "the stream ended inside record " + std::to_string(received_);
        return kEof;
      }
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return kOk;
        err_ = errno;
        error_ = std::string("recv: ") + strerror(errno);
        return kError;
      }
      max_bytes -= size_t(r);
      size_t len = part_len_ + size_t(r), off = 0;
      for (; off + 8 <= len; off += 8) {
        uint64_t got, want = Record(tag_, received_);
        memcpy(&got, buf + off, 8);
        if (got != want) {
          char msg[200];
          snprintf(msg, sizeof(msg),
                   "record %llu is %#llx, expected %#llx (a lost, repeated or reordered byte)",
                   (unsigned long long)received_, (unsigned long long)got,
                   (unsigned long long)want);
          error_ = msg;
          return kError;
        }
        received_++;
      }
      part_len_ = len - off;
      memcpy(part_, buf + off, part_len_);
    }
    return kOk;
  }

  uint64_t received() const { return received_; }
  int err() const { return err_; }
  const std::string& error() const { return error_; }

 private:
  uint64_t tag_;
  uint64_t received_ = 0;  // whole records checked
  unsigned char part_[8] = {};
  size_t part_len_ = 0;
  int err_ = 0;
  std::string error_;
};

}  // namespace tcpm
