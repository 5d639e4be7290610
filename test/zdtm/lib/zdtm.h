// zdtm: the tiny library every round-trip test program links.
//
// Contract of a test program (the runner relies on it):
//   1. test_init(argc, argv) first; it installs a SIGTERM handler.
//   2. Build the state under test, then test_ready(): prints "READY".
//   3. test_wait() (or loop while !test_stopped()) until SIGTERM arrives;
//      the runner dumps/restores the process in between.
//   4. Verify everything set up in 2, then pass() or fail(...).
// stdout is unbuffered raw write(2)s: no stdio buffers to lose in a dump.
// Tests may only use what ckpt supports (see README.md), except tests
// that exist to check that ckpt refuses something.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <string>

// Set by the SIGTERM handler.
extern volatile sig_atomic_t zdtm_sigterm_received;

void test_init(int argc, char** argv);
void test_ready();
// Blocks (sigsuspend) until SIGTERM arrived. The signal mask in effect
// before the call is in effect again after it.
void test_wait();
// For busy-loop tests; inline so a hot loop keeps its registers (no call).
inline bool test_stopped() { return zdtm_sigterm_received != 0; }

[[noreturn]] void pass();
[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Declares a file (or a directory, removed once empty; declare it after
// its files) the test creates outside its workdir (e.g. in /dev/shm)
// that must outlive the test process (a leave-running restore needs it):
// the runner removes it when the whole round trip ends, passed or failed.
// The list is the file "zdtm-cleanup" in the test's working directory.
void test_cleanup_path(const char* path);

// Informational line "INFO: ..." (stdout, unbuffered).
void test_msg(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// A 64-bit mix of (a, b): deterministic, cheap, good enough for patterns.
inline uint64_t zdtm_mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A seed that differs per run (pid and time), so a stale image cannot pass.
uint64_t zdtm_seed();

// A ckpt record image made by hand (magics + records) with the checksum
// trailer ckpt's reader wants (images/image_check.h): mark 0xffffffff,
// CRC32C of the bytes, the whole length. Tests that forge images use it.
std::string zdtm_seal_image(const std::string& bytes);

// Whole file contents (for /proc files); fail()s if it cannot be read.
std::string zdtm_read_file(const char* path);

// One line of /proc/self/maps.
struct ZdtmVma {
  uintptr_t start = 0, end = 0;
  char perms[5] = {};  // "rw-p"
  std::string name;    // path, "[heap]", "" for anonymous
};
// The mapping containing addr; false if none.
bool zdtm_find_vma(uintptr_t addr, ZdtmVma* out);
// The first mapping named `name` (e.g. "[vdso]"); false if none.
bool zdtm_find_vma_by_name(const char* name, ZdtmVma* out);
// A "Field:  N kB" value of the smaps entry containing addr; -1 if absent.
long zdtm_smaps_kb(uintptr_t addr, const char* field);
