#!/usr/bin/env python3
# A real server through dump, kill and restore (issue 13): redis-server
# (Debian's) holding 200,000 keys, with a client connected over TCP in the
# middle of a pipeline of INCRs (half its replies unread, half its commands
# not sent yet). redis is dumped with --tcp-established, killed, restored
# with --tcp-established; the client then sends the rest on the same
# connection, reads every reply in order, and every key is there.
#
# With --lazy (issue 10's "done means"), the values are 1 KiB each (about
# 250 MiB of heap) and the restore is lazy: `ckpt lazy-pages` serves the
# memory while redis already runs (restore --lazy-pages returns before its
# memory is in); the client goes on at once, then every one of the 200,000
# values is read back and compared, and the daemon must end with every page
# in (exit 0).
#
#   redis_test.py --ckpt PATH --workdir DIR [--lazy]
# Needs root and redis-server; loopback only; a child subreaper; leaves
# nothing behind (the server, its directory).
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

KEYS = 200000
PIPELINE = 2000








def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Replies:
    """RESP replies read off a socket, one at a time."""

    def __init__(self, sk):
        self.sk, self.buf = sk, b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sk.recv(65536)
            if not chunk:
                fail("the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def next(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sk.recv(65536)
                if not chunk:
                    fail("the server closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        fail("unexpected reply %r" % line)


def connect(port):
    sk = socket.create_connection(("127.0.0.1", port), timeout=60)
    return sk, Replies(sk)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def reap(pid):
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return not os.path.exists("/proc/%d" % pid)


def value(i, lazy):
    v = "value:%d" % (i * 7)
    return v + "." * (1024 - len(v)) if lazy else v


def start_lazy_daemon(a, img, wd):
    """`ckpt lazy-pages -D img`, once it listens (its --status-fd)."""
    r, w = os.pipe()
    daemon = subprocess.Popen([a.ckpt, "lazy-pages", "-D", img, "--status-fd", str(w),
                               "-o", os.path.join(wd, "lazy-pages.log"), "-v4"],
                              pass_fds=(w,), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    ready = os.read(r, 1)
    os.close(r)
    if not ready:
        fail("ckpt lazy-pages did not get ready (exit %s)" % daemon.wait(timeout=30))
    return daemon


def run(a, wd):
    lazy = a.lazy
    port = free_port()
    out = open(os.path.join(wd, "redis.log"), "w")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", wd,
                               "--daemonize", "no"], stdin=subprocess.DEVNULL, stdout=out,
                              stderr=out, start_new_session=True)
    pid = server.pid

    def pong():
        try:
            sk, r = connect(port)
            sk.sendall(cmd("PING"))
            ok = r.next() == "PONG"
            sk.close()
            return ok
        except OSError:
            return False
    wait_for(pong, "redis answering PING")

    loader, lr = connect(port)
    for start in range(0, KEYS, 5000):
        loader.sendall(b"".join(cmd("SET", "key:%d" % i, value(i, lazy))
                                for i in range(start, min(start + 5000, KEYS))))
        for _ in range(start, min(start + 5000, KEYS)):
            if lr.next() != "OK":
                fail("SET failed")
    loader.close()
    log("%d keys loaded into redis pid %d" % (KEYS, pid))

    # The client in the middle of a pipeline: half of it sent, half of
    # those replies read.
    client, cr = connect(port)
    half = PIPELINE // 2
    client.sendall(b"".join(cmd("INCR", "pipeline") for _ in range(half)))
    got = [int(cr.next()) for _ in range(half // 2)]

    img = os.path.join(wd, "img")
    r = subprocess.run([a.ckpt, "dump", "-t", str(pid), "-D", img, "-o", "dump.log", "-v4",
                        "--tcp-established"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump: " + (r.stderr.strip() or r.stdout.strip()))
    server.wait(timeout=30)
    log("dumped and killed")
    pidfile = os.path.join(wd, "restored.pid")
    daemon = start_lazy_daemon(a, img, wd) if lazy else None
    r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4",
                        "--tcp-established", "--pidfile", pidfile] +
                       (["--lazy-pages"] if lazy else []),
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore: " + (r.stderr.strip() or r.stdout.strip()))
    restored = int(open(pidfile).read())
    if restored != pid:
        fail("restored as pid %d, not %d" % (restored, pid))
    log("restored as pid %d" % restored)

    client.sendall(b"".join(cmd("INCR", "pipeline") for _ in range(PIPELINE - half)))
    got += [int(cr.next()) for _ in range(PIPELINE - len(got))]
    if got != list(range(1, PIPELINE + 1)):
        bad = next(i for i, v in enumerate(got) if v != i + 1)
        fail("reply %d of the pipeline is %d, want %d" % (bad, got[bad], bad + 1))
    client.sendall(cmd("DBSIZE"))
    if int(cr.next()) != KEYS + 1:
        fail("DBSIZE after restore is not %d" % (KEYS + 1))
    every = range(KEYS) if lazy else (0, 1, KEYS // 2, KEYS - 1)
    batch = list(every)
    for start in range(0, len(batch), 5000):
        part = batch[start:start + 5000]
        client.sendall(b"".join(cmd("GET", "key:%d" % i) for i in part))
        for i in part:
            v = cr.next()
            if v != value(i, lazy):
                fail("key:%d is %r after restore" % (i, v))
    log("the client's connection went on: %d replies in order, %d keys there, %d read back" %
        (PIPELINE, KEYS, len(batch)))
    if daemon:
        try:
            rc = daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            fail("ckpt lazy-pages still runs 120 s after the restore")
        if rc != 0:
            fail("ckpt lazy-pages exited %d (see lazy-pages.log)" % rc)
        tail = open(os.path.join(wd, "lazy-pages.log")).read().strip().splitlines()[-1:]
        log("lazy-pages ended with every page in: " + " ".join(tail))
    client.sendall(cmd("SHUTDOWN", "NOSAVE"))
    client.close()
    wait_for(lambda: reap(pid), "end of the restored redis")
    log("PASS")


def main():
    return app_env.main("redis_test", run,
                        lambda: None if os.geteuid() == 0 and shutil.which("redis-server")
                        else "root and redis-server (scripts/install-deps.sh)",
                        add_args=lambda ap: ap.add_argument("--lazy", action="store_true"))

sys.exit(main())
