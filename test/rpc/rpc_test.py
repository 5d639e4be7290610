#!/usr/bin/env python3
"""CRIU's RPC protocol against ckpt, played by a client the way runc,
go-criu and pycriu play it: criu_req/criu_resp built from proto/rpc.proto
(rpc_pb2.py generated into the build directory), one message per
SOCK_SEQPACKET packet, `ckpt swrk 3` with the socket as fd 3 and stdio
passed through, or `ckpt service --address PATH`.

Real processes throughout: a counting victim is dumped and restored, and
must go on counting from where it was. The test is a child subreaper and
kills and reaps everything it started, removes its directory, sockets and
pidfiles, also when a check fails.
"""
import argparse
import ctypes
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import shutil
import time

PR_SET_CHILD_SUBREAPER = 36
rpc = None  # rpc_pb2, imported once --pb-dir is known
CKPT = VICTIM = None
TMP = None
KILL_AT_EXIT = set()  # pids to SIGKILL at the end (victims, restored trees, services)

DUMP_POINTS = ["pre-dump", "network-lock", "post-dump"]
RESTORE_POINTS = ["pre-restore", "setup-namespaces", "post-setup-namespaces", "network-unlock",
                  "post-restore", "pre-resume", "post-resume"]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def poll_until(cond, what, tries=6000, step=0.005):
    """Bounded wait for something a live process will do (not a timing check)."""
    for _ in range(tries):
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise Failure("never happened: " + what)


class Conn:
    """One client end of an RPC socket."""

    def __init__(self, sk):
        self.sk = sk

    def send(self, req):
        self.sk.send(req.SerializeToString())

    def send_raw(self, data):
        self.sk.send(data)

    def recv(self):
        data, anc, _, _ = self.sk.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 4))
        if not data:
            raise Failure("ckpt closed the connection")
        resp = rpc.criu_resp()
        resp.ParseFromString(data)
        fds = []
        for level, typ, payload in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(memoryview(payload).cast("i"))
        return resp, fds

    def call(self, req, notify=None):
        """Sends req; answers NOTIFY messages with notify(name, resp, fds)
        (True when None) until the final response, which is returned."""
        self.send(req)
        while True:
            resp, fds = self.recv()
            if resp.type != rpc.NOTIFY:
                for fd in fds:
                    os.close(fd)
                return resp
            ok = notify(resp.notify.script, resp, fds) if notify else True
            for fd in fds:
                os.close(fd)
            ans = rpc.criu_req()
            ans.type = rpc.NOTIFY
            ans.notify_success = ok
            self.send(ans)

    def close(self):
        self.sk.close()


class Swrk:
    """`ckpt swrk 3`, exactly as runc starts criu."""

    def __init__(self):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(theirs.fileno(), 3)  # inheritable; everything else is CLOEXEC
                os.execv(CKPT, [CKPT, "swrk", "3"])
            finally:
                os._exit(127)
        theirs.close()
        self.pid = pid
        KILL_AT_EXIT.add(pid)
        self.conn = Conn(mine)

    def finish(self):
        """Closes our end; ckpt must exit 0 on its own."""
        self.conn.close()
        st = wait_exit(self.pid, "ckpt swrk")
        check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "ckpt swrk exited with status %#x" % st)


def wait_exit(pid, what):
    def reaped():
        r, st = os.waitpid(pid, os.WNOHANG)
        return (True, st) if r == pid else None
    got = poll_until(reaped, what + " exits", tries=12000)
    KILL_AT_EXIT.discard(pid)
    return got[1]


def req(typ, **opts):
    r = rpc.criu_req()
    r.type = typ
    if opts or typ in (rpc.DUMP, rpc.RESTORE):
        r.opts.images_dir_fd = opts.pop("images_dir_fd", -1)
        for k, v in opts.items():
            setattr(r.opts, k, v)
    return r


