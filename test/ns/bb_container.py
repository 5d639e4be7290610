#!/usr/bin/env python3
# The namespaces issue's container test: a busybox container built from
# scratch (bb_init.cc): user (uids and gids 0-65535 are the host's
# 100000-165535), pid, uts, ipc, net, mount, cgroup and time namespaces,
# pivot_root into a busybox-static rootfs with /proc, a tmpfs holding a
# file, a devpts of its own with a shell on a pty, cgroup2, a veth to the
# "host", a cgroup with a limit (hugetlb.2MB.max, when the host's cgroup2
# offers hugetlb) and a seccomp filter. It must survive
#   ckpt dump --manage-cgroups  ->  (its cgroup removed)  ->
#   ckpt restore --manage-cgroups
# with every property checked from inside, before and after.
#
#   bb_container.py --ckpt PATH --bb-init PATH --workdir DIR
# Needs root and busybox-static. Runs in a network namespace of its own
# (the container's "host"); a child subreaper; leaves nothing behind.
import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
BUSYBOX = "/bin/busybox"
MAP_BASE, MAP_SIZE = 100000, 65536  # the container's ids 0-65535 on the host


def log(msg):
    print("bb_container: " + msg, flush=True)


def fail(msg):
    log("FAIL: " + msg)
    raise SystemExit(1)


def wait_for(cond, what, timeout=30):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            fail("no " + what + " within %d s" % timeout)
        time.sleep(0.05)


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        fail("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 ") and pre.split()[3] == "/":
                return pre.split()[4]
    return None


