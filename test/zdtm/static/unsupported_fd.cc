// unsupported_fd: a helper for zdtm-errors, not a round-trip test. Holds a
// pidfd of its parent, outside the dumped tree (which ckpt cannot dump:
// criu/files/pidfd.cc) and a unix socketpair with
// queued data, plus a memory pattern. A refused dump must leave it running
// untouched: on SIGTERM it verifies the pattern, the pidfd, and that the
// socketpair still holds its data and carries data both ways.
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kSize = 4ul << 20;
uint64_t g_seed;
uint64_t word(size_t i) { return zdtm_mix(g_seed, i); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) fail("socketpair: %s", strerror(errno));
  int pidfd = int(syscall(SYS_pidfd_open, getppid(), 0));
  if (pidfd < 0) fail("pidfd_open: %s", strerror(errno));
  auto* mem = static_cast<uint64_t*>(
      mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) fail("mmap: %s", strerror(errno));
  for (size_t i = 0; i < kSize / 8; i++) mem[i] = word(i);
  if (write(sv[0], "queued", 6) != 6) fail("socket write: %s", strerror(errno));

  test_ready();
  test_wait();

  for (size_t i = 0; i < kSize / 8; i++)
    if (mem[i] != word(i)) fail("word %zu changed", i);
  pollfd p = {pidfd, POLLIN, 0};
  if (poll(&p, 1, 0) != 0) fail("the pidfd says our parent exited");
  char buf[16] = {};
  if (read(sv[1], buf, 6) != 6 || memcmp(buf, "queued", 6) != 0) fail("queued socket data lost");
  if (write(sv[1], "back", 4) != 4 || read(sv[0], buf, 4) != 4 || memcmp(buf, "back", 4) != 0)
    fail("socketpair no longer carries data");
  pass();
}
