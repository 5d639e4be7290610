#!/usr/bin/env python3
# scripts/ckpt-migrate moving a real server between two "hosts" (issue 10
# item 4): the hosts are two network namespaces made here, each with a
# bridge (10.88.0.1 on the source's, 10.88.0.3 on the destination's), the
# two bridges joined by a veth pair (one L2 segment, like a LAN).
# Debian's redis-server runs in a network namespace of its own with a veth
# (10.88.0.2) whose outer end is on the source's bridge, holding ~300 MiB
# of keys; a client in the source namespace keeps writing random keys over
# one TCP connection all along. ckpt-migrate pre-copies through a page
# server in the destination namespace, unplugs the outer end, dumps,
# restores at the destination (the namespace, its veth and the connection
# re-made there) and plugs the new outer end into the destination's
# bridge. Checks: redis runs with the same pid behind the destination's
# bridge, the client's connection went on with every reply right, later
# pre-dump rounds sent less than the first, and every key holds what was
# last written (or what it was loaded with), read over a new connection
# that now crosses the link between the hosts.
# --lazy: the same with post-copy (ckpt-migrate --lazy): the final dump
# keeps redis's last memory at the source and serves it to `ckpt
# lazy-pages` at the destination while redis already runs there; the
# client's writes and reads then fault pages over the link. Also checks
# that the script waited for every page ("all memory in").
#
#   migrate_test.py --ckpt PATH --workdir DIR [--script scripts/ckpt-migrate] [--lazy]
# Needs root, ip, nsenter, unshare and redis-server. Traffic only inside
# the namespaces made here; they are deleted at the end, whatever happens.
import ctypes
import os
import random
import shutil
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

KEYS = 300000
VALSIZE = 1024
PORT = 6379
APP_IP = "10.88.0.2"
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "ckpt-migrate")
NS_SRC = "ckmig-s-%d" % os.getpid()
NS_DST = "ckmig-d-%d" % os.getpid()
CLONE_NEWNET = 0x40000000


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Replies:
    """RESP replies read off a socket, one at a time (bulk strings as bytes)."""

    def __init__(self, sk):
        self.sk, self.buf = sk, b""

    def _fill(self):
        chunk = self.sk.recv(1 << 20)
        if not chunk:
            fail("the server closed the connection")
        self.buf += chunk

    def next(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.next() for _ in range(int(rest))]
        fail("unexpected reply %r" % line)


def sh(*argv, check=True):
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        fail("%s: %s" % (" ".join(argv), (r.stderr or r.stdout).strip()))
    return r


