#!/usr/bin/env python3
# A container made by runc (Debian's 1.1), checkpointed and restored by
# ckpt driven from the command line with exactly the options runc sends
# its checkpointer over RPC (recorded by criu_recorder.py standing in for
# criu), with what runc prepares around a restore done the way runc does
# it (runc_env.RestoreSetup; docs/runc.md):
#
#   runc run -d CID            busybox-static shell counting into /tmp/count
#   runc --criu RECORDER checkpoint   -> the DUMP request (container untouched)
#   ckpt dump  <that request>  (v1 freezer, external mounts, --manage-cgroups)
#   runc delete CID            (its state, its cgroups)
#   runc --criu RECORDER restore NEWID -> the RESTORE request and the cgroups
#                                         runc moved its criu into
#   ckpt restore <that request> in those cgroups, from a criu-root bind
#
# and checks: the counter goes on from where it stopped (never restarts),
# the init is pid 1 of its namespace with the container's hostname, its
# mounts are the container's (mount points, types, options), its cgroups
# are the new container's. Leaves nothing behind, also on failure.
#
#   runc_ckpt_test.py --ckpt PATH --workdir DIR
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runc_env as rt  # noqa: E402

COUNTER = rt.COUNTER
read_count = rt.read_count


def ckpt(binary, args, workdir, preexec=None):
    rt.log("ckpt " + " ".join(args))
    # stderr to a file: a restored tree could inherit a pipe and hold it.
    err_path = os.path.join(workdir, "ckpt-%s.err" % args[0])
    with open(os.devnull, "r+b") as null, open(err_path, "w") as err:
        r = subprocess.run([binary] + args, stdin=null, stdout=null, stderr=err,
                           preexec_fn=preexec, cwd=workdir)
    with open(err_path) as f:
        r.stderr = f.read()
    return r


def show_log(path):
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        rt.log("--- last lines of %s" % path)
        for line in lines[-30:]:
            print("    " + line, flush=True)


def show_warnings(path):
    """ckpt's warnings (what it did not keep) go into the test's output."""
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                if "Warn" in line:
                    rt.log(os.path.basename(path) + ": " + line.strip())


def nspid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def comparable(mounts, external_points):
    """Mounts as the container sees them; an external mount's filesystem
    type is its source's (a masked path comes back as the host's
    /dev/null, as with CRIU)."""
    return [(p, "external", o, "") if p in external_points else (p, t, o, so)
            for p, t, o, so in mounts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cgroupns", action="store_true",
                    help="the container has a cgroup namespace (runc then mounts cgroup "
                         "filesystems inside it instead of binding the host's)")
    a = ap.parse_args()
    a.ckpt = os.path.abspath(a.ckpt)
    if os.geteuid() != 0:
        rt.log("FAIL: needs root")
        return 1
    for tool in ("runc", rt.BUSYBOX):
        if not shutil.which(tool):
            rt.log("FAIL: %s is not installed (scripts/install-deps.sh)" % tool)
            return 1
    rt.become_subreaper()
    # A timeout's SIGTERM (ctest) still cleans up.
    signal.signal(signal.SIGTERM, lambda *_: rt.fail("terminated"))
    os.makedirs(a.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="runc-", dir=a.workdir)
    tag = "ckpt-test-%d" % os.getpid()
    cid, newid = tag, tag + "-r"
    cleanup = rt.Cleanup()
    cleanup.add("rm " + work, lambda: shutil.rmtree(work))
    try:
        run(a.ckpt, work, cid, newid, cleanup, a.cgroupns)
        rt.log("PASS")
        return 0 if cleanup.run() else 1
    except rt.TestFailure as e:
        rt.log("FAIL: %s" % e)
        cleanup.run()
        return 1
    except BaseException:
        cleanup.run()
        raise


def tracer_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


