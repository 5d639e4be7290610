// The sysctls of an IPC namespace: kernel.{msgmax, msgmnb, msgmni, sem,
// shmmax, shmall, shmmni, shm_rmid_forced, msg/sem/shm_next_id} and
// fs.mqueue.*. The kernel resolves each /proc/sys file against the IPC
// namespace of the thread that opens it, so these read and write the
// caller's namespace, whatever /proc is mounted.
#pragma once

#include <string>

#include "base/result.h"
#include "proto/ipc_ns.pb.h"

namespace ckpt::ns {

// Reads every sysctl of the caller's IPC namespace. A file the kernel does
// not have is left unset; an unreadable or unparsable one is an error.
Result<pb::IpcSysctls> ReadIpcSysctls();

// Writes one sysctl by its field name in pb::IpcSysctls ("msgmnb",
// "mq_msg_max", ...), "sem" taking its four values. Errors name the file.
Status WriteIpcSysctl(const std::string& field, const std::string& value);

// "kernel.msgmnb" for "msgmnb": how errors and logs name a field.
std::string IpcSysctlName(const std::string& field);

// Writes every field set in s except shm_rmid_forced and the *_next_id ones
// (the caller orders those), in the table's order.
Status WriteIpcLimits(const pb::IpcSysctls& s);

// The value of a set field as the kernel writes it ("32000 1024000000 500 32000"
// for sem); empty if unset.
std::string IpcSysctlValue(const pb::IpcSysctls& s, const std::string& field);

}  // namespace ckpt::ns
