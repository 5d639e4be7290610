# Victim of tcp_states.py. Prints READY, and on SIGUSR1 checks and prints
# PASS or FAIL: <why>.
#
#   tcp_states_victim.py syn-sent PORT   a non-blocking connect() to
#       127.0.0.1:PORT still in SYN_SENT (the driver's listener has a full
#       accept queue, so our SYNs go unanswered); after the restore the
#       connection completes once the driver makes room, and carries data.
#   tcp_states_victim.py closed          an established loopback pair and a
#       listener; restored with --tcp-close, the pair's sockets are no
#       longer connected (ENOTCONN, EPIPE) while the listener works on.
import errno
import os
import select
import signal
import socket
import sys
import time

TCP_INFO_STATE = 0  # first byte of struct tcp_info: tcpi_state
SYN_SENT = 2


def state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[TCP_INFO_STATE]


mode = sys.argv[1]
stop = False


def on_usr1(*_):
    global stop
    stop = True


signal.signal(signal.SIGUSR1, on_usr1)

if mode == "syn-sent":
    port = int(sys.argv[2])
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    if c.connect_ex(("127.0.0.1", port)) != errno.EINPROGRESS:
        print("FAIL: connect did not start", flush=True)
        sys.exit(1)
    for _ in range(100):
        if state(c) == SYN_SENT:
            break
        time.sleep(0.01)
    if state(c) != SYN_SENT:
        print("FAIL: not in SYN_SENT but %d" % state(c), flush=True)
        sys.exit(1)
    local = c.getsockname()
else:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    a.connect(ls.getsockname())
    b, _ = ls.accept()
    a.sendall(b"unread")

print("READY", os.getpid(), flush=True)
while not stop:
    time.sleep(0.05)


def check():
    if mode == "syn-sent":
        if c.getsockname() != local:
            raise RuntimeError("local address %r, was %r" % (c.getsockname(), local))
        # The driver makes room in its listener's queue once we are restored.
        _, w, _ = select.select([], [c], [], 30)
        if not w:
            raise RuntimeError("the connection never completed (state %d)" % state(c))
        err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise RuntimeError("connect failed: %s" % os.strerror(err))
        c.setblocking(True)
        c.sendall(b"hello")
        if c.recv(5) != b"olleh":
            raise RuntimeError("no answer on the completed connection")
    else:
        for s in (a, b):
            try:
                s.send(b"x")
                raise RuntimeError("send on a closed connection succeeded")
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.ENOTCONN):
                    raise RuntimeError("send: %s, want EPIPE or ENOTCONN" % e)
            try:
                s.recv(10)
                raise RuntimeError("recv on a closed connection succeeded")
            except OSError as e:
                if e.errno != errno.ENOTCONN:
                    raise RuntimeError("recv: %s, want ENOTCONN" % e)
        n = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        n.connect(ls.getsockname())
        x, _ = ls.accept()
        n.sendall(b"new")
        if x.recv(3) != b"new":
            raise RuntimeError("the listener does not work")


try:
    check()
except Exception as e:  # noqa: BLE001 - any failure is the verdict
    print("FAIL:", e, flush=True)
    sys.exit(1)
print("PASS", flush=True)
