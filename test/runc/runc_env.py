"""A runc container for ckpt's tests, and what runc asks its checkpointer.

Reusable pieces (the runc tests import this module):

  Bundle(dir).make(args, binds, namespaces)
                                    an OCI bundle: rootfs of busybox-static
                                    and its applet links, `runc spec` edited
                                    (no terminal, writable root, `args`,
                                    volumes, more namespaces)
  COUNTER, read_count               a container command that counts, and
                                    its counter read from the host
  Runc(bundle, cid).run()           `runc run -d`, stdio /dev/null; .pid
  record(runc_args, record_file)    runs `runc --criu criu_recorder.py ...`:
                                    the request runc sends (criu_recorder.py)
  dump_args(req), restore_args(req) that request as ckpt's command line
  RestoreSetup(req, workdir)        what runc prepares before the restore:
                                    cgroups ckpt is moved into (cg_root),
                                    the rootfs bound at a private criu-root
  Cleanup                           undo-stack run on success and failure

Everything is made under a test's own directory and with the test's own
container id; Cleanup undoes it in reverse (runc delete -f, cgroups, bind
mounts), also when the test fails.
"""
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDER = os.path.join(HERE, "criu_recorder.py")
BUSYBOX = "/bin/busybox"
PR_SET_CHILD_SUBREAPER = 36


# A container command that counts into /tmp/count (on the rootfs) and
# into /data/count (a volume: bind-mount a host directory at /data).
COUNTER = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; "
           "echo $i > /data/count; sleep 0.05; done"]


def read_count(d, sub="tmp"):
    """The counter in d/sub/count (d/count if sub is None); None while the
    shell is between truncating the file and writing it."""
    try:
        with open(os.path.join(d, sub, "count") if sub else os.path.join(d, "count")) as f:
            t = f.read().strip()
        return int(t) if t else None
    except (FileNotFoundError, ValueError):
        return None


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def log(msg):
    print("runc-test: " + msg, flush=True)


