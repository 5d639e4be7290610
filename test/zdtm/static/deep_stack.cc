// deep_stack: recursion 32768 frames deep (about 4 MiB of stack), every
// frame holding its own values; the process waits at the deepest point and
// every frame re-checks its values (and its saved frame address) while the
// recursion unwinds.
#include <cstring>

#include "zdtm.h"

namespace {
constexpr int kDepth = 32768;
constexpr int kWords = 12;
uint64_t g_seed;
long g_bad_frames = 0;
int g_first_bad = -1;

uint64_t value(int depth, int i) { return zdtm_mix(g_seed + depth, i); }

// noinline + work after the call: no tail call, one real frame per level.
__attribute__((noinline)) void recurse(int depth) {
  volatile uint64_t local[kWords];
  for (int i = 0; i < kWords; i++) local[i] = value(depth, i);
  volatile uintptr_t self = reinterpret_cast<uintptr_t>(&local[0]);

  if (depth + 1 < kDepth) {
    recurse(depth + 1);
  } else {
    test_msg("deepest frame %d at %p", depth, static_cast<void*>(const_cast<uint64_t*>(&local[0])));
    test_ready();
    test_wait();
  }

  bool ok = self == reinterpret_cast<uintptr_t>(&local[0]);
  for (int i = 0; i < kWords; i++) ok = ok && local[i] == value(depth, i);
  if (!ok) {
    g_bad_frames++;
    g_first_bad = depth;  // unwinding: the last one set is the shallowest
  }
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  recurse(0);
  if (g_bad_frames)
    fail("%ld of %d frames corrupted (shallowest: depth %d)", g_bad_frames, kDepth, g_first_bad);
  pass();
}