def failed_dump_leaves_it_running(ckpt_bin, work, dreq, c, bundle, fz):
    """A dump that fails after the (v1) freezer and the seize: a mount
    hidden under another inside the container is refused; the container
    must run on, thawed and untraced."""
    inside = ["nsenter", "-t", str(c.pid), "-m", "-r", "/bin/sh", "-c"]
    rt.sh(inside + ["mkdir -p /tmp/h && mount -t tmpfs h /tmp/h && mkdir /tmp/h/in && "
                    "mount -t tmpfs in /tmp/h/in && mount -t tmpfs over /tmp/h"])
    try:
        img = os.path.join(work, "img-failed")
        r = ckpt(ckpt_bin, rt.dump_args(dreq, img), work)
        if r.returncode == 0:
            rt.fail("the dump of a container with a hidden mount succeeded")
        if "/tmp/h" not in r.stderr:
            rt.fail("the failed dump does not name the hidden mount: %s" % r.stderr.strip())
        if os.path.exists(img) and os.listdir(img) not in ([], ["dump.log"]):
            rt.fail("the failed dump left images: %s" % os.listdir(img))
        if fz:
            with open(os.path.join(fz, "freezer.state")) as f:
                if f.read().strip() != "THAWED":
                    rt.fail("the failed dump left %s frozen" % fz)
        if tracer_of(c.pid) != 0:
            rt.fail("the failed dump left the init traced")
        n = read_count(bundle.rootfs) or 0
        rt.wait_for(lambda: (read_count(bundle.rootfs) or 0) > n + 2, "counting after a failed dump")
        rt.log("a failed dump (%s) left the container running" %
               r.stderr.strip().splitlines()[-1][:120])
    finally:
        rt.sh(inside + ["umount -l /tmp/h; umount -l /tmp/h"])


