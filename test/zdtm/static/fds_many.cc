// fds_many: a process whose fds fill most of the fd numbers its
// RLIMIT_NOFILE allows (run with zdtm-run --nofile, which ckpt shares):
// pipes, socket pairs, eventfds and /dev/null, 3/4 of the limit in all.
// The restore may not need twice the numbers the process uses (it once
// did: "dup: Too many open files"). After restore every pipe and socket
// pair still carries data end to end, each eventfd holds its own count,
// each fd is the kind it was, and the fds sharing an open file (a dup of
// every 7th pipe's write end, far up) still share it (one offset/flags).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "zdtm.h"

namespace {

enum Kind { kPipe, kPair, kEvent, kNull };

struct Item {
  Kind kind;
  int a, b;  // pipe: read, write; pair: two ends; others: a
  int dup = -1;  // a dup of a pipe's write end (shares its open file)
};

bool IsKind(int fd, mode_t type) {
  struct stat st;
  return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == type;
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  struct rlimit nf;
  if (getrlimit(RLIMIT_NOFILE, &nf)) fail("getrlimit: %s", strerror(errno));
  if (nf.rlim_cur != nf.rlim_max || nf.rlim_max > 65536)
    fail("run me with zdtm-run --nofile N (limit %lu/%lu)", (unsigned long)nf.rlim_cur,
         (unsigned long)nf.rlim_max);
  int top = int(nf.rlim_max) * 3 / 4;
  std::vector<Item> items;
  int dups = top;  // dups go from here up
  while (true) {
    Item it{};
    it.kind = Kind(items.size() % 4);
    int p[2];
    switch (it.kind) {
      case kPipe:
        if (pipe(p)) fail("pipe: %s", strerror(errno));
        it.a = p[0], it.b = p[1];
        break;
      case kPair:
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, p)) fail("socketpair: %s", strerror(errno));
        it.a = p[0], it.b = p[1];
        break;
      case kEvent:
        it.a = eventfd(unsigned(items.size()) + 1, 0);
        it.b = -1;
        if (it.a < 0) fail("eventfd: %s", strerror(errno));
        break;
      case kNull:
        it.a = open("/dev/null", O_RDWR);
        it.b = -1;
        if (it.a < 0) fail("open /dev/null: %s", strerror(errno));
        break;
    }
    if (it.kind == kPipe && items.size() % 7 == 0) {
      it.dup = dups++;
      if (dup2(it.b, it.dup) != it.dup) fail("dup2 %d: %s", it.dup, strerror(errno));
    }
    items.push_back(it);
    if (std::max(it.a, it.b) >= top - 2) break;
  }
  test_msg("%zu objects, fds up to %d, limit %lu", items.size(), dups - 1,
           (unsigned long)nf.rlim_max);
  test_ready();
  test_wait();

  int bad = 0;
  for (size_t i = 0; i < items.size() && bad < 10; i++) {
    Item& it = items[i];
    char want[32], got[32] = {};
    int n = snprintf(want, sizeof want, "m%zu", i);
    switch (it.kind) {
      case kPipe:
      case kPair: {
        mode_t type = it.kind == kPipe ? S_IFIFO : S_IFSOCK;
        if (!IsKind(it.a, type) || !IsKind(it.b, type)) {
          printf("FAIL: object %zu: fd %d or %d is not the kind it was\n", i, it.a, it.b);
          bad++;
          continue;
        }
        if (write(it.kind == kPipe ? it.b : it.a, want, size_t(n)) != n ||
            read(it.kind == kPipe ? it.a : it.b, got, sizeof got) != n || memcmp(got, want, size_t(n))) {
          printf("FAIL: object %zu (fds %d, %d): data did not cross\n", i, it.a, it.b);
          bad++;
        }
        if (it.dup >= 0) {
          // One open file: a flag set through one fd shows through the other.
          int fl = fcntl(it.b, F_GETFL);
          if (fcntl(it.dup, F_SETFL, fl | O_NONBLOCK) || !(fcntl(it.b, F_GETFL) & O_NONBLOCK)) {
            printf("FAIL: fd %d and its dup %d no longer share an open file\n", it.b, it.dup);
            bad++;
          }
          fcntl(it.dup, F_SETFL, fl);
        }
        break;
      }
      case kEvent: {
        uint64_t v = 0;
        if (read(it.a, &v, sizeof v) != sizeof v || v != i + 1) {
          printf("FAIL: eventfd %d holds %llu, want %zu\n", it.a, (unsigned long long)v, i + 1);
          bad++;
        }
        break;
      }
      case kNull:
        if (!IsKind(it.a, S_IFCHR) || read(it.a, got, 1) != 0) {
          printf("FAIL: fd %d is no longer /dev/null\n", it.a);
          bad++;
        }
        break;
    }
  }
  if (bad) fail("%d objects came back wrong", bad);
  pass();
}
