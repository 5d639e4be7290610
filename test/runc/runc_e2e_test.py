#!/usr/bin/env python3
# runc itself drives ckpt: `runc --criu CKPT checkpoint` and `runc --criu
# CKPT restore -d` of a busybox container, ckpt speaking CRIU's RPC
# protocol over `ckpt swrk` (docs/runc.md). No step of the checkpointer is
# done by the test; runc prepares, calls and cleans up as with CRIU.
#
#   --case pipe           the container's stdio are pipes the test holds;
#                         checkpoint (the container goes away), restore
#                         under the same id with new pipes: the counter
#                         goes on from where it stopped, its output reaches
#                         the new pipe (runc's inherit_fd).
#   --case leave-running  checkpoint --leave-running; the first container
#                         runs on while the image is restored as a second
#                         container (new id, new pipes): both count, the
#                         second from where the checkpoint was taken.
#   --case tty            a terminal container (`runc run -d --console-socket`,
#                         the test receives the pty master on its socket;
#                         busybox sh holds /dev/tty open): a shell variable
#                         set before the checkpoint is there after the
#                         restore, read through the new pty master runc
#                         hands to the console socket (orphan-pts-master),
#                         and /dev/console is that terminal again.
#
#   runc_e2e_test.py --ckpt PATH --workdir DIR --case CASE
#
# Leaves nothing behind (runc delete -f, the containers' cgroups, temp
# dirs), also on failure. Waits are bounded (60 s), never timed checks.
import argparse
import array
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runc_env as rt  # noqa: E402

WAIT = 60
# Counts into /tmp/count (read from the host through the rootfs) and to
# stdout, one number a line.
COUNTER = ["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; echo $i; "
           "sleep 0.05; done"]


class PipeReader:
    """Reads a pipe in a thread, keeping its lines (the container must
    never block on a full pipe)."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name
        self.lines, self.buf = [], b""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                b = os.read(self.fd, 65536)
            except OSError:
                return
            if not b:
                return
            with self.lock:
                self.buf += b
                *done, self.buf = self.buf.split(b"\n")
                self.lines += [x.decode(errors="replace") for x in done]

    def numbers(self):
        with self.lock:
            return [int(x) for x in self.lines if x.strip().isdigit()]

    def text(self):
        with self.lock:
            return "\n".join(self.lines) + self.buf.decode(errors="replace")


class Stdio:
    """Three pipes for a runc command: the container's stdin (we hold the
    write end), stdout and stderr (we read them)."""

    def __init__(self, name, cleanup):
        self.name = name
        self.in_r, self.in_w = os.pipe()
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        for fd in (self.in_w, self.out_r, self.err_r):
            os.set_inheritable(fd, False)
        self.out = PipeReader(self.out_r, name + " stdout")
        self.err = PipeReader(self.err_r, name + " stderr")
        cleanup.add("close " + name + " pipes", self.close)

    def child_fds(self):
        return self.in_r, self.out_w, self.err_w

    def drop_child_ends(self):
        """After the command: only the container holds these ends now."""
        for attr in ("in_r", "out_w", "err_w"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    def close(self):
        self.drop_child_ends()
        for attr in ("in_w",):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)
        # The readers end when the container's ends close (it is dead by
        # now); their fds are closed once they have.
        for r in (self.out, self.err):
            r.t.join(timeout=5)
            if not r.t.is_alive():
                try:
                    os.close(r.fd)
                except OSError:
                    pass


def runc(args, criu=None, stdio=None, check=True, log=None, cwd=None):
    """runc [--criu CKPT] ARGS with the container's stdio `stdio` (a Stdio
    or None: /dev/null). Returns (rc, stderr text of runc) - runc's own
    errors go to its stderr, which is the container's when it is a pipe."""
    cmd = ["runc"] + (["--log", log] if log else []) + (["--criu", criu] if criu else []) + args
    rt.log(" ".join(cmd))
    if stdio is None:
        with open(os.devnull, "r+b") as null, tempfile.TemporaryFile() as err:
            r = subprocess.run(cmd, stdin=null, stdout=null, stderr=err, cwd=cwd)
            err.seek(0)
            text = err.read().decode(errors="replace")
    else:
        i, o, e = stdio.child_fds()
        r = subprocess.run(cmd, stdin=i, stdout=o, stderr=e, cwd=cwd)
        text = stdio.err.text()
    if check and r.returncode != 0:
        rt.fail("%s: exit %d: %s" % (" ".join(cmd), r.returncode, text.strip()[-2000:]))
    return r.returncode, text