def run(ckpt_bin, work, cid, newid, cleanup, cgroupns):
    vol, ro_vol = os.path.join(work, "vol"), os.path.join(work, "ro-vol")
    os.mkdir(vol)
    os.mkdir(ro_vol)
    bundle = rt.Bundle(os.path.join(work, "bundle")).make(
        COUNTER, binds=[(vol, "/data", False), (ro_vol, "/ro", True)],
        namespaces=["cgroup"] if cgroupns else [])
    c = rt.Runc(bundle, cid)
    cleanup.add("runc delete " + cid, lambda: c.delete())
    c.run()
    cleanup.add("kill the container's init", lambda: rt.kill_and_reap(c.pid))
    counted = rt.wait_for(lambda: (read_count(bundle.rootfs) or 0) >= 5 and read_count(bundle.rootfs),
                          "counting in the container")
    before_mounts = rt.mounts_of(c.pid)
    before_cg = rt.task_cgroups(c.pid)
    rt.log("container %s: init %d, %d mounts" % (cid, c.pid, len(before_mounts)))
    devices = before_cg.get("devices")
    devices_rules = None
    if devices is not None:
        dev_dir = rt.cgroup_mounts()["devices"] + devices
        with open(os.path.join(dev_dir, "devices.list")) as f:
            devices_rules = f.read().split("\n")
        devices_rules = [r for r in devices_rules if r]

    # What runc sends for a checkpoint.
    dreq = rt.record(["checkpoint", "--image-path", os.path.join(work, "rec-img"), cid],
                     os.path.join(work, "dump-req.json"), bundle.path)
    if dreq["type"] != "DUMP" or dreq["opts"]["pid"] != c.pid:
        rt.fail("unexpected checkpoint request: %s" % dreq)
    if c.state()["status"] != "running":
        rt.fail("the recorded checkpoint stopped the container")
    # This host is hybrid: runc gives the v1 freezer.
    fz = dreq["opts"].get("freeze_cgroup", "")
    ext_points = {m["key"] for m in dreq["opts"].get("ext_mnt", [])}

    failed_dump_leaves_it_running(ckpt_bin, work, dreq, c, bundle, fz)

    img = os.path.join(work, "img")
    r = ckpt(ckpt_bin, rt.dump_args(dreq, img), work)
    if r.returncode != 0:
        show_log(os.path.join(img, "dump.log"))
        rt.fail("ckpt dump: %s" % r.stderr.strip())
    show_warnings(os.path.join(img, "dump.log"))
    rt.reap(c.pid)
    # (Empty if the dump caught the shell between truncating and writing.)
    at_dump = read_count(bundle.rootfs) or counted
    rt.log("dumped at count %s (freezer %s)" % (at_dump, fz or "none"))
    if fz and os.path.exists(os.path.join(fz, "freezer.state")):
        with open(os.path.join(fz, "freezer.state")) as f:
            if f.read().strip() != "THAWED":
                rt.fail("the dump left %s frozen" % fz)
    time.sleep(0.3)
    if (read_count(bundle.rootfs) or counted) != at_dump:
        rt.fail("the counter moved after the dump: the container is not dead")
    c.delete()

    # What runc sends (and prepares) for a restore.
    rreq = rt.record(["restore", "-d", "--image-path", os.path.join(work, "rec-img"), newid],
                     os.path.join(work, "restore-req.json"), bundle.path)
    if rreq["type"] != "RESTORE" or not rreq["opts"].get("rst_sibling"):
        rt.fail("unexpected restore request: %s" % rreq)
    setup = rt.RestoreSetup(rreq, bundle.rootfs, work, cleanup, devices_rules)
    pidfile = os.path.join(work, "restored.pid")
    # Without runc's external mounts: refused before anything is made.
    bare = dict(rreq, opts={k: v for k, v in rreq["opts"].items() if k != "ext_mnt"})
    r = ckpt(ckpt_bin, rt.restore_args(bare, img, pidfile), work, preexec=setup.preexec)
    if r.returncode == 0 or "--external mnt[" not in r.stderr or os.path.exists(pidfile):
        rt.fail("a restore without runc's external mounts: exit %d, %s" %
                (r.returncode, r.stderr.strip()))
    rt.log("without the external mounts: %s" % r.stderr.strip().splitlines()[-1][:120])
    r = ckpt(ckpt_bin, rt.restore_args(rreq, img, pidfile), work, preexec=setup.preexec)
    if r.returncode != 0:
        show_log(os.path.join(img, "restore.log"))
        rt.fail("ckpt restore: %s" % r.stderr.strip())
    show_warnings(os.path.join(img, "restore.log"))
    with open(pidfile) as f:
        pid = int(f.read())
    cleanup.add("kill the restored init", lambda: rt.kill_and_reap(pid))
    rt.log("restored as pid %d" % pid)

    # The counter goes on from where it stopped.
    seen = []

    def moved():
        n = read_count(bundle.rootfs)
        if n is not None:
            seen.append(n)
        return n is not None and n >= at_dump + 10

    rt.wait_for(moved, "counting after the restore")
    low = min(seen)
    if low < at_dump:
        rt.fail("the counter restarted: %d after %d at dump" % (low, at_dump))
    rt.log("counting on: %d -> %d" % (at_dump, seen[-1]))
    # ... into the volume too: /data is the same bind mount again.
    rt.wait_for(lambda: (read_count(vol, None) or 0) >= seen[-1], "counting into the volume")

    # The same container, seen from inside and out.
    if nspid(pid)[-1:] != [1]:
        rt.fail("the restored init is not pid 1 of its namespace: NSpid %s" % nspid(pid))
    host = rt.sh(["nsenter", "-t", str(pid), "-u", "hostname"]).stdout.strip()
    if host != "runc":
        rt.fail("hostname %r inside, not runc" % host)
    after_mounts = rt.mounts_of(pid)
    b, a = comparable(before_mounts, ext_points), comparable(after_mounts, ext_points)
    if b != a:
        rt.fail("mounts differ:\n  only before %s\n  only after  %s" %
                (sorted(set(b) - set(a)), sorted(set(a) - set(b))))
    cg = rt.task_cgroups(pid)
    want = {line.split(":", 2)[1]: line.split(":", 2)[2]
            for line in rreq["criu_process"]["cgroup"]}
    if cg != want:
        rt.fail("restored init's cgroups %s, not the new container's %s" % (cg, want))
    if cgroupns:
        # Inside its cgroup namespace every cgroup is its root, and its
        # cgroup mounts show that root (/proc/1/mountinfo read inside).
        inside = rt.sh(["nsenter", "-t", str(pid), "-C", "-m", "-p", "-r", "/bin/cat",
                        "/proc/1/cgroup", "/proc/1/mountinfo"]).stdout.splitlines()
        paths = {ln.split(":", 2)[2] for ln in inside if ln[:1].isdigit() and ln.count(":") >= 2
                 and " " not in ln}
        if paths != {"/"}:
            rt.fail("inside its cgroup namespace the init's cgroups are %s, not /" % paths)
        roots = {ln.split()[3] for ln in inside if " - cgroup " in ln}
        if roots != {"/"}:
            rt.fail("its cgroup mounts show %s inside, not the namespace's root" % roots)
    rt.log("pid 1, hostname, %d mounts and %d cgroups as they were" % (len(a), len(cg)))


if __name__ == "__main__":
    sys.exit(main())