class Victim:
    def __init__(self, name, prefix=()):
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir, exist_ok=True)
        self.count_file = os.path.join(self.dir, "count")
        self.proc = subprocess.Popen(list(prefix) + [VICTIM, self.count_file], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True)
        self.pid = self.proc.pid
        KILL_AT_EXIT.add(self.pid)
        poll_until(lambda: os.path.exists(self.count_file), "the victim counts")

    def count(self):
        pid, n = open(self.count_file).read().split()
        check(int(pid) == self.pid, "the count file names pid %s, not %d" % (pid, self.pid))
        return int(n)

    def counts_past(self, n):
        poll_until(lambda: self.count() > n, "pid %d counts past %d" % (self.pid, n))

    def reap_dumped(self):
        """After a dump that killed it."""
        self.proc.wait()
        KILL_AT_EXIT.discard(self.pid)
        check(self.proc.returncode == -signal.SIGKILL,
              "the dumped victim ended with %s, not SIGKILL" % self.proc.returncode)

    def status(self, key):
        for line in open("/proc/%d/status" % self.pid):
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
        return None


def images_dir(name):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    return d, os.open(d, os.O_RDONLY | os.O_DIRECTORY)


# ---------------------------------------------------------------- requests

def test_simple_requests(c):
    r = c.call(req(rpc.VERSION))
    check(r.type == rpc.VERSION and r.success, "VERSION failed: %s" % r)
    v = r.version
    check(v.major_number * 10000 + v.minor_number * 100 + v.sublevel >= 30000,
          "runc 1.1 needs a version >= 3.0.0, got %s" % v)
    check("ckpt" in (v.name + v.gitid), "VERSION does not say ckpt: %s" % v)

    r = c.call(req(rpc.CHECK))
    check(r.type == rpc.CHECK and r.success, "CHECK failed: %s" % r.cr_errmsg)

    q = req(rpc.FEATURE_CHECK)
    q.features.mem_track = True
    q.features.lazy_pages = True
    r = c.call(q)
    check(r.type == rpc.FEATURE_CHECK and r.success, "FEATURE_CHECK failed: %s" % r)
    checked = subprocess.run([CKPT, "check"], capture_output=True, text=True).stdout
    tracking = "uffd-wp async" in checked
    check(r.features.HasField("mem_track") and r.features.mem_track == tracking,
          "mem_track %s, ckpt check says %s" % (r.features.mem_track, tracking))
    lazy = "lazy restore: yes" in checked
    check(r.features.HasField("lazy_pages") and r.features.lazy_pages == lazy,
          "lazy_pages %s, ckpt check says %s" % (r.features.lazy_pages, lazy))
    check(not r.features.HasField("pidfd_store"), "pidfd_store answered unasked: %s" % r)
    q = req(rpc.FEATURE_CHECK)
    q.features.pidfd_store = True
    r = c.call(q)
    check(r.features.HasField("pidfd_store") and not r.features.pidfd_store
          and not r.features.HasField("mem_track"), "pidfd_store alone: %s" % r)

    for typ, word in ((rpc.NOTIFY, "NOTIFY"), (rpc.EMPTY, "EMPTY")):
        r = c.call(req(typ))
        check(not r.success and word in r.cr_errmsg, "%s: %s" % (word, r))

    c.send_raw(b"\x08\x63")  # type 99, unknown to the schema
    r, _ = c.recv()
    check(not r.success and "99" in r.cr_errmsg, "type 99: %s" % r)

    r = c.call(req(rpc.WAIT_PID))
    check(not r.success and "pid" in r.cr_errmsg, "WAIT_PID without pid: %s" % r)


