#include "criu/options_refused.h"

namespace ckpt {
namespace {

// Sorted by name. `why` says what is missing, or what to use instead.
constexpr RefusedOption kRefused[] = {
    {"allow-uprobes", false, 0, "uprobe mappings are not dumped"},
    {"auto-ext-mnt", false, 0, "name external mounts with --external mnt[MOUNTPOINT]:KEY"},
    {"cgroup-dump-controller", true, 0, "ckpt manages the cgroup v2 hierarchy only"},
    {"cgroup-props", true, 0, "ckpt saves the cgroup v2 settings it knows"},
    {"cgroup-props-file", true, 0, "ckpt saves the cgroup v2 settings it knows"},
    {"cgroup-yard", true, 0, "ckpt works in the cgroup2 mount directly"},
    {"cpu-cap", true, 0, "CPU features are not compared"},
    {"enable-external-masters", false, 0, "mount propagation to outside masters is not restored"},
    {"enable-external-sharing", false, 0, "mount sharing with the outside is not restored"},
    {"enable-fs", true, 0, "mounts of other filesystems are not restored"},
    {"ext-mount-map", true, 'M', "use --external mnt[MOUNTPOINT]:KEY"},
    {"ghost-fiemap", false, 0, "deleted files are saved whole (holes are kept by seeking)"},
    {"irmap-scan-path", true, 0, "ckpt needs no inotify path map (see --force-irmap)"},
    {"leave-stopped", false, 's', "the tree is killed or left running"},
    {"lsm-mount-context", true, 0, "mount contexts are not rewritten"},
    {"mntns-compat-mode", false, 0, "ckpt has one mount engine"},
    {"pre-dump-mode", true, 0, "pre-dump always reads memory through the parasite"},
    {"ps-socket", true, 0, "use --page-server --address ADDR --port PORT"},
    {"remote", false, 0, "images are written to the image directory or a page server"},
    {"restore-sibling", false, 0, "available to RPC clients only (rst_sibling)"},
    {"skip-file-rwx-check", false, 0, "reopened files are always checked"},
    {"skip-mnt", true, 0, "every mount of a dumped mount namespace is saved"},
    {"stream", false, 0, "images go to a directory, not to criu-image-streamer"},
    {"tls", false, 0, "page server traffic is not encrypted"},
    {"tls-cacert", true, 0, "page server traffic is not encrypted"},
    {"tls-cacrl", true, 0, "page server traffic is not encrypted"},
    {"tls-cert", true, 0, "page server traffic is not encrypted"},
    {"tls-key", true, 0, "page server traffic is not encrypted"},
    {"tls-no-cn-verify", false, 0, "page server traffic is not encrypted"},
    {"unprivileged", false, 0, "ckpt runs as root"},
    {"veth-pair", true, 0, "use --external veth[IFNAME]:OUTNAME[@BRIDGE]"},
    {"work-dir", true, 'W', "logs and pidfiles are relative to -D"},
};

}  // namespace

const RefusedOption* RefusedOptions() { return kRefused; }
size_t NumRefusedOptions() { return sizeof(kRefused) / sizeof(kRefused[0]); }

}  // namespace ckpt
