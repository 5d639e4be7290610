// SysV semaphore undo adjustments (SEM_UNDO) survive a round trip
// (criu/ns/sem_undo.h). Runs as pid 1 of new pid and IPC namespaces (the
// runner starts it so). A set of three semaphores with values set by
// SETALL; then, with per-run amounts a, b, c, d:
//   the child:  semaphore 0 -= c with SEM_UNDO   (its list: 0 -> +c)
//   pid 1:      semaphore 0 -= a with SEM_UNDO   (its list: 0 -> +a)
//               semaphore 1 += b with SEM_UNDO   (its list: 1 -> -b)
//               semaphore 2 -= d without undo    (no list entry)
// After SIGTERM: the values are as they were; the child's list applied
// (unshare(CLONE_SYSVSEM) applies a list as an exit does) gives back
// exactly c, then pid 1's gives back a and takes b: each process still
// holds its own adjustments and nothing else.
#include <sched.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "zdtm.h"

namespace {

union SemUn {
  int val;
  struct semid_ds* buf;
  unsigned short* array;
};

void get_all(int id, unsigned short v[3]) {
  SemUn u;
  u.array = v;
  if (semctl(id, 0, GETALL, u) < 0) fail("GETALL: %s", strerror(errno));
}

void expect(int id, int v0, int v1, int v2, const char* when) {
  unsigned short v[3];
  get_all(id, v);
  if (v[0] != v0 || v[1] != v1 || v[2] != v2)
    fail("%s: values %u %u %u, want %d %d %d", when, v[0], v[1], v[2], v0, v1, v2);
}

void op(int id, unsigned short num, short delta, short flags) {
  struct sembuf b = {num, delta, flags};
  if (semop(id, &b, 1) < 0) fail("semop %u %d: %s", num, delta, strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  short a = short(1 + seed % 3), b = short(1 + (seed >> 8) % 4), c = short(1 + (seed >> 16) % 2),
        d = short(1 + (seed >> 24) % 5);
  const int base0 = 10, base1 = 0, base2 = 20;
  int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
  if (id < 0) fail("semget: %s", strerror(errno));
  unsigned short init[3] = {base0, base1, base2};
  SemUn u;
  u.array = init;
  if (semctl(id, 0, SETALL, u) < 0) fail("SETALL: %s", strerror(errno));

  int ready[2], go[2];
  if (pipe(ready) < 0 || pipe(go) < 0) fail("pipe: %s", strerror(errno));
  pid_t child = fork();
  if (child < 0) fail("fork: %s", strerror(errno));
  if (child == 0) {
    struct sembuf sb = {0, short(-c), SEM_UNDO};
    char x = semop(id, &sb, 1) == 0 ? 'r' : 'e';
    if (write(ready[1], &x, 1) != 1) _exit(2);
    if (read(go[0], &x, 1) != 1) _exit(3);
    // Applies the child's list now, as its exit would.
    _exit(unshare(CLONE_SYSVSEM) == 0 ? 0 : 4);
  }
  char x = 0;
  if (read(ready[0], &x, 1) != 1 || x != 'r') fail("the child's semop failed");
  op(id, 0, short(-a), SEM_UNDO);
  op(id, 1, b, SEM_UNDO);
  op(id, 2, short(-d), 0);
  int v0 = base0 - a - c, v1 = base1 + b, v2 = base2 - d;
  expect(id, v0, v1, v2, "before");

  test_ready();
  test_wait();

  expect(id, v0, v1, v2, "after restore");
  if (write(go[1], "g", 1) != 1) fail("write: %s", strerror(errno));
  int st = 0;
  if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the child ended with status %#x", st);
  expect(id, v0 + c, v1, v2, "the child's list applied");
  if (unshare(CLONE_SYSVSEM) < 0) fail("unshare(CLONE_SYSVSEM): %s", strerror(errno));
  expect(id, base0, base1, v2, "pid 1's list applied");
  semctl(id, 0, IPC_RMID);
  pass();
}
