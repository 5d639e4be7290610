// Sequencing of a network namespace's dump and restore; the parts live in
// net_links.cc, net_rtnl.cc, net_sysctl.cc and nft_ruleset.cc.
#include "criu/ns/net_ns.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "base/log.h"
#include "criu/ns/net_links.h"
#include "criu/ns/net_rtnl.h"
#include "criu/ns/net_sysctl.h"
#include "criu/ns/netlink_util.h"
#include "criu/ns/nft_ruleset.h"

namespace ckpt::ns {
namespace {

template <typename T>
Status WriteAll(images::ImageDir& dir, images::ImageType t, const std::vector<T>& v) {
  std::string name = images::FileName(t);
  TRY_ASSIGN(images::ImageWriter w, dir.OpenWriter(t), name);
  for (const T& m : v) TRY(w.Write(m), name);
  TRY(w.Close(), name);
  return Ok();
}

template <typename T>
Result<std::vector<T>> ReadAll(const images::ImageDir& dir, images::ImageType t) {
  std::string name = images::FileName(t);
  TRY_ASSIGN(images::ImageReader r, dir.OpenReader(t), name);
  std::vector<T> out;
  while (true) {
    T m;
    TRY_ASSIGN(bool got, r.Read(m), name);
    if (!got) break;
    out.push_back(std::move(m));
  }
  return out;
}

Result<ino_t> NsInode(int fd, const std::string& what) {
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::Errno("fstat " + what);
  return st.st_ino;
}

}  // namespace

Result<std::vector<VethExternal>> ParseVethExternals(const std::vector<std::string>& externals) {
  std::vector<VethExternal> out;
  for (const std::string& x : externals) {
    if (x.rfind("veth[", 0) != 0) continue;
    size_t close = x.find(']');
    VethExternal v;
    if (close != std::string::npos) v.inner = x.substr(5, close - 5);
    if (close == std::string::npos || v.inner.empty() || close + 1 >= x.size() ||
        x[close + 1] != ':')
      return Error("--external " + x + ": expected veth[IFNAME]:OUTNAME[@BRIDGE]", EINVAL);
    std::string rest = x.substr(close + 2);
    size_t at = rest.find('@');
    v.outer = rest.substr(0, at);
    if (at != std::string::npos) v.bridge = rest.substr(at + 1);
    if (v.outer.empty() || v.outer.size() >= 16 || v.inner.size() >= 16 ||
        (at != std::string::npos && (v.bridge.empty() || v.bridge.size() >= 16)))
      return Error("--external " + x +
                       ": expected veth[IFNAME]:OUTNAME[@BRIDGE] (names of 1 to 15 "
                       "characters)",
                   EINVAL);
    out.push_back(std::move(v));
  }
  return out;
}

Status DumpNetNamespace(pid_t pid, const NetNsOptions& o, images::ImageDir& dir) {
  const std::string who = "netns of pid " + std::to_string(pid);
  auto externals = ParseVethExternals(o.externals);
  if (!externals.ok()) return std::move(externals.error().Context(who));
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  UniqueFd target(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) return Error::Errno(who + ": open " + path);
  TRY_ASSIGN(UniqueFd host_ns, OpenOwnNetns(), who);
  TRY_ASSIGN(ino_t ti, NsInode(target.get(), path), who);
  TRY_ASSIGN(ino_t hi, NsInode(host_ns.get(), "ckpt's network namespace"), who);
  if (ti == hi) return Error(who + ": it is ckpt's own network namespace", EINVAL);
  TRY_ASSIGN(NlSock host, OpenRtnl(), who);

  std::vector<pb::NetLinkEntry> links;
  std::vector<pb::NetRtnlEntry> rtnl;
  std::vector<pb::NetSysctlEntry> sysctls;
  std::vector<pb::NftMsgEntry> nft;
  // What a namespace made now holds, to tell which sysctls were changed.
  std::vector<pb::NetSysctlEntry> fresh;
  TRY(RunInNewNetns([&]() -> Status {
        TRY_ASSIGN(fresh, DumpSysctls());
        return Ok();
      }),
      who + ": a fresh network namespace to compare sysctls with");
  // Everything is read from a thread inside the namespace: its rtnetlink
  // and nf_tables sockets are made there, and /proc/sys/net shows what the
  // reading thread's namespace holds.
  TRY(RunInNetns(target.get(),
                 [&]() -> Status {
                   TRY_ASSIGN(NlSock inner, OpenRtnl());
                   TRY_ASSIGN(links, DumpLinks(inner.get(), host.get(), host_ns.get()));
                   IfNames names;
                   for (const auto& l : links) names[l.ifindex()] = l.name();
                   TRY_ASSIGN(rtnl, DumpRtnl(inner.get(), names));
                   TRY_ASSIGN(sysctls, DumpSysctls());
                   MarkChanged(sysctls, fresh);
                   TRY_ASSIGN(nft, DumpNftRuleset());
                   return Ok();
                 }),
      who);
  TRY(WriteAll(dir, images::ImageType::kNetNsLinks, links), who);
  TRY(WriteAll(dir, images::ImageType::kNetNsRtnl, rtnl), who);
  TRY(WriteAll(dir, images::ImageType::kNetNsSysctl, sysctls), who);
  TRY(WriteAll(dir, images::ImageType::kNetNsNft, nft), who);
  LOG_INFO(who + ": " + std::to_string(links.size()) + " devices, " + std::to_string(rtnl.size()) +
           " addresses/routes/rules, " + std::to_string(sysctls.size()) + " sysctls, " +
           std::to_string(nft.size()) + " nftables messages");
  return Ok();
}

Status RestoreNetNamespace(const images::ImageDir& dir, const NetNsOptions& o, int host_netns_fd) {
  const std::string who = "restoring the network namespace";
  TRY_ASSIGN(std::vector<VethExternal> externals, ParseVethExternals(o.externals), who);
  // Everything read and checked before anything is made.
  TRY_ASSIGN(auto links, ReadAll<pb::NetLinkEntry>(dir, images::ImageType::kNetNsLinks), who);
  TRY_ASSIGN(auto rtnl, ReadAll<pb::NetRtnlEntry>(dir, images::ImageType::kNetNsRtnl), who);
  TRY_ASSIGN(auto sysctls, ReadAll<pb::NetSysctlEntry>(dir, images::ImageType::kNetNsSysctl), who);
  TRY_ASSIGN(auto nft, ReadAll<pb::NftMsgEntry>(dir, images::ImageType::kNetNsNft), who);
  TRY(CheckLinks(links), who + ": " + images::FileName(images::ImageType::kNetNsLinks));
  TRY(CheckRtnl(rtnl), who + ": " + images::FileName(images::ImageType::kNetNsRtnl));
  TRY(CheckSysctls(sysctls), who + ": " + images::FileName(images::ImageType::kNetNsSysctl));
  TRY(CheckNftRuleset(nft), who + ": " + images::FileName(images::ImageType::kNetNsNft));

  TRY_ASSIGN(UniqueFd self_ns, OpenOwnNetns(), who);
  TRY_ASSIGN(ino_t si, NsInode(self_ns.get(), "the new network namespace"), who);
  TRY_ASSIGN(ino_t hi, NsInode(host_netns_fd, "ckpt's network namespace"), who);
  if (si == hi) return Error(who + ": the calling thread is still in ckpt's namespace", EINVAL);
  TRY_ASSIGN(NlSock inner, OpenRtnl(), who);
  NlSock host;
  TRY(RunInNetns(host_netns_fd,
                 [&]() -> Status {
                   TRY_ASSIGN(host, OpenRtnl());
                   return Ok();
                 }),
      who + ": a socket in ckpt's namespace");

  OuterDevices made(host.get());  // declared after `host`: goes first
  LinkRestoreCtx c{inner.get(), host.get(), self_ns.get(), host_netns_fd, externals};
  TRY(RestoreSysctls(sysctls, false, o.weak_sysctls), who);
  TRY(CreateLinks(c, links, made), who);
  TRY(RestoreSysctls(sysctls, true, o.weak_sysctls), who);
  TRY(ConnectAndRaiseLinks(c, links), who);
  TRY(RestoreRtnl(inner.get(), rtnl), who);
  TRY(RestoreNftRuleset(nft), who);
  made.Keep();
  LOG_INFO("network namespace restored: " + std::to_string(links.size()) + " devices, " +
           std::to_string(rtnl.size()) + " addresses/routes/rules, " + std::to_string(nft.size()) +
           " nftables messages");
  return Ok();
}

}  // namespace ckpt::ns
