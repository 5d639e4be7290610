// mm_madvise: per-mapping state madvise(2) and mmap(2) set, in a parent P
// and its child C, and files mapped shared with different protections.
//
// P maps four private anonymous regions of 4 pages with data:
//   DF  MADV_DONTFORK    (VmFlags "dc"; C does not have it)
//   WF  MADV_WIPEONFORK  ("wf"; C's copy starts zero, C writes its own data)
//   DD  MADV_DONTDUMP    ("dd"; C has it too and changes half of it)
//   DP  MAP_DROPPABLE    ("dp", which implies "wf" and "dd"), if the kernel has it
// and a file "mapped" (opened O_RDWR) twice MAP_SHARED: RO (PROT_READ) and
// RW (PROT_READ|PROT_WRITE); plus the file "ro_file" opened O_RDONLY and
// mapped MAP_SHARED PROT_READ (C has all of them too).
// After restore each process checks the VmFlags of every region, the data,
// and fork(): a child made now has no DF, a zeroed WF (and DP), DD's data.
// The RO mapping of the O_RDWR file must take mprotect(PROT_READ|
// PROT_WRITE), and a write through it shows in RW and in the file; the
// mapping of ro_file must still refuse it (EACCES).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

namespace {

constexpr size_t kPage = 4096, kLen = 4 * kPage;
const char* g_who = "P";
bool g_ok = true;
uint64_t g_seed;
char *g_df, *g_wf, *g_dd, *g_dp, *g_ro, *g_rw, *g_rofile;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s pid %d] ", g_who, getpid());
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
  va_end(ap);
  printf("%s\n", buf);
  g_ok = false;
}

char byte(int tag, size_t i) { return char(zdtm_mix(g_seed + tag, i) | 1); }  // never 0
void fill(char* p, int tag, size_t from = 0, size_t to = kLen) {
  for (size_t i = from; i < to; i++) p[i] = byte(tag, i);
}
// Whether [from, to) of p holds tag's pattern; fails with `what` if not.
void expect(const char* what, const char* p, int tag, size_t from = 0, size_t to = kLen) {
  for (size_t i = from; i < to; i++)
    if (p[i] != byte(tag, i)) return bad("%s: byte %zu is %#x, want %#x", what, i, p[i] & 0xff, byte(tag, i) & 0xff);
}
void expect_zero(const char* what, const char* p) {
  for (size_t i = 0; i < kLen; i++)
    if (p[i]) return bad("%s: byte %zu is %#x, want 0", what, i, p[i] & 0xff);
}

// The VmFlags of the mapping that starts at p ("" if none).
std::string vmflags(const void* p) {
  std::string smaps = zdtm_read_file("/proc/self/smaps");
  char head[32];
  snprintf(head, sizeof(head), "%lx-", (unsigned long)p);
  size_t at = smaps.rfind(std::string("\n") + head);
  if (at == std::string::npos && smaps.rfind(head, 0) != 0) return "";
  at = at == std::string::npos ? 0 : at + 1;
  size_t f = smaps.find("VmFlags:", at);
  if (f == std::string::npos) return "";
  return smaps.substr(f + 8, smaps.find('\n', f) - f - 8) + " ";
}
bool has_flag(const std::string& flags, const char* f) {
  return flags.find(std::string(" ") + f + " ") != std::string::npos;
}
void expect_flags(const char* what, const void* p, const char* const* want, bool set) {
  std::string fl = vmflags(p);
  if (fl.empty()) return bad("%s at %p: no such mapping", what, p);
  for (const char* const* w = want; *w; w++)
    if (has_flag(fl, *w) != set) bad("%s: VmFlags%s %s %s", what, fl.c_str(), set ? "lack" : "have", *w);
}
bool mapped(const void* p) {
  ZdtmVma v;
  return zdtm_find_vma(uintptr_t(p), &v);
}