def connect_from(ns, timeout=120):
    """A TCP connection to redis made from network namespace `ns` (the
    socket stays there; this thread comes back to its own namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    other = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        if libc.setns(other, CLONE_NEWNET) != 0:
            fail("setns into %s: %s" % (ns, os.strerror(ctypes.get_errno())))
        try:
            sk = socket.create_connection((APP_IP, PORT), timeout=timeout)
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                fail("setns back: %s" % os.strerror(ctypes.get_errno()))
    finally:
        os.close(own)
        os.close(other)
    return sk, Replies(sk)


def value(key, seq):
    v = b"upd:%d:%d:" % (key, seq)
    return v + b"x" * (VALSIZE - len(v))


class Writer(threading.Thread):
    """Keeps setting random keys over one connection, checking every reply,
    about 5 MiB/s, until told to stop (then a few more batches)."""

    def __init__(self, sk, r):
        super().__init__(daemon=True)
        self.sk, self.r = sk, r
        self.expect = {}
        self.error = None
        self.batches = 0
        self.after = 0  # batches after the migration
        self.migrated = threading.Event()
        self.stop = threading.Event()

    def run(self):
        rnd = random.Random(7)
        seq = 0
        try:
            for _ in range(200000):  # bounded: ~0.02 s each
                if self.stop.is_set():
                    break
                keys = [rnd.randrange(KEYS) for _ in range(100)]
                batch = []
                for k in keys:
                    seq += 1
                    batch.append((k, value(k, seq)))
                self.sk.sendall(b"".join(cmd("SET", "key:%d" % k, v) for k, v in batch))
                for k, v in batch:
                    if self.r.next() != "OK":
                        raise RuntimeError("SET key:%d did not answer OK" % k)
                    self.expect[k] = v
                self.batches += 1
                if self.migrated.is_set():
                    self.after += 1
                self.stop.wait(0.02)
        except BaseException as e:  # fail() raises SystemExit; reported by the main thread
            self.error = str(e) or type(e).__name__


def setup_hosts():
    # Each bridge gets a MAC of its own, as a host's NIC has: a bridge
    # without one takes its lowest port's, and at the source that is the
    # migrated veth's outer end while a lazy dump keeps the old namespace
    # alive: its twin at the destination would then take the source's
    # frames (the lazy-pages daemon's connection to the source stalled).
    for ns, addr, mac in ((NS_SRC, "10.88.0.1/24", "02:00:0a:58:00:01"),
                          (NS_DST, "10.88.0.3/24", "02:00:0a:58:00:03")):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "br0", "address", mac, "type", "bridge")
        sh("ip", "-n", ns, "addr", "add", addr, "dev", "br0")
        sh("ip", "-n", ns, "link", "set", "br0", "up")
    sh("ip", "-n", NS_SRC, "link", "add", "mlink", "type", "veth", "peer", "name", "mlink",
       "netns", NS_DST)
    for ns in (NS_SRC, NS_DST):
        sh("ip", "-n", ns, "link", "set", "mlink", "master", "br0", "up")


def cleanup():
    for ns in (NS_SRC, NS_DST):
        if os.path.exists("/run/netns/" + ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def netns_of(pid):
    return os.stat("/proc/%d/ns/net" % pid).st_ino


def exe_of(pid):
    """The command name (Debian's redis-server binary is redis-check-rdb)."""
    try:
        return open("/proc/%d/comm" % pid).read().strip()
    except OSError:
        return None


def run(a, wd):
    setup_hosts()
    out = open(os.path.join(wd, "redis.log"), "w")
    # nsenter and unshare exec (no fork): the Popen pid is redis.
    server = subprocess.Popen(
        ["nsenter", "--net=/run/netns/" + NS_SRC, "unshare", "--net", "--",
         "redis-server", "--port", str(PORT), "--bind", "0.0.0.0", "--protected-mode", "no",
         "--save", "", "--appendonly", "no", "--dir", wd, "--daemonize", "no",
         "--enable-debug-command", "yes"],
        stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    pid = server.pid
    wait_for(lambda: exe_of(pid) == "redis-server" and
             netns_of(pid) != os.stat("/run/netns/" + NS_SRC).st_ino,
             "redis-server in its own network namespace")
    sh("ip", "-n", NS_SRC, "link", "add", "vapp", "type", "veth", "peer", "name", "eth0",
       "netns", str(pid))
    sh("ip", "-n", NS_SRC, "link", "set", "vapp", "master", "br0", "up")
    for c in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", APP_IP + "/24", "dev", "eth0"],
              ["ip", "link", "set", "eth0", "up"]):
        sh("nsenter", "-t", str(pid), "-n", *c)

    def pong():
        try:
            sk, r = connect_from(NS_SRC, timeout=2)
            sk.sendall(cmd("PING"))
            ok = r.next() == "PONG"
            sk.close()
            return ok
        except OSError:
            return False
    wait_for(pong, "redis answering PING at %s from the source namespace" % APP_IP)

    loader, lr = connect_from(NS_SRC)
    loader.sendall(cmd("DEBUG", "POPULATE", KEYS, "key", VALSIZE))
    if lr.next() != "OK":
        fail("DEBUG POPULATE failed")
    loader.close()
    rss = int(open("/proc/%d/statm" % pid).read().split()[1]) * 4096 >> 20
    log("redis pid %d at %s holds %d keys of %d bytes (RSS %d MiB)" % (pid, APP_IP, KEYS, VALSIZE,
                                                                       rss))

    sk, r = connect_from(NS_SRC)
    w = Writer(sk, r)
    w.start()
    wait_for(lambda: w.batches >= 10 or w.error, "the writer's first batches")

    src = ["nsenter", "--net=/run/netns/" + NS_SRC, "sh", "-c"]
    dst = ["nsenter", "--net=/run/netns/" + NS_DST, "sh", "-c"]

    # A destination address the destination does not have: its page server
    # cannot listen there; ckpt-migrate says so and redis is left alone.
    bad = subprocess.run([SCRIPT if not a.script else a.script, "--src", " ".join(src),
                          "--dst", " ".join(dst), "--dst-address", "10.88.0.99",
                          "--src-dir", os.path.join(wd, "bad-src"),
                          "--dst-dir", os.path.join(wd, "bad-dst"), "--ckpt", a.ckpt, str(pid)],
                         capture_output=True, text=True, timeout=120)
    if bad.returncode != 1 or "page server at the destination did not start" not in bad.stderr:
        fail("ckpt-migrate to an address the destination lacks: exit %d, %r" %
             (bad.returncode, bad.stderr.strip()))
    if server.poll() is not None or exe_of(pid) != "redis-server":
        fail("redis did not survive a migration that could not start")
    log("no page server at 10.88.0.99: " + bad.stderr.strip().splitlines()[-1])
    argv = [SCRIPT if not a.script else a.script,
            "--src", " ".join(src), "--dst", " ".join(dst),
            "--dst-address", "10.88.0.3", "--port", "27100",
            "--src-dir", os.path.join(wd, "src"), "--dst-dir", os.path.join(wd, "dst"),
            "--ckpt", a.ckpt, "--max-rounds", "5", "--min-mib", "4", "--keep-images",
            "--before-final", "ip link set vapp down",
            "--src-resume", "ip link set vapp up",
            "--after-restore", "ip link set vapp master br0 up"]
    if a.lazy:
        argv += ["--lazy", "--src-address", "10.88.0.1", "--lazy-port", "27101"]
    argv.append(str(pid))
    log("running " + " ".join(argv))
    # The final dump kills the source's redis: reap it at once, or its
    # zombie would keep the pid the restore needs.
    reaper = threading.Thread(target=server.wait, daemon=True)
    reaper.start()
    out_path = os.path.join(wd, "ckpt-migrate.out")
    limit = 150 if a.lazy else 240  # a lazy migration takes ~30 s here
    with open(out_path, "w") as out_f:
        mig = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_f,
                               stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = mig.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(mig.pid, 9)
            mig.wait()
            rc = None
    stdout = open(out_path).read()
    for line in stdout.splitlines():
        log("  | " + line)
    if rc is None:
        fail("ckpt-migrate did not end within %d s" % limit)
    if rc != 0:
        fail("ckpt-migrate exited %d" % rc)
    w.migrated.set()

    # Where redis is now: same pid, a new network namespace whose outer
    # veth end is on the destination's bridge; none left at the source.
    reaper.join(timeout=30)  # the source's redis was killed by the final dump
    wait_for(lambda: os.path.exists("/proc/%d" % pid), "the restored redis")
    if exe_of(pid) != "redis-server":
        fail("pid %d is not redis-server after the migration" % pid)
    # (The new namespace may get the old one's inode number: not compared.)
    if netns_of(pid) in (os.stat("/run/netns/" + NS_SRC).st_ino,
                         os.stat("/run/netns/" + NS_DST).st_ino):
        fail("redis lost its own network namespace")
    master = sh("ip", "-n", NS_DST, "-o", "link", "show", "vapp").stdout
    if "master br0" not in master:
        fail("the re-made outer end is not on the destination's bridge: " + master)
    if sh("ip", "-n", NS_SRC, "link", "show", "vapp", check=False).returncode == 0:
        fail("the old outer end is still at the source")

    # The round sizes: the later pre-dumps only sent what was written.
    rounds = [int(l.split("(")[1].split()[0]) for l in stdout.splitlines()
              if l.startswith("round ")]
    if len(rounds) < 2:
        fail("fewer than two pre-dump rounds: %r" % rounds)
    if not all(n < rounds[0] for n in rounds[1:]):
        fail("a later pre-dump round sent as much as the first: %r pages" % rounds)
    if "downtime:" not in stdout:
        fail("no downtime reported")
    if a.lazy:
        if "final lazy dump:" not in stdout or "all memory in after" not in stdout:
            fail("ckpt-migrate --lazy did not report a lazy dump and all memory in")
        held = [l for l in stdout.splitlines() if l.startswith("final lazy dump:")][0]
        if float(held.split(":")[1].split()[0]) <= 0:
            fail("the lazy dump kept no memory at the source: " + held)

    wait_for(lambda: w.after >= 20 or w.error or not w.is_alive(),
             "the client's batches after the migration", timeout=120)
    w.stop.set()
    w.join(timeout=60)
    if w.error:
        fail("the client's connection: " + w.error)
    if w.after < 20:
        fail("the client stopped after %d batches past the migration" % w.after)
    log("the client's connection went on: %d batches of 100 SETs, %d after the migration" %
        (w.batches, w.after))

    chk, cr = connect_from(NS_SRC)
    chk.sendall(cmd("DBSIZE"))
    if int(cr.next()) != KEYS:
        fail("DBSIZE after the migration is not %d" % KEYS)
    keys = sorted(w.expect)
    for i in range(0, len(keys), 1000):
        part = keys[i:i + 1000]
        chk.sendall(cmd("MGET", *["key:%d" % k for k in part]))
        for k, v in zip(part, cr.next()):
            if v != w.expect[k]:
                fail("key:%d holds %r..., last written %r..." % (k, (v or b"")[:24], w.expect[k][:24]))
    untouched = [k for k in range(0, KEYS, 97) if k not in w.expect]
    chk.sendall(cmd("MGET", *["key:%d" % k for k in untouched]))
    for k, v in zip(untouched, cr.next()):
        want = b"value:%d" % k
        if v is None or len(v) != VALSIZE or not v.startswith(want) or v[len(want):].strip(b"\0"):
            fail("key:%d holds %r..., loaded as %r" % (k, (v or b"")[:24], want))
    log("every key is right: %d written by the client, %d loaded ones sampled" %
        (len(keys), len(untouched)))
    chk.sendall(cmd("SHUTDOWN", "NOSAVE"))
    chk.close()
    sk.close()
    log("PASS")


def missing():
    if os.geteuid() != 0:
        return "root"
    for t in ("redis-server", "ip", "nsenter", "unshare"):
        if not shutil.which(t):
            return t + " (scripts/install-deps.sh)"
    return None


def main():
    if "--script" in sys.argv:  # ours, not app_env's
        i = sys.argv.index("--script")
        script = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    else:
        script = None
    lazy = "--lazy" in sys.argv
    if lazy:
        sys.argv.remove("--lazy")

    def run_with(a, wd):
        a.script = script
        a.lazy = lazy
        run(a, wd)
    return app_env.main("migrate_test", run_with, missing, cleanup)


sys.exit(main())
