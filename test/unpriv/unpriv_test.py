#!/usr/bin/env python3
"""ckpt run by a plain user with only CAP_CHECKPOINT_RESTORE (criu/security.h).

Run as root: the driver takes an unused uid (no passwd/group entry, no
process), and runs ckpt and the victims as that uid with setpriv
(--reuid/--regid/--clear-groups; ckpt also gets an ambient
CAP_CHECKPOINT_RESTORE, the victims nothing). It checks that:
  1. the user dumps and restores a tree of their own (zdtm tree_mixed:
     threads, children, shared memory, pipes with data, a timer), which
     then verifies its state (PASS), and so do programs with sockets,
     memfds, pipe data and signals; the image directory is 0700, its
     files 0600, and the restored tasks are the user's, without caps;
  2. the user's dump of a root-owned process is refused with "belongs to
     uid 0", before touching it (not traced, not stopped; it still PASSes),
     and so is a process of the user's that is not dumpable;
  3. the user's restore of images whose core says uid 0 is refused;
  4. without the capability, dump and restore say exactly what is missing;
  5. a symlink planted in an image directory (core-N.img -> /etc/shadow)
     is refused, by root and by the user.
Everything it made (files, processes of the uid) goes, also on failure.

usage: unpriv_test.py CKPT ZDTM_STATIC_DIR
"""
import ctypes
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CKPT, STATIC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
PR_SET_CHILD_SUBREAPER = 36
POLL_S, POLL_MAX = 0.01, 3000  # READY and reaping: at most 30 s

failures = []
started = []  # pids of victims we started (root's or the user's)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def pick_uid():
    used = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/status" % p) as f:
                    for line in f:
                        if line.startswith(("Uid:", "Gid:")):
                            used.update(int(x) for x in line.split()[1:])
            except OSError:
                pass
    for uid in (12345, 23456, 34567, 45678):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
            continue
        except KeyError:
            pass
        if uid not in used:
            return uid
    sys.exit("no unused uid among the candidates")


def as_user(uid, cap):
    cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
    if cap:
        cmd += ["--inh-caps=+checkpoint_restore", "--ambient-caps=+checkpoint_restore"]
    return cmd


def run(cmd):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace")


def start_victim(prefix, prog, workdir, out):
    argv = prog if isinstance(prog, list) else [os.path.join(STATIC, prog)]
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    st = os.stat(workdir)
    os.fchown(fd, st.st_uid, st.st_gid)
    p = subprocess.Popen(prefix + argv, cwd=workdir,
                         stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True)
    os.close(fd)
    started.append(p.pid)
    for _ in range(POLL_MAX):
        with open(out) as f:
            if "READY" in f.read():
                return p
        if p.poll() is not None:
            break
        time.sleep(POLL_S)
    raise RuntimeError("%s did not become READY: %s" % (prog, open(out).read()))


def tree_pids(root):
    out, i = [root], 0
    while i < len(out) and len(out) < 1000:
        base = "/proc/%d/task" % out[i]
        for tid in os.listdir(base) if os.path.isdir(base) else []:
            try:
                with open("%s/%s/children" % (base, tid)) as f:
                    out += [int(x) for x in f.read().split() if int(x) not in out]
            except OSError:
                pass
        i += 1
    return out


def reap_until_gone(pids):
    """We are a child subreaper: every killed task of the tree comes to us."""
    for _ in range(POLL_MAX):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not any(os.path.exists("/proc/%d" % p) for p in pids):
            return True
        time.sleep(POLL_S)
    return False


def chown_tree(top, uid):
    for d, _, files in os.walk(top):
        os.chown(d, uid, uid)
        for f in files:
            os.lchown(os.path.join(d, f), uid, uid)


