#!/usr/bin/env python3
# The network issue's "done means", as a test: tcp_done_victim.py (see
# there) talks to a TCP server outside the dumped tree while holding
# listeners, IPv4/IPv6 connections with unread data both ways, options and
# UDP sockets. This driver checks that
#   1. ckpt dump without --tcp-established refuses, naming the
#      connection, and the program keeps running;
#   2. dump --tcp-established -> the program is killed -> the server keeps
#      retransmitting into the lock for a while -> restore
#      --tcp-established brings the program back with the same pid;
#   3. the program finds every socket as it was, and the outside server saw
#      one unbroken, gapless conversation (no reset, no EOF);
#   4. no nftables table of ckpt's is left behind (listed by LOCKS_TOOL).
#
#   tcp_done.py --ckpt PATH --workdir DIR --locks-tool PATH
# Needs root. Runs in a network namespace of its own, on its loopback.
import argparse
import ctypes
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("tcp_done: " + msg, flush=True)


DONE = 0xFFFFFFFFFFFFFFFF


def server(port_w, result_w):
    """The outside peer: checks the program's numbered records and sends
    its own every 5 ms, also while the program is dumped (they must wait
    in the lock, not meet a closed port and reset the connection)."""
    import select
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    os.write(port_w, struct.pack("<H", ls.getsockname()[1]))
    ls.settimeout(60)
    verdict = "FAIL: no connection"
    try:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        want = 0
        out = 0
        buf = bytearray()
        last_in = time.time()
        while True:
            r, _, _ = select.select([c], [], [], 0.005)
            if r:
                x = c.recv(65536)
                if not x:
                    raise RuntimeError("EOF from the program after record %d" % want)
                last_in = time.time()
                buf += x
                done = False
                while len(buf) >= 8:
                    v = struct.unpack("<Q", bytes(buf[:8]))[0]
                    del buf[:8]
                    if v == DONE:
                        done = True
                        break
                    if v != want:
                        raise RuntimeError("record %d arrived, want %d (a gap or a duplicate)" % (v, want))
                    want += 1
                if done:
                    c.sendall(struct.pack("<Q", DONE))
                    verdict = "OK %d %d" % (want, out)
                    break
            elif time.time() - last_in > 60:
                raise RuntimeError("the program went silent for a minute")
            c.setblocking(False)
            try:
                c.send(struct.pack("<Q", out))  # 8 bytes fit or nothing does
                out += 1
            except BlockingIOError:
                pass
            c.setblocking(True)
    except Exception as e:  # noqa: BLE001 - reported to the driver
        verdict = "FAIL: server: %s" % e
    os.write(result_w, verdict.encode())
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--locks-tool", required=True)
    a = ap.parse_args()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # A network namespace of our own: the lock tables we check are ours
    # alone (tests running beside us lock their own connections), and
    # nothing we do touches the host's.
    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:  # CLONE_NEWNET
        sys.exit("cannot unshare the network namespace: " + os.strerror(ctypes.get_errno()))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    img = os.path.join(a.workdir, "img")
    out_path = os.path.join(a.workdir, "out.txt")
    procs = []

    def cleanup():
        # Everything we started, and whatever came to us as the subreaper.
        for _ in range(100):
            kids = set(procs) | {int(k) for k in open(
                "/proc/%d/task/%d/children" % (os.getpid(), os.getpid())).read().split()}
            for p in kids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                break
            time.sleep(0.05)

    def die(why):
        print("tcp_done: FAIL: " + why, flush=True)
        # A dump that got through keeps its lock until a restore: drop it.
        for d in (img, img + "-killed"):
            if os.path.exists(os.path.join(d, "inventory.img")):
                subprocess.run([a.ckpt, "unlock", "-D", d], stdin=subprocess.DEVNULL)
        for f in (out_path, os.path.join(img, "dump.log"), os.path.join(img, "restore.log")):
            if os.path.exists(f):
                lines = open(f, errors="replace").read().splitlines()
                print("--- tail of %s" % f)
                print("\n".join("  | " + l for l in lines[-25:]))
        cleanup()
        sys.exit(1)

    port_r, port_w = os.pipe()
    res_r, res_w = os.pipe()
    srv = os.fork()
    if srv == 0:
        os.setsid()  # its own session: not part of the dumped tree
        server(port_w, res_w)
    procs.append(srv)
    os.close(port_w)
    os.close(res_w)
    port = struct.unpack("<H", os.read(port_r, 2))[0]
    log("outside server on 127.0.0.1:%d (pid %d)" % (port, srv))

    out = open(out_path, "w")
    victim = subprocess.Popen([sys.executable, os.path.join(HERE, "tcp_done_victim.py"), str(port)],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              start_new_session=True, close_fds=True)
    pid = victim.pid
    procs.append(pid)
    for _ in range(300):
        if "READY" in open(out_path).read():
            break
        if victim.poll() is not None:
            die("the program exited before READY")
        time.sleep(0.05)
    else:
        die("no READY")
    log("program pid %d is READY" % pid)

    def ckpt(args, what):
        r = subprocess.run([a.ckpt] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120)
        log("ckpt %s -> exit %d" % (what, r.returncode))
        return r

    # 1. Without --tcp-established: refused, naming a connection; still running.
    r = ckpt(["dump", "-t", str(pid), "-D", img + "-refused"], "dump (no --tcp-established)")
    want = "is established (use --tcp-established)"
    if r.returncode == 0 or want not in r.stderr:
        die("dump without --tcp-established: exit %d, stderr %r" % (r.returncode, r.stderr))
    line = [l for l in r.stderr.splitlines() if want in l][0]
    if ("pid %d fd " % pid) not in line or " TCP 127.0.0.1:" not in line and " TCP [::1]:" not in line:
        die("the refusal does not name the connection: %r" % line)
    time.sleep(0.3)
    if victim.poll() is not None:
        die("the program died after a refused dump")
    if os.path.exists(os.path.join(img + "-refused", "inventory.img")):
        die("a refused dump left an inventory")

    # 1b. Dumps that fail after the lock is taken, or whose ckpt is killed
    #     on the way: no table stays, and the program talks on (the server
    #     checks the whole conversation at the end).
    def no_tables(when):
        left = subprocess.run([a.locks_tool], capture_output=True, text=True).stdout.split()
        if any(t.startswith("ckpt") for t in left):
            die("nftables tables left %s: %r" % (when, left))
        if victim.poll() is not None:
            die("the program died %s" % when)

    tiny = os.path.join(a.workdir, "tiny")
    os.makedirs(tiny)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", tiny], check=True)
    try:
        r = ckpt(["dump", "-t", str(pid), "-D", tiny + "/img", "--tcp-established"],
                 "dump --tcp-established onto a full disk")
    finally:
        subprocess.run(["umount", tiny])
    if r.returncode == 0 or "No space left" not in r.stderr:
        die("a dump onto a full disk: exit %d, %r" % (r.returncode, r.stderr))
    no_tables("after a dump that failed")
    # ckpt SIGKILLed at named points of the dump (CKPT_FAULT=POINT:kill,
    # base/fault.h), not after guessed delays: a dump can finish in a few
    # tens of milliseconds here, and one that finished would kill the program.
    for point in ("dump-seized", "dump-netlocked", "infect-started", "dump-pages-mid",
                  "dump-before-cure", "dump-before-inventory"):
        env = dict(os.environ, CKPT_FAULT=point + ":kill")
        p = subprocess.run([a.ckpt, "dump", "-t", str(pid), "-D", img + "-killed",
                            "--tcp-established"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                           timeout=120)
        if p.returncode != -signal.SIGKILL:
            die("ckpt with CKPT_FAULT=%s:kill ended with %r, not SIGKILL" % (point, p.returncode))
        if os.path.exists(os.path.join(img + "-killed", "inventory.img")):
            die("a dump killed at %s left an inventory" % point)
        time.sleep(0.3)
        no_tables("after ckpt was killed at %s" % point)
        shutil.rmtree(img + "-killed", ignore_errors=True)
    log("failed and killed dumps left no lock and the program talking")

    # 2. The real dump: the program is killed, its peer keeps trying.
    r = ckpt(["dump", "-t", str(pid), "-D", img, "-o", "dump.log", "-v4", "--tcp-established"],
             "dump --tcp-established")
    if r.returncode:
        die("dump failed: " + r.stderr)
    victim.wait(timeout=10)
    if victim.returncode != -signal.SIGKILL:
        die("after the dump the program ended with %r, not SIGKILL" % victim.returncode)
    # Its child died with it and came to us (the subreaper): reap it, or
    # its zombie holds the pid the restore needs.
    end = time.time() + 10
    while time.time() < end:
        kids = open("/proc/%d/task/%d/children" % (os.getpid(), os.getpid())).read().split()
        dead = [int(k) for k in kids if int(k) != srv]
        if not dead:
            break
        for k in dead:
            try:
                os.waitpid(k, 0)
            except ChildProcessError:
                pass
    locks = subprocess.run([a.locks_tool], capture_output=True, text=True).stdout.split()
    if not any(t.startswith("ckpt") for t in locks):
        die("no network lock is kept between dump and restore (tables: %r)" % locks)
    time.sleep(1.5)  # the server's retransmissions meet the lock, not a reset
    r = ckpt(["restore", "-D", img, "-o", "restore.log", "-v4", "--tcp-established", "-d",
              "--pidfile", "pidfile"], "restore --tcp-established")
    if r.returncode:
        die("restore failed: " + r.stderr)
    restored = int(open(os.path.join(img, "pidfile")).read())
    if restored != pid:
        die("restored pid %d, want %d" % (restored, pid))
    locks = subprocess.run([a.locks_tool], capture_output=True, text=True).stdout.split()
    if any(t.startswith("ckpt") for t in locks):
        die("nftables tables left after the restore: %r" % locks)

    # 3. Everything goes on.
    time.sleep(0.5)
    os.kill(pid, signal.SIGUSR1)
    end = time.time() + 60
    status = None
    while time.time() < end:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            status = st
            break
        time.sleep(0.05)
    if status is None:
        die("the restored program did not finish its checks")
    text = open(out_path).read()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or "PASS" not in text:
        die("the restored program failed its checks (status %r)" % status)
    verdict = os.read(res_r, 200).decode()
    os.waitpid(srv, 0)
    procs.remove(srv)
    if not verdict.startswith("OK"):
        die("outside server: " + verdict)
    log("outside server saw one unbroken conversation (%s records in, %s out)" %
        tuple(verdict.split()[1:3]))
    cleanup()
    shutil.rmtree(a.workdir, ignore_errors=True)
    log("PASS")


if __name__ == "__main__":
    main()