def ask(ctl, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(os.path.join(ctl, "ctl.sock"))
    s.sendall(req)
    data = b""
    while not data.endswith(b"end\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    out = {}
    for line in data.decode().splitlines():
        k, sep, v = line.partition("=")
        if not sep:
            k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def make_rootfs(root, bb_init):
    for d in ["bin", "sbin", "proc", "dev", "sys/fs/cgroup", "data", "ctl", "tmp"]:
        os.makedirs(os.path.join(root, d))
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    for applet in ["sh", "ip", "ping", "cat", "sleep", "stty", "echo"]:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    shutil.copy2(bb_init, os.path.join(root, "sbin/bb_init"))


def run(args, wd, state):
    root, ctl, img = [os.path.join(wd, d) for d in ("rootfs", "ctl", "img")]
    make_rootfs(root, args.bb_init)
    os.makedirs(ctl)
    cgmnt = cgroup2_mount()
    if not cgmnt:
        fail("no cgroup2 mount")
    limit = None
    if "hugetlb" in open(os.path.join(cgmnt, "cgroup.controllers")).read().split():
        sub = os.path.join(cgmnt, "cgroup.subtree_control")
        if "hugetlb" not in open(sub).read().split():
            with open(sub, "w") as f:
                f.write("+hugetlb")
            state["hugetlb_enabled"] = sub
    # A run killed by ctest's timeout cannot clean up: its empty cgroup goes now.
    for d in os.listdir(cgmnt):
        if d.startswith("ckpt-bb-") and d[8:].isdigit() and not os.path.exists("/proc/" + d[8:]):
            try:
                os.rmdir(os.path.join(cgmnt, d))
            except OSError:
                pass
    cg = os.path.join(cgmnt, "ckpt-bb-%d" % os.getpid())
    os.mkdir(cg)
    state["cgroup"] = cg
    if os.path.exists(os.path.join(cg, "hugetlb.2MB.max")):
        limit = "4194304"
        with open(os.path.join(cg, "hugetlb.2MB.max"), "w") as f:
            f.write(limit)

    for d in (root, ctl):  # the container's root owns its files
        for dirpath, dirnames, filenames in os.walk(d):
            for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                os.lchown(n, MAP_BASE, MAP_BASE)
    out = open(os.path.join(wd, "launcher.out"), "w")
    launcher = subprocess.Popen([args.bb_init, root, ctl, cg], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    def in_userns():
        try:
            return os.readlink("/proc/%d/ns/user" % launcher.pid) != os.readlink("/proc/self/ns/user")
        except OSError:
            return False
    wait_for(lambda: in_userns() or launcher.poll() is not None, "user namespace")
    if launcher.poll() is not None:
        fail("bb_init failed: " + open(os.path.join(wd, "launcher.out")).read())
    for m in ("uid_map", "gid_map"):
        with open("/proc/%d/%s" % (launcher.pid, m), "w") as f:
            f.write("0 %d %d\n" % (MAP_BASE, MAP_SIZE))
    open(os.path.join(ctl, "maps-ready"), "w").close()
    wait_for(lambda: os.path.exists(os.path.join(ctl, "pid")) or launcher.poll() is not None,
             "container")
    if launcher.poll() is not None:
        fail("bb_init failed: " + open(os.path.join(wd, "launcher.out")).read())
    pid = int(open(os.path.join(ctl, "pid")).read())
    sh("ip", "link", "add", "vh0", "type", "veth", "peer", "name", "eth0", "netns", str(pid))
    sh("ip", "addr", "add", "10.199.0.1/24", "dev", "vh0")
    sh("ip", "link", "set", "vh0", "up")
    open(os.path.join(ctl, "veth-ready"), "w").close()
    wait_for(lambda: os.path.exists(os.path.join(ctl, "ready")) or
             os.path.exists("/proc/%d" % pid) is False, "ready container")
    if not os.path.exists(os.path.join(ctl, "ready")):
        fail("the container died: " + open(os.path.join(ctl, "init.log")).read())

    want = {
        "pid": "1", "hostname": "bb-container", "data": "kept in a tmpfs", "data_owner": "0:0",
        "uid": "0", "uid_map": "0 %d %d" % (MAP_BASE, MAP_SIZE),
        "gid_map": "0 %d %d" % (MAP_BASE, MAP_SIZE), "setgroups": "allow",
        "timens": "monotonic 86400 0 boottime 172800 0", "clocks_offset": "yes",
        "mount /proc": "yes", "mount /dev/pts": "yes", "mount /data": "yes",
        "mount /sys/fs/cgroup": "yes", "mount /ctl": "yes",
        "acct": "ENOMSG", "Seccomp": "2", "cgroup": "0::/",
        "shell": "ok", "eth0": "10.199.0.2/24", "ping": "0",
    }
    if limit:
        want["hugetlb.2MB.max"] = limit
    before = ask(ctl, b"report")
    log("before: %s" % before)
    for k, v in want.items():
        if before.get(k) != v:
            fail("before the dump, %s is %r, want %r" % (k, before.get(k), v))

    r = subprocess.run([args.ckpt, "dump", "-t", str(pid), "-D", img, "-o", "dump.log", "-v4",
                        "--manage-cgroups"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump: " + (r.stderr.strip() or r.stdout.strip()))
    launcher.wait(timeout=30)
    wait_for(lambda: not os.path.exists("/proc/%d" % pid), "end of the dumped container")
    # The dead namespace's devices go asynchronously; the restore makes vh0 again.
    wait_for(lambda: sh("ip", "link", "show", "vh0", check=False).returncode != 0, "vh0 gone")
    os.rmdir(cg)  # the restore must make it again, with its limit
    log("dumped; container, its veth and its cgroup are gone")

    pidfile = os.path.join(wd, "restored.pid")
    r = subprocess.run([args.ckpt, "restore", "-D", img, "-o", "restore.log", "-v4", "-d",
                        "--manage-cgroups", "--pidfile", pidfile], capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore: " + (r.stderr.strip() or r.stdout.strip()))
    restored = int(open(pidfile).read())
    log("restored as pid %d (was %d)" % (restored, pid))
    if limit and open(os.path.join(cg, "hugetlb.2MB.max")).read().strip() != limit:
        fail("the restored cgroup lost its limit")
    sh("ip", "addr", "add", "10.199.0.1/24", "dev", "vh0")  # the host's side of the link
    sh("ip", "link", "set", "vh0", "up")
    after = ask(ctl, b"report")
    log("after: %s" % after)
    for k, v in want.items():
        if after.get(k) != v:
            fail("after restore, %s is %r, want %r" % (k, after.get(k), v))
    try:
        ask(ctl, b"quit")
    except OSError:
        pass
    def reaped():  # our child now (we are a subreaper): a zombie until reaped
        try:
            return os.waitpid(restored, os.WNOHANG)[0] == restored
        except ChildProcessError:
            return not os.path.exists("/proc/%d" % restored)
    wait_for(reaped, "end of the restored container")
    log("PASS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--bb-init", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--in-netns", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0 or not os.path.exists(BUSYBOX) or not shutil.which("ip"):
        log("needs root, busybox-static and ip(8)")
        return 1
    if not args.in_netns:  # the container's "host" is a network namespace of our own
        return subprocess.call(["unshare", "--net", sys.executable] + sys.argv + ["--in-netns"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    wd = os.path.abspath(args.workdir)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    state = {}
    try:
        run(args, wd, state)
    finally:
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                        os.kill(int(p), signal.SIGKILL)
                except (OSError, IndexError, ValueError):
                    pass
        while True:
            try:
                if os.waitpid(-1, 0)[0] <= 0:
                    break
            except ChildProcessError:
                break
        if "cgroup" in state:
            for _ in range(100):
                try:
                    os.rmdir(state["cgroup"])
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        if "hugetlb_enabled" in state:
            with open(state["hugetlb_enabled"], "w") as f:
                f.write("-hugetlb")
    shutil.rmtree(wd, ignore_errors=True)
    return 0


sys.exit(main())