def status_field(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return None


def term_and_wait(pid, out):
    """SIGTERM makes a zdtm program verify its state; exit 0 and PASS."""
    os.kill(pid, signal.SIGTERM)
    _, st = os.waitpid(pid, 0)
    with open(out) as f:
        text = f.read()
    return os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0 and "PASS" in text, text


def uid_pids(uid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if status_field(int(p), "Uid").split()[0] == str(uid):
                    out.append(int(p))
            except (OSError, AttributeError):
                pass
    return out


def cleanup(uid, workdir):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # The uid was unused when we began: whatever runs as it now is ours. As
    # a child subreaper we reap all of it (orphans included) before leaving.
    for _ in range(POLL_MAX):
        left = [p for p in started if os.path.exists("/proc/%d" % p)] + uid_pids(uid)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not left:
            break
        time.sleep(POLL_S)
    else:
        print("FAIL could not remove every process of uid %d" % uid, flush=True)
        failures.append("cleanup")
    shutil.rmtree(workdir, ignore_errors=True)


def main():
    if os.geteuid() != 0:
        sys.exit("unpriv_test must run as root (it starts a plain user's processes)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
    # ctest's timeout or ^C: leave through `finally`, which cleans up.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit("interrupted"))
    uid = pick_uid()
    user, user_cap = as_user(uid, False), as_user(uid, True)
    workdir = tempfile.mkdtemp(prefix="ckpt-unpriv-")
    print("uid %d, workdir %s" % (uid, workdir), flush=True)
    try:
        os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o755)
        body(uid, user, user_cap, workdir)
    finally:
        cleanup(uid, workdir)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


def body(uid, user, user_cap, workdir):
    out = os.path.join(workdir, "out.txt")
    img = os.path.join(workdir, "img")

    # 4a. Without the capability, dump says what is missing; victim untouched.
    v = start_victim(user, "tree_mixed", workdir, out)
    rc, text = run(user + [CKPT, "dump", "-t", str(v.pid), "-D", img])
    check(rc != 0 and "dump needs CAP_CHECKPOINT_RESTORE to read /proc/PID/map_files; give it "
          "with setcap cap_checkpoint_restore+eip ckpt or run as root" in text,
          "dump without the capability names it: " + text.strip())
    check(not os.path.exists(img), "a refused dump makes no image directory")
    check(status_field(v.pid, "TracerPid") == "0", "the refused victim is not traced")

    # 1. The user's own tree goes through dump and restore.
    pids = tree_pids(v.pid)
    rc, text = run(user_cap + [CKPT, "dump", "-t", str(v.pid), "-D", img])
    check(rc == 0, "the user dumps their own tree: " + text.strip())
    v.wait()
    check(reap_until_gone(pids), "the dumped tree is gone")
    st = os.stat(img)
    check(st.st_uid == uid and (st.st_mode & 0o777) == 0o700, "image directory 0700, the user's")
    modes = {n: os.stat(os.path.join(img, n)).st_mode & 0o777 for n in os.listdir(img)}
    check(modes and all(m == 0o600 for m in modes.values()), "image files 0600: %s" %
          {n: oct(m) for n, m in modes.items() if m != 0o600})
    rc, text = run(user_cap + [CKPT, "restore", "-d", "-D", img])
    check(rc == 0, "the user restores their own tree: " + text.strip())
    if rc == 0:
        started.append(v.pid)
        # Credentials are per thread: every thread of every restored task.
        bad = []
        for p in tree_pids(v.pid):
            for tid in os.listdir("/proc/%d/task" % p):
                st = {}
                with open("/proc/%d/task/%s/status" % (p, tid)) as f:
                    for line in f:
                        k, _, val = line.partition(":")
                        st[k] = val.strip()
                if (st["Uid"].split() != [str(uid)] * 4 or st["Gid"].split() != [str(uid)] * 4 or
                        st["Groups"] != "" or
                        any(st[c] != "0" * 16 for c in ("CapInh", "CapPrm", "CapEff", "CapAmb"))):
                    bad.append("%d/%s" % (p, tid))
        check(not bad, "every restored thread is the user's, without capabilities: %s" % bad)
        check(len(tree_pids(v.pid)) == len(pids), "the restored tree has its %d processes" % len(pids))
        ok, text = term_and_wait(v.pid, out)
        check(ok, "the restored tree verified its state: " + text.strip())
        check(reap_until_gone(pids), "the restored tree exited")

    # 1b. More of what a user's program holds: sockets (their namespace
    # is compared without CAP_NET_ADMIN), memfd, pipe data, signals.
    # memfd goes through a copy of ckpt with a file capability instead
    # (setcap cap_checkpoint_restore+eip), run with no capability at all.
    fcap = os.path.join(workdir, "ckpt-fcap")
    shutil.copy(CKPT, fcap)
    os.chmod(fcap, 0o755)
    rc, text = run(["setcap", "cap_checkpoint_restore+eip", fcap])
    check(rc == 0, "setcap on a copy of ckpt: " + text.strip())
    for prog in ("sk_udp", "sk_unix_stream", "memfd", "pipe_data", "signals"):
        how, ckpt = (user, fcap) if prog == "memfd" else (user_cap, CKPT)
        pout = os.path.join(workdir, prog + "-out.txt")
        pimg = os.path.join(workdir, "img-" + prog)
        pv = start_victim(user, prog, workdir, pout)
        ppids = tree_pids(pv.pid)
        rc, text = run(how + [ckpt, "dump", "-t", str(pv.pid), "-D", pimg])
        if not check(rc == 0, "%s: the user dumps it: %s" % (prog, text.strip())):
            continue
        pv.wait()
        reap_until_gone(ppids)
        rc, text = run(how + [ckpt, "restore", "-d", "-D", pimg])
        if not check(rc == 0, "%s: the user restores it: %s" % (prog, text.strip())):
            continue
        started.append(pv.pid)
        ok, text = term_and_wait(pv.pid, pout)
        check(ok, "%s: it verified its state after the restore: %s" % (prog, text.strip()))
        reap_until_gone(ppids)

    # 4b. Without the capability, restore says what is missing.
    rc, text = run(user + [CKPT, "restore", "-d", "-D", img])
    check(rc != 0 and "restore needs CAP_CHECKPOINT_RESTORE to choose pids (clone3 set_tid); "
          "give it with setcap cap_checkpoint_restore+eip ckpt or run as root" in text,
          "restore without the capability names it: " + text.strip())
    check(not any(os.path.exists("/proc/%d" % p) for p in pids), "nothing was restored")

    # 5. A symlink planted in an image directory is never followed.
    planted = os.path.join(workdir, "img-planted")
    shutil.copytree(img, planted)
    chown_tree(planted, uid)
    core = os.path.join(planted, "core-%d.img" % v.pid)
    check(os.path.exists(core), "the dump has " + os.path.basename(core))
    os.unlink(core)
    os.symlink("/etc/shadow", core)
    os.lchown(core, uid, uid)
    for who, prefix in (("root", []), ("the user", user_cap)):
        rc, text = run(prefix + [CKPT, "restore", "-d", "-D", planted])
        check(rc != 0 and "core-%d.img: is a symbolic link; images are never read through one"
              % v.pid in text, "%s: a planted symlink is refused: %s" % (who, text.strip()))
        check(not os.path.exists("/proc/%d" % v.pid), "%s: nothing was restored" % who)

    # 2a. The user's own process that made itself not dumpable: refused.
    nd = start_victim(user, [sys.executable, "-c",
                             "import ctypes, signal; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
                             "print('READY', flush=True); signal.pause()"],
                      workdir, os.path.join(workdir, "nd-out.txt"))
    rc, text = run(user_cap + [CKPT, "dump", "-t", str(nd.pid), "-D", img + "-nd"])
    check(rc != 0 and "pid %d ('python3') is not dumpable" % nd.pid in text,
          "the user's dump of a non-dumpable process is refused: " + text.strip())
    check(status_field(nd.pid, "TracerPid") == "0", "the non-dumpable process is not traced")
    nd.kill()
    nd.wait()

    # 2. A root-owned process: refused before anything touches it.
    rout = os.path.join(workdir, "root-out.txt")
    rimg = os.path.join(workdir, "img-root")
    r = start_victim([], "pipe_data", workdir, rout)
    os.chown(rout, 0, 0)
    rc, text = run(user_cap + [CKPT, "dump", "-t", str(r.pid), "-D", rimg])
    check(rc != 0 and "pid %d ('pipe_data') belongs to uid 0; you are uid %d" % (r.pid, uid)
          in text, "the user's dump of a root process is refused: " + text.strip())
    check(not os.path.exists(rimg), "the refused dump made no image directory")
    check(status_field(r.pid, "TracerPid") == "0" and status_field(r.pid, "State")[0] in "SR",
          "the root process is neither traced nor stopped")

    # 3. Images whose core says uid 0: root dumps its process (-R), the user
    # gets a copy and cannot restore it.
    rc, text = run([CKPT, "dump", "-R", "-t", str(r.pid), "-D", rimg])
    check(rc == 0, "root dumps its own process: " + text.strip())
    ok, text = term_and_wait(r.pid, rout)
    check(ok, "the root process was left exactly as it was: " + text.strip())
    uimg = os.path.join(workdir, "img-root-copy")
    shutil.copytree(rimg, uimg)
    chown_tree(uimg, uid)
    rc, text = run(user_cap + [CKPT, "restore", "-d", "-D", uimg])
    check(rc != 0 and "pid %d of the images ('pipe_data'): its real uid is 0; you are uid %d"
          % (r.pid, uid) in text, "the user's restore of uid 0 images is refused: " + text.strip())
    check(not os.path.exists("/proc/%d" % r.pid), "nothing was restored")


if __name__ == "__main__":
    sys.exit(main())