def test_bad_packets(c):
    """Each bad packet gets an error reply; the connection goes on."""
    c.send_raw(b"\xff\xfe\xfd\xfc garbage")
    r, _ = c.recv()
    check(not r.success and r.cr_errmsg, "garbage: %s" % r)
    full = req(rpc.DUMP, images_dir_fd=3, log_file="dump.log").SerializeToString()
    c.send_raw(full[:-5])
    r, _ = c.recv()
    check(not r.success and r.cr_errmsg, "truncated: %s" % r)
    partial = rpc.criu_req()
    partial.type = rpc.DUMP
    partial.opts.pid = 1  # images_dir_fd (required) missing
    c.send_raw(partial.SerializePartialToString())
    r, _ = c.recv()
    check(not r.success and "images_dir_fd" in r.cr_errmsg, "missing required: %s" % r)
    c.sk.setsockopt(socket.SOL_SOCKET, 32, 8 << 20)  # SO_SNDBUFFORCE (root)
    c.send_raw(b"\x08\x0a" + b"\x00" * (2 << 20))  # 2 MiB: over ckpt's limit
    r, _ = c.recv()
    check(not r.success and "over the limit" in r.cr_errmsg, "oversized: %s" % r)
    r = c.call(req(rpc.VERSION))
    check(r.success, "VERSION after bad packets: %s" % r)


def test_refused_option(c):
    v = Victim("refused")
    d, fd = images_dir("refused-img")
    for field, val in (("lsm_profile", "apparmor:x"), ("empty_ns", 0x20000000),
                       ("lazy_pages", True)):
        r = c.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, **{field: val}))
        check(r.type == rpc.DUMP and not r.success and field in r.cr_errmsg,
              "%s not refused by name: %s" % (field, r))
    q = req(rpc.DUMP, images_dir_fd=fd, pid=v.pid)
    j = q.opts.join_ns.add()
    j.ns, j.ns_file = "net", "/proc/1/ns/net"
    r = c.call(q)
    check(not r.success and "join_ns" in r.cr_errmsg, "join_ns: %s" % r)
    n = v.count()
    v.counts_past(n)
    check(v.status("TracerPid") == "0", "the victim is still traced")
    os.close(fd)
    v.proc.kill()
    v.proc.wait()
    KILL_AT_EXIT.discard(v.pid)


def test_dump_restore_swrk():
    """runc's way: a swrk per request; notifications answered; restore in
    a worker, the tree comes back to the session for WAIT_PID."""
    v = Victim("swrk")
    d, fd = images_dir("swrk-img")
    work, wfd = images_dir("swrk-work")
    seen = []
    at_dump = {}

    def on_dump(name, resp, fds):
        seen.append(name)
        if name == "post-dump":
            at_dump["n"] = v.count()  # frozen: no more counting until restore
        if name in ("pre-dump", "network-lock", "post-dump"):
            check(resp.notify.pid == v.pid, "%s names pid %d" % (name, resp.notify.pid))
        return True

    s = Swrk()
    r = s.conn.call(req(rpc.DUMP, images_dir_fd=fd, work_dir_fd=wfd, pid=v.pid, log_level=4,
                        log_file="dump.log", notify_scripts=True, manage_cgroups=False,
                        shell_job=False), notify=on_dump)
    check(r.type == rpc.DUMP and r.success, "DUMP failed: %s" % r.cr_errmsg)
    check(seen == DUMP_POINTS, "dump notifications %s" % seen)
    check(os.path.exists(os.path.join(d, "inventory.img")), "no inventory.img")
    check(os.path.getsize(os.path.join(work, "dump.log")) > 0, "no dump.log in the work dir")
    check(not os.path.exists(os.path.join(d, "dump.log")), "dump.log not in the work dir")
    s.finish()
    v.reap_dumped()

    seen.clear()
    s = Swrk()
    r = s.conn.call(req(rpc.RESTORE, images_dir_fd=fd, work_dir_fd=wfd, log_level=4,
                        log_file="restore.log", notify_scripts=True),
                    notify=lambda name, resp, fds: seen.append(name) or True)
    check(r.type == rpc.RESTORE and r.success, "RESTORE failed: %s" % r.cr_errmsg)
    check(r.restore.pid == v.pid, "restored as pid %d, not %d" % (r.restore.pid, v.pid))
    KILL_AT_EXIT.add(v.pid)
    check(seen == RESTORE_POINTS, "restore notifications %s" % seen)
    first = v.count()
    check(first >= at_dump["n"], "restarted: count %d after a dump at %d" % (first, at_dump["n"]))
    v.counts_past(first)
    # The worker that restored it answers before it exits; the session (a
    # subreaper) adopts the tree then, before it reads the next request.
    poll_until(lambda: int(v.status("PPid")) == s.pid,
               "the restored tree's parent to become the swrk session %d (it is %s)" %
               (s.pid, v.status("PPid")))
    os.kill(v.pid, signal.SIGTERM)
    q = req(rpc.WAIT_PID)
    q.pid = v.pid
    r = s.conn.call(q)
    check(r.type == rpc.WAIT_PID and r.success, "WAIT_PID: %s" % r)
    check(os.WIFSIGNALED(r.status) and os.WTERMSIG(r.status) == signal.SIGTERM,
          "WAIT_PID status %#x" % r.status)
    KILL_AT_EXIT.discard(v.pid)
    s.finish()
    os.close(fd)
    os.close(wfd)


