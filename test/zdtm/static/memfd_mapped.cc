// A memfd that is both open (in parent and child) and mapped shared by
// both, sealed against resizing: after restore the fds and the mappings are
// still one object (a write through a child's mapping is read through the
// parent's fd), with its name, size, seals and contents.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kSize = 4 * 4096;
}

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  int fd = memfd_create("zdtm-memfd-mapped", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, kSize) != 0) fail("memfd: %s", strerror(errno));
  auto* m = static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (m == MAP_FAILED) fail("mmap: %s", strerror(errno));
  for (size_t i = 0; i < kSize; i++) m[i] = uint8_t(zdtm_mix(seed, i));
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) fail("seal: %s", strerror(errno));
  if (lseek(fd, 1234, SEEK_SET) != 1234) fail("lseek");

  pid_t child = fork();
  if (child == 0) {
    test_wait();
    // Write through the mapping: the parent reads it through its fd.
    for (size_t i = 0; i < kSize; i++) m[i] = uint8_t(zdtm_mix(seed + 1, i));
    _exit(0);
  }
  test_ready();
  test_wait();

  if (lseek(fd, 0, SEEK_CUR) != 1234) fail("fd offset changed");
  if (fcntl(fd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) fail("seals changed");
  char target[256] = {};
  if (readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), target, sizeof(target) - 1) < 0 ||
      strcmp(target, "/memfd:zdtm-memfd-mapped (deleted)") != 0)
    fail("fd now points at '%s'", target);
  for (size_t i = 0; i < kSize; i++)
    if (m[i] != uint8_t(zdtm_mix(seed, i))) fail("mapped contents changed at %zu", i);
  kill(child, SIGTERM);
  int st;
  if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("child failed");
  uint8_t buf[kSize];
  if (pread(fd, buf, kSize, 0) != ssize_t(kSize)) fail("pread: %s", strerror(errno));
  for (size_t i = 0; i < kSize; i++)
    if (buf[i] != uint8_t(zdtm_mix(seed + 1, i)))
      fail("the child's write through its mapping is not in the parent's fd: two objects");
  if (ftruncate(fd, kSize * 2) == 0) fail("F_SEAL_GROW no longer holds");
  pass();
}
