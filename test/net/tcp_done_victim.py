# The "done means" program of the network issue: a Python program (the
# interpreter is someone else's code) holding a TCP listener, established
# IPv4 and IPv6 connections with unread data both ways and options set,
# bound and connected UDP sockets, and a connection to a server outside
# the dumped tree that it keeps talking to. Prints READY; on SIGUSR1 it
# checks every socket and prints PASS or FAIL: <why>.
#
#   python3 tcp_done_victim.py SERVER_PORT
import os
import signal
import socket
import struct
import sys
import time

server_port = int(sys.argv[1])
seed = os.getpid()

# A child holding 256 MiB of memory: it is dumped after us, so a ckpt
# killed while it writes those pages has already read our connections
# (the driver kills ckpt at points before and after that).
if os.fork() == 0:
    ballast = b"\x01" * (256 << 20)
    while True:
        signal.pause()


def pattern(tag, n):
    # Deterministic bytes that differ per run, tag and offset.
    out = bytearray()
    i = 0
    while len(out) < n:
        out += struct.pack("<Q", (seed * 1000003 + tag * 7919 + i) & 0xFFFFFFFFFFFFFFFF)
        i += 1
    return bytes(out[:n])


def recv_exact(s, n):
    b = bytearray()
    end = time.time() + 20
    while len(b) < n:
        if time.time() > end:
            raise RuntimeError("timed out after %d of %d bytes" % (len(b), n))
        x = s.recv(n - len(b))
        if not x:
            raise RuntimeError("EOF after %d of %d bytes" % (len(b), n))
        b += x
    return bytes(b)


def pair(family, host, listener):
    c = socket.socket(family, socket.SOCK_STREAM)
    c.connect(listener.getsockname()[:2])
    s, _ = listener.accept()
    return c, s


lst4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst4.bind(("127.0.0.1", 0))
lst4.listen(16)
lst6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
lst6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
lst6.bind(("::1", 0))
lst6.listen(8)

c4, s4 = pair(socket.AF_INET, "127.0.0.1", lst4)
c6, s6 = pair(socket.AF_INET6, "::1", lst6)
c4.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c4.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c4.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77)
c4.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 9)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
c6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x20)
s6.setblocking(False)

# Unread data both ways on both connections.
UNREAD = {(c4, s4): (70000, 3000), (c6, s6): (20000, 50000)}
for (c, s), (up, down) in UNREAD.items():
    c.sendall(pattern(1, up))
    s.setblocking(True)
    s.sendall(pattern(2, down))
s6.setblocking(False)

u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u1.bind(("127.0.0.1", 0))
u2 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u2.bind(("::1", 0))
u3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u3.connect(u1.getsockname())
u3.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)

# A dual-stack IPv6 socket talking IPv4 (::ffff:127.0.0.1): the lock must
# hold its packets, which are IPv4 on the wire.
ext = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ext.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
ext.connect(("::ffff:127.0.0.1", server_port))
ext.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

