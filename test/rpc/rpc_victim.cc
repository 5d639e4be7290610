// The RPC tests' victim: counts forever, publishing its count (and its pid)
// in argv[1] every 5 ms by rename, so a reader never sees half a line. A
// restored victim goes on from the count it had at the dump.
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  syscall(SYS_close_range, 3, ~0u, 0);
  std::string path = argv[1], tmp = path + ".tmp";
  for (unsigned long n = 1;; n++) {
    char line[64];
    int len = snprintf(line, sizeof(line), "%d %lu\n", getpid(), n);
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      if (write(fd, line, size_t(len)) == len) rename(tmp.c_str(), path.c_str());
      close(fd);
    }
    usleep(5000);
  }
}
