// The nftables ruleset of a network namespace as nf_tables netlink
// messages: read with NFT_MSG_GET* dumps (libmnl, libnftnl's headers), made
// again by one atomic batch of NFT_MSG_NEW* (all or nothing). Internal to
// criu/ns.
#pragma once

#include <vector>

#include "base/result.h"
#include "proto/net_ns.pb.h"

namespace ckpt::ns {

// Reads the ruleset of the calling thread's network namespace: tables,
// chains, stateful objects, flowtables, sets, set elements, rules, in the
// order a batch needs them. Tables named ckpt-* (ckpt's network lock) are
// skipped with everything in them. Handles and use counts are dropped (the
// kernel gives new ones); table ownership (NFT_TABLE_F_OWNER, tied to a
// socket of some process) and persistence flags are dropped with a warning.
// A chain bound to a rule (anonymous `jump { ... }`) is refused, naming it.
// Retried if the ruleset changed while read (generation id).
Result<std::vector<pb::NftMsgEntry>> DumpNftRuleset();

// Checks messages read from an image (types, families, well-formed
// attributes); errors name the entry.
Status CheckNftRuleset(const std::vector<pb::NftMsgEntry>& msgs);

// Sends them as one batch in the calling thread's namespace. A refusal
// names the object the kernel refused and its reason.
Status RestoreNftRuleset(const std::vector<pb::NftMsgEntry>& msgs);

}  // namespace ckpt::ns
