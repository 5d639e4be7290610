#include "zdtm.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

volatile sig_atomic_t zdtm_sigterm_received = 0;

namespace {

// The thread sleeping in test_wait(), 0 while none is. SIGTERM goes to any
// thread that does not block it; when the waiter has it blocked for a moment
// (before its sigsuspend, or right after a restore that restarts it), another
// thread runs the handler, which then passes the signal on to the waiter so
// that its sigsuspend returns.
volatile pid_t g_waiter_tid = 0;

void on_sigterm(int) {
  zdtm_sigterm_received = 1;
  pid_t waiter = g_waiter_tid;
  if (waiter != 0 && waiter != pid_t(syscall(SYS_gettid))) {
    int saved = errno;
    syscall(SYS_tgkill, getpid(), waiter, SIGTERM);
    errno = saved;
  }
}

// Writes all of buf to stdout, retrying on EINTR and short writes.
void write_out(const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDOUT_FILENO, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf += n;
    len -= static_cast<size_t>(n);
  }
}

void vline(const char* prefix, const char* fmt, va_list ap) {
  char buf[1024];
  int off = snprintf(buf, sizeof(buf), "%s", prefix);
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  size_t len = off + (n < 0 ? 0 : n);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  write_out(buf, len);
}

bool parse_maps_line(const char* line, ZdtmVma* v) {
  unsigned long s, e;
  char perms[8];
  int name_off = 0;
  if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &s, &e, perms, &name_off) < 3) return false;
  v->start = s;
  v->end = e;
  memcpy(v->perms, perms, 4);
  v->perms[4] = 0;
  std::string name = name_off ? line + name_off : "";
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  v->name = name;
  return true;
}

template <typename Pred>
bool scan_maps(Pred pred, ZdtmVma* out) {
  FILE* f = fopen("/proc/self/maps", "re");
  if (!f) fail("open /proc/self/maps: %s", strerror(errno));
  char line[4096];
  bool found = false;
  while (!found && fgets(line, sizeof(line), f)) {
    ZdtmVma v;
    if (parse_maps_line(line, &v) && pred(v)) {
      *out = v;
      found = true;
    }
  }
  fclose(f);
  return found;
}

}  // namespace

void test_init(int argc, char** argv) {
  struct sigaction sa = {};
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGTERM, &sa, nullptr)) fail("sigaction(SIGTERM): %s", strerror(errno));
}

void test_ready() { write_out("READY\n", 6); }

void test_cleanup_path(const char* path) {
  int fd = open("zdtm-cleanup", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) fail("open zdtm-cleanup: %s", strerror(errno));
  std::string line = std::string(path) + "\n";
  if (write(fd, line.data(), line.size()) != ssize_t(line.size()))
    fail("write zdtm-cleanup: %s", strerror(errno));
  close(fd);
}

void test_wait() {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  sigprocmask(SIG_BLOCK, &term, &old);
  g_waiter_tid = pid_t(syscall(SYS_gettid));
  while (!zdtm_sigterm_received) {
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGTERM);
    sigsuspend(&wait_mask);
  }
  g_waiter_tid = 0;
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

void pass() {
  write_out("PASS\n", 5);
  _exit(0);
}

void fail(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline("FAIL: ", fmt, ap);
  va_end(ap);
  _exit(1);
}

void test_msg(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline("INFO: ", fmt, ap);
  va_end(ap);
}

uint64_t zdtm_seed() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return zdtm_mix(static_cast<uint64_t>(getpid()), ts.tv_sec * 1000000000ull + ts.tv_nsec);
}

std::string zdtm_read_file(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open %s: %s", path, strerror(errno));
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("read %s: %s", path, strerror(errno));
    if (n == 0) break;
    out.append(buf, n);
  }
  close(fd);
  return out;
}

bool zdtm_find_vma(uintptr_t addr, ZdtmVma* out) {
  return scan_maps([addr](const ZdtmVma& v) { return v.start <= addr && addr < v.end; }, out);
}

bool zdtm_find_vma_by_name(const char* name, ZdtmVma* out) {
  return scan_maps([name](const ZdtmVma& v) { return v.name == name; }, out);
}

long zdtm_smaps_kb(uintptr_t addr, const char* field) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (!f) fail("open /proc/self/smaps: %s", strerror(errno));
  char line[4096];
  bool inside = false;
  long val = -1;
  size_t flen = strlen(field);
  while (fgets(line, sizeof(line), f)) {
    ZdtmVma v;
    // Header lines start with a hex address; field lines with a name.
    if (parse_maps_line(line, &v) && strchr(line, '-') < strchr(line, ' ')) {
      if (inside) break;
      inside = v.start <= addr && addr < v.end;
      continue;
    }
    if (inside && strncmp(line, field, flen) == 0 && line[flen] == ':') {
      val = strtol(line + flen + 1, nullptr, 10);
      break;
    }
  }
  fclose(f);
  return val;
}

std::string zdtm_seal_image(const std::string& bytes) {
  uint32_t c = ~0u;  // CRC32C, bit by bit: these images are tiny
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  c = ~c;
  uint32_t mark = 0xffffffffu;
  uint64_t total = bytes.size() + 16;
  std::string t(16, '\0');
  memcpy(&t[0], &mark, 4);
  memcpy(&t[4], &c, 4);
  memcpy(&t[8], &total, 8);
  return bytes + t;
}
