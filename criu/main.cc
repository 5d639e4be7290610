// ckpt: checkpoint/restore for Linux process trees. main() only parses the
// command line, sets up logging, and reports the error of a subcommand once.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <vector>

#include "base/fault.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "criu/dump.h"
#include "criu/kerndat.h"
#include "criu/lazy_pages.h"
#include "criu/lazy_source.h"
#include "criu/net/netlock.h"
#include "criu/options.h"
#include "criu/page_xfer.h"
#include "criu/predump.h"
#include "criu/restore.h"
#include "criu/rpc/rpc_server.h"
#include "criu/security.h"
#include "criu/show.h"
#include "criu/uffd_wp.h"
#include "criu/version.h"
#include "images/image_dir.h"
#include "images/zpages.h"
#include "proto/inventory.pb.h"

namespace ckpt {
namespace {

int Check() {
  KernelFeatures k = ProbeKernel();
  ProbeNetworkFeatures(&k);
  ProbeNamespaceFeatures(&k);
  int missing = 0;
  printf("Kernel %s\n", k.kernel.c_str());
  for (const FeatureLine& f : DescribeFeatures(k)) {
    printf("  %-24s %-4s %s%s\n", f.name, f.present ? "yes" : "no", f.required ? "(required) " : "",
           f.why);
    if (f.required && !f.present) missing++;
  }
  // Incremental dumps (criu/mem_track.h): what tracks writes here.
  bool wp_async = k.pagemap_scan && uffd::ProbeWpAsync();
  printf("  memory tracking: %s\n",
         wp_async ? "uffd-wp async + PAGEMAP_SCAN (pre-dump, dump --prev-images-dir)"
                  : "none (pre-dump and incremental dumps need Linux 6.7+)");
  printf("  lazy restore: %s\n", DescribeLazySupport().c_str());
  // --compress (criu/page_compress.h): libzstd is linked in.
  printf("  compression: %s (dump --compress zstd[:LEVEL])\n", images::ZstdDescribe().c_str());
  // Who may be dumped and restored from here (criu/security.h).
  if (auto c = security::Caller::Current(); c.ok()) {
    bool cr = security::HasCap(c->cap_eff, security::kCapCheckpointRestore) ||
              security::HasCap(c->cap_eff, security::kCapSysAdmin);
    const char* what =
        "no CAP_CHECKPOINT_RESTORE: cannot dump or restore (setcap "
        "cap_checkpoint_restore+eip ckpt, or run as root)";
    if (c->Privileged())
      what = "fully privileged";
    else if (cr)
      what = "CAP_CHECKPOINT_RESTORE: own processes and images only";
    printf("  caller: uid %u, %s\n", c->uid[0], what);
  }
  if (k.soft_dirty)
    printf("  soft-dirty bits present (not used by ckpt: uffd-wp async tracks writes)\n");
  if (missing) {
    printf("%d required feature(s) missing: ckpt will not work here\n", missing);
    return 1;
  }
  printf("Looks good.\n");
  return 0;
}

// `ckpt unlock -D DIR`: the table named in the dump's inventory goes.
Status UnlockDump(const Options& o) {
  TRY_ASSIGN(std::unique_ptr<images::ImageDir> dir, images::ImageDir::Open(o.images_dir));
  TRY_ASSIGN(images::ImageReader r, dir->OpenReader(images::ImageType::kInventory));
  pb::InventoryEntry inv;
  TRY(r.ReadOne(inv));
  if (inv.netlock_table().empty()) {
    printf("%s: the dump left no network lock\n", o.images_dir.c_str());
    return Ok();
  }
  TRY(net::RemoveLockTable(inv.netlock_table()));
  printf("removed the network lock %s\n", inv.netlock_table().c_str());
  return Ok();
}

int Run(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "fault-points") == 0) return fault::PrintPoints();
  if (Status f = fault::CheckEnv(); !f.ok()) {  // CKPT_FAULT (base/fault.h)
    fprintf(stderr, "ckpt: %s\n", f.error().message().c_str());
    return 1;
  }
  auto parsed = ParseOptions(argc, argv);
  if (!parsed.ok()) {
    fprintf(stderr, "ckpt: %s\n", parsed.error().message().c_str());
    return 1;
  }
  Options& o = *parsed;
  if (o.command == Command::kHelp || o.help) {
    fputs(Usage(o.command == Command::kHelp ? Command::kNone : o.command).c_str(), stdout);
    return 0;
  }
  if (o.command == Command::kVersion) {
    fputs(VersionText(), stdout);
    return 0;
  }
  log::SetLevel(o.verbosity);
  UniqueFd log_fd;
  std::string log_path = LogPath(o);
  if (o.log_pid && !log_path.empty()) log_path += "." + std::to_string(getpid());  // --log-pid
  if (!log_path.empty()) {
    if (o.command == Command::kDump || o.command == Command::kPreDump)
      (void)mkdir(o.images_dir.c_str(), 0700);
    log_fd.reset(
        open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!log_fd) {
      fprintf(stderr, "ckpt: cannot open log file %s: %m\n", log_path.c_str());
      return 1;
    }
    log::SetFd(log_fd.get());
  }
  if (geteuid() != 0 && (o.command == Command::kDump || o.command == Command::kRestore))
    LOG_INFO(
        "not running as root: only your own processes and images, with "
        "CAP_CHECKPOINT_RESTORE (criu/security.h)");

