// PLACEHOLDER so the tree builds: the real network lock (nftables) replaces this file.
#pragma once
#include <array>
#include <string>
#include <vector>
#include "base/result.h"
namespace ckpt::net {
struct LockedConn { int family; std::array<uint8_t,16> local_addr, remote_addr; uint16_t local_port, remote_port; };
inline constexpr uint32_t kLockBypassMark = 0x636b7074;
class NetLock { public:
  static Result<NetLock> Lock(const std::string& name, const std::vector<LockedConn>& conns);
  NetLock(); Status Unlock(); std::string Persist(); ~NetLock(); NetLock(NetLock&&); bool active() const; };
Status RemoveLockTable(const std::string& name);
Status CleanStaleLocks();
bool NftablesUsable();
}
