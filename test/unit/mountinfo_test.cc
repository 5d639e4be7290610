// The mountinfo parser (criu/ns/mountinfo.h) on fixed text.
#include "criu/ns/mountinfo.h"

#include <gtest/gtest.h>
#include <linux/mount.h>

namespace ckpt::ns {
namespace {

TEST(MountInfo, ParsesEveryField) {
  auto r = ParseMountInfo(
      "36 35 98:0 /mnt1 /mnt\\0402 rw,nosuid,noatime master:1 shared:7 - ext3 /dev/root "
      "rw,errors=continue\n"
      "40 36 0:5 / /x ro,nodev,noexec,nodiratime,nosymfollow unbindable - overlay overlay "
      "rw,lowerdir=/a\\054b:/c,upperdir=/u\n"
      "41 36 0:6 / /y rw propagate_from:3 master:2 - tmpfs none rw\n");
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->size(), 3u);
  const MountInfo& a = (*r)[0];
  EXPECT_EQ(a.id, 36u);
  EXPECT_EQ(a.parent_id, 35u);
  EXPECT_EQ(a.dev, "98:0");
  EXPECT_EQ(a.root, "/mnt1");
  EXPECT_EQ(a.mountpoint, "/mnt 2");
  EXPECT_EQ(a.attrs, uint64_t(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME));
  EXPECT_EQ(a.master, 1u);
  EXPECT_EQ(a.shared, 7u);
  EXPECT_FALSE(a.unbindable);
  EXPECT_EQ(a.fstype, "ext3");
  EXPECT_EQ(a.source, "/dev/root");
  EXPECT_EQ(a.fs_opts, (std::vector<std::string>{"rw", "errors=continue"}));
  const MountInfo& b = (*r)[1];
  EXPECT_TRUE(b.unbindable);
  EXPECT_EQ(b.attrs, uint64_t(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC |
                              MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW | MOUNT_ATTR_STRICTATIME));
  EXPECT_EQ(b.fs_opts, (std::vector<std::string>{"rw", "lowerdir=/a,b:/c", "upperdir=/u"}));
  EXPECT_EQ(MountOptionsString(b.attrs), "ro,nodev,noexec,nodiratime,nosymfollow");
  EXPECT_EQ((*r)[2].propagate_from, 3u);
  EXPECT_EQ((*r)[2].master, 2u);
  EXPECT_EQ(MountOptionsString(a.attrs), "rw,nosuid,noatime");
  EXPECT_EQ(MountOptionsString(MOUNT_ATTR_RELATIME), "rw,relatime");
}

TEST(MountInfo, BadLinesAreNamed) {
  for (const char* bad : {"36 35 98:0 /a /b rw - ext3\n", "x 35 98:0 / /b rw - ext3 s rw\n",
                          "36 35 98:0 / /b rw,idmapped - ext3 s rw\n",
                          "36 35 98:0 / /b rw weird:1 - ext3 s rw\n",
                          "36 35 98:0 / b rw - ext3 s rw\n", "36 35 980 / /b rw - ext3 s rw\n"}) {
    auto r = ParseMountInfo(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message().find("mountinfo line '"), std::string::npos) << r.error().message();
  }
  auto r = ParseMountInfo("36 35 98:0 / /b rw,idmapped - ext3 s rw\n");
  EXPECT_NE(r.error().message().find("mount option 'idmapped' is not supported"), std::string::npos);
}

TEST(MountInfo, Paths) {
  EXPECT_TRUE(PathIsUnder("/a/b", "/a"));
  EXPECT_TRUE(PathIsUnder("/a", "/a"));
  EXPECT_TRUE(PathIsUnder("/a", "/"));
  EXPECT_FALSE(PathIsUnder("/ab", "/a"));
  EXPECT_FALSE(PathIsUnder("/", "/a"));
  EXPECT_EQ(PathRelativeTo("/a/b/c", "/a"), "b/c");
  EXPECT_EQ(PathRelativeTo("/a/b", "/"), "a/b");
  EXPECT_EQ(PathRelativeTo("/a", "/a"), "");
  EXPECT_EQ(UnescapeMountField("a\\011b\\134c\\0"), "a\tb\\c\\0");
}

}  // namespace
}  // namespace ckpt::ns