def test_pre_dump_chain():
    """PRE_DUMP, then DUMP with parent_img and track_mem (CRIU's
    incremental dump), then RESTORE from the chain."""
    v = Victim("chain")
    d1, fd1 = images_dir("chain-pre")
    d2, fd2 = images_dir("chain-final")
    s = Swrk()
    r = s.conn.call(req(rpc.PRE_DUMP, images_dir_fd=fd1, pid=v.pid, track_mem=True))
    check(r.type == rpc.PRE_DUMP and r.success, "PRE_DUMP failed: %s" % r.cr_errmsg)
    v.counts_past(v.count())  # it runs on after a pre-dump
    r = s.conn.call(req(rpc.DUMP, images_dir_fd=fd2, pid=v.pid, parent_img="../chain-pre",
                        track_mem=True))
    check(r.type == rpc.DUMP and r.success, "DUMP on a pre-dump failed: %s" % r.cr_errmsg)
    check(os.path.realpath(os.path.join(d2, "parent")) == os.path.realpath(d1),
          "no parent link to the pre-dump")
    at_dump = v.count()
    s.finish()
    v.reap_dumped()
    s = Swrk()
    r = s.conn.call(req(rpc.RESTORE, images_dir_fd=fd2))
    check(r.type == rpc.RESTORE and r.success, "RESTORE of a chain failed: %s" % r.cr_errmsg)
    KILL_AT_EXIT.add(v.pid)
    check(v.count() >= at_dump, "restarted after a chain restore")
    v.counts_past(v.count())
    os.kill(v.pid, signal.SIGKILL)
    poll_until(lambda: not os.path.exists("/proc/%d" % v.pid) or
               v.status("State").startswith("Z"), "the restored victim ends")
    KILL_AT_EXIT.discard(v.pid)
    s.finish()
    os.close(fd1)
    os.close(fd2)


