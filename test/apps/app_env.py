# What every test/apps driver shares: messages, bounded waits, and a
# main() that makes the driver a child subreaper (restored programs become
# its children), gives it a fresh work directory and, whatever happens,
# kills and reaps everything it started and removes the directory.
import argparse
import ctypes
import os
import shutil
import signal
import sys
import time

_name = "app"


def log(msg):
    print(_name + ": " + msg, flush=True)


def fail(msg):
    log("FAIL: " + msg)
    raise SystemExit(1)


def wait_for(cond, what, timeout=60):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            fail("no " + what + " within %d s" % timeout)
        time.sleep(0.05)


def children_of(pid):
    """Our processes are found by their parent: /proc/PID/stat field 4."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if int(open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill_children():
    """SIGKILLs our children until none is left: the ones killed first leave
    theirs to us (a subreaper); reaps them all."""
    for _ in range(200):
        kids = children_of(os.getpid())
        if not kids:
            return
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] <= 0:
                    break
            except ChildProcessError:
                break


def main(name, run, missing=None, cleanup=None, add_args=None):
    """argv: --ckpt PATH --workdir DIR. `missing()` names what the machine
    lacks (the test fails saying so), `run(args, workdir)` is the test,
    `cleanup()` removes what it made outside the work directory,
    `add_args(parser)` adds the test's own options."""
    global _name
    _name = name
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    if add_args:
        add_args(ap)
    a = ap.parse_args()
    lack = missing() if missing else None
    if lack:
        log("needs " + lack)
        return 1
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    wd = os.path.abspath(a.workdir)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    try:
        run(a, wd)
    finally:
        kill_children()
        if cleanup:
            cleanup()
        shutil.rmtree(wd, ignore_errors=True)
    return 0
