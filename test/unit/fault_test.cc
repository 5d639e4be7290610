// CKPT_FAULT parsing and the registry of points (base/fault.h). The
// points themselves are exercised by test/fault (fault-matrix).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <set>
#include <string>

#include "base/fault.h"

namespace ckpt::fault {
namespace {

TEST(Fault, PointsAreUniqueAndDescribed) {
  std::set<std::string> names;
  for (const Point& p : Points()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name << " twice";
    EXPECT_NE(std::string(p.where), "") << p.name;
    EXPECT_EQ(std::string(p.name).find_first_of(",: "), std::string::npos) << p.name;
  }
  EXPECT_GE(names.size(), 15u);
}

TEST(Fault, CheckEnvRefusesUnknownPointsAndModes) {
  unsetenv("CKPT_FAULT");
  EXPECT_TRUE(CheckEnv().ok());
  setenv("CKPT_FAULT", "dump-seized,restore-forked:kill", 1);
  EXPECT_TRUE(CheckEnv().ok());
  setenv("CKPT_FAULT", "dump-seized,no-such-point", 1);
  auto s = CheckEnv();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("unknown point no-such-point"), std::string::npos);
  setenv("CKPT_FAULT", "dump-seized:explode", 1);
  ASSERT_FALSE(CheckEnv().ok());
  unsetenv("CKPT_FAULT");
}

TEST(Fault, InjectedErrorNamesThePoint) {
  EXPECT_EQ(Injected("dump-before-cure").message(),
            "fault injected at dump-before-cure (CKPT_FAULT)");
}

}  // namespace
}  // namespace ckpt::fault
