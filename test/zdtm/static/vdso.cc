// vdso: the vDSO keeps working and keeps reading live time. Verifies the
// [vdso]/[vvar]/[vvar_vclock] mappings are where they were, AT_SYSINFO_EHDR
// equals the [vdso] start, CLOCK_MONOTONIC did not go backwards (same
// machine), vDSO clocks agree with the raw syscalls (a stale copy of the
// data page would not), and time() agrees with CLOCK_REALTIME.
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {
const char* const kSpecial[] = {"[vdso]", "[vvar]", "[vvar_vclock]"};
constexpr int kSpecialCount = 3;

int64_t ns(const timespec& t) { return t.tv_sec * 1000000000ll + t.tv_nsec; }

timespec vdso_now(clockid_t c) {
  timespec t;
  if (clock_gettime(c, &t)) fail("clock_gettime(%d): %s", c, strerror(errno));
  return t;
}
timespec sys_now(clockid_t c) {
  timespec t;
  if (syscall(SYS_clock_gettime, c, &t)) fail("syscall clock_gettime(%d): %s", c, strerror(errno));
  return t;
}
// vDSO, then syscall, then vDSO: the syscall value must lie in between.
void check_live(clockid_t c, const char* name) {
  int64_t a = ns(vdso_now(c)), s = ns(sys_now(c)), b = ns(vdso_now(c));
  if (!(a <= s && s <= b) || b - a > 1000000000ll)
    fail("%s: vdso %ld, syscall %ld, vdso %ld are not ordered: stale vDSO data?", name, (long)a,
         (long)s, (long)b);
}
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  ZdtmVma before[kSpecialCount];
  bool present[kSpecialCount];
  for (int i = 0; i < kSpecialCount; i++)
    present[i] = zdtm_find_vma_by_name(kSpecial[i], &before[i]);
  if (!present[0]) fail("no [vdso] mapping to start with");
  const uintptr_t ehdr = getauxval(AT_SYSINFO_EHDR);
  const int64_t mono_before = ns(vdso_now(CLOCK_MONOTONIC));

  test_ready();
  test_wait();

  for (int i = 0; i < kSpecialCount; i++) {
    ZdtmVma now;
    bool there = zdtm_find_vma_by_name(kSpecial[i], &now);
    if (there != present[i]) fail("%s mapping %s", kSpecial[i], there ? "appeared" : "is gone");
    if (there && (now.start != before[i].start || now.end != before[i].end))
      fail("%s moved: %#lx-%#lx, was %#lx-%#lx", kSpecial[i], now.start, now.end, before[i].start,
           before[i].end);
  }
  ZdtmVma vdso;
  zdtm_find_vma_by_name("[vdso]", &vdso);
  if (getauxval(AT_SYSINFO_EHDR) != ehdr || ehdr != vdso.start)
    fail("AT_SYSINFO_EHDR %#lx, [vdso] at %#lx", getauxval(AT_SYSINFO_EHDR), vdso.start);
  if (memcmp(reinterpret_cast<const void*>(ehdr), "\177ELF", 4) != 0)
    fail("no ELF header at the vDSO");

  const int64_t mono_after = ns(vdso_now(CLOCK_MONOTONIC));
  if (mono_after < mono_before)
    fail("CLOCK_MONOTONIC went backwards: %ld -> %ld", (long)mono_before, (long)mono_after);
  check_live(CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
  check_live(CLOCK_REALTIME, "CLOCK_REALTIME");
  check_live(CLOCK_BOOTTIME, "CLOCK_BOOTTIME");
  timespec res;
  if (clock_getres(CLOCK_MONOTONIC, &res) || ns(res) <= 0) fail("clock_getres failed");
  timeval tv;
  if (gettimeofday(&tv, nullptr)) fail("gettimeofday: %s", strerror(errno));
  time_t t = time(nullptr);
  timespec rt = vdso_now(CLOCK_REALTIME);
  if (t < rt.tv_sec - 1 || t > rt.tv_sec + 1)
    fail("time() %ld vs CLOCK_REALTIME %ld", (long)t, (long)rt.tv_sec);
  if (tv.tv_sec < rt.tv_sec - 1 || tv.tv_sec > rt.tv_sec + 1)
    fail("gettimeofday %ld vs CLOCK_REALTIME %ld", (long)tv.tv_sec, (long)rt.tv_sec);
  pass();
}