def test_page_server():
    """PAGE_SERVER starts a page server (its pid and port answered); a DUMP
    with ps sends the memory there; the two halves restore together."""
    v = Victim("ps")
    srv, sfd = images_dir("ps-server")
    loc, lfd = images_dir("ps-local")
    s = Swrk()
    q = req(rpc.PAGE_SERVER, images_dir_fd=sfd)
    q.opts.ps.address = "127.0.0.1"
    q.opts.ps.port = 0
    r = s.conn.call(q)
    check(r.type == rpc.PAGE_SERVER and r.success, "PAGE_SERVER failed: %s" % r.cr_errmsg)
    check(r.ps.pid > 0 and r.ps.port > 0, "PAGE_SERVER answered %s" % r.ps)
    server = r.ps.pid
    KILL_AT_EXIT.add(server)
    q = req(rpc.DUMP, images_dir_fd=lfd, pid=v.pid)
    q.opts.ps.address = "127.0.0.1"
    q.opts.ps.port = r.ps.port
    r = s.conn.call(q)
    check(r.type == rpc.DUMP and r.success, "DUMP to the page server failed: %s" % r.cr_errmsg)
    s.finish()  # the session ends; the page server, done, goes with it
    def server_gone():  # reparented to us (a subreaper) once the session ended
        try:
            if os.waitpid(server, os.WNOHANG)[0] == server:
                return True
        except ChildProcessError:
            pass
        return not os.path.exists("/proc/%d" % server)
    poll_until(server_gone, "the page server ends")
    KILL_AT_EXIT.discard(server)
    at_dump = v.count()
    v.reap_dumped()
    pages = [f for f in os.listdir(srv) if f.startswith("pages-")]
    check(pages and not any(f.startswith("pages-") for f in os.listdir(loc)),
          "memory not on the page server: %s / %s" % (os.listdir(srv), os.listdir(loc)))
    for f in os.listdir(srv):
        os.rename(os.path.join(srv, f), os.path.join(loc, f))
    s = Swrk()
    r = s.conn.call(req(rpc.RESTORE, images_dir_fd=lfd))
    check(r.type == rpc.RESTORE and r.success, "RESTORE failed: %s" % r.cr_errmsg)
    KILL_AT_EXIT.add(v.pid)
    check(v.count() >= at_dump, "restarted after the page-server round trip")
    v.counts_past(v.count())
    os.kill(v.pid, signal.SIGKILL)
    KILL_AT_EXIT.discard(v.pid)
    s.finish()
    os.close(sfd)
    os.close(lfd)


def test_refused_at_pre_dump():
    v = Victim("refuse-notify")
    d, fd = images_dir("refuse-notify-img")
    seen = []
    s = Swrk()
    r = s.conn.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, notify_scripts=True),
                    notify=lambda name, resp, fds: seen.append(name) or False)
    check(not r.success and "pre-dump" in r.cr_errmsg, "a no at pre-dump: %s" % r)
    check(seen == ["pre-dump"], "notifications after a no: %s" % seen)
    check(not os.path.exists(os.path.join(d, "inventory.img")), "a refused dump left an inventory")
    check(v.proc.poll() is None, "the victim died")
    check(v.status("TracerPid") == "0", "the victim is traced")
    state = v.status("State")
    check(state[0] not in "tTXZ", "the victim is %s" % state)  # not stopped, traced or dead
    v.counts_past(v.count())
    # A no at post-dump: the tree runs on too.
    seen.clear()
    r = s.conn.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, notify_scripts=True),
                    notify=lambda name, resp, fds: seen.append(name) or name != "post-dump")
    check(not r.success and "post-dump" in r.cr_errmsg, "a no at post-dump: %s" % r)
    check(seen == DUMP_POINTS, "notifications: %s" % seen)
    check(v.proc.poll() is None and v.status("TracerPid") == "0", "the victim after post-dump no")
    v.counts_past(v.count())
    s.finish()
    os.close(fd)
    v.proc.kill()
    v.proc.wait()
    KILL_AT_EXIT.discard(v.pid)


def start_service(name, daemon=False):
    sock = os.path.join(TMP, name + ".sock")
    pidfile = os.path.join(TMP, name + ".pid")
    args = [CKPT, "service", "--address", sock, "--pidfile", pidfile]
    if daemon:
        args.append("--daemon")
        check(subprocess.call(args) == 0, "ckpt service --daemon failed")
        pid = int(poll_until(lambda: os.path.exists(pidfile) and open(pidfile).read(), "pidfile"))
    else:
        pid = subprocess.Popen(args).pid
        poll_until(lambda: os.path.exists(pidfile) and os.path.exists(sock), "the service listens")
    KILL_AT_EXIT.add(pid)
    return sock, pidfile, pid


def connect(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sock)
    return Conn(s)


def stop_service(sock, pidfile, pid):
    os.kill(pid, signal.SIGTERM)
    st = wait_exit(pid, "ckpt service")
    check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "service exit status %#x" % st)
    check(not os.path.exists(sock), "the service left its socket")
    check(not os.path.exists(pidfile), "the service left its pidfile")


