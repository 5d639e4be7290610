// signals: handlers with SA_SIGINFO, SA_RESTART, SA_NODEFER, SA_RESETHAND and
// SA_ONSTACK (on a sigaltstack), an ignored signal, a blocked mask.
// Verifies that sigaction() for every signal returns exactly what it did
// before, the blocked mask and sigaltstack are the same, and raised
// signals run their handlers with the right mask / stack / siginfo.
#include <signal.h>
#include <sys/mman.h>

#include <cstring>

#include "zdtm.h"

namespace {
constexpr size_t kAltSize = 64 * 1024;
char* g_alt;
volatile sig_atomic_t g_usr1, g_usr2, g_alrm, g_urg, g_rt;
volatile int g_usr1_code, g_usr2_nested, g_alrm_onstack, g_usr1_mask_ok, g_usr2_self_unblocked;

bool on_altstack(const void* p) {
  auto a = reinterpret_cast<uintptr_t>(p), s = reinterpret_cast<uintptr_t>(g_alt);
  return a >= s && a < s + kAltSize;
}
bool blocked_now(int sig) {
  sigset_t cur;
  sigprocmask(SIG_BLOCK, nullptr, &cur);
  return sigismember(&cur, sig) == 1;
}

// SA_SIGINFO | SA_RESTART, sa_mask {SIGUSR2, SIGWINCH}.
void h_usr1(int sig, siginfo_t* si, void*) {
  g_usr1 = g_usr1 + 1;
  g_usr1_code = si->si_code;
  g_usr1_mask_ok = blocked_now(SIGUSR2) && blocked_now(SIGWINCH) && blocked_now(SIGUSR1);
}
// SA_NODEFER: SIGUSR2 stays unblocked inside, so raising it nests.
void h_usr2(int) {
  g_usr2_self_unblocked = !blocked_now(SIGUSR2);
  g_usr2 = g_usr2 + 1;
  if (g_usr2 == 1) {
    raise(SIGUSR2);
    g_usr2_nested = g_usr2 == 2;
  }
}
// SA_ONSTACK | SA_SIGINFO: must run on the alternate stack.
void h_alrm(int, siginfo_t*, void*) {
  int local;
  g_alrm_onstack = on_altstack(&local);
  g_alrm = g_alrm + 1;
}
// SA_RESETHAND: runs once, then the disposition is SIG_DFL.
void h_urg(int) { g_urg = g_urg + 1; }
void h_rt(int, siginfo_t* si, void*) { g_rt = si->si_signo; }

void install(int sig, void (*h)(int), void (*sa)(int, siginfo_t*, void*), int flags,
             std::initializer_list<int> mask) {
  struct sigaction act = {};
  if (sa)
    act.sa_sigaction = sa;
  else
    act.sa_handler = h;
  act.sa_flags = flags;
  sigemptyset(&act.sa_mask);
  for (int m : mask) sigaddset(&act.sa_mask, m);
  if (sigaction(sig, &act, nullptr)) fail("sigaction(%d): %s", sig, strerror(errno));
}

bool same_set(const sigset_t& a, const sigset_t& b) {
  for (int s = 1; s < NSIG; s++)
    if (sigismember(&a, s) != sigismember(&b, s)) return false;
  return true;
}

struct sigaction g_before[NSIG];
bool g_queryable[NSIG];  // glibc refuses its internal signals (32, 33)
}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  const int rt = SIGRTMIN + 3;
  g_alt = static_cast<char*>(
      mmap(nullptr, kAltSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (g_alt == MAP_FAILED) fail("mmap altstack: %s", strerror(errno));
  stack_t ss = {};
  ss.ss_sp = g_alt;
  ss.ss_size = kAltSize;
  if (sigaltstack(&ss, nullptr)) fail("sigaltstack: %s", strerror(errno));

  install(SIGUSR1, nullptr, h_usr1, SA_SIGINFO | SA_RESTART, {SIGUSR2, SIGWINCH});
  install(SIGUSR2, h_usr2, nullptr, SA_NODEFER, {SIGHUP});
  install(SIGALRM, nullptr, h_alrm, SA_ONSTACK | SA_SIGINFO, {});
  install(SIGURG, h_urg, nullptr, SA_RESETHAND, {SIGQUIT});
  install(rt, nullptr, h_rt, SA_SIGINFO | SA_RESTART | SA_ONSTACK, {SIGINT, SIGRTMIN + 5});
  install(SIGPIPE, SIG_IGN, nullptr, 0, {});
  install(SIGCHLD, SIG_IGN, nullptr, SA_NOCLDSTOP, {});

  sigset_t blocked;
  sigemptyset(&blocked);
  for (int s : {SIGHUP, SIGQUIT, SIGWINCH, SIGPROF, SIGRTMIN + 5, SIGRTMAX}) sigaddset(&blocked, s);
  if (sigprocmask(SIG_SETMASK, &blocked, nullptr)) fail("sigprocmask: %s", strerror(errno));

  for (int s = 1; s < NSIG; s++)
    g_queryable[s] = s != SIGKILL && s != SIGSTOP && sigaction(s, nullptr, &g_before[s]) == 0;
  stack_t ss_before;
  sigaltstack(nullptr, &ss_before);

  test_ready();
  test_wait();

  for (int s = 1; s < NSIG; s++) {
    if (!g_queryable[s]) continue;
    struct sigaction now;
    if (sigaction(s, nullptr, &now)) fail("sigaction(%d, NULL): %s", s, strerror(errno));
    const struct sigaction& b = g_before[s];
    if (reinterpret_cast<void*>(now.sa_handler) != reinterpret_cast<void*>(b.sa_handler))
      fail("signal %d: handler %p, want %p", s, reinterpret_cast<void*>(now.sa_handler),
           reinterpret_cast<void*>(b.sa_handler));
    if (now.sa_flags != b.sa_flags)
      fail("signal %d: sa_flags %#x, want %#x", s, now.sa_flags, b.sa_flags);
    if (!same_set(now.sa_mask, b.sa_mask)) fail("signal %d: sa_mask differs", s);
    if (now.sa_handler != SIG_DFL && now.sa_handler != SIG_IGN &&
        reinterpret_cast<void*>(now.sa_restorer) != reinterpret_cast<void*>(b.sa_restorer))
      fail("signal %d: sa_restorer %p, want %p", s, reinterpret_cast<void*>(now.sa_restorer),
           reinterpret_cast<void*>(b.sa_restorer));
  }
  sigset_t cur;
  sigprocmask(SIG_BLOCK, nullptr, &cur);
  if (!same_set(cur, blocked)) fail("blocked mask differs");
  sigset_t pending;
  sigpending(&pending);
  for (int s = 1; s < NSIG; s++)
    if (sigismember(&pending, s) == 1) fail("signal %d is pending, none should be", s);
  stack_t ss_now;
  sigaltstack(nullptr, &ss_now);
  if (ss_now.ss_sp != ss_before.ss_sp || ss_now.ss_size != ss_before.ss_size ||
      ss_now.ss_flags != ss_before.ss_flags)
    fail("sigaltstack sp=%p size=%zu flags=%d, want sp=%p size=%zu flags=%d", ss_now.ss_sp,
         ss_now.ss_size, ss_now.ss_flags, ss_before.ss_sp, ss_before.ss_size, ss_before.ss_flags);

  // The handlers still run as installed.
  raise(SIGUSR1);
  if (g_usr1 != 1 || g_usr1_code != SI_TKILL || !g_usr1_mask_ok)
    fail("SIGUSR1: ran %d times, si_code %d, sa_mask honoured %d", int(g_usr1), g_usr1_code,
         g_usr1_mask_ok);
  raise(SIGUSR2);
  if (g_usr2 != 2 || !g_usr2_nested || !g_usr2_self_unblocked)
    fail("SIGUSR2 (SA_NODEFER): ran %d times, nested %d", int(g_usr2), g_usr2_nested);
  raise(SIGALRM);
  if (g_alrm != 1 || !g_alrm_onstack)
    fail("SIGALRM: ran %d times, on altstack %d", int(g_alrm), g_alrm_onstack);
  raise(SIGURG);
  struct sigaction urg;
  sigaction(SIGURG, nullptr, &urg);
  if (g_urg != 1 || urg.sa_handler != SIG_DFL)
    fail("SIGURG (SA_RESETHAND): ran %d times, reset %d", int(g_urg), urg.sa_handler == SIG_DFL);
  raise(rt);
  if (g_rt != rt) fail("SIGRTMIN+3: handler saw signo %d", int(g_rt));
  raise(SIGPIPE);  // ignored
  // A blocked signal stays pending until unblocked, then runs the handler.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  install(SIGWINCH, h_urg, nullptr, 0, {});
  raise(SIGWINCH);
  if (g_urg != 1) fail("blocked SIGWINCH was delivered");
  sigprocmask(SIG_UNBLOCK, &winch, nullptr);
  if (g_urg != 2) fail("SIGWINCH not delivered after unblocking");
  pass();
}
