// shm_anon: memory shared between a parent (the root) and its child, and
// private memory they must not share.
//
//   A  MAP_SHARED|MAP_ANONYMOUS, 4 pages, created before fork (inherited).
//      In the child, page 3 is mprotect'ed read-only (its VMA is split in two).
//   M  a memfd "zdtm-shm", 4 pages, mapped MAP_SHARED before fork (inherited);
//      the child also maps pages 1..2 of it a second time (offset 1 page).
//   F  a file in /dev/shm, 4 pages, mapped MAP_SHARED separately by each
//      process after fork (two independent mappings of one file).
//   P  MAP_PRIVATE|MAP_ANONYMOUS, 4 pages, written before fork, then
//      written differently by each (copy-on-write must stay private).
// Every page holds a pattern identified by a tag (who wrote it, when).
// Before READY both processes write some pages and the parent checks it
// sees the child's shared writes. After SIGTERM the parent checks every
// page and its /proc/self/maps entries (perms "rw-s"/"rw-p", names
// "/dev/zero (deleted)", "/memfd:zdtm-shm (deleted)", the file path), writes
// new patterns into A, M, F and P, and SIGTERMs the child. The child checks
// the same (it must see the parent's new shared writes through both of its
// M mappings, and not its private one; its A is split r--s at page 3),
// writes new patterns itself and exits 0. The parent then must see the
// child's shared writes and not its private one. The fds are closed before
// the dump: only the mappings are under test. The /dev/shm file is named
// after the workdir and left in place (a leave-running restore needs it):
// the runner removes it at the end (test_cleanup_path).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "zdtm.h"

namespace {

constexpr size_t kPage = 4096, kWords = kPage / 8;
constexpr int kPages = 4;
const int kReadySig = SIGRTMIN + 1;

// Tags: which write a page should show.
enum Tag {
  kZero = 0,      // never written (file pages read as zero)
  kSkip = -1,     // not checked
  kAInit = 1, kMInit, kPInit,             // parent, before fork
  kChildA = 11, kChildM, kChildF, kChildP,  // child, before the dump
  kParentF = 21, kParentP, kParentA,      // parent, before the dump
  kPostA = 31, kPostM, kPostF, kPostP,    // parent, after restore
  kPostChildA = 41, kPostChildM, kPostChildF, kPostChildP,  // child, after restore
};

uint64_t g_seed;
const char* g_who = "parent";
bool g_ok = true;

__attribute__((format(printf, 1, 2))) void bad(const char* fmt, ...) {
  char buf[512];
  int off = snprintf(buf, sizeof(buf), "FAIL: [%s pid %d] ", g_who, getpid());
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + off, sizeof(buf) - off - 1, fmt, ap);
  va_end(ap);
  size_t len = off + (n < 0 ? 0 : n);
  if (len > sizeof(buf) - 2) len = sizeof(buf) - 2;
  buf[len++] = '\n';
  (void)!write(STDOUT_FILENO, buf, len);
  g_ok = false;
}

uint64_t word(int tag, int page, size_t w) { return zdtm_mix(g_seed, uint64_t(tag) << 20 | page << 12 | w); }

// A region as this process maps it; `first` = page of the object at base.
struct Region {
  const char* name;
  uint64_t* base;
  int pages;
  int first;
};

void fill(const Region& r, int page, int tag) {
  uint64_t* p = r.base + (page - r.first) * kWords;
  for (size_t w = 0; w < kWords; w++) p[w] = word(tag, page, w);
}

// Object page `page` (seen through r) must hold the pattern `tag`.
void check(const Region& r, int page, int tag) {
  if (tag == kSkip) return;
  const uint64_t* p = r.base + (page - r.first) * kWords;
  for (size_t w = 0; w < kWords; w++) {
    uint64_t want = tag == kZero ? 0 : word(tag, page, w);
    if (p[w] == want) continue;
    int found = -1;  // whose pattern is it?
    for (int t = 1; t < 50 && found < 0; t++)
      if (p[w] == word(t, page, w)) found = t;
    bad("%s page %d word %zu: %#lx (tag %d), want tag %d", r.name, page, w, (unsigned long)p[w], found, tag);
    return;
  }
}

void check_all(const Region& r, const int* tags) {
  for (int pg = r.first; pg < r.first + r.pages; pg++) check(r, pg, tags[pg]);
}