def show_log(path):
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        rt.log("--- last lines of %s" % path)
        for line in lines[-40:]:
            print("    " + line, flush=True)


def nspid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return []


def state(cid):
    r = rt.sh(["runc", "state", cid], check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def delete_container(cid):
    """runc delete -f, and the container's init reaped (we are its
    subreaper)."""
    s = state(cid)
    if s is None:
        return
    pid = s.get("pid") or 0
    rt.sh(["runc", "delete", "-f", cid], check=False)
    if pid > 0:
        rt.kill_and_reap(pid)
    if state(cid) is not None:
        rt.sh(["runc", "delete", "-f", cid])


def container_cgroups_gone(cid):
    """runc removes a deleted container's cgroups; check none is left."""
    left = []
    for ctrls, mnt in rt.cgroup_mounts().items():
        for dirpath, dirs, _ in os.walk(mnt):
            if os.path.basename(dirpath) == cid:
                left.append(dirpath)
                dirs[:] = []
    return left


def checkpoint(a, work, cid, img, extra=()):
    rc, err = runc(["checkpoint", "--image-path", img, "--work-path", img] + list(extra) + [cid],
                   criu=a.ckpt, check=False, log=os.path.join(work, "runc.log"))
    if rc != 0:
        show_log(os.path.join(img, "dump.log"))
        rt.fail("runc checkpoint %s: exit %d: %s" % (cid, rc, err.strip()[-2000:]))
    if not os.path.exists(os.path.join(img, "inventory.img")):
        rt.fail("runc checkpoint left no images in %s: %s" % (img, os.listdir(img)))


def restore(a, work, bundle, cid, img, stdio, extra=()):
    rc, err = runc(["restore", "-d", "--image-path", img, "--work-path", img,
                    "--bundle", bundle.path] + list(extra) + [cid],
                   criu=a.ckpt, stdio=stdio, check=False, log=os.path.join(work, "runc.log"))
    if stdio is not None:
        stdio.drop_child_ends()
    if rc != 0:
        show_log(os.path.join(img, "restore.log"))
        rt.fail("runc restore %s: exit %d: %s" % (cid, rc, err.strip()[-2000:]))
    s = state(cid)
    if s is None or s["status"] != "running":
        rt.fail("after runc restore, %s is %s" % (cid, s and s["status"]))
    return s["pid"]


def run_counter(work, bundle, cid, cleanup):
    stdio = Stdio(cid, cleanup)
    cleanup.add("runc delete " + cid, lambda: delete_container(cid))
    runc(["run", "-d", "--bundle", bundle.path, cid], stdio=stdio,
         log=os.path.join(work, "runc.log"))
    stdio.drop_child_ends()
    pid = state(cid)["pid"]
    rt.wait_for(lambda: len(stdio.out.numbers()) >= 5, "counting on %s's stdout" % cid, WAIT)
    return stdio, pid


def counts_on(stdio, frm, what):
    """Waits for the numbers on `stdio` to go 10 past `frm` and returns
    the first number written after `frm`'s position."""
    rt.wait_for(lambda: any(n >= frm + 10 for n in stdio.out.numbers()), what, WAIT)
    return stdio.out.numbers()


def case_pipe(a, work, bundle, cleanup):
    cid = "ckpt-e2e-%d" % os.getpid()
    stdio, pid = run_counter(work, bundle, cid, cleanup)
    rt.log("container %s: init %d" % (cid, pid))
    img = os.path.join(work, "img")
    os.mkdir(img)
    checkpoint(a, work, cid, img)
    rt.reap(pid)
    if state(cid) is not None:
        rt.fail("after runc checkpoint, container %s still exists" % cid)
    # Everything the container wrote before it died is in the old pipe.
    rt.wait_for(lambda: not stdio.out.t.is_alive(), "the old stdout's end of file", WAIT)
    at_dump = stdio.out.numbers()[-1]
    rt.log("checkpointed at count %d" % at_dump)
    if container_cgroups_gone(cid):
        rt.fail("runc left the checkpointed container's cgroups: %s" % container_cgroups_gone(cid))

    new = Stdio(cid + "-restored", cleanup)
    rpid = restore(a, work, bundle, cid, img, new)
    rt.log("restored %s: init %d (%s)" % (cid, rpid, "the same host pid: it was free"
                                          if rpid == pid else "host pid %d was taken" % pid))
    if nspid(rpid)[-1:] != [1]:
        rt.fail("the restored init is not pid 1 of its namespace: NSpid %s" % nspid(rpid))
    nums = counts_on(new, at_dump, "counting on the new stdout pipe after the restore")
    if nums[0] <= at_dump - 1 or nums[0] > at_dump + 1:
        rt.fail("the restored counter wrote %d first, after %d at the checkpoint" %
                (nums[0], at_dump))
    if any(y != x + 1 for x, y in zip(nums, nums[1:])):
        rt.fail("the restored counter skipped: %s" % nums[:20])
    n = rt.read_count(bundle.rootfs) or 0
    if n < at_dump:
        rt.fail("/tmp/count is %d, below %d at the checkpoint" % (n, at_dump))
    rt.log("counting on: %d at the checkpoint, then %d..%d on the new pipe" %
           (at_dump, nums[0], nums[-1]))
    delete_container(cid)
    left = container_cgroups_gone(cid)
    if left:
        rt.fail("runc delete left cgroups of the restored container: %s" % left)


def case_leave_running(a, work, bundle, cleanup):
    cid = "ckpt-e2e-%d" % os.getpid()
    cid2 = cid + "-2"
    stdio, pid = run_counter(work, bundle, cid, cleanup)
    img = os.path.join(work, "img")
    os.mkdir(img)
    before = len(stdio.out.numbers())
    checkpoint(a, work, cid, img, ["--leave-running"])
    s = state(cid)
    if s is None or s["status"] != "running" or s["pid"] != pid:
        rt.fail("after checkpoint --leave-running, %s is %s" % (cid, s))
    at_dump = stdio.out.numbers()[-1]
    rt.wait_for(lambda: len(stdio.out.numbers()) > before + 10, "the first container counting on",
                WAIT)
    new = Stdio(cid2, cleanup)
    cleanup.add("runc delete " + cid2, lambda: delete_container(cid2))
    rpid = restore(a, work, bundle, cid2, img, new)
    # The host pid of the dumped init is the first container's, which runs
    # on: the copy's init gets another host pid; inside its own pid
    # namespace every task keeps its pid (the init is 1 again).
    if rpid == pid:
        rt.fail("the copy's init has the host pid %d of the running first container" % pid)
    if nspid(rpid)[-1:] != [1]:
        rt.fail("the copy's init is not pid 1 of its namespace: NSpid %s" % nspid(rpid))
    rt.log("first container init %d, second (restored) init %d, pid 1 inside" % (pid, rpid))
    nums = counts_on(new, at_dump, "the second container counting on its stdout")
    # The image was taken while the first one ran on, somewhere at or
    # after at_dump (the number last read before the checkpoint returned).
    if nums[0] < at_dump - 10:
        rt.fail("the second container started from %d, before the checkpoint (%d)" %
                (nums[0], at_dump))
    if any(y != x + 1 for x, y in zip(nums, nums[1:])):
        rt.fail("the second container's counter skipped: %s" % nums[:20])
    first = stdio.out.numbers()[-1]
    rt.wait_for(lambda: stdio.out.numbers()[-1] > first + 10, "the first container counting on",
                WAIT)
    if state(cid)["status"] != "running":
        rt.fail("the first container stopped")
    rt.log("both count: first %d..., second from %d (image at ~%d)" %
           (stdio.out.numbers()[-1], nums[0], at_dump))
    delete_container(cid2)
    delete_container(cid)


def recv_fd(conn):
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    if not fds:
        rt.fail("no fd on the console socket (message %r)" % msg)
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


class ConsoleSocket:
    """A console socket: runc connects and sends the pty master."""

    def __init__(self, path, cleanup):
        self.path = path
        self.sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sk.bind(path)
        self.sk.listen(4)
        self.sk.settimeout(WAIT)
        cleanup.add("close the console socket", self.sk.close)
        self.master = None

    def accept_master(self):
        """In a thread, as runc blocks while it sends."""
        res = {}

        def go():
            try:
                conn, _ = self.sk.accept()
                with conn:
                    conn.settimeout(WAIT)
                    res["fd"] = recv_fd(conn)
            except Exception as e:  # noqa: BLE001 - reported below
                res["err"] = e
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t, res


class Tty:
    def __init__(self, fd):
        self.fd = fd
        os.set_blocking(fd, False)
        self.seen = b""

    def say(self, line):
        os.write(self.fd, line.encode() + b"\n")

    def expect(self, text, what):
        want = text.encode()

        def got():
            try:
                b = os.read(self.fd, 65536)
                self.seen += b
            except BlockingIOError:
                pass
            except OSError:
                return False
            return want in self.seen
        try:
            rt.wait_for(got, what, WAIT)
        except rt.TestFailure:
            rt.fail("%s; the terminal showed %r" % (what, self.seen[-400:]))
        self.seen = b""


def case_tty(a, work, bundle, cleanup):
    cid = "ckpt-e2e-%d" % os.getpid()
    cs = ConsoleSocket(os.path.join(work, "console.sock"), cleanup)
    t, res = cs.accept_master()
    cleanup.add("runc delete " + cid, lambda: delete_container(cid))
    runc(["run", "-d", "--bundle", bundle.path, "--console-socket", cs.path, cid],
         log=os.path.join(work, "runc.log"))
    t.join(WAIT)
    if "fd" not in res:
        rt.fail("no pty master from runc run: %s" % res.get("err"))
    tty = Tty(res["fd"])
    cleanup.add("close the first pty master", lambda: os.close(tty.fd))
    pid = state(cid)["pid"]
    tty.say("X=41; X=$((X+1)); echo set-$X")
    tty.expect("set-42", "the shell answering through the first pty")
    img = os.path.join(work, "img")
    os.mkdir(img)
    checkpoint(a, work, cid, img)
    rt.reap(pid)
    t, res = cs.accept_master()
    restore(a, work, bundle, cid, img, None, ["--console-socket", cs.path])
    t.join(WAIT)
    if "fd" not in res:
        rt.fail("no pty master on the console socket after runc restore: %s" % res.get("err"))
    tty2 = Tty(res["fd"])
    cleanup.add("close the restored pty master", lambda: os.close(tty2.fd))
    tty2.say("echo got-$X-$((X*2))")
    tty2.expect("got-42-84", "the restored shell answering through the new pty master")
    rt.log("the restored shell kept X=42 and answers through the new pty master")
    # /dev/console (runc binds the console's pty there) is the pty of the
    # shell's stdio again, not another one.
    rpid = state(cid)["pid"]
    con = os.stat("/proc/%d/root/dev/console" % rpid).st_rdev
    tty0 = os.stat("/proc/%d/fd/0" % rpid).st_rdev
    if con != tty0:
        rt.fail("/dev/console is device %x, the shell's terminal %x" % (con, tty0))
    # busybox sh keeps /dev/tty open (its job control fd): reopened on the
    # restored terminal (files/ctty.cc).
    fds = os.listdir("/proc/%d/fd" % rpid)
    ttys = [fd for fd in fds if os.readlink("/proc/%d/fd/%s" % (rpid, fd)) == "/dev/tty"]
    if not ttys:
        rt.fail("the restored shell holds no /dev/tty (fds %s)" % sorted(fds))
    delete_container(cid)


CASES = {"pipe": (case_pipe, COUNTER, False),
         "leave-running": (case_leave_running, COUNTER, False),
         "tty": (case_tty, ["/bin/sh"], True)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
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
    signal.signal(signal.SIGTERM, lambda *_: rt.fail("terminated"))
    os.makedirs(a.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="e2e-%s-" % a.case, dir=a.workdir)
    cleanup = rt.Cleanup()
    cleanup.add("rm " + work, lambda: shutil.rmtree(work))
    fn, args, terminal = CASES[a.case]
    try:
        bundle = rt.Bundle(os.path.join(work, "bundle")).make(args)
        if terminal:
            cfg_path = os.path.join(bundle.path, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            cfg["process"]["terminal"] = True
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=1)
        fn(a, work, bundle, cleanup)
        rt.log("PASS")
        return 0 if cleanup.run() else 1
    except rt.TestFailure as e:
        rt.log("FAIL: %s" % e)
        cleanup.run()
        return 1
    except BaseException:
        cleanup.run()
        raise


if __name__ == "__main__":
    sys.exit(main())