OPTS = [
    (c4, socket.IPPROTO_TCP, socket.TCP_NODELAY),
    (c4, socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (c4, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    (c4, socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    (s4, socket.SOL_SOCKET, socket.SO_RCVBUF),
    (c6, socket.IPPROTO_IPV6, socket.IPV6_TCLASS),
    (lst4, socket.SOL_SOCKET, socket.SO_REUSEADDR),
    (lst6, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
    (u3, socket.IPPROTO_IP, socket.IP_TOS),
]
before_opts = [s.getsockopt(l, o) for s, l, o in OPTS]
before_linger = s4.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
names = lambda: [
    (s.getsockname(), s.getpeername() if p else None)
    for s, p in [(lst4, 0), (lst6, 0), (c4, 1), (s4, 1), (c6, 1), (s6, 1), (u1, 0), (u2, 0), (u3, 1), (ext, 1)]
]
before_names = names()
before_flags = s6.getblocking()

# The outside conversation, both ways at once: we send numbered 8-byte
# records; the server sends its own numbered records every few
# milliseconds whether we talk or not (so it has data in flight while we
# are dumped). Each side checks the other's numbering has no gap.
DONE = 0xFFFFFFFFFFFFFFFF
sent = 0
heard = 0
inbuf = bytearray()


def drain(block_until_done=False):
    global heard, inbuf
    end = time.time() + 30
    while True:
        try:
            x = ext.recv(65536, 0 if block_until_done else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        if not x:
            raise RuntimeError("EOF from the outside server")
        inbuf += x
        while len(inbuf) >= 8:
            v = struct.unpack("<Q", bytes(inbuf[:8]))[0]
            del inbuf[:8]
            if v == DONE:
                return
            if v != heard:
                raise RuntimeError("outside server record %d, want %d" % (v, heard))
            heard += 1
        if block_until_done and time.time() > end:
            raise RuntimeError("the outside server did not finish")


def talk(n):
    global sent
    for _ in range(n):
        ext.sendall(struct.pack("<Q", sent))
        sent += 1
        drain()


talk(50)
stop = False


def on_usr1(*_):
    global stop
    stop = True


signal.signal(signal.SIGUSR1, on_usr1)
print("READY", os.getpid(), flush=True)
while not stop:
    talk(1)
    time.sleep(0.01)


def check():
    if names() != before_names:
        raise RuntimeError("addresses changed: %r -> %r" % (before_names, names()))
    after = [s.getsockopt(l, o) for s, l, o in OPTS]
    if after != before_opts:
        raise RuntimeError("options changed: %r -> %r" % (before_opts, after))
    if s4.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8) != before_linger:
        raise RuntimeError("SO_LINGER changed")
    if s6.getblocking() != before_flags:
        raise RuntimeError("O_NONBLOCK changed")
    s6.setblocking(True)
    for (c, s), (up, down) in UNREAD.items():
        if recv_exact(s, up) != pattern(1, up):
            raise RuntimeError("client->server unread data differs")
        if recv_exact(c, down) != pattern(2, down):
            raise RuntimeError("server->client unread data differs")
        # and on: a megabyte each way, interleaved so neither blocks
        big = pattern(3, 1 << 20)
        c.setblocking(False)
        s.setblocking(False)
        out_c = out_s = 0
        in_c = bytearray()
        in_s = bytearray()
        end = time.time() + 30
        while len(in_c) < len(big) or len(in_s) < len(big):
            if time.time() > end:
                raise RuntimeError("bulk transfer stalled")
            for sock, off in ((c, "c"), (s, "s")):
                try:
                    if off == "c" and out_c < len(big):
                        out_c += sock.send(big[out_c:out_c + 65536])
                    if off == "s" and out_s < len(big):
                        out_s += sock.send(big[out_s:out_s + 65536])
                except BlockingIOError:
                    pass
            for sock, buf in ((s, in_s), (c, in_c)):
                try:
                    buf += sock.recv(1 << 16)
                except BlockingIOError:
                    pass
        if bytes(in_s) != big or bytes(in_c) != big:
            raise RuntimeError("bulk data differs")
        c.setblocking(True)
        s.setblocking(True)
    for lst, fam, host in ((lst4, socket.AF_INET, "127.0.0.1"), (lst6, socket.AF_INET6, "::1")):
        n = socket.socket(fam, socket.SOCK_STREAM)
        n.connect(lst.getsockname()[:2])
        a, _ = lst.accept()
        n.sendall(b"new")
        if recv_exact(a, 3) != b"new":
            raise RuntimeError("new connection to the listener broken")
    u3.send(b"dgram")
    if u1.recvfrom(100) != (b"dgram", u3.getsockname()):
        raise RuntimeError("connected UDP broken")
    u2.sendto(b"six", u2.getsockname())
    if u2.recv(10) != b"six":
        raise RuntimeError("IPv6 UDP broken")
    for _ in range(200):
        talk(1)
        time.sleep(0.002)
    ext.sendall(struct.pack("<Q", DONE))  # the server answers with its own DONE
    drain(block_until_done=True)
    if heard < 100:
        raise RuntimeError("heard only %d records from the outside server" % heard)


try:
    check()
except Exception as e:  # noqa: BLE001 - any failure is the test's verdict
    print("FAIL:", e, flush=True)
    sys.exit(1)
print("PASS", sent, heard, flush=True)
