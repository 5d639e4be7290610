// deleted_map: private mappings of a deleted file and of a memfd (issue 14
// item 9). mapped.dat (3 pages of a pattern) is mapped MAP_PRIVATE, its
// page 1 written (copied on write), the fd closed and the file removed.
// A memfd "priv" (2 pages) is mapped MAP_PRIVATE, its page 0 written, and
// kept open as fd 185. After restore: every page reads as before (the
// file's pages and the changed ones); the memfd mapping is still the
// memfd's: a write through fd 185 to page 1 shows in the mapping (never
// written there), not in page 0 (the task's own copy).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
uint64_t g_seed;
char byte(int obj, size_t i) { return char(zdtm_mix(g_seed + obj, i)); }
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string data(3 * kPage, 0);
  for (size_t i = 0; i < data.size(); i++) data[i] = byte(1, i);
  int f = open("mapped.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (f < 0 || write(f, data.data(), data.size()) != ssize_t(data.size())) fail("mapped.dat");
  auto* file = static_cast<char*>(mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, f, 0));
  if (file == MAP_FAILED) fail("mmap file");
  close(f);
  if (unlink("mapped.dat")) fail("unlink");
  memset(file + kPage, 'P', kPage);

  int m = int(syscall(SYS_memfd_create, "priv", 0));
  std::string mdata(2 * kPage, 0);
  for (size_t i = 0; i < mdata.size(); i++) mdata[i] = byte(2, i);
  if (m < 0 || write(m, mdata.data(), mdata.size()) != ssize_t(mdata.size())) fail("memfd");
  if (dup2(m, 185) != 185) fail("dup2");
  close(m);
  auto* mem = static_cast<char*>(mmap(nullptr, 2 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, 185, 0));
  if (mem == MAP_FAILED) fail("mmap memfd");
  memset(mem, 'Q', kPage);

  test_ready();
  test_wait();

  for (size_t i = 0; i < 3 * kPage; i++) {
    char want = (i >= kPage && i < 2 * kPage) ? 'P' : data[i];
    if (file[i] != want) fail("deleted file mapping: byte %zu is %d, want %d", i, file[i], want);
  }
  for (size_t i = 0; i < kPage; i++)
    if (mem[i] != 'Q') fail("memfd mapping: its own page 0 byte %zu changed", i);
  for (size_t i = kPage; i < 2 * kPage; i++)
    if (mem[i] != mdata[i]) fail("memfd mapping: page 1 byte %zu differs", i);
  if (pwrite(185, "ZZ", 2, kPage + 10) != 2 || pwrite(185, "YY", 2, 10) != 2) fail("pwrite memfd");
  if (mem[kPage + 10] != 'Z' || mem[kPage + 11] != 'Z')
    fail("a write to the memfd does not show in the mapping's unwritten page: not the same file");
  if (mem[10] != 'Q') fail("a write to the memfd shows in the task's own copy of page 0");
  std::string maps = zdtm_read_file("/proc/self/maps");
  if (maps.find("/memfd:priv (deleted)") == std::string::npos) fail("no /memfd:priv mapping in maps");
  pass();
}
