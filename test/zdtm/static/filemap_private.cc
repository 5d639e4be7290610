// filemap_private: a file created in the cwd, mapped MAP_PRIVATE read-write,
// some pages modified in memory (one only partly). Verifies the modified
// pages kept their new content, the others still equal the file, the
// mapping still names the file, and the file itself is unchanged.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "zdtm.h"

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kPages = 64;
constexpr size_t kSize = kPages * kPage;
constexpr const char* kFile = "filemap_private.dat";
uint64_t g_seed;

uint8_t file_byte(size_t off) {
  return static_cast<uint8_t>(zdtm_mix(g_seed, off / 8) >> (off % 8 * 8));
}
uint8_t mem_byte(size_t off) { return static_cast<uint8_t>(~file_byte(off) ^ 0x5a); }
// Pages 0, 3, 6, ... are fully rewritten; page 10 only in its second half.
bool modified(size_t off) {
  size_t page = off / kPage;
  return page % 3 == 0 || (page == 10 && off % kPage >= kPage / 2);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_seed = zdtm_seed();
  std::string content(kSize, '\0');
  for (size_t i = 0; i < kSize; i++) content[i] = static_cast<char>(file_byte(i));
  int fd = open(kFile, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("create %s: %s", kFile, strerror(errno));
  if (pwrite(fd, content.data(), kSize, 0) != static_cast<ssize_t>(kSize)) fail("write %s", kFile);
  fsync(fd);
  struct stat st_before;
  fstat(fd, &st_before);
  auto* map =
      static_cast<uint8_t*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  if (map == MAP_FAILED) fail("mmap: %s", strerror(errno));
  close(fd);  // the mapping alone keeps the file
  for (size_t i = 0; i < kSize; i++)
    if (modified(i)) map[i] = mem_byte(i);
  // Read the untouched pages so they are in the page cache / mapped.
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < kSize; i += kPage) sink = sink + map[i];

  test_ready();
  test_wait();

  ZdtmVma v;
  if (!zdtm_find_vma(reinterpret_cast<uintptr_t>(map), &v)) fail("mapping %p is gone", map);
  if (strcmp(v.perms, "rw-p") != 0) fail("mapping perms %s, want rw-p", v.perms);
  if (v.name.size() < strlen(kFile) ||
      v.name.compare(v.name.size() - strlen(kFile), std::string::npos, kFile) != 0)
    fail("mapping names '%s', want .../%s", v.name.c_str(), kFile);
  for (size_t i = 0; i < kSize; i++) {
    uint8_t want = modified(i) ? mem_byte(i) : file_byte(i);
    if (map[i] != want)
      fail("%s byte %zu (page %zu): got %#x want %#x", modified(i) ? "modified" : "unmodified", i,
           i / kPage, map[i], want);
  }
  std::string now = zdtm_read_file(kFile);
  if (now != content) fail("file %s changed on disk (size %zu)", kFile, now.size());
  struct stat st_after;
  if (stat(kFile, &st_after) || st_after.st_ino != st_before.st_ino)
    fail("file %s was replaced (inode changed)", kFile);
  pass();
}