def test_service_and_rst_sibling():
    sock, pidfile, spid = start_service("svc")
    st = os.stat(sock)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0,
          "service socket mode %o uid %d" % (stat.S_IMODE(st.st_mode), st.st_uid))
    c = connect(sock)
    test_simple_requests(c)
    test_bad_packets(c)
    c.close()
    c = connect(sock)
    c.send_raw(b"\x01\x02\x03")
    r, _ = c.recv()
    check(not r.success, "garbage on the service")
    c.close()

    v = Victim("svc")
    d, fd = images_dir("svc-img")
    c = connect(sock)
    at_dump = {}
    r = c.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, notify_scripts=True),
               notify=lambda n, resp, fds: (n != "post-dump" or at_dump.setdefault("n", v.count()))
               and True)
    check(r.success, "DUMP through the service: %s" % r.cr_errmsg)
    c.close()
    v.reap_dumped()
    # The service refuses rst_sibling: only swrk may.
    c = connect(sock)
    r = c.call(req(rpc.RESTORE, images_dir_fd=fd, rst_sibling=True))
    check(not r.success and "rst_sibling" in r.cr_errmsg, "rst_sibling on the service: %s" % r)
    c.close()

    # runc's restore: rst_sibling over swrk; we become the tree's parent.
    s = Swrk()
    r = s.conn.call(req(rpc.RESTORE, images_dir_fd=fd, rst_sibling=True, notify_scripts=True,
                        manage_cgroups_mode=rpc.SOFT, orphan_pts_master=True, evasive_devices=True))
    check(r.success, "RESTORE rst_sibling: %s" % r.cr_errmsg)
    KILL_AT_EXIT.add(v.pid)
    check(r.restore.pid == v.pid, "restored pid %d" % r.restore.pid)
    # The session ends after such a restore: ckpt leaves, the tree stays.
    st = wait_exit(s.pid, "ckpt swrk after an rst_sibling restore")
    check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "swrk status %#x" % st)
    s.conn.close()
    check(int(v.status("PPid")) == os.getpid(), "the restored root's parent is %s, not us"
          % v.status("PPid"))
    # Its own fds only: stdio and, now and then, the count file it writes.
    links = {}
    for n in os.listdir("/proc/%d/fd" % v.pid):
        try:
            links[n] = os.readlink("/proc/%d/fd/%s" % (v.pid, n))
        except FileNotFoundError:
            pass
    extra = {n: l for n, l in links.items() if n not in ("0", "1", "2")
             and not l.startswith(v.count_file)}
    check(not extra, "the restored root holds fds that are not its own: %s" % extra)
    first = v.count()
    check(first >= at_dump["n"], "restarted: %d after a dump at %d" % (first, at_dump["n"]))
    v.counts_past(first)
    os.kill(v.pid, signal.SIGKILL)
    st = wait_exit(v.pid, "the restored root (our child)")
    check(os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL, "root status %#x" % st)

    # Root's images in a directory of nobody's: the credentials refuse them.
    theirs = os.path.join(TMP, "svc-img-nobody")
    shutil.copytree(d, theirs)
    os.chown(theirs, 65534, 65534)
    tfd = os.open(theirs, os.O_RDONLY | os.O_DIRECTORY)
    test_not_root(sock, tfd)
    os.close(tfd)
    os.close(fd)
    stop_service(sock, pidfile, spid)

    sock, pidfile, spid = start_service("svc-daemon", daemon=True)
    c = connect(sock)
    r = c.call(req(rpc.VERSION))
    check(r.success, "VERSION from the daemon")
    c.close()
    stop_service(sock, pidfile, spid)


