// creds_misc: credentials and per-process prctl/personality state.
//
//   R (root, uid 0)  PR_SET_NAME "zdtm-creds", PR_SET_CHILD_SUBREAPER,
//                    PR_SET_NO_NEW_PRIVS (inherited by U and P), bounding
//                    set without CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_MKNOD
//                    (inherited too); its capability sets are recorded.
//   U (child)        groups {5, 3000, 3001, 3002}; rgid/egid/sgid/fsgid
//                    2000/2001/2002/2003; ruid/euid/suid/fsuid
//                    1000/1001/1002/1003; securebits KEEP_CAPS | NOROOT |
//                    NOROOT_LOCKED; capabilities permitted {CHOWN, KILL,
//                    NET_BIND_SERVICE}, effective {KILL}, inheritable {CHOWN},
//                    ambient {CHOWN}; PR_SET_PDEATHSIG SIGKILL and dumpable 0
//                    (both set after the credential changes, which reset them).
//   P (child, uid 0) personality + ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC, a
//                    PROT_READ page mapped before that (r--p) and one after
//                    (r-xp, the kernel added exec); PR_SET_DUMPABLE 0;
//                    PR_SET_PDEATHSIG SIGHUP; PR_SET_TIMERSLACK 123457 ns;
//                    PR_SET_THP_DISABLE; umask 027.
// Each process checks all of its state (syscalls: getres[ug]id, setfs[ug]id
// probing, getgroups, capget, PR_CAPBSET_READ and PR_CAP_AMBIENT_IS_SET for
// every capability, prctl getters, personality(0xffffffff), umask; and
// /proc/self/status Uid/Gid/Groups/Cap*/NoNewPrivs/Umask, /proc/self/maps)
// once before READY and again after SIGTERM. The root SIGTERMs U and P and
// needs both to exit 0.
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "zdtm.h"

namespace {

const int kReadySig = SIGRTMIN + 1;
const char* g_who = "R";
bool g_ok = true;
int g_last_cap;

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

// ---- capabilities, without libcap ----

struct Caps {
  uint64_t eff = 0, prm = 0, inh = 0;
  bool operator==(const Caps& o) const { return eff == o.eff && prm == o.prm && inh == o.inh; }
};
uint64_t cap(int c) { return 1ull << c; }

Caps get_caps() {
  __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  if (syscall(SYS_capget, &h, d)) fail("capget: %s", strerror(errno));
  Caps c;
  c.eff = d[0].effective | uint64_t(d[1].effective) << 32;
  c.prm = d[0].permitted | uint64_t(d[1].permitted) << 32;
  c.inh = d[0].inheritable | uint64_t(d[1].inheritable) << 32;
  return c;
}

void set_caps(const Caps& c) {
  __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2] = {};
  d[0] = {uint32_t(c.eff), uint32_t(c.prm), uint32_t(c.inh)};
  d[1] = {uint32_t(c.eff >> 32), uint32_t(c.prm >> 32), uint32_t(c.inh >> 32)};
  if (syscall(SYS_capset, &h, d)) fail("capset: %s", strerror(errno));
}

uint64_t bounding_set() {
  uint64_t m = 0;
  for (int c = 0; c <= g_last_cap; c++)
    if (prctl(PR_CAPBSET_READ, c) == 1) m |= cap(c);
  return m;
}

uint64_t ambient_set() {
  uint64_t m = 0;
  for (int c = 0; c <= g_last_cap; c++)
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) m |= cap(c);
  return m;
}

// ---- /proc/self/status ----

std::string status_field(const char* field) {
  std::string text = "\n" + zdtm_read_file("/proc/self/status");
  std::string key = std::string("\n") + field + ":";
  size_t p = text.find(key);
  if (p == std::string::npos) return "(missing)";
  p += key.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) p++;
  std::string v = text.substr(p, text.find('\n', p) - p);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.pop_back();
  return v;
}

void expect_status(const char* field, const std::string& want) {
  std::string have = status_field(field);
  if (have != want) bad("/proc/self/status %s: '%s', want '%s'", field, have.c_str(), want.c_str());
}

std::string hex16(uint64_t v) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016lx", (unsigned long)v);
  return buf;
}