def sh(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        fail("%s: exit %d: %s" % (" ".join(args), r.returncode, (r.stderr or r.stdout).strip()))
    return r


def wait_for(cond, what, timeout=30):
    end = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > end:
            fail("no %s within %d s" % (what, timeout))
        time.sleep(0.05)


def become_subreaper():
    """Orphans of the container (its init once runc exits, a restored init
    once ckpt exits) come to us, and we reap them at once."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        fail("prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap(pid, timeout=30):
    """Waits for `pid` (our child, through the subreaper) to be gone."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            r, _ = os.waitpid(pid, os.WNOHANG)
            if r == pid:
                return
        except ChildProcessError:
            if not os.path.exists("/proc/%d" % pid):
                return
        time.sleep(0.02)
    fail("pid %d did not go away" % pid)


class Cleanup:
    """An undo stack: run() calls every registered step, last first, and
    reports (but survives) failures of single steps."""

    def __init__(self):
        self.steps = []

    def add(self, what, fn):
        self.steps.append((what, fn))

    def run(self):
        ok = True
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep undoing the rest
                log("cleanup: %s: %s" % (what, e))
                ok = False
        return ok


class Bundle:
    def __init__(self, path):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")

    def make(self, args, binds=(), namespaces=()):
        """`binds`: (host dir, container path, read-only) volumes;
        `namespaces`: more namespace types ("cgroup") than runc spec's."""
        os.makedirs(os.path.join(self.rootfs, "bin"))
        shutil.copy(BUSYBOX, os.path.join(self.rootfs, "bin", "busybox"))
        applets = sh([BUSYBOX, "--list"]).stdout.split()
        for a in applets:
            if a != "busybox":
                os.symlink("busybox", os.path.join(self.rootfs, "bin", a))
        for d in ("proc", "sys", "dev", "tmp", "etc"):
            os.makedirs(os.path.join(self.rootfs, d), exist_ok=True)
        sh(["runc", "spec"], cwd=self.path)
        cfg_path = os.path.join(self.path, "config.json")
        with open(cfg_path) as f:
            cfg = json.load(f)
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["root"]["readonly"] = False
        for ns in namespaces:
            cfg["linux"]["namespaces"].append({"type": ns})
        for src, dest, ro in binds:
            cfg["mounts"].append({"destination": dest, "type": "bind", "source": src,
                                  "options": ["rbind", "ro" if ro else "rw"]})
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        return self


class Runc:
    """One container of a bundle, under its own id."""

    def __init__(self, bundle, cid):
        self.bundle, self.cid = bundle, cid
        self.pid = None

    def run(self):
        pidfile = os.path.join(self.bundle.path, self.cid + ".pid")
        # The container's stdio is runc's: /dev/null all three (a pipe
        # would be held open by the container, and the other end is ours).
        with open(os.devnull, "r+b") as null:
            r = subprocess.run(["runc", "--log", os.path.join(self.bundle.path, "runc.log"), "run",
                                "-d", "--pid-file", pidfile, self.cid],
                               cwd=self.bundle.path, stdin=null, stdout=null, stderr=null)
        if r.returncode != 0:
            fail("runc run %s: exit %d (%s)" % (self.cid, r.returncode,
                                                os.path.join(self.bundle.path, "runc.log")))
        with open(pidfile) as f:
            self.pid = int(f.read())
        return self

    def state(self):
        r = sh(["runc", "state", self.cid], check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def delete(self, force=True):
        if self.state() is not None:
            sh(["runc", "delete"] + (["-f"] if force else []) + [self.cid])


def record(runc_args, record_file, cwd):
    """Runs runc with criu_recorder.py as its criu; returns the request the
    recorder saw (runc itself fails, as the recorder refuses to act)."""
    if os.path.exists(record_file):
        os.unlink(record_file)
    env = dict(os.environ, CKPT_RUNC_RECORD=record_file)
    with open(os.devnull, "r+b") as null:
        subprocess.run(["runc", "--criu", RECORDER] + runc_args, cwd=cwd, env=env,
                       stdin=null, stdout=null, stderr=null)
    if not os.path.exists(record_file):
        fail("runc %s sent no request to its criu" % " ".join(runc_args))
    with open(record_file) as f:
        return json.load(f)


# Every option runc may send, as the command line below carries it or
# why it needs nothing there (docs/runc.md); anything else fails the test,
# so a runc that asks for more is noticed.
KNOWN_OPTIONS = {
    "images_dir_fd", "work_dir_fd",  # -D (the RPC service reaches the fds)
    "log_level", "log_file", "pid", "root", "ext_mnt", "external", "cg_root",
    "freeze_cgroup", "manage_cgroups", "manage_cgroups_mode", "leave_running", "shell_job",
    "tcp_established", "ext_unix_sk", "file_locks", "lazy_pages", "auto_dedup", "track_mem",
    "link_remap", "tcp_skip_in_flight",
    "notify_scripts",      # the RPC service's notifications
    "config_file",         # /etc/criu/runc.conf, absent here
    "orphan_pts_master",   # no terminal in this container
    "empty_ns",            # CLONE_NEWNET: ckpt restores the namespace's configuration
    "evasive_devices",     # memory devices are found by number
    "rst_sibling",         # -d and a child subreaper
}


def _flags(opts):
    unknown = set(opts) - KNOWN_OPTIONS
    if unknown:
        fail("runc sent options this test does not map: %s" % sorted(unknown))
    out = []
    for name, flag in (("leave_running", "--leave-running"), ("shell_job", "--shell-job"),
                       ("tcp_established", "--tcp-established"), ("ext_unix_sk", "--ext-unix-sk"),
                       ("file_locks", "--file-locks")):
        if opts.get(name):
            out.append(flag)
    for name in ("lazy_pages", "auto_dedup", "track_mem", "link_remap", "tcp_skip_in_flight"):
        if opts.get(name):
            fail("runc asked for %s, which this test does not use" % name)
    if opts.get("manage_cgroups") or "manage_cgroups_mode" in opts:
        out.append("--manage-cgroups")
    return out


def dump_args(req, images_dir):
    """runc's DUMP request as `ckpt dump` arguments (-t, -D, -v4, -o ...)."""
    o = req["opts"]
    args = ["dump", "-t", str(o["pid"]), "-D", images_dir, "-v%d" % o.get("log_level", 2),
            "-o", o.get("log_file", "dump.log")]
    args += _flags(o)
    for m in o.get("ext_mnt", []):
        args += ["--external", "mnt[%s]:%s" % (m["key"], m["val"])]
    for e in o.get("external", []):
        args += ["--external", e]
    if o.get("freeze_cgroup"):
        args += ["--freeze-cgroup", o["freeze_cgroup"]]
    return args


def restore_args(req, images_dir, pidfile):
    """runc's RESTORE request as `ckpt restore` arguments. rst_sibling: the
    restored init must become the caller's child: -d (ckpt exits, the
    child subreaper calling it gets the init)."""
    o = req["opts"]
    args = ["restore", "-D", images_dir, "-v%d" % o.get("log_level", 2),
            "-o", o.get("log_file", "restore.log"), "--root", o["root"], "-d",
            "--pidfile", pidfile]
    args += _flags(o)
    for m in o.get("ext_mnt", []):
        args += ["--external", "mnt[%s]:%s" % (m["key"], m["val"])]
    for e in o.get("external", []):
        args += ["--external", e]
    for c in o.get("cg_root", []):
        args += ["--cgroup-root", "%s:%s" % (c.get("ctrl", ""), c["path"])]
    return args


def cgroup_mounts():
    """{controllers-as-in-/proc/self/cgroup: mount point} of the host's
    cgroup hierarchies ("" is cgroup2)."""
    with open("/proc/cgroups") as f:
        known = {line.split()[0] for line in f if not line.startswith("#")}
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            if fields[3] != "/":
                continue
            if tail[0] == "cgroup2":
                out.setdefault("", fields[4])
            elif tail[0] == "cgroup":
                ctrls = [o for o in tail[2].split(",") if o in known or o.startswith("name=")]
                out.setdefault(",".join(ctrls), fields[4])
    return out


def task_cgroups(pid):
    """{controllers: path} from /proc/PID/cgroup."""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls] = path
    return out


class RestoreSetup:
    """What runc 1.1 does before it starts criu for a restore (docs/runc.md):
    makes the new container's cgroups (the paths of its cg_root entries;
    the devices rules copied from `devices_rules`), binds the rootfs at a
    criu-root directory (criu needs the root to be a mount point), and
    moves the checkpointer into the cgroups: preexec() does that in the
    forked ckpt before it execs."""

    def __init__(self, req, rootfs, workdir, cleanup, devices_rules=None):
        self.req, self.cleanup = req, cleanup
        mounts = cgroup_mounts()
        # The cgroups runc moved its criu into (the recorder read them).
        self.dirs = []
        for line in req["criu_process"]["cgroup"]:
            _, ctrls, path = line.split(":", 2)
            if ctrls not in mounts:
                fail("no mount of cgroup hierarchy '%s' here" % ctrls)
            self.dirs.append((ctrls, mounts[ctrls].rstrip("/") + path))
        for ctrls, d in self.dirs:
            if d.rstrip("/") == mounts[ctrls].rstrip("/"):
                continue
            if not os.path.isdir(d):
                os.mkdir(d)
                cleanup.add("rmdir " + d, lambda d=d: rmdir_cgroup(d))
            if "cpuset" in ctrls.split(","):
                # A new v1 cpuset takes no task until it has cpus and mems
                # (runc copies its parent's).
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    with open(os.path.join(os.path.dirname(d), knob)) as f:
                        v = f.read().strip()
                    with open(os.path.join(d, knob), "w") as f:
                        f.write(v)
            if "devices" in ctrls.split(",") and devices_rules is not None:
                with open(os.path.join(d, "devices.deny"), "w") as f:
                    f.write("a")
                for rule in devices_rules:
                    with open(os.path.join(d, "devices.allow"), "w") as f:
                        f.write(rule)
        self.root = os.path.join(workdir, "criu-root")
        os.mkdir(self.root)
        cleanup.add("rmdir criu-root", lambda: os.rmdir(self.root))
        sh(["mount", "--rbind", rootfs, self.root])
        cleanup.add("umount criu-root", lambda: sh(["umount", "-l", self.root]))
        # The recorded root names runc's own state directory: ours instead.
        req["opts"]["root"] = self.root

    def preexec(self):
        for _, d in self.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")


def rmdir_cgroup(d, timeout=10):
    """rmdir a cgroup once its last task is gone (exits take a moment)."""
    end = time.time() + timeout
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def kill_and_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    reap(pid)


def mounts_of(pid):
    """[(mount point, fstype, per-mount options, superblock options)] of a
    task, sorted."""
    out = []
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, tail = pre.split(), post.split()
            out.append((fields[4], tail[0], ",".join(sorted(fields[5].split(","))),
                        ",".join(sorted(tail[2].split(",")))))
    return sorted(out)
