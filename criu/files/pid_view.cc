#include "criu/files/pid_view.h"

#include <unistd.h>

#include <utility>

namespace ckpt::files {
namespace {
PidView g_view;  // per process: each restoring task sets its own
}

void SetPidView(PidView v) { g_view = std::move(v); }

pid_t DumpPidOfSelf() { return g_view.self ? g_view.self : getpid(); }

pid_t ToOwnView(pid_t dump_pid) {
  auto it = g_view.inner.find(dump_pid);
  return it == g_view.inner.end() ? dump_pid : it->second;
}

}  // namespace ckpt::files