def test_not_root(sock, root_images_fd):
    """A caller that is not root: refused a root process, root's images."""
    v = Victim("notroot")
    d, fd = images_dir("notroot-img")
    os.chown(d, 65534, 65534)
    os.chmod(TMP, 0o711)
    os.chmod(sock, 0o666)  # let it connect: the access checks are ckpt's
    root_fd = os.open(TMP, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            c = connect(sock)
            r = c.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid))
            check(not r.success and "access denied" in r.cr_errmsg, "dump of root's: %s" % r)
            c.close()
            c = connect(sock)
            r = c.call(req(rpc.RESTORE, images_dir_fd=root_images_fd,
                           manage_cgroups_mode=rpc.IGNORE))
            check(not r.success and "access denied" in r.cr_errmsg and "credentials" in r.cr_errmsg,
                  "restore of root's: %s" % r)
            c.close()
            c = connect(sock)
            r = c.call(req(rpc.DUMP, images_dir_fd=root_fd, pid=os.getpid()))
            check(not r.success and "must own the directory" in r.cr_errmsg,
                  "a directory of root's: %s" % r)
            c.close()
            c = connect(sock)
            r = c.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, root="/"))
            check(not r.success and "criu_opts.root" in r.cr_errmsg, "root option: %s" % r)
            c.close()
            code = 0
        except Exception as e:  # reported by the parent through the exit code
            print("not-root client: %s" % e, file=sys.stderr)
        os._exit(code)
    st = wait_exit(pid, "the client that is not root")
    os.close(root_fd)
    os.chmod(sock, 0o600)
    check(os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, "the client that is not root failed")
    check(v.proc.poll() is None and v.status("TracerPid") == "0", "the victim after refusals")
    check(not os.listdir(d), "a refused dump wrote %s" % os.listdir(d))
    os.close(fd)
    v.proc.kill()
    v.proc.wait()
    KILL_AT_EXIT.discard(v.pid)


def test_action_scripts():
    """--action-script on the command line: CRIU's environment, every point
    in order; a script failing at pre-dump leaves the tree running."""
    v = Victim("scripts")
    d = os.path.join(TMP, "scripts-img")
    log = os.path.join(TMP, "scripts.log")
    script = os.path.join(TMP, "hook.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\n'
                'echo "$CRTOOLS_SCRIPT_ACTION ${CRTOOLS_INIT_PID:-none} $CRTOOLS_IMAGE_DIR" >> %s\n'
                '[ "$CRTOOLS_SCRIPT_ACTION" != "$FAIL_AT" ]\n' % log)
    os.chmod(script, 0o755)

    def points():
        lines = [l.split() for l in open(log)] if os.path.exists(log) else []
        os.unlink(log) if os.path.exists(log) else None
        return lines

    env = dict(os.environ, FAIL_AT="pre-dump")
    rc = subprocess.call([CKPT, "dump", "-t", str(v.pid), "-D", d, "--action-script", script],
                         env=env, stderr=subprocess.DEVNULL)
    check(rc != 0, "a dump whose pre-dump script fails succeeded")
    check([p[0] for p in points()] == ["pre-dump"], "points after a failing pre-dump")
    check(v.proc.poll() is None and v.status("TracerPid") == "0", "the victim after a failed dump")
    v.counts_past(v.count())

    env["FAIL_AT"] = "none"
    rc = subprocess.call([CKPT, "dump", "-t", str(v.pid), "-D", d, "--action-script", script],
                         env=env)
    check(rc == 0, "dump with an action script failed")
    got = points()
    check([p[0] for p in got] == DUMP_POINTS, "dump points %s" % got)
    check(all(p[1] == str(v.pid) and p[2] == d for p in got), "dump script env %s" % got)
    v.reap_dumped()
    rc = subprocess.call([CKPT, "restore", "-D", d, "-d", "--action-script", script], env=env)
    check(rc == 0, "restore with an action script failed")
    KILL_AT_EXIT.add(v.pid)
    got = points()
    check([p[0] for p in got] == RESTORE_POINTS, "restore points %s" % got)
    check(got[0][1] == "none" and all(p[1] == str(v.pid) for p in got[1:]),
          "restore script env %s" % got)
    v.counts_past(v.count())
    os.kill(v.pid, signal.SIGKILL)
    wait_exit(v.pid, "the restored victim")