void expect_caps(const Caps& want, uint64_t bnd, uint64_t amb) {
  Caps have = get_caps();
  if (!(have == want))
    bad("capget eff/prm/inh %#lx/%#lx/%#lx, want %#lx/%#lx/%#lx", (unsigned long)have.eff, (unsigned long)have.prm,
        (unsigned long)have.inh, (unsigned long)want.eff, (unsigned long)want.prm, (unsigned long)want.inh);
  if (bounding_set() != bnd) bad("bounding set %#lx, want %#lx", (unsigned long)bounding_set(), (unsigned long)bnd);
  if (ambient_set() != amb) bad("ambient set %#lx, want %#lx", (unsigned long)ambient_set(), (unsigned long)amb);
  expect_status("CapEff", hex16(want.eff));
  expect_status("CapPrm", hex16(want.prm));
  expect_status("CapInh", hex16(want.inh));
  expect_status("CapBnd", hex16(bnd));
  expect_status("CapAmb", hex16(amb));
}

void expect_prctl(const char* what, int option, long want) {
  long r = prctl(option, 0, 0, 0, 0);
  if (r != want) bad("%s %ld, want %ld", what, r, want);
}

void expect_prctl_ptr(const char* what, int option, int want) {
  int v = -1;
  if (prctl(option, &v, 0, 0, 0)) return bad("%s: %s", what, strerror(errno));
  if (v != want) bad("%s %d, want %d", what, v, want);
}

void expect_name(const char* want) {
  char name[17] = {};
  prctl(PR_GET_NAME, name);
  if (strcmp(name, want) != 0) bad("PR_GET_NAME '%s', want '%s'", name, want);
}

double mono() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void send_ready(pid_t root, bool ok) {
  sigval v;
  v.sival_int = ok ? 1 : 0;
  if (sigqueue(root, kReadySig, v)) fail("sigqueue: %s", strerror(errno));
}

// ---- U: credentials ----

const uid_t kUids[4] = {1000, 1001, 1002, 1003};  // r, e, s, fs
const gid_t kGids[4] = {2000, 2001, 2002, 2003};
const std::vector<gid_t> kGroups = {5, 3000, 3001, 3002};
const unsigned kSecurebits = SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
const Caps kUCaps = {cap(CAP_KILL), cap(CAP_CHOWN) | cap(CAP_KILL) | cap(CAP_NET_BIND_SERVICE), cap(CAP_CHOWN)};

void check_u(uint64_t bnd) {
  uid_t r, e, s;
  gid_t gr, ge, gs;
  getresuid(&r, &e, &s);
  getresgid(&gr, &ge, &gs);
  if (r != kUids[0] || e != kUids[1] || s != kUids[2]) bad("getresuid %u/%u/%u, want 1000/1001/1002", r, e, s);
  if (gr != kGids[0] || ge != kGids[1] || gs != kGids[2]) bad("getresgid %u/%u/%u, want 2000/2001/2002", gr, ge, gs);
  // setfs[ug]id(-1) changes nothing and returns the current value.
  long fsuid = syscall(SYS_setfsuid, -1), fsgid = syscall(SYS_setfsgid, -1);
  if (fsuid != kUids[3]) bad("fsuid %ld, want %u", fsuid, kUids[3]);
  if (fsgid != kGids[3]) bad("fsgid %ld, want %u", fsgid, kGids[3]);
  gid_t groups[64];
  int n = getgroups(64, groups);
  std::vector<gid_t> have(groups, groups + std::max(n, 0));
  std::sort(have.begin(), have.end());
  if (have != kGroups) bad("getgroups: %d groups, want 5 3000 3001 3002", n);
  expect_status("Uid", "1000\t1001\t1002\t1003");
  expect_status("Gid", "2000\t2001\t2002\t2003");
  expect_status("Groups", "5 3000 3001 3002");
  expect_caps(kUCaps, bnd, cap(CAP_CHOWN));
  expect_prctl("PR_GET_SECUREBITS", PR_GET_SECUREBITS, kSecurebits);
  expect_prctl("PR_GET_KEEPCAPS", PR_GET_KEEPCAPS, 1);
  expect_prctl("PR_GET_NO_NEW_PRIVS", PR_GET_NO_NEW_PRIVS, 1);
  expect_prctl("PR_GET_DUMPABLE", PR_GET_DUMPABLE, 0);
  expect_prctl_ptr("PR_GET_PDEATHSIG", PR_GET_PDEATHSIG, SIGKILL);
  expect_status("NoNewPrivs", "1");
  expect_name("zdtm-cred-u");
}

