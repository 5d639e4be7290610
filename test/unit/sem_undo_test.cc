// SEM_UNDO entries from images (criu/ns/sem_undo.h): CheckSemUndo refuses
// what the kernel could not hold before anything is restored, naming it.
#include <gtest/gtest.h>

#include "criu/ns/sem_undo.h"

namespace ckpt::ns {
namespace {

pb::TaskCoreEntry CoreWith(int semid, uint32_t num, int adj) {
  pb::TaskCoreEntry core;
  core.set_pid(42);
  pb::SemUndoEntry* e = core.add_sem_undo();
  e->set_semid(semid);
  e->set_num(num);
  e->set_adj(adj);
  return core;
}

TEST(SemUndo, GoodEntriesPass) {
  EXPECT_TRUE(CheckSemUndo(CoreWith(0, 0, 1)).ok());
  EXPECT_TRUE(CheckSemUndo(CoreWith(32768, 65535, -32767)).ok());
  EXPECT_TRUE(CheckSemUndo(CoreWith(7, 3, 32767)).ok());
  EXPECT_TRUE(CheckSemUndo(pb::TaskCoreEntry()).ok());
}

TEST(SemUndo, HostileEntriesAreRefused) {
  for (auto core : {CoreWith(-1, 0, 1), CoreWith(0, 65536, 1), CoreWith(0, 0, 0),
                    CoreWith(0, 0, 32768), CoreWith(0, 0, -32768)}) {
    Status s = CheckSemUndo(core);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message().find("pid 42: bad SEM_UNDO entry"), std::string::npos)
        << s.error().message();
  }
}

}  // namespace
}  // namespace ckpt::ns