// The VMA at addr must be exactly [addr, end) (or, if !exact, cover it:
// private anonymous memory may merge with a neighbour).
void check_vma(const char* what, const void* addr, const void* end, const char* perms, const std::string& name,
               bool exact = true) {
  ZdtmVma v;
  if (!zdtm_find_vma(reinterpret_cast<uintptr_t>(addr), &v)) return bad("%s: no mapping at %p", what, addr);
  const auto a = reinterpret_cast<uintptr_t>(addr), e = reinterpret_cast<uintptr_t>(end);
  if (exact ? v.start != a || v.end != e : v.start > a || v.end < e)
    bad("%s: mapping %#lx-%#lx, want %p-%p", what, (unsigned long)v.start, (unsigned long)v.end, addr, end);
  if (strcmp(v.perms, perms) != 0) bad("%s: perms %s, want %s", what, v.perms, perms);
  if (v.name != name) bad("%s: name '%s', want '%s'", what, v.name.c_str(), name.c_str());
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t* map(size_t pages, int flags, int fd, off_t off) {
  void* p = mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, flags, fd, off);
  if (p == MAP_FAILED) fail("mmap: %s", strerror(errno));
  return static_cast<uint64_t*>(p);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  char cwd[4096];
  if (!getcwd(cwd, sizeof(cwd))) fail("getcwd: %s", strerror(errno));
  uint64_t h = 0;
  for (const char* c = cwd; *c; c++) h = zdtm_mix(h, static_cast<unsigned char>(*c));
  char fpath[64];
  snprintf(fpath, sizeof(fpath), "/dev/shm/zdtm-shm_anon.%016lx", (unsigned long)h);

  const int ffd = open(fpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (ffd < 0) fail("open %s: %s", fpath, strerror(errno));
  test_cleanup_path(fpath);
  if (ftruncate(ffd, kPages * kPage)) fail("ftruncate %s: %s", fpath, strerror(errno));
  close(ffd);
  const int mfd = memfd_create("zdtm-shm", MFD_CLOEXEC);
  if (mfd < 0) fail("memfd_create: %s", strerror(errno));
  if (ftruncate(mfd, kPages * kPage)) fail("ftruncate memfd: %s", strerror(errno));

  Region A = {"A", map(kPages, MAP_SHARED | MAP_ANONYMOUS, -1, 0), kPages, 0};
  Region M = {"M", map(kPages, MAP_SHARED, mfd, 0), kPages, 0};
  Region P = {"P", map(kPages, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), kPages, 0};
  for (int pg = 0; pg < kPages; pg++) fill(A, pg, kAInit), fill(M, pg, kMInit), fill(P, pg, kPInit);

  sigset_t ready;
  sigemptyset(&ready);
  sigaddset(&ready, kReadySig);
  sigprocmask(SIG_BLOCK, &ready, nullptr);
  const pid_t parent = getpid();
  const pid_t child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));

  if (child == 0) {
    g_who = "child";
    const int fd = open(fpath, O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("child: open %s: %s", fpath, strerror(errno));
    Region F = {"F", map(kPages, MAP_SHARED, fd, 0), kPages, 0};
    close(fd);
    Region M2 = {"M2 (memfd pages 1..2)", map(2, MAP_SHARED, mfd, kPage), 2, 1};
    close(mfd);
    fill(A, 2, kChildA);
    fill(M2, 1, kChildM);
    fill(F, 2, kChildF);
    fill(P, 1, kChildP);
    if (mprotect(A.base + 3 * kWords, kPage, PROT_READ)) fail("child: mprotect: %s", strerror(errno));
    sigval v = {};
    if (sigqueue(parent, kReadySig, v)) fail("child: sigqueue: %s", strerror(errno));

    test_wait();

    int a[] = {kPostA, kParentA, kChildA, kAInit};
    int m[] = {kMInit, kChildM, kMInit, kPostM};
    int f[] = {kParentF, kPostF, kChildF, kSkip};  // page 3: the child's own, written below
    int p[] = {kPInit, kChildP, kPInit, kPInit};    // not the parent's kPostP
    check_all(A, a);
    check_all(M, m);
    check_all(M2, m);
    check_all(F, f);
    check_all(P, p);
    char* ab = reinterpret_cast<char*>(A.base);
    check_vma("child A pages 0..2", ab, ab + 3 * kPage, "rw-s", "/dev/zero (deleted)");
    check_vma("child A page 3", ab + 3 * kPage, ab + 4 * kPage, "r--s", "/dev/zero (deleted)");
    check_vma("child M", M.base, M.base + kPages * kWords, "rw-s", "/memfd:zdtm-shm (deleted)");
    check_vma("child M2", M2.base, M2.base + 2 * kWords, "rw-s", "/memfd:zdtm-shm (deleted)");
    check_vma("child F", F.base, F.base + kPages * kWords, "rw-s", fpath);
    check_vma("child P", P.base, P.base + kPages * kWords, "rw-p", "", false);
    fill(A, 2, kPostChildA);
    fill(M2, 2, kPostChildM);
    fill(F, 3, kPostChildF);
    fill(P, 3, kPostChildP);
    _exit(g_ok ? 0 : 1);
  }

  const int fd = open(fpath, O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("open %s: %s", fpath, strerror(errno));
  Region F = {"F", map(kPages, MAP_SHARED, fd, 0), kPages, 0};
  close(fd);
  close(mfd);
  fill(F, 0, kParentF);
  fill(P, 2, kParentP);
  fill(A, 1, kParentA);

  siginfo_t si;
  timespec ts = {30, 0};
  if (sigtimedwait(&ready, &si, &ts) < 0) {
    kill(child, SIGKILL);
    fail("the child did not set up within 30 s: %s", strerror(errno));
  }
  {
    int a[] = {kAInit, kParentA, kChildA, kAInit};
    int m[] = {kMInit, kChildM, kMInit, kMInit};
    int f[] = {kParentF, kZero, kChildF, kZero};
    int p[] = {kPInit, kPInit, kParentP, kPInit};
    check_all(A, a), check_all(M, m), check_all(F, f), check_all(P, p);
    if (!g_ok) {
      kill(child, SIGKILL);
      fail("memory not as designed before the dump");
    }
  }
  test_ready();
  test_wait();

  {
    int a[] = {kAInit, kParentA, kChildA, kAInit};
    int m[] = {kMInit, kChildM, kMInit, kMInit};
    int f[] = {kParentF, kSkip, kChildF, kSkip};  // pages 1, 3: written after the dump (see top)
    int p[] = {kPInit, kPInit, kParentP, kPInit};
    check_all(A, a), check_all(M, m), check_all(F, f), check_all(P, p);
  }
  check_vma("parent A", A.base, A.base + kPages * kWords, "rw-s", "/dev/zero (deleted)");
  check_vma("parent M", M.base, M.base + kPages * kWords, "rw-s", "/memfd:zdtm-shm (deleted)");
  check_vma("parent F", F.base, F.base + kPages * kWords, "rw-s", fpath);
  check_vma("parent P", P.base, P.base + kPages * kWords, "rw-p", "", false);
  fill(A, 0, kPostA);
  fill(M, 3, kPostM);
  fill(F, 1, kPostF);
  fill(P, 0, kPostP);

  if (kill(child, SIGTERM)) bad("kill(child %d, SIGTERM): %s", child, strerror(errno));
  int st = 0;
  const double deadline = now_s() + 30;
  for (;;) {
    pid_t r = waitpid(child, &st, WNOHANG);
    if (r == child) break;
    if (r < 0 && errno != EINTR) fail("waitpid(child %d): %s", child, strerror(errno));
    if (now_s() > deadline) {
      kill(child, SIGKILL);
      fail("the child did not exit within 30 s of SIGTERM");
    }
    timespec pause = {0, 2000000};
    nanosleep(&pause, nullptr);
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    bad("the child ended with %s", WIFEXITED(st) ? ("exit " + std::to_string(WEXITSTATUS(st))).c_str()
                                                   : strsignal(WTERMSIG(st)));
  {
    int a[] = {kPostA, kParentA, kPostChildA, kAInit};
    int m[] = {kMInit, kChildM, kPostChildM, kPostM};
    int f[] = {kParentF, kPostF, kChildF, kPostChildF};
    int p[] = {kPostP, kPInit, kParentP, kPInit};  // not the child's kPostChildP
    check_all(A, a), check_all(M, m), check_all(F, f), check_all(P, p);
  }
  if (!g_ok) fail("shared memory check failed (see above)");
  pass();
}
