#!/usr/bin/env python3
# podman 4.3 (Debian 12) checkpoints and restores a busybox container with
# ckpt as its `criu`: podman -> runc -> `criu swrk` found on PATH, which is
# a temp directory holding a `criu` link to ckpt (docs/runc.md).
#
#   podman import   a busybox-static rootfs tarball as an image
#   podman run -d   a shell counting to stdout (conmon keeps the log)
#   podman container checkpoint NAME      the container stops
#   podman container restore NAME         the log goes on from where it
#                                         stopped: 1, 2, ... without a gap
#                                         or a restart
#   podman container checkpoint --leave-running -e TAR NAME
#   podman container restore -i TAR --name NAME2
#                                         a second container counting on
#                                         from the checkpoint while the
#                                         first one runs on
#
# Storage (vfs), run state, podman's tmpdir and the image live in the
# test's directory; no network (--network none). Leaves nothing behind:
# containers and image removed, the cgroups podman made (libpod_parent)
# removed when they were not there before, /var/lib/containers likewise.
#
#   podman_ckpt_test.py --ckpt PATH --workdir DIR
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runc_env as rt  # noqa: E402

WAIT = 60
COUNT = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 0.05; done"


class Podman:
    def __init__(self, work, ckpt):
        self.work = work
        self.bin = os.path.join(work, "bin")
        os.mkdir(self.bin)
        os.symlink(ckpt, os.path.join(self.bin, "criu"))
        self.env = dict(os.environ, PATH=self.bin + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        # podman wants a run root of at most 50 characters.
        self.runroot = os.path.join(work, "run")
        if len(self.runroot) > 50:
            self.runroot = tempfile.mkdtemp(prefix="ckpt-pm-")
        self.base = ["podman", "--root", os.path.join(work, "storage"),
                     "--runroot", self.runroot,
                     "--tmpdir", os.path.join(work, "tmp"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                     "--runtime", "runc", "--events-backend", "file"]

    def __call__(self, *args, check=True):
        cmd = self.base + list(args)
        with open(os.devnull, "rb") as null:
            r = subprocess.run(cmd, stdin=null, capture_output=True, text=True, env=self.env,
                               timeout=300)
        if check and r.returncode != 0:
            rt.fail("podman %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                (r.stderr or r.stdout).strip()[-2000:]))
        return r

    def numbers(self, name):
        out = self("logs", name).stdout.split()
        return [int(x) for x in out if x.isdigit()]

    def status(self, name):
        return self("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def consecutive(nums, what):
    if not nums or nums[0] != 1 or any(b != a + 1 for a, b in zip(nums, nums[1:])):
        bad = next((i for i, (a, b) in enumerate(zip(nums, nums[1:])) if b != a + 1), None)
        rt.fail("%s: the counter is not 1, 2, 3, ... (%s)" %
                (what, "empty" if not nums else "at index %s: %s" %
                 (bad, nums[max(0, (bad or 0) - 3):(bad or 0) + 4])))


def make_image(work):
    root = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy(rt.BUSYBOX, os.path.join(root, "bin", "busybox"))
    for a in ("sh", "sleep", "echo", "cat"):
        os.symlink("busybox", os.path.join(root, "bin", a))
    for d in ("tmp", "proc", "sys", "dev", "etc"):
        os.makedirs(os.path.join(root, d))
    tar = os.path.join(work, "busybox.tar")
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    return tar


def run(a, work, cleanup):
    pm = Podman(work, a.ckpt)
    if not pm.runroot.startswith(work):
        cleanup.add("rm " + pm.runroot, lambda: shutil.rmtree(pm.runroot))
    cleanup.add("podman rm -a, rmi -a", lambda: (pm("rm", "-f", "-t", "0", "-a", check=False),
                                                  pm("rmi", "-f", "-a", check=False)))
    pm("import", make_image(work), "localhost/ckpt-busybox:test")
    name = "ckpt-pm-%d" % os.getpid()
    name2 = name + "-2"
    # No CAP_SYS_RESOURCE here: podman's default rlimits (nofile 1048576,
    # nproc as the host's) cannot be set by runc; these are below ours.
    pm("run", "-d", "--name", name, "--network", "none", "--ulimit", "nofile=1024:1024",
       "--ulimit", "nproc=4096:4096", "localhost/ckpt-busybox:test", "/bin/sh", "-c", COUNT)
    rt.wait_for(lambda: len(pm.numbers(name)) >= 5, "counting in %s" % name, WAIT)

    r = pm("container", "checkpoint", name)
    rt.log("podman container checkpoint: %s" % (r.stderr.strip() or "ok"))
    if pm.status(name) != "exited":
        rt.fail("after the checkpoint %s is %s, not exited" % (name, pm.status(name)))
    at = pm.numbers(name)
    consecutive(at, "before the restore")
    rt.log("checkpointed at %d" % at[-1])
    pm("container", "restore", name)
    rt.wait_for(lambda: pm.numbers(name)[-1] >= at[-1] + 10, "counting after the restore", WAIT)
    nums = pm.numbers(name)
    consecutive(nums, "after the restore")
    rt.log("restored: %d -> %d, no restart, no gap" % (at[-1], nums[-1]))

    tar = os.path.join(work, "export.tar.gz")
    pm("container", "checkpoint", "--leave-running", "-e", tar, name)
    if pm.status(name) != "running":
        rt.fail("after checkpoint --leave-running %s is %s" % (name, pm.status(name)))
    mark = pm.numbers(name)[-1]
    pm("container", "restore", "-i", tar, "--name", name2)
    rt.wait_for(lambda: (pm.numbers(name2) or [0])[-1] >= mark + 10, "counting in %s" % name2, WAIT)
    second = pm.numbers(name2)
    # The exported log is the first one's, copied by podman after the dump
    # while the first container ran on: it may end a few numbers past the
    # checkpoint, where the copy starts again (one step back, no restart).
    back = [i for i, (x, y) in enumerate(zip(second, second[1:])) if y != x + 1]
    if len(back) > 1 or (back and second[back[0] + 1] > second[back[0]]):
        rt.fail("the copy's log has gaps or restarts: %s" % back)
    if back:
        j = back[0]
        consecutive(second[:j + 1], "the exported log")
        if second[j + 1] <= 5:
            rt.fail("the copy restarted its counter: %s" % second[j - 2:j + 4])
        rt.log("the exported log ends at %d, the copy goes on from %d" %
               (second[j], second[j + 1]))
    else:
        consecutive(second, "the restored copy")
    first = pm.numbers(name)[-1]
    rt.wait_for(lambda: pm.numbers(name)[-1] >= first + 10, "the first container counting on",
                WAIT)
    rt.log("both count: %s at %d, %s from the checkpoint at ~%d to %d" %
           (name, pm.numbers(name)[-1], name2, mark, second[-1]))
    pm("rm", "-f", "-t", "0", name, name2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    a.ckpt = os.path.abspath(a.ckpt)
    if os.geteuid() != 0:
        rt.log("FAIL: needs root")
        return 1
    for tool in ("podman", "runc", rt.BUSYBOX):
        if not shutil.which(tool):
            rt.log("FAIL: %s is not installed (scripts/install-deps.sh)" % tool)
            return 1
    signal.signal(signal.SIGTERM, lambda *_: rt.fail("terminated"))
    os.makedirs(a.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="podman-", dir=a.workdir)
    cleanup = rt.Cleanup()
    cleanup.add("rm " + work, lambda: shutil.rmtree(work))
    # What podman makes outside our directory, removed if it is new.
    for path in ["/var/lib/containers", "/dev/shm/libpod_lock"] + [os.path.join(m, "libpod_parent")
                                            for m in rt.cgroup_mounts().values()]:
        if not os.path.exists(path):
            cleanup.add("remove " + path, lambda p=path: remove_new(p))
    try:
        run(a, work, cleanup)
        rt.log("PASS")
        return 0 if cleanup.run() else 1
    except rt.TestFailure as e:
        rt.log("FAIL: %s" % e)
        cleanup.run()
        return 1
    except BaseException:
        cleanup.run()
        raise


def remove_new(path):
    if not os.path.exists(path):
        return
    if os.path.isfile(path):
        os.unlink(path)
    elif path.startswith("/sys/fs/cgroup"):
        for d, _, _ in sorted(os.walk(path, topdown=False), key=lambda x: -len(x[0])):
            rt.rmdir_cgroup(d)
    else:
        shutil.rmtree(path)


if __name__ == "__main__":
    sys.exit(main())
