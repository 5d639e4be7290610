// The registry of image types: one line each in image_types.cc.
//
// Every image file starts with two u32 magics: kImageMagic (the format) and
// the type's own magic; then (u32 length, protobuf message) records, then
// a checksum trailer (images/image_check.h). Pages files (pages-<id>.img)
// are raw page contents with no header, listed in checksums.img; with
// dump --compress they are zpages files (images/zpages.h), marked so in
// that list.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ckpt::images {

inline constexpr uint32_t kImageMagic = 0x54504b43;  // "CKPT" little-endian
// 2: every record image ends with a checksum trailer, raw files are listed
// in checksums.img (images/image_check.h).
inline constexpr uint32_t kFormatVersion = 2;
// Refuse records larger than this when reading: a hostile length must not
// make us allocate gigabytes.
inline constexpr uint32_t kMaxRecordSize = 64u << 20;

enum class ImageType {
  kInventory,
  kPstree,
  kCore,
  kMm,
  kPagemap,
  kFdinfo,
  kFiles,
  kFs,
  kFileData,  // fdata-<id>.img: bytes of a pipe, memfd or deleted file
  kUnixSkQueue,  // sk-queue-<file id>.img: unread messages of a unix socket
  kTcpStream,    // tcp-stream-<file id>.img: a TCP connection read in repair mode
  kNamespaces,   // namespaces.img: which namespaces the tree has of its own
  kSeccomp,      // seccomp.img: filters and per-thread modes of the whole tree
  kLsm,          // lsm.img: LSM labels of every thread (hosts with a labelling LSM)
  kNetNsLinks,   // netns-links.img: devices of the dumped network namespace
  kNetNsRtnl,    // netns-rtnl.img: its addresses, routes and rules
  kNetNsSysctl,  // netns-sysctl.img: its net.ipv4/net.ipv6 sysctls
  kNetNsNft,     // netns-nft.img: its nftables ruleset
  kIpcNs,        // ipc-ns.img: the objects of an IPC namespace (criu/ns/ipc_ns.h)
  kCgroup,       // cgroup.img: the tasks' cgroups and, if managed, their settings
  kMntNs,        // mnt-ns.img: the mounts of the tree's mount namespace (criu/ns/mnt_ns.h)
  kTmpfs,        // tmpfs-<mount id>.img: the files of a tmpfs of the tree's own
  kMemTrack,     // memtrack.img: a step of an incremental chain (criu/mem_track.h)
  kChecksums,    // checksums[1].img: sizes and CRC32C of raw files (images/image_check.h)
  kShmFiles,     // shm-files.img: tmpfs files the tree maps shared (criu/shm_files.h)
};

struct ImageTypeInfo {
  ImageType type;
  const char* name;       // "core"
  const char* pattern;    // "core-%u.img" or "inventory.img"
  uint32_t magic;
  // The message type of the records; for pagemap the first record is a
  // head of another type (head_factory).
  std::unique_ptr<google::protobuf::Message> (*factory)();
  std::unique_ptr<google::protobuf::Message> (*head_factory)();
};

const ImageTypeInfo& Info(ImageType t);
// Looks a type up by its magic; nullptr if unknown.
const ImageTypeInfo* FindByMagic(uint32_t magic);
// File name of an image of type t for the given id (pid or pages id).
std::string FileName(ImageType t, uint32_t id = 0);
// File name of a raw pages file.
std::string PagesFileName(uint32_t id);

}  // namespace ckpt::images