def test_empty_net_ns():
    """runc always sends empty_ns=CLONE_NEWNET: the tree's network namespace
    is made again on restore, its configuration neither saved nor restored."""
    v = Victim("emptyns", prefix=["unshare", "--net"])  # unshare execs the victim
    os.system("nsenter -t %d -n ip link set lo up" % v.pid)
    d, fd = images_dir("emptyns-img")
    s = Swrk()
    r = s.conn.call(req(rpc.DUMP, images_dir_fd=fd, pid=v.pid, empty_ns=0x40000000))
    check(r.success, "DUMP with empty_ns NET: %s" % r.cr_errmsg)
    s.finish()
    v.reap_dumped()
    check(not [f for f in os.listdir(d) if f.startswith("netns")],
          "the empty network namespace was saved: %s" % os.listdir(d))
    s = Swrk()
    r = s.conn.call(req(rpc.RESTORE, images_dir_fd=fd, empty_ns=0x40000000))
    check(r.success, "RESTORE with empty_ns NET: %s" % r.cr_errmsg)
    KILL_AT_EXIT.add(v.pid)
    check(os.readlink("/proc/%d/ns/net" % v.pid) != os.readlink("/proc/self/ns/net"),
          "the restored tree shares our network namespace")
    devs = [l.split(":")[0].strip() for l in open("/proc/%d/net/dev" % v.pid).readlines()[2:]]
    check(devs == ["lo"], "the restored namespace has %s" % devs)
    v.counts_past(v.count())
    os.kill(v.pid, signal.SIGKILL)
    q = req(rpc.WAIT_PID)
    q.pid = v.pid
    r = s.conn.call(q)
    check(r.success and os.WTERMSIG(r.status) == signal.SIGKILL, "WAIT_PID: %s" % r)
    KILL_AT_EXIT.discard(v.pid)
    s.finish()
    os.close(fd)


def on_term(signum, frame):
    raise Failure("killed by signal %d" % signum)


def main():
    global rpc, CKPT, VICTIM, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--pb-dir", required=True)
    a = ap.parse_args()
    sys.path.insert(0, a.pb_dir)
    try:
        import rpc_pb2
    except ImportError as e:
        print("FAIL: cannot load rpc_pb2 (%s): install python3-protobuf "
              "(scripts/install-deps.sh)" % e)
        return 1
    rpc = rpc_pb2
    CKPT, VICTIM = a.ckpt, a.victim
    if os.geteuid() != 0:
        print("FAIL: the RPC tests need root")
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "PR_SET_CHILD_SUBREAPER")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    TMP = tempfile.mkdtemp(prefix="ckpt-rpc-")
    failed = None
    try:
        s = Swrk()
        test_simple_requests(s.conn)
        test_bad_packets(s.conn)
        test_refused_option(s.conn)
        s.finish()
        print("ok: requests, bad packets and refused options over swrk")
        test_dump_restore_swrk()
        print("ok: DUMP/RESTORE/WAIT_PID over swrk with notifications")
        test_pre_dump_chain()
        print("ok: PRE_DUMP, DUMP with parent_img and track_mem, RESTORE of the chain")
        test_page_server()
        print("ok: PAGE_SERVER, DUMP with ps, RESTORE of both halves")
        test_refused_at_pre_dump()
        print("ok: a no at pre-dump and at post-dump leaves the tree running")
        test_service_and_rst_sibling()
        print("ok: service, rst_sibling, a caller that is not root, --daemon")
        test_action_scripts()
        print("ok: --action-script")
        test_empty_net_ns()
        print("ok: empty_ns CLONE_NEWNET")
    except Failure as e:
        failed = str(e)
    finally:
        for pid in list(KILL_AT_EXIT):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        # We are a subreaper: whatever is left comes to us.
        for _ in range(1000):
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    if not any(os.path.exists("/proc/%d" % p) for p in KILL_AT_EXIT):
                        break
                    time.sleep(0.01)
            except ChildProcessError:
                break
        shutil.rmtree(TMP, ignore_errors=True)
    if failed:
        print("FAIL: " + failed)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