[[noreturn]] void u_main(pid_t root, uint64_t bnd) {
  g_who = "U";
  if (prctl(PR_SET_NAME, "zdtm-cred-u")) fail("U: PR_SET_NAME: %s", strerror(errno));
  if (setgroups(kGroups.size(), kGroups.data())) fail("U: setgroups: %s", strerror(errno));
  if (prctl(PR_SET_SECUREBITS, kSecurebits)) fail("U: PR_SET_SECUREBITS: %s", strerror(errno));
  if (setresgid(kGids[0], kGids[1], kGids[2])) fail("U: setresgid: %s", strerror(errno));
  syscall(SYS_setfsgid, kGids[3]);
  if (setresuid(kUids[0], kUids[1], kUids[2])) fail("U: setresuid: %s", strerror(errno));
  // KEEP_CAPS kept the permitted set; CAP_SETUID back in effective for setfsuid.
  Caps c = get_caps();
  c.eff = cap(CAP_SETUID);
  set_caps(c);
  syscall(SYS_setfsuid, kUids[3]);
  set_caps(kUCaps);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)) fail("U: ambient raise: %s", strerror(errno));
  // Credential changes reset these two: set them last.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL)) fail("U: PR_SET_PDEATHSIG: %s", strerror(errno));
  if (prctl(PR_SET_DUMPABLE, 0)) fail("U: PR_SET_DUMPABLE: %s", strerror(errno));
  check_u(bnd);
  send_ready(root, g_ok);
  if (!g_ok) _exit(1);
  test_wait();
  check_u(bnd);
  _exit(g_ok ? 0 : 1);
}

// ---- P: personality and other per-process knobs ----

constexpr unsigned long kPersonaFlags = ADDR_NO_RANDOMIZE | READ_IMPLIES_EXEC;
constexpr unsigned long kSlack = 123457;
constexpr mode_t kUmask = 027;

void check_p(unsigned long persona, const void* before_page, const void* after_page, const Caps& caps, uint64_t bnd) {
  int now = personality(0xffffffff);
  if (static_cast<unsigned long>(now) != persona) bad("personality %#x, want %#lx", now, persona);
  ZdtmVma v;
  if (!zdtm_find_vma(reinterpret_cast<uintptr_t>(before_page), &v) || strcmp(v.perms, "r--p") != 0)
    bad("page mapped PROT_READ before READ_IMPLIES_EXEC: perms %s, want r--p", v.perms);
  if (!zdtm_find_vma(reinterpret_cast<uintptr_t>(after_page), &v) || strcmp(v.perms, "r-xp") != 0)
    bad("page mapped PROT_READ after READ_IMPLIES_EXEC: perms %s, want r-xp", v.perms);
  expect_prctl("PR_GET_DUMPABLE", PR_GET_DUMPABLE, 0);
  expect_prctl_ptr("PR_GET_PDEATHSIG", PR_GET_PDEATHSIG, SIGHUP);
  expect_prctl("PR_GET_TIMERSLACK", PR_GET_TIMERSLACK, kSlack);
  expect_prctl("PR_GET_THP_DISABLE", PR_GET_THP_DISABLE, 1);
  expect_prctl("PR_GET_NO_NEW_PRIVS", PR_GET_NO_NEW_PRIVS, 1);
  expect_status("Umask", "0027");
  mode_t m = umask(kUmask);
  if (m != kUmask) bad("umask %#o, want %#o", m, kUmask);
  expect_status("THP_enabled", "0");
  std::string slack = zdtm_read_file("/proc/self/timerslack_ns");
  if (strtoul(slack.c_str(), nullptr, 10) != kSlack) bad("/proc/self/timerslack_ns %lu", strtoul(slack.c_str(), nullptr, 10));
  expect_caps(caps, bnd, 0);
  expect_status("Uid", "0\t0\t0\t0");
  expect_name("zdtm-cred-p");
}

[[noreturn]] void p_main(pid_t root, uint64_t bnd) {
  g_who = "P";
  if (prctl(PR_SET_NAME, "zdtm-cred-p")) fail("P: PR_SET_NAME: %s", strerror(errno));
  void* before = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const unsigned long persona = static_cast<unsigned long>(personality(0xffffffff)) | kPersonaFlags;
  if (personality(persona) < 0) fail("P: personality: %s", strerror(errno));
  void* after = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (before == MAP_FAILED || after == MAP_FAILED) fail("P: mmap: %s", strerror(errno));
  if (prctl(PR_SET_DUMPABLE, 0)) fail("P: PR_SET_DUMPABLE: %s", strerror(errno));
  if (prctl(PR_SET_PDEATHSIG, SIGHUP)) fail("P: PR_SET_PDEATHSIG: %s", strerror(errno));
  if (prctl(PR_SET_TIMERSLACK, kSlack)) fail("P: PR_SET_TIMERSLACK: %s", strerror(errno));
  if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) fail("P: PR_SET_THP_DISABLE: %s", strerror(errno));
  umask(kUmask);
  const Caps caps = get_caps();
  check_p(persona, before, after, caps, bnd);
  send_ready(root, g_ok);
  if (!g_ok) _exit(1);
  test_wait();
  check_p(persona, before, after, caps, bnd);
  _exit(g_ok ? 0 : 1);
}

