#!/usr/bin/env python3
# A real server through dump, kill and restore (issue 13): redis-server
# (Debian's) holding 200,000 keys, with a client connected over TCP in the
# middle of a pipeline of INCRs (half its replies unread, half its commands
# not sent yet). redis is dumped with --tcp-established, killed, restored
# with --tcp-established; the client then sends the rest on the same
# connection, reads every reply in order, and every key is there.
#
#   redis_test.py --ckpt PATH --workdir DIR
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


def run(a, wd):
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
        loader.sendall(b"".join(cmd("SET", "key:%d" % i, "value:%d" % (i * 7))
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
    r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4",
                        "--tcp-established", "--pidfile", pidfile],
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
    for i in (0, 1, KEYS // 2, KEYS - 1):
        client.sendall(cmd("GET", "key:%d" % i))
        v = cr.next()
        if v != "value:%d" % (i * 7):
            fail("key:%d is %r after restore" % (i, v))
    log("the client's connection went on: %d replies in order, %d keys there" % (PIPELINE, KEYS))
    client.sendall(cmd("SHUTDOWN", "NOSAVE"))
    client.close()
    wait_for(lambda: reap(pid), "end of the restored redis")
    log("PASS")


def main():
    return app_env.main("redis_test", run,
                        lambda: None if os.geteuid() == 0 and shutil.which("redis-server")
                        else "root and redis-server (scripts/install-deps.sh)")

sys.exit(main())
