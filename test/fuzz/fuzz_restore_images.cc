// libFuzzer target: an image directory as `ckpt restore` checks it before
// it creates anything: LoadTreeImages (inventory, pstree, namespaces, files
// and every task's core, mm, pagemap, fds, fs, seccomp, LSM images, with
// their Validate/Check functions), PlanHelpers, and the IPC and mount
// namespace images. The input packs several files (fuzz_util.h); the seed
// corpus is real dumps (scripts/fuzz-corpus); record images are sealed
// and raw files listed in checksums.img by the target (fuzz_util.h).
#include <cstddef>
#include <cstdint>

#include "criu/ns/ipc_ns.h"
#include "criu/ns/mnt_ns.h"
#include "criu/restore_tree.h"
#include "criu/task_images.h"
#include "images/image_dir.h"
#include "test/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ckpt::fuzz::Quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& scratch = ckpt::fuzz::ScratchDir::Get();
  scratch.UnpackInto(data, size);
  scratch.Seal();
  auto dir = ckpt::images::ImageDir::Open(scratch.path());
  if (!dir.ok()) abort();  // our own directory
  auto tree = ckpt::LoadTreeImages(**dir);
  if (!tree.ok()) return 0;
  if (!ckpt::PlanHelpers(*tree).ok()) return 0;
  if (tree->namespaces.ipc()) (void)ckpt::ns::CheckIpcNamespaceImage(**dir);
  if (tree->namespaces.mnt()) (void)ckpt::ns::CheckMountNamespaceImage(**dir, {});
  return 0;
}
