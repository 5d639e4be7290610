#!/usr/bin/env python3
# TCP states the other tests do not reach, each a dump -> kill -> restore of
# tcp_states_victim.py (see there):
#   syn-sent  a connect() in progress comes back in progress and completes;
#   closed    `restore --tcp-close` gives back established connections as
#             closed sockets, the listener beside them working, no lock left.
#
#   tcp_states.py --ckpt PATH --workdir DIR --locks-tool PATH
# Needs root. Runs in a network namespace of its own, on its loopback.
import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("tcp_states: " + msg, flush=True)


class Case:
    def __init__(self, a, name):
        self.a, self.name = a, name
        self.dir = os.path.join(a.workdir, name)
        os.makedirs(self.dir)
        self.img = os.path.join(self.dir, "img")
        self.out = os.path.join(self.dir, "out.txt")
        self.victim = None

    def fail(self, why):
        print("tcp_states: FAIL (%s): %s" % (self.name, why), flush=True)
        for f in (self.out, os.path.join(self.img, "dump.log"), os.path.join(self.img, "restore.log")):
            if os.path.exists(f):
                print("--- tail of " + f)
                print("\n".join("  | " + l for l in open(f, errors="replace").read().splitlines()[-20:]))
        if os.path.exists(os.path.join(self.img, "inventory.img")):
            subprocess.run([self.a.ckpt, "unlock", "-D", self.img], stdin=subprocess.DEVNULL)
        reap_all(kill=True)
        sys.exit(1)

    def start(self, args):
        out = open(self.out, "w")
        self.victim = subprocess.Popen([sys.executable, os.path.join(HERE, "tcp_states_victim.py")] + args,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                       start_new_session=True, close_fds=True)
        for _ in range(300):
            if "READY" in open(self.out).read():
                return
            if self.victim.poll() is not None:
                self.fail("the victim exited before READY")
            time.sleep(0.05)
        self.fail("no READY")

    def ckpt(self, args):
        r = subprocess.run([self.a.ckpt] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=120)
        log("%s: ckpt %s -> exit %d" % (self.name, args[0], r.returncode))
        if r.returncode:
            self.fail("ckpt %s: %s" % (args[0], r.stderr))

    def dump_and_restore(self, dump_opts, restore_opts):
        pid = self.victim.pid
        self.ckpt(["dump", "-t", str(pid), "-D", self.img, "-o", "dump.log", "-v4"] + dump_opts)
        self.victim.wait(timeout=10)
        reap_all(kill=False)
        self.ckpt(["restore", "-D", self.img, "-o", "restore.log", "-v4", "-d"] + restore_opts)
        tables = subprocess.run([self.a.locks_tool], capture_output=True, text=True).stdout.split()
        if any(t.startswith("ckpt") for t in tables):
            self.fail("nftables tables left after the restore: %r" % tables)
        os.kill(pid, signal.SIGUSR1)
        return pid

    def finish(self, pid):
        end = time.time() + 60
        while time.time() < end:
            p, st = os.waitpid(pid, os.WNOHANG)
            if p:
                if os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0 and "PASS" in open(self.out).read():
                    log("%s: PASS" % self.name)
                    return
                self.fail("the restored victim failed (status %r)" % st)
            time.sleep(0.05)
        self.fail("the restored victim did not finish")


def reap_all(kill):
    me = os.getpid()
    for _ in range(200):
        kids = [int(k) for k in open("/proc/%d/task/%d/children" % (me, me)).read().split()]
        if not kids:
            return
        for k in kids:
            if kill:
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        time.sleep(0.05)


def syn_sent(a):
    c = Case(a, "syn-sent")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)  # one connection waiting fills the queue: further SYNs are dropped
    filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    filler.connect(ls.getsockname())
    time.sleep(0.1)
    c.start(["syn-sent", str(ls.getsockname()[1])])
    pid = c.dump_and_restore([], [])
    ls.accept()[0].close()  # room: the victim's next SYN gets through
    ls.settimeout(30)
    try:
        conn, _ = ls.accept()
    except socket.timeout:
        c.fail("the restored connect() never reached the listener")
    conn.settimeout(30)
    data = conn.recv(5)
    conn.sendall(data[::-1])
    c.finish(pid)
    conn.close()
    filler.close()
    ls.close()


def closed(a):
    c = Case(a, "tcp-close")
    c.start(["closed"])
    pid = c.dump_and_restore(["--tcp-established"], ["--tcp-close"])
    c.finish(pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--locks-tool", required=True)
    a = ap.parse_args()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    # A network namespace of our own: the lock tables we check are ours
    # alone (tests running beside us lock their own connections), and
    # nothing we do touches the host's.
    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:  # CLONE_NEWNET
        sys.exit("cannot unshare the network namespace: " + os.strerror(ctypes.get_errno()))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    syn_sent(a)
    closed(a)
    reap_all(kill=True)
    shutil.rmtree(a.workdir, ignore_errors=True)
    log("PASS")


if __name__ == "__main__":
    main()