const char* const kDc[] = {"dc", nullptr};
const char* const kWf[] = {"wf", nullptr};
const char* const kDd[] = {"dd", nullptr};
const char* const kDp[] = {"dp", "wf", "dd", nullptr};
const char* const kNone[] = {"dc", "wf", nullptr};

// What a child forked now sees; exits with the verdict.
[[noreturn]] void fresh_child_checks(const char* who, int dd_tag_c) {
  g_who = who;
  if (mapped(g_df)) bad("DF is mapped in a child forked after restore");
  expect_zero("WF in a new child", g_wf);
  expect_flags("WF in a new child", g_wf, kWf, true);
  if (dd_tag_c)
    expect("DD in a new child (first half)", g_dd, dd_tag_c, 0, kLen / 2);
  else
    expect("DD in a new child (first half)", g_dd, 3, 0, kLen / 2);
  expect("DD in a new child (second half)", g_dd, 3, kLen / 2, kLen);
  if (g_dp) expect_zero("DP in a new child", g_dp);
  _exit(g_ok ? 0 : 1);
}
void fork_and_check(const char* who, int dd_tag_c) {
  pid_t p = fork();
  if (p < 0) return bad("fork: %s", strerror(errno));
  if (p == 0) fresh_child_checks(who, dd_tag_c);
  int st = 0;
  if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    bad("the child %s forked after restore failed (status %#x)", who, st);
}

