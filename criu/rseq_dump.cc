#include "criu/rseq_dump.h"

#include <sys/ptrace.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "base/log.h"
#include "compel/regs.h"

namespace ckpt {
namespace {

// PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13) and what it fills.
constexpr int kPtraceGetRseqConfiguration = 0x420f;
struct RseqConfig {
  uint64_t ptr;
  uint32_t size, signature, flags, pad;
};
// struct rseq_cs of the uapi (include/uapi/linux/rseq.h).
struct RseqCs {
  uint32_t version, flags;
  uint64_t start_ip, post_commit_offset, abort_ip;
};
constexpr uint64_t kRseqCsOffset = 8;  // offsetof(struct rseq, rseq_cs)

std::string Hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof(b), "%#llx", static_cast<unsigned long long>(v));
  return b;
}

bool ReadAt(int fd, uint64_t addr, void* buf, size_t len) {
  return pread(fd, buf, len, off_t(addr)) == ssize_t(len);
}

// The registration; ptr 0 when there is none (or no such ptrace request).
Result<RseqConfig> ReadConfig(pid_t tid) {
  RseqConfig cfg = {};
  long r = ptrace(__ptrace_request(kPtraceGetRseqConfiguration), tid, (void*)sizeof(cfg), &cfg);
  if (r < 0 && errno == EIO) return RseqConfig{};  // a kernel without the request (< 5.13)
  if (r < 0)
    return Error::Errno("tid " + std::to_string(tid) + ": rseq: PTRACE_GET_RSEQ_CONFIGURATION");
  if (r < long(offsetof(RseqConfig, flags)))
    return Error("tid " + std::to_string(tid) + ": rseq: short PTRACE_GET_RSEQ_CONFIGURATION");
  return cfg;
}

}  // namespace

Result<std::optional<pb::RseqEntry>> ReadRseqRegistration(pid_t tid) {
  TRY_ASSIGN(RseqConfig cfg, ReadConfig(tid));
  if (!cfg.ptr) return std::optional<pb::RseqEntry>();
  pb::RseqEntry e;
  e.set_ptr(cfg.ptr);
  e.set_size(cfg.size);
  e.set_signature(cfg.signature);
  return std::optional<pb::RseqEntry>(std::move(e));
}

Status AbortRseqCritical(pid_t tid, int mem_fd) {
  std::string who = "tid " + std::to_string(tid) + ": rseq";
  TRY_ASSIGN(RseqConfig cfg, ReadConfig(tid));
  if (!cfg.ptr) return Ok();
  uint64_t cs_ptr = 0;
  if (!ReadAt(mem_fd, cfg.ptr + kRseqCsOffset, &cs_ptr, sizeof(cs_ptr)))
    return Error::Errno(who + ": read rseq_cs at " + Hex(cfg.ptr + kRseqCsOffset));
  if (!cs_ptr) return Ok();
  TRY_ASSIGN(compel::Regs regs, compel::GetRegs(tid), who);
  uint64_t ip = regs.gp.rip;
  RseqCs cs = {};
  if (!ReadAt(mem_fd, cs_ptr, &cs, sizeof(cs))) {
    LOG_WARN(who + ": rseq_cs " + Hex(cs_ptr) + " is unreadable; left as it is");
    return Ok();
  }
  if (ip < cs.start_ip || ip - cs.start_ip >= cs.post_commit_offset) return Ok();
  uint32_t sig = 0;
  if (cs.version != 0 || (cs.abort_ip >= cs.start_ip &&
                          cs.abort_ip - cs.start_ip < cs.post_commit_offset) ||
      !ReadAt(mem_fd, cs.abort_ip - 4, &sig, sizeof(sig)) || sig != cfg.signature) {
    LOG_WARN(who + ": stopped at " + Hex(ip) + " in a critical section the kernel would refuse "
             "to abort (rseq_cs " + Hex(cs_ptr) + "); left as it is");
    return Ok();
  }
  // What the kernel's abort does: rseq_cs cleared, then ip at the handler.
  uint64_t zero = 0;
  if (pwrite(mem_fd, &zero, sizeof(zero), off_t(cfg.ptr + kRseqCsOffset)) != sizeof(zero))
    return Error::Errno(who + ": clear rseq_cs");
  regs.gp.rip = cs.abort_ip;
  TRY(compel::SetGpRegs(tid, regs.gp), who + ": move to the abort handler");
  LOG_DBG(who + ": stopped at " + Hex(ip) + " in a critical section: moved to its abort handler " +
          Hex(cs.abort_ip));
  return Ok();
}

}  // namespace ckpt
