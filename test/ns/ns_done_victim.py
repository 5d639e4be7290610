#!/usr/bin/env python3
# An ordinary program, started by ns_done.py as pid 1 of its own pid, uts,
# ipc and net namespaces (`unshare --pid --uts --ipc --net --fork`). It
# knows nothing of ckpt. It
#   - sets a hostname, brings its loopback up,
#   - forks a child that waits,
#   - fills a SysV message queue and a POSIX message queue with messages,
#   - opens a TCP connection on its own 127.0.0.1 and leaves bytes unread
#     in both directions,
# writes DIR/ready, then serves requests on the unix socket DIR/ctl.sock:
# "report" answers one JSON line with what it finds (consuming the queues
# and the unread bytes); "quit" ends it.
#
#   ns_done_victim.py DIR
import ctypes
import ctypes.util
import fcntl
import json
import os
import socket
import struct
import sys
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mq_open.restype = ctypes.c_int
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
libc.mq_send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]
libc.mq_receive.restype = ctypes.c_ssize_t
libc.mq_receive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                            ctypes.POINTER(ctypes.c_uint)]
libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.msgrcv.restype = ctypes.c_ssize_t
libc.msgrcv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long,
                        ctypes.c_int]

IPC_CREAT, IPC_NOWAIT = 0o1000, 0o4000
O_RDWR, O_CREAT, O_NONBLOCK = 0o2, 0o100, 0o4000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def die(what):
    sys.stderr.write("ns_done_victim: %s (errno %d)\n" % (what, ctypes.get_errno()))
    sys.exit(1)


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh", b"lo", 0) + b"\0" * 22)
    flags = struct.unpack("16sh", ifr[:18])[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP) + b"\0" * 22)
    s.close()


def sysv_send(qid, mtype, text):
    buf = struct.pack("l", mtype) + text
    if libc.msgsnd(qid, buf, len(text), 0) < 0:
        die("msgsnd")


def sysv_drain(qid):
    out = []
    buf = ctypes.create_string_buffer(8 + 256)
    while True:
        n = libc.msgrcv(qid, buf, 256, 0, IPC_NOWAIT)
        if n < 0:
            return out
        mtype = struct.unpack("l", buf.raw[:8])[0]
        out.append([mtype, buf.raw[8:8 + n].decode()])


def mq_drain(mqd):
    out = []
    buf = ctypes.create_string_buffer(8192)
    prio = ctypes.c_uint()
    while True:
        n = libc.mq_receive(mqd, buf, 8192, ctypes.byref(prio))
        if n < 0:
            return out
        out.append([prio.value, buf.raw[:n].decode()])


def main():
    d = sys.argv[1]
    socket.sethostname("ns-done")
    lo_up()

    child = os.fork()
    if child == 0:
        while True:
            time.sleep(3600)

    qid = libc.msgget(0x5eed, 0o600 | IPC_CREAT)
    if qid < 0:
        die("msgget")
    for i, t in enumerate([b"first", b"second", b"third"]):
        sysv_send(qid, i + 1, t)
    mqd = libc.mq_open(b"/ns-done", O_RDWR | O_CREAT | O_NONBLOCK, 0o600, None)
    if mqd < 0:
        die("mq_open")
    for prio, t in [(1, b"low"), (9, b"high"), (5, b"middle")]:
        if libc.mq_send(mqd, t, len(t), prio) < 0:
            die("mq_send")

    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 7777))
    ls.listen(1)
    cli = socket.create_connection(("127.0.0.1", 7777))
    srv, _ = ls.accept()
    cli.sendall(b"to-server-before-dump")
    srv.sendall(b"to-client-before-dump")

    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(os.path.join(d, "ctl.sock"))
    ctl.listen(4)
    with open(os.path.join(d, "ready.tmp"), "w") as f:
        f.write("%d %d\n" % (os.getpid(), child))
    os.rename(os.path.join(d, "ready.tmp"), os.path.join(d, "ready"))

    while True:
        c, _ = ctl.accept()
        req = c.recv(64).strip()
        if req == b"quit":
            c.close()
            os.kill(child, 9)
            os.waitpid(child, 0)
            return
        if req != b"report":
            c.close()
            continue
        srv.settimeout(5)
        cli.settimeout(5)
        got_srv = srv.recv(100)
        got_cli = cli.recv(100)
        cli.sendall(b"after")
        echo = srv.recv(100)
        try:
            os.kill(child, 0)
            child_alive = True
        except OSError:
            child_alive = False
        report = {
            "pid": os.getpid(),
            "child": child,
            "child_alive": child_alive,
            "hostname": socket.gethostname(),
            "sysv": sysv_drain(qid),
            "mq": mq_drain(mqd),
            "tcp": [got_srv.decode(), got_cli.decode(), echo.decode()],
        }
        c.sendall((json.dumps(report) + "\n").encode())
        c.close()


main()
