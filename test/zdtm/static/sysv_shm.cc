// SysV shared memory attached by a parent and its child: one segment with a
// key (kept), one private segment already marked for removal (IPC_RMID while
// attached). After restore both keep their ids, key, size and mode, both
// processes are still attached, the contents survived, and a write by the
// child is seen by the parent.
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "zdtm.h"

namespace {

constexpr size_t kSize = 3 * 4096 + 100;  // not a page multiple on purpose

void Fill(uint8_t* p, uint64_t seed) {
  for (size_t i = 0; i < kSize; i++) p[i] = uint8_t(zdtm_mix(seed, i));
}
bool Same(const uint8_t* p, uint64_t seed) {
  for (size_t i = 0; i < kSize; i++)
    if (p[i] != uint8_t(zdtm_mix(seed, i))) return false;
  return true;
}

int g_keyed = -1;
void Cleanup() {
  if (g_keyed >= 0) shmctl(g_keyed, IPC_RMID, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  test_init(argc, argv);
  uint64_t seed = zdtm_seed();
  key_t key = key_t(0x7a000000 | (getpid() & 0xffffff));
  g_keyed = shmget(key, kSize, IPC_CREAT | IPC_EXCL | 0640);
  int priv = shmget(IPC_PRIVATE, kSize, IPC_CREAT | 0600);
  if (g_keyed < 0 || priv < 0) fail("shmget: %s", strerror(errno));
  auto* a = static_cast<uint8_t*>(shmat(g_keyed, nullptr, 0));
  auto* b = static_cast<uint8_t*>(shmat(priv, nullptr, 0));
  if (a == reinterpret_cast<void*>(-1) || b == reinterpret_cast<void*>(-1)) {
    Cleanup();
    fail("shmat: %s", strerror(errno));
  }
  shmctl(priv, IPC_RMID, nullptr);  // gone once the last process detaches
  Fill(a, seed);
  Fill(b, seed + 1);

  pid_t child = fork();
  if (child == 0) {
    // The child waits for SIGTERM, checks, then writes new contents.
    test_wait();
    int rc = 0;
    if (!Same(a, seed) || !Same(b, seed + 1)) rc = 2;
    Fill(a, seed + 2);
    Fill(b, seed + 3);
    _exit(rc);
  }
  test_ready();
  test_wait();

  struct shmid_ds ds;
  if (shmctl(g_keyed, IPC_STAT, &ds) != 0) {
    Cleanup();
    fail("keyed segment id %d is gone: %s", g_keyed, strerror(errno));
  }
  if (ds.shm_perm.__key != key || ds.shm_segsz != kSize || (ds.shm_perm.mode & 0777) != 0640 ||
      ds.shm_nattch != 2) {
    Cleanup();
    fail("keyed segment: key %#x size %zu mode %o nattch %lu", ds.shm_perm.__key, ds.shm_segsz,
         ds.shm_perm.mode & 0777, (unsigned long)ds.shm_nattch);
  }
  if (shmctl(priv, IPC_STAT, &ds) != 0 || ds.shm_segsz != kSize || ds.shm_nattch != 2 ||
      !(ds.shm_perm.mode & SHM_DEST)) {
    Cleanup();
    fail("private segment id %d: not as before (size, nattch, or no longer marked removed)", priv);
  }
  if (!Same(a, seed) || !Same(b, seed + 1)) {
    Cleanup();
    fail("segment contents changed");
  }
  ZdtmVma v;
  if (!zdtm_find_vma(uintptr_t(a), &v) || v.name.rfind("/SYSV", 0) != 0) {
    Cleanup();
    fail("the keyed segment is not mapped as SysV memory ('%s')", v.name.c_str());
  }
  kill(child, SIGTERM);
  int st;
  if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    Cleanup();
    fail("child failed (status %#x)", st);
  }
  if (!Same(a, seed + 2) || !Same(b, seed + 3)) {
    Cleanup();
    fail("the child's writes are not visible: not shared any more");
  }
  shmdt(a);
  shmdt(b);
  Cleanup();
  pass();
}
