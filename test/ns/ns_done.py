#!/usr/bin/env python3
# The namespaces issue's "done means", as a test: ns_done_victim.py, an
# ordinary Python program, runs as pid 1 of its own pid, uts, ipc and net
# namespaces (started with unshare(1)), with a child, a hostname, SysV and
# POSIX message queues holding messages and a TCP connection with unread
# bytes on its own loopback. This driver dumps it with
# `ckpt dump --tcp-established` (the program is killed), restores it with
# `ckpt restore --tcp-established -d`, and asks the program what it finds:
# pid 1, its child alive with the same pid, the hostname, every message in
# order (SysV by arrival, POSIX by priority), the unread bytes, and a
# connection that still carries data.
#
#   ns_done.py --ckpt PATH --workdir DIR
# Needs root and unshare(1). A child subreaper: the restored program ends
# up our child; everything is killed and removed at the end.
import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("ns_done: " + msg, flush=True)


def fail(msg):
    log("FAIL: " + msg)
    raise SystemExit(1)


def wait_for(path, what, timeout=30):
    end = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > end:
            fail("no " + what + " within %d s" % timeout)
        time.sleep(0.05)


def children_of(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def ask(sock_path, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock_path)
    s.sendall(req)
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def run(args, wd):
    img = os.path.join(wd, "img")
    out = open(os.path.join(wd, "victim.out"), "w")
    starter = subprocess.Popen(
        ["unshare", "--pid", "--uts", "--ipc", "--net", "--fork", sys.executable,
         os.path.join(HERE, "ns_done_victim.py"), wd],
        stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    wait_for(os.path.join(wd, "ready"), "ready file")
    child_before = int(open(os.path.join(wd, "ready")).read().split()[1])
    kids = children_of(starter.pid)
    if len(kids) != 1:
        fail("unshare has children %s" % kids)
    pid = kids[0]
    with open("/proc/%d/status" % pid) as f:
        nspid = [l for l in f if l.startswith("NSpid:")][0].split()[1:]
    if nspid[-1] != "1":
        fail("the program is not pid 1 of its namespace: NSpid %s" % nspid)
    log("program is pid %d here, pid 1 in its namespaces" % pid)

    r = subprocess.run([args.ckpt, "dump", "-t", str(pid), "-D", img, "-o", "dump.log", "-v4",
                        "--tcp-established"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump failed: %s" % (r.stderr.strip() or r.stdout.strip()))
    starter.wait(timeout=30)  # unshare ends once its child is gone
    for _ in range(200):
        if not os.path.exists("/proc/%d" % pid):
            break
        time.sleep(0.05)
    else:
        fail("pid %d still exists after the dump" % pid)
    log("dumped; the program is gone")

    pidfile = os.path.join(wd, "restored.pid")
    r = subprocess.run([args.ckpt, "restore", "-D", img, "-o", "restore.log", "-v4",
                        "--tcp-established", "-d", "--pidfile", pidfile],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore failed: %s" % (r.stderr.strip() or r.stdout.strip()))
    restored = int(open(pidfile).read())
    log("restored as pid %d here" % restored)
    if restored != pid:
        fail("restored with host pid %d, dumped as %d (it was free)" % (restored, pid))

    rep = json.loads(ask(os.path.join(wd, "ctl.sock"), b"report"))
    log("the program reports %s" % rep)
    want = {
        "pid": 1,
        "child_alive": True,
        "hostname": "ns-done",
        "sysv": [[1, "first"], [2, "second"], [3, "third"]],
        "mq": [[9, "high"], [5, "middle"], [1, "low"]],
        "tcp": ["to-server-before-dump", "to-client-before-dump", "after"],
    }
    for k, v in want.items():
        if rep.get(k) != v:
            fail("%s: %r, want %r" % (k, rep.get(k), v))
    if rep.get("child") != child_before:
        fail("child pid %r, was %d before the dump" % (rep.get("child"), child_before))
    ask(os.path.join(wd, "ctl.sock"), b"quit")
    for _ in range(200):
        try:
            if os.waitpid(restored, os.WNOHANG)[0] == restored:
                break
        except ChildProcessError:
            break
        time.sleep(0.05)
    else:
        fail("the restored program did not exit on quit")
    log("PASS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("unshare"):
        log("needs root and unshare(1)")
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    wd = os.path.abspath(args.workdir)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    try:
        run(args, wd)
    finally:
        # Whatever is left (the program, its namespaces' processes) goes.
        for p in children_of(os.getpid()):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, 0)[0] <= 0:
                    break
            except ChildProcessError:
                break
    shutil.rmtree(wd, ignore_errors=True)
    return 0


sys.exit(main())