// ---- R ----

void check_r(const Caps& caps, uint64_t bnd, int persona) {
  expect_name("zdtm-creds");
  expect_prctl_ptr("PR_GET_CHILD_SUBREAPER", PR_GET_CHILD_SUBREAPER, 1);
  expect_prctl("PR_GET_NO_NEW_PRIVS", PR_GET_NO_NEW_PRIVS, 1);
  expect_prctl("PR_GET_DUMPABLE", PR_GET_DUMPABLE, 1);
  expect_prctl_ptr("PR_GET_PDEATHSIG", PR_GET_PDEATHSIG, 0);
  expect_prctl("PR_GET_SECUREBITS", PR_GET_SECUREBITS, 0);
  if (personality(0xffffffff) != persona) bad("personality %#x, want %#x", personality(0xffffffff), persona);
  expect_caps(caps, bnd, 0);
  expect_status("NoNewPrivs", "1");
  expect_status("Uid", "0\t0\t0\t0");
  expect_status("Gid", "0\t0\t0\t0");
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  g_last_cap = atoi(zdtm_read_file("/proc/sys/kernel/cap_last_cap").c_str());
  if (g_last_cap < CAP_NET_BIND_SERVICE || g_last_cap > 63) fail("cap_last_cap %d", g_last_cap);
  if (geteuid() != 0) fail("needs root");
  const pid_t root = getpid();
  if (prctl(PR_SET_NAME, "zdtm-creds")) fail("PR_SET_NAME: %s", strerror(errno));
  if (prctl(PR_SET_CHILD_SUBREAPER, 1)) fail("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
  for (int c : {CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_MKNOD})
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0)) fail("PR_CAPBSET_DROP %d: %s", c, strerror(errno));
  const uint64_t bnd = bounding_set();
  if (bnd & (cap(CAP_SYS_MODULE) | cap(CAP_SYS_BOOT) | cap(CAP_MKNOD))) fail("bounding set still has dropped caps");
  const Caps caps = get_caps();
  const int persona = personality(0xffffffff);
  sigset_t ready;
  sigemptyset(&ready);
  sigaddset(&ready, kReadySig);
  sigprocmask(SIG_BLOCK, &ready, nullptr);

  const pid_t u = fork();
  if (u < 0) fail("fork: %s", strerror(errno));
  if (u == 0) u_main(root, bnd);
  const pid_t p = fork();
  if (p < 0) fail("fork: %s", strerror(errno));
  if (p == 0) p_main(root, bnd);
  for (int i = 0; i < 2; i++) {
    timespec ts = {30, 0};
    siginfo_t si;
    if (sigtimedwait(&ready, &si, &ts) != kReadySig) {
      kill(u, SIGKILL), kill(p, SIGKILL);
      fail("U and P did not set up within 30 s");
    }
    if (si.si_value.sival_int != 1) {
      kill(u, SIGKILL), kill(p, SIGKILL);
      fail("%s failed to set up (see above)", si.si_pid == u ? "U" : "P");
    }
  }
  check_r(caps, bnd, persona);
  if (!g_ok) fail("state not as designed before the dump");
  test_msg("U=%d (uids 1000..1003, reduced caps), P=%d (personality, prctls)", u, p);
  test_ready();
  test_wait();

  check_r(caps, bnd, persona);
  for (auto [name, pid] : {std::pair<const char*, pid_t>{"U", u}, {"P", p}}) {
    if (kill(pid, SIGTERM)) bad("kill(%s %d, SIGTERM): %s", name, pid, strerror(errno));
    const double deadline = mono() + 30;
    int st = 0;
    for (;;) {
      pid_t r = waitpid(pid, &st, WNOHANG);
      if (r == pid) break;
      if ((r < 0 && errno != EINTR) || mono() > deadline) {
        bad("%s (pid %d) not reaped within 30 s of SIGTERM: %s", name, pid, r < 0 ? strerror(errno) : "timeout");
        kill(pid, SIGKILL);
        st = 0;
        break;
      }
      timespec pause_ts = {0, 2000000};
      nanosleep(&pause_ts, nullptr);
    }
    if (WIFSIGNALED(st)) bad("%s (pid %d) killed by signal %d", name, pid, WTERMSIG(st));
    else if (WEXITSTATUS(st) != 0) bad("%s (pid %d) exited %d", name, pid, WEXITSTATUS(st));
  }
  if (!g_ok) fail("credentials or process settings differ (see above)");
  pass();
}
