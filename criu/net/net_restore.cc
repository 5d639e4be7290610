#include "criu/net/net_restore.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/log.h"
#include "criu/files/inet_sk.h"
#include "criu/files/sk_common.h"
#include "criu/net/netlock.h"
#include "criu/net/tcp_repair.h"

namespace ckpt::net {
namespace {

bool Live(const pb::FileEntry& f, const Options& o) {
  return f.has_inet_sk() && f.inet_sk().has_stream() && o.tcp_established;
}

}  // namespace

NetRestore::NetRestore() = default;
NetRestore::~NetRestore() = default;

Status NetRestore::Lock(const TreeImages& tree, const Options& o) {
  if (!o.network_lock) return Ok();
  std::vector<LockedConn> conns;
  for (const auto& [id, f] : tree.files) {
    if (!Live(f, o)) continue;
    const pb::InetSkEntry& e = f.inet_sk();
    uint8_t local[16] = {}, remote[16] = {};
    memcpy(local, e.src_addr().data(), std::min<size_t>(e.src_addr().size(), 16));
    memcpy(remote, e.dst_addr().data(), std::min<size_t>(e.dst_addr().size(), 16));
    conns.push_back(ConnOnTheWire(int(e.family()), local, remote, uint16_t(e.src_port()),
                                  uint16_t(e.dst_port())));
  }
  if (conns.empty()) return Ok();
  TRY(CleanStaleLocks());
  TRY_ASSIGN(NetLock lock, NetLock::Lock("restore-" + std::to_string(tree.tasks[0].pid()), conns));
  lock_ = std::make_unique<NetLock>(std::move(lock));
  LOG_INFO("Network locked for the restore: " + std::to_string(conns.size()) +
           " TCP connection(s), table inet " + lock_->table());
  return Ok();
}

Status NetRestore::Finish(const TreeImages& tree, const std::vector<pid_t>& real_pids,
                          const images::ImageDir& dir, const Options& o) {
  // One task and fd that hold each file.
  std::map<uint32_t, std::pair<pid_t, int>> holder;
  for (size_t i = 0; i < tree.tasks.size(); i++) {
    const TaskImages& t = tree.tasks[i];
    if (t.zombie() || t.helper) continue;
    for (const pb::FdinfoEntry& fd : t.fds)
      holder.emplace(fd.file_id(), std::make_pair(real_pids[i], int(fd.fd())));
  }
  if (lock_) TRY(lock_->Unlock());
  const std::string& kept = tree.inventory.netlock_table();
  if (!kept.empty() && tree.namespaces.net()) {
    LOG_DBG("The dump's network lock " + kept + " was in the tree's own network namespace");
  } else if (!kept.empty()) {
    TRY_ASSIGN(std::vector<std::string> tables, ListInetTables());
    if (std::find(tables.begin(), tables.end(), kept) != tables.end()) {
      TRY(RemoveLockTable(kept));
      LOG_INFO("Removed the dump's network lock " + kept);
    } else {
      LOG_INFO("The dump's network lock " + kept +
               " is not in this network namespace (dumped on another host or namespace?): "
               "run `ckpt unlock -D DIR` there");
    }
  }
  for (const auto& [id, f] : tree.files) {
    if (!Live(f, o)) continue;
    std::string what = files::DescribeInetSk(f.inet_sk());
    auto h = holder.find(id);
    if (h == holder.end()) continue;  // no task holds it any more
    TRY_ASSIGN(UniqueFd sk, files::GrabTaskSocket(h->second.first, h->second.second),
               what + " (pid " + std::to_string(h->second.first) + " fd " +
                   std::to_string(h->second.second) + ")");
    TRY_ASSIGN(images::ImageReader r, dir.OpenReader(images::ImageType::kTcpStream, id));
    pb::TcpStreamEntry stream;
    TRY(r.ReadOne(stream));
    TRY(FinishTcpStream(sk.get(), stream, f.inet_sk().opts().reuseaddr(), what));
    LOG_DBG(what + ": out of repair mode");
  }
  return Ok();
}

}  // namespace ckpt::net
