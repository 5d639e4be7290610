// LSM labels of processes (AppArmor, SELinux, Smack): saved per thread at
// dump, checked against the host and set again by the restorer.
//
// Which LSM labels processes is asked of the kernel with lsm_list_modules(2)
// (Linux 6.8+; /sys/kernel/security/lsm when securityfs is mounted): the
// first of apparmor, selinux, smack it lists. The label is the thread's
// /proc/PID/task/TID/attr/apparmor/current (or attr/smack/current), else
// attr/current. A host without any of them has no process labels; Landlock
// domains and BPF LSM programs are not labels and cannot be read back.
//
// Dump (ckpt, after the tree is seized):
//   TRY_ASSIGN(LsmDumper ld, LsmDumper::Create());
//   for each live process: TRY(ld.AddProcess(pid, threads));
//   ... TRY(ld.Write(dir));       // lsm.img, only if the host labels processes
//
// Restore: LoadLsm(dir, &tree) with the other images, before any process
// exists. For every thread whose label differs from the one the restored
// task will start with (ckpt's own), it computes what the thread writes to
// its attr file: AppArmor "changeprofile NAME" (the profile now, not at the
// next exec as attr/exec would), SELinux and Smack the label itself. It
// fails, naming the pid and the label, when this host lacks that LSM (an
// AppArmor "unconfined" needs nothing on a host without AppArmor) or the
// AppArmor profile is not loaded (when securityfs shows the profiles).
// LsmArgsSize / FillLsmArgs put the texts into the restorer's arena.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/image_dir.h"
#include "parasite/abi.h"
#include "proto/lsm.pb.h"

namespace ckpt {

struct TreeImages;

struct HostLsm {
  std::string name;                 // "apparmor", "selinux", "smack"; "" if none labels processes
  std::string attr;                 // relative to /proc/PID/task/TID/: "attr/apparmor/current"
  std::vector<std::string> active;  // every active LSM, for messages
};
Result<HostLsm> DetectHostLsm();

class LsmDumper {
 public:
  static Result<LsmDumper> Create();
  Status AddProcess(pid_t pid, const std::vector<pid_t>& threads);
  // Writes lsm.img if the host labels processes; nothing otherwise.
  Status Write(images::ImageDir& dir) const;
  const HostLsm& host() const { return host_; }

 private:
  HostLsm host_;
  pb::LsmEntry img_;
};

struct TaskLsm {
  std::vector<std::string> writes;  // per thread as core.threads: text to write, "" none
  bool before_creds = false;        // Smack: relabelling needs CAP_MAC_ADMIN
  std::string attr;                 // "/proc/thread-self/attr/..."
};

// `profile` (--lsm-profile / criu_opts.lsm_profile, "LSM:LABEL", e.g.
// "apparmor:myprofile"): the label of every restored thread instead of the
// dumped ones; the same checks apply (this host must have that LSM).
Status LoadLsm(const images::ImageDir& dir, TreeImages* tree, const std::string& profile = "");

// What a thread labelled `label` by `image_lsm` at dump writes to its attr
// file on a host `host` where it starts as `current`; "" when nothing.
// `profiles`: the AppArmor profiles loaded here, nullptr if unknown.
Result<std::string> LsmRestoreText(const HostLsm& host, const std::string& image_lsm,
                                   const std::string& label, const std::string& current,
                                   const std::set<std::string>* profiles);
// "name (enforce)" -> "name"; "unconfined" stays.
std::string AppArmorProfileName(const std::string& label);

uint64_t LsmArgsSize(const TaskLsm& l);
// Sets a->lsm_attr, a->lsm_before_creds and each thread's label (threads
// laid out already); the texts go at `off` from the start of RestoreArgs.
void FillLsmArgs(const TaskLsm& l, abi::RestoreArgs* a, uint64_t off);

}  // namespace ckpt