// Both shared mappings of "mapped", and ro_file's.
// Each process writes its own byte (`at`): bytes [0, 64) stay the file's.
void file_checks(size_t at) {
  expect("RO mapping", g_ro, 20, 0, 64);
  expect("RW mapping", g_rw, 20, 0, 64);
  std::string fl = vmflags(g_ro);
  if (!has_flag(fl, "mw")) bad("RO mapping of an O_RDWR file: VmFlags%s lack mw (may write)", fl.c_str());
  if (mprotect(g_ro, kPage, PROT_READ | PROT_WRITE))
    return bad("mprotect(RO mapping, PROT_READ|PROT_WRITE): %s (the file was opened O_RDWR)", strerror(errno));
  g_ro[at] = 'Z';
  if (g_rw[at] != 'Z') bad("a write through RO does not show in RW");
  if (mprotect(g_ro, kPage, PROT_READ)) bad("mprotect back to PROT_READ: %s", strerror(errno));
  if (mprotect(g_rofile, kPage, PROT_READ | PROT_WRITE) == 0 || errno != EACCES)
    bad("mprotect(ro_file's mapping, PROT_WRITE) did not say EACCES (it was opened O_RDONLY)");
  expect("ro_file mapping", g_rofile, 21, 0, kPage);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  setvbuf(stdout, nullptr, _IONBF, 0);
  g_seed = zdtm_seed();
  auto anon = [](int flags) {
    void* p = mmap(nullptr, kLen, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  };
  g_df = anon(MAP_PRIVATE), g_wf = anon(MAP_PRIVATE), g_dd = anon(MAP_PRIVATE);
  if (!g_df || !g_wf || !g_dd) fail("mmap: %s", strerror(errno));
  g_dp = anon(MAP_DROPPABLE);
  if (!g_dp) test_msg("no MAP_DROPPABLE here (%s)", strerror(errno));
  if (madvise(g_df, kLen, MADV_DONTFORK) || madvise(g_wf, kLen, MADV_WIPEONFORK) ||
      madvise(g_dd, kLen, MADV_DONTDUMP))
    fail("madvise: %s", strerror(errno));
  fill(g_df, 1), fill(g_wf, 2), fill(g_dd, 3);
  if (g_dp) fill(g_dp, 4);

  // The files: written through write(2), then mapped.
  std::string page(kPage, '\0');
  for (size_t i = 0; i < kPage; i++) page[i] = byte(20, i);
  int fd = open("mapped", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, page.data(), kPage) != ssize_t(kPage)) fail("write mapped: %s", strerror(errno));
  for (size_t i = 0; i < kPage; i++) page[i] = byte(21, i);
  int rofd = open("ro_file", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (rofd < 0 || write(rofd, page.data(), kPage) != ssize_t(kPage)) fail("write ro_file: %s", strerror(errno));
  close(rofd);
  rofd = open("ro_file", O_RDONLY | O_CLOEXEC);
  void* ro = mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd, 0);
  void* rw = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  void* rf = mmap(nullptr, kPage, PROT_READ, MAP_SHARED, rofd, 0);
  if (ro == MAP_FAILED || rw == MAP_FAILED || rf == MAP_FAILED) fail("mmap files: %s", strerror(errno));
  close(fd), close(rofd);
  g_ro = static_cast<char*>(ro), g_rw = static_cast<char*>(rw), g_rofile = static_cast<char*>(rf);

  int sync_p[2];
  if (pipe2(sync_p, O_CLOEXEC)) fail("pipe: %s", strerror(errno));
  pid_t c = fork();
  if (c < 0) fail("fork: %s", strerror(errno));
  if (c == 0) {
    g_who = "C";
    close(sync_p[0]);
    if (mapped(g_df)) fail("[C] DF is mapped in the child");
    expect_zero("WF in C before the dump", g_wf);
    if (g_dp) expect_zero("DP in C before the dump", g_dp);
    if (!g_ok) _exit(1);
    fill(g_wf, 5);                    // C's own WF data
    fill(g_dd, 6, 0, kLen / 2);       // C's first half of DD
    if (g_dp) fill(g_dp, 7);
    if (write(sync_p[1], "x", 1) != 1) _exit(1);
    close(sync_p[1]);
    test_wait();
    expect_flags("WF in C", g_wf, kWf, true);
    expect_flags("DD in C", g_dd, kDd, true);
    if (g_dp) expect_flags("DP in C", g_dp, kDp, true);
    if (mapped(g_df)) bad("DF is mapped in C after restore");
    expect("WF in C", g_wf, 5);
    expect("DD in C (first half)", g_dd, 6, 0, kLen / 2);
    expect("DD in C (second half)", g_dd, 3, kLen / 2, kLen);
    fork_and_check("C's new child", 6);
    // Last: the mprotect checks change the mappings.
    file_checks(200);
    _exit(g_ok ? 0 : 1);
  }
  close(sync_p[1]);
  char ch;
  if (read(sync_p[0], &ch, 1) != 1) fail("C did not set up");
  close(sync_p[0]);
  // The premise, checked before the dump (plain mode proves the test).
  expect_flags("DF", g_df, kDc, true);
  expect_flags("WF", g_wf, kWf, true);
  expect_flags("DD", g_dd, kDd, true);
  if (g_dp) expect_flags("DP", g_dp, kDp, true);
  expect_flags("DD", g_dd, kNone, false);
  if (!g_ok) fail("setup");

  test_ready();
  test_wait();
  if (kill(c, SIGTERM)) fail("kill C %d: %s", c, strerror(errno));

  expect_flags("DF", g_df, kDc, true);
  expect_flags("WF", g_wf, kWf, true);
  expect_flags("DD", g_dd, kDd, true);
  expect_flags("DD", g_dd, kNone, false);
  if (g_dp) expect_flags("DP", g_dp, kDp, true);
  expect("DF", g_df, 1);
  expect("WF", g_wf, 2);
  expect("DD", g_dd, 3);
  if (g_dp) {  // the kernel may drop a droppable page (then it reads zero)
    for (size_t pg = 0; pg < kLen; pg += kPage) {
      bool zero = true;
      for (size_t i = pg; i < pg + kPage; i++) zero &= g_dp[i] == 0;
      if (!zero) expect("DP", g_dp, 4, pg, pg + kPage);
    }
  }
  fork_and_check("P's new child", 0);
  file_checks(100);
  int st = 0;
  if (waitpid(c, &st, 0) != c) fail("waitpid C: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad("C ended with status %#x", st);
  if (!g_ok) fail("mappings differ (see above)");
  pass();
}
