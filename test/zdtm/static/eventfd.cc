// eventfd: a counter of 42 (O_NONBLOCK) and a dup of it, an EFD_SEMAPHORE
// counter of 3, a counter above 2^32. Verifies counters, semaphore reads
// and flags after restore.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
void place(int fd, int num) {
  if (fd < 0) fail("eventfd: %s", strerror(errno));
  if (dup2(fd, num) != num) fail("dup2 %d: %s", num, strerror(errno));
  close(fd);
}
uint64_t get(int fd) {
  uint64_t v = 0;
  if (read(fd, &v, 8) != 8) fail("read eventfd %d: %s", fd, strerror(errno));
  return v;
}
bool readable(int fd) {
  pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  constexpr uint64_t kBig = 0x123456789abull;
  place(eventfd(42, EFD_NONBLOCK), 50);
  place(eventfd(3, EFD_SEMAPHORE), 51);
  place(eventfd(0, 0), 52);
  if (write(52, &kBig, 8) != 8) fail("write big: %s", strerror(errno));
  if (dup2(50, 53) != 53) fail("dup2 53");
  int fl[4];
  for (int i = 0; i < 4; i++) fl[i] = fcntl(50 + i, F_GETFL);

  test_ready();
  test_wait();

  for (int i = 0; i < 4; i++)
    if (fcntl(50 + i, F_GETFL) != fl[i]) fail("fd %d: F_GETFL %#o, want %#o", 50 + i, fcntl(50 + i, F_GETFL), fl[i]);
  std::string info = zdtm_read_file("/proc/self/fdinfo/51");
  if (info.find("eventfd-semaphore: 1") == std::string::npos) fail("fd 51 lost EFD_SEMAPHORE:\n%s", info.c_str());
  if (get(53) != 42) fail("counter of fd 50/53 changed");
  uint64_t v;
  if (read(50, &v, 8) != -1 || errno != EAGAIN) fail("fd 50: read of an empty O_NONBLOCK counter did not say EAGAIN");
  for (int i = 0; i < 3; i++)
    if (get(51) != 1) fail("semaphore read %d did not return 1", i);
  if (readable(51)) fail("semaphore still readable after 3 reads");
  if (get(52) != kBig) fail("fd 52 counter is not %#llx", (unsigned long long)kBig);
  uint64_t one = 1;
  if (write(50, &one, 8) != 8 || get(53) != 1) fail("eventfd no longer counts");
  pass();
}