  switch (o.command) {
    case Command::kCheck:
      return Check();
    case Command::kSwrk:
      return rpc::RunSwrk(o);
    case Command::kService:
      return rpc::RunService(o);
    case Command::kUnlock: {
      Status s = UnlockDump(o);
      if (!s.ok()) {
        fprintf(stderr, "ckpt: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kPageServer: {
      int status_fd = o.status_fd;
      Status s = RunPageServer(o.images_dir, o.address, o.port, [status_fd](int) {
        if (status_fd < 0) return;
        char c = 0;  // CRIU's --status-fd: one byte once listening
        if (write(status_fd, &c, 1) != 1) LOG_WARN("writing to --status-fd failed");
        close(status_fd);
      });
      if (!s.ok()) {
        LOG_ERR("page server: " + s.error().message());
        if (!log_path.empty()) fprintf(stderr, "ckpt: page server: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kLazyPages: {
      int status_fd = o.status_fd;
      Status s = RunLazyPages(o, [status_fd]() {
        if (status_fd < 0) return;
        char c = 0;
        if (write(status_fd, &c, 1) != 1) LOG_WARN("writing to --status-fd failed");
        close(status_fd);
      });
      if (!s.ok()) {
        LOG_ERR("lazy-pages: " + s.error().message());
        if (!log_path.empty()) fprintf(stderr, "ckpt: lazy-pages: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kShow: {
      Status s = Show(o.args.empty() ? o.images_dir : o.args[0]);
      if (!s.ok()) {
        fprintf(stderr, "ckpt: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kDump: {
      KernelFeatures kf = ProbeKernel();
      // --lazy-pages (criu/lazy_source.h): listening before the dump, so a
      // taken port fails it with the tree untouched; served after it.
      UniqueFd lazy_ls;
      Status s = Ok();
      if (o.lazy_pages) {
        auto ls = LazySourceListen(o.address, o.port);
        if (ls.ok()) lazy_ls = std::move(*ls);
        else s = std::move(ls.error());
      }
      if (s.ok()) s = Dump(o, kf);
      if (s.ok() && o.lazy_pages) {
        int status_fd = o.status_fd;
        s = ServeLazySource(o.images_dir, lazy_ls.get(), [status_fd]() {
          if (status_fd < 0) return;
          char c = 0;  // the pages are held: the lazy-pages daemon may come
          if (write(status_fd, &c, 1) != 1) LOG_WARN("writing to --status-fd failed");
          close(status_fd);
        });
      }
      if (!s.ok()) {
        LOG_ERR("dump failed: " + s.error().message());
        if (!log_path.empty() && log::GetLevel() < log::kError)
          fprintf(stderr, "ckpt: dump failed: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kPreDump: {
      KernelFeatures kf = ProbeKernel();
      Status s = PreDump(o, kf);
      if (!s.ok()) {
        LOG_ERR("pre-dump failed: " + s.error().message());
        if (!log_path.empty() && log::GetLevel() < log::kError)
          fprintf(stderr, "ckpt: pre-dump failed: %s\n", s.error().message().c_str());
        return 1;
      }
      return 0;
    }
    case Command::kRestore: {
      KernelFeatures kf = ProbeKernel();
      auto r = Restore(o, kf);
      if (!r.ok()) {
        LOG_ERR("restore failed: " + r.error().message());
        return 1;
      }
      if (!o.exec_cmd.empty()) {
        // --exec-cmd: ckpt becomes the command; the restored root stays its child.
        std::vector<char*> argv2;
        for (const std::string& a : o.exec_cmd) argv2.push_back(const_cast<char*>(a.c_str()));
        argv2.push_back(nullptr);
        fflush(stdout);  // --display-stats
        log_fd.reset();
        execvp(argv2[0], argv2.data());
        fprintf(stderr, "ckpt: --exec-cmd %s: %m (the tree was restored and runs)\n", argv2[0]);
        return 1;
      }
      return *r;
    }
    default:
      fputs(Usage(Command::kNone).c_str(), stderr);
      return 1;
  }
}

}  // namespace
}  // namespace ckpt

int main(int argc, char** argv) { return ckpt::Run(argc, argv); }
