#include "criu/ns/ipc_sysctl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "base/io.h"
#include "base/unique_fd.h"

namespace ckpt::ns {
namespace {

struct Sysctl {
  const char* field;  // in pb::IpcSysctls
  const char* path;   // under /proc/sys
};

// The order writes happen in. kernel.sem is handled by name (four values).
const Sysctl kSysctls[] = {
    {"msgmax", "kernel/msgmax"},
    {"msgmnb", "kernel/msgmnb"},
    {"msgmni", "kernel/msgmni"},
    {"sem", "kernel/sem"},
    {"shmmax", "kernel/shmmax"},
    {"shmall", "kernel/shmall"},
    {"shmmni", "kernel/shmmni"},
    {"shm_rmid_forced", "kernel/shm_rmid_forced"},
    {"msg_next_id", "kernel/msg_next_id"},
    {"sem_next_id", "kernel/sem_next_id"},
    {"shm_next_id", "kernel/shm_next_id"},
    {"mq_queues_max", "fs/mqueue/queues_max"},
    {"mq_msg_max", "fs/mqueue/msg_max"},
    {"mq_msgsize_max", "fs/mqueue/msgsize_max"},
    {"mq_msg_default", "fs/mqueue/msg_default"},
    {"mq_msgsize_default", "fs/mqueue/msgsize_default"},
};

const Sysctl* Find(const std::string& field) {
  for (const Sysctl& s : kSysctls)
    if (field == s.field) return &s;
  return nullptr;
}

const google::protobuf::FieldDescriptor* Field(const std::string& name) {
  return pb::IpcSysctls::descriptor()->FindFieldByName(name);
}

}  // namespace

std::string IpcSysctlName(const std::string& field) {
  const Sysctl* s = Find(field);
  std::string p = s ? s->path : field;
  for (char& c : p)
    if (c == '/') c = '.';
  return p;
}

Result<pb::IpcSysctls> ReadIpcSysctls() {
  pb::IpcSysctls out;
  const auto* refl = out.GetReflection();
  for (const Sysctl& s : kSysctls) {
    std::string path = std::string("/proc/sys/") + s.path;
    if (access(path.c_str(), F_OK) < 0 && errno == ENOENT) continue;
    TRY_ASSIGN(std::string text, io::ReadFile(path));
    std::istringstream in(text);
    const auto* f = Field(s.field);
    if (f->is_repeated()) {  // sem
      int64_t v;
      while (in >> v) out.add_sem(v);
      if (out.sem_size() != 4)
        return Error(IpcSysctlName(s.field) + ": unexpected value '" + text + "'");
      continue;
    }
    bool ok;
    if (f->type() == google::protobuf::FieldDescriptor::TYPE_UINT64) {
      uint64_t v;
      ok = bool(in >> v);
      if (ok) refl->SetUInt64(&out, f, v);
    } else {
      int64_t v;
      ok = bool(in >> v);
      if (ok) refl->SetInt64(&out, f, v);
    }
    if (!ok) return Error(IpcSysctlName(s.field) + ": unexpected value '" + text + "'");
  }
  return out;
}

std::string IpcSysctlValue(const pb::IpcSysctls& s, const std::string& field) {
  const auto* f = Field(field);
  if (!f) return "";
  const auto* refl = s.GetReflection();
  if (f->is_repeated()) {
    std::string v;
    for (int i = 0; i < refl->FieldSize(s, f); i++)
      v += (i ? " " : "") + std::to_string(refl->GetRepeatedInt64(s, f, i));
    return v;
  }
  if (!refl->HasField(s, f)) return "";
  if (f->type() == google::protobuf::FieldDescriptor::TYPE_UINT64)
    return std::to_string(refl->GetUInt64(s, f));
  return std::to_string(refl->GetInt64(s, f));
}

Status WriteIpcSysctl(const std::string& field, const std::string& value) {
  const Sysctl* s = Find(field);
  if (!s) return Error("unknown IPC sysctl " + field);
  std::string path = std::string("/proc/sys/") + s->path;
  // A value already there is not written: only the root of the user
  // namespace owning the IPC namespace may write most of these, and a
  // restoring root in a user namespace of the tree's own is not it yet
  // (criu/ns/user_ns.h); a fresh namespace holds the defaults.
  auto words = [](const std::string& t) {
    std::istringstream in(t);
    std::string w, all;
    while (in >> w) all += (all.empty() ? "" : " ") + w;
    return all;
  };
  auto now = io::ReadFile(path);
  if (now.ok() && words(*now) == words(value)) return Ok();
  // In an IPC namespace owned by another user namespace, only that
  // namespace's root may write the limits: the kernel looks at the euid,
  // not at capabilities (ipc_permissions; the *_next_id ones need
  // CAP_CHECKPOINT_RESTORE instead, which that uid would not have). So a
  // root ckpt refused takes that uid (the file's owner) as its effective
  // uid for the write, on this thread only (the raw system call), and
  // takes its own back.
  uid_t as = geteuid();
  uid_t owner = as;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  struct stat st;
  if (!fd && errno == EACCES && as == 0 && stat(path.c_str(), &st) == 0 && st.st_uid != 0) {
    owner = st.st_uid;
    if (syscall(SYS_setresuid, -1, owner, -1) < 0)
      return Error::Errno("taking uid " + std::to_string(owner) + " to write " + path);
    fd = UniqueFd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  }
  Status s2 = Ok();
  if (!fd)
    s2 = Error::Errno("open " + path);
  else if (write(fd.get(), value.data(), value.size()) != ssize_t(value.size()))
    s2 = Error::Errno("setting " + IpcSysctlName(field) + " to " + value);
  if (owner != as) (void)syscall(SYS_setresuid, -1, as, -1);
  return s2;
}

Status WriteIpcLimits(const pb::IpcSysctls& s) {
  for (const Sysctl& c : kSysctls) {
    std::string f = c.field;
    if (f == "shm_rmid_forced" || f.find("_next_id") != std::string::npos) continue;
    std::string v = IpcSysctlValue(s, f);
    if (!v.empty()) TRY(WriteIpcSysctl(f, v));
  }
  return Ok();
}

}  // namespace ckpt::ns
