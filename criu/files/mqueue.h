// POSIX message queue descriptors (mq_open(3)): mqueue.cc is their fd
// handler. Reading a queue's file (from the mqueue filesystem, or an fd of
// it) gives one status line, parsed here:
//   "QSIZE:129        NOTIFY:0     SIGNO:0     NOTIFY_PID:0     \n"
// QSIZE is the bytes queued, NOTIFY the sigev_notify of an mq_notify
// registration (SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2), SIGNO its
// signal, NOTIFY_PID the registered process as the reader's pid namespace
// sees it (0: no registration).
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace ckpt::files {

inline constexpr long kMqueueMagic = 0x19800202;  // statfs f_type of the mqueue filesystem

struct MqStatus {
  uint64_t qsize = 0;
  int notify = 0;
  int signo = 0;
  int notify_pid = 0;
};

// Fails naming the field on a line that lacks one or holds a non-number.
Result<MqStatus> ParseMqStatus(const std::string& text);

// "SIGEV_SIGNAL (signal 10)", "SIGEV_NONE", "SIGEV_THREAD": for errors.
std::string MqNotifyName(const MqStatus& s);

}  // namespace ckpt::files
