#include "images/image_types.h"

#include <cstdio>

#include "proto/cgroup.pb.h"
#include "proto/checksums.pb.h"
#include "proto/core.pb.h"
#include "proto/fdinfo.pb.h"
#include "proto/fs.pb.h"
#include "proto/inventory.pb.h"
#include "proto/lsm.pb.h"
#include "proto/memtrack.pb.h"
#include "proto/ipc_ns.pb.h"
#include "proto/mm.pb.h"
#include "proto/mnt_ns.pb.h"
#include "proto/ns.pb.h"
#include "proto/net_ns.pb.h"
#include "proto/pagemap.pb.h"
#include "proto/pstree.pb.h"
#include "proto/seccomp.pb.h"
#include "proto/shm_file.pb.h"
#include "proto/sk_inet.pb.h"

namespace ckpt::images {
namespace {

template <typename M>
std::unique_ptr<google::protobuf::Message> Make() {
  return std::make_unique<M>();
}

// Magics are arbitrary distinct values; never reuse one for another type.
const ImageTypeInfo kTypes[] = {
    {ImageType::kInventory, "inventory", "inventory.img", 0x494e5601, Make<pb::InventoryEntry>,
     nullptr},
    {ImageType::kPstree, "pstree", "pstree.img", 0x50535401, Make<pb::PstreeEntry>, nullptr},
    {ImageType::kCore, "core", "core-%u.img", 0x434f5201, Make<pb::TaskCoreEntry>, nullptr},
    {ImageType::kMm, "mm", "mm-%u.img", 0x4d4d0001, Make<pb::MmEntry>, nullptr},
    {ImageType::kPagemap, "pagemap", "pagemap-%u.img", 0x50474d01, Make<pb::PagemapEntry>,
     Make<pb::PagemapHead>},
    {ImageType::kFdinfo, "fdinfo", "fdinfo-%u.img", 0x46444901, Make<pb::FdinfoEntry>, nullptr},
    {ImageType::kFiles, "files", "files.img", 0x46494c01, Make<pb::FileEntry>, nullptr},
    {ImageType::kFs, "fs", "fs-%u.img", 0x46530001, Make<pb::FsEntry>, nullptr},
    {ImageType::kFileData, "fdata", "fdata-%u.img", 0x46444101, Make<pb::FileDataEntry>, nullptr},
    {ImageType::kUnixSkQueue, "sk-queue", "sk-queue-%u.img", 0x534b5101, Make<pb::UnixSkMessage>,
     nullptr},
    {ImageType::kTcpStream, "tcp-stream", "tcp-stream-%u.img", 0x54435301,
     Make<pb::TcpStreamEntry>, nullptr},
    {ImageType::kNamespaces, "namespaces", "namespaces.img", 0x4e535001,
     Make<pb::NamespacesEntry>, nullptr},
    {ImageType::kSeccomp, "seccomp", "seccomp.img", 0x53434d01, Make<pb::SeccompEntry>, nullptr},
    {ImageType::kLsm, "lsm", "lsm.img", 0x4c534d01, Make<pb::LsmEntry>, nullptr},
    {ImageType::kNetNsLinks, "netns-links", "netns-links.img", 0x4e4c4b01, Make<pb::NetLinkEntry>,
     nullptr},
    {ImageType::kNetNsRtnl, "netns-rtnl", "netns-rtnl.img", 0x4e52544e, Make<pb::NetRtnlEntry>,
     nullptr},
    {ImageType::kNetNsSysctl, "netns-sysctl", "netns-sysctl.img", 0x4e535901,
     Make<pb::NetSysctlEntry>, nullptr},
    {ImageType::kNetNsNft, "netns-nft", "netns-nft.img", 0x4e4e4601, Make<pb::NftMsgEntry>,
     nullptr},
    {ImageType::kIpcNs, "ipc-ns", "ipc-ns.img", 0x49504e01, Make<pb::IpcNsRecord>, nullptr},
    {ImageType::kCgroup, "cgroup", "cgroup.img", 0x43475201, Make<pb::CgroupEntry>, nullptr},
    {ImageType::kMntNs, "mnt-ns", "mnt-ns.img", 0x4d4e5401, Make<pb::MountEntry>, nullptr},
    {ImageType::kTmpfs, "tmpfs", "tmpfs-%u.img", 0x544d5001, Make<pb::TmpfsRecord>, nullptr},
    {ImageType::kMemTrack, "memtrack", "memtrack.img", 0x4d545201, Make<pb::MemTrackEntry>,
     nullptr},
    {ImageType::kChecksums, "checksums", "checksums%.0u.img", 0x434b5301,
     Make<pb::ChecksumEntry>, nullptr},
    {ImageType::kShmFiles, "shm-files", "shm-files.img", 0x53484601, Make<pb::ShmFileEntry>,
     nullptr},
};

}  // namespace

const ImageTypeInfo& Info(ImageType t) { return kTypes[static_cast<int>(t)]; }

const ImageTypeInfo* FindByMagic(uint32_t magic) {
  for (const auto& t : kTypes)
    if (t.magic == magic) return &t;
  return nullptr;
}

std::string FileName(ImageType t, uint32_t id) {
  char buf[256];
  snprintf(buf, sizeof(buf), Info(t).pattern, id);
  return buf;
}

std::string PagesFileName(uint32_t id) { return "pages-" + std::to_string(id) + ".img"; }

}  // namespace ckpt::images
