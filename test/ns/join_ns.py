#!/usr/bin/env python3
# --join-ns: a process in a network namespace of its own is dumped, then
# restored into an existing network namespace (one the test made with
# `ip netns add`) instead of a new one; it runs on there. A join the images
# cannot take (a uts namespace the tree did not have) is refused with
# nothing left running.
#
#   join_ns.py --ckpt PATH --workdir DIR
import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

COUNTER = "import time,sys\ni=0\nwhile True:\n    i+=1\n    open(sys.argv[1]+'.t','w').write(str(i))\n    __import__('os').rename(sys.argv[1]+'.t',sys.argv[1])\n    time.sleep(0.02)\n"


def fail(msg):
    print("join_ns: FAIL: " + msg, flush=True)
    raise SystemExit(1)


def wait_for(cond, what, timeout=60):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            fail("no " + what + " within %d s" % timeout)
        time.sleep(0.02)


def count(path):
    try:
        return int(open(path).read())
    except (OSError, ValueError):
        return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    wd = os.path.abspath(a.workdir)
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    name = "ckpt-join-%d" % os.getpid()
    netns = "/run/netns/" + name
    victim = None
    restored = None
    try:
        subprocess.run(["ip", "netns", "add", name], check=True)
        counter = os.path.join(wd, "count")
        victim = subprocess.Popen(["unshare", "--net", sys.executable, "-c", COUNTER, counter],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: count(counter) > 3, "counting")
        img = os.path.join(wd, "img")
        r = subprocess.run([a.ckpt, "dump", "-t", str(victim.pid), "-D", img, "-o", "dump.log",
                            "-v4"], capture_output=True, text=True)
        if r.returncode != 0:
            fail("dump: " + r.stderr)
        victim.wait()
        at_dump = count(counter)

        # A join the images cannot take: refused before anything exists.
        r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "--join-ns", "uts:" + netns],
                           capture_output=True, text=True)
        if r.returncode == 0 or "no uts namespace of its own" not in r.stderr:
            fail("a uts join of a tree without one was not refused: %s" % r.stderr)
        if os.path.exists("/proc/%d" % victim.pid):
            fail("the refused restore left pid %d" % victim.pid)

        pidfile = os.path.join(wd, "pid")
        r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4",
                            "--pidfile", pidfile, "--join-ns", "net:" + netns],
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("restore --join-ns: " + r.stderr)
        restored = int(open(pidfile).read())
        want = os.stat(netns).st_ino
        got = os.stat("/proc/%d/ns/net" % restored).st_ino
        if got != want:
            fail("restored into net namespace %d, not the joined %d" % (got, want))
        wait_for(lambda: count(counter) > at_dump + 3, "counting after restore")
        print("join_ns: PASS", flush=True)
        return 0
    finally:
        for p in (victim.pid if victim else None, restored):
            if p:
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
        subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
        shutil.rmtree(wd, ignore_errors=True)


sys.exit(main())
