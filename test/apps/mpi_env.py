# What the MPI drivers share (mpi_test.py, mpi_multinode_test.py): the two
# MPIs Debian ships side by side, called by their explicit names (Debian's
# plain `mpirun` is an alternative pointing at one of them); building
# mpi/ring.c against one; its uninterrupted answer; starting a job; calling
# ckpt; and removing what an MPI job leaves behind when it is killed (Open
# MPI's session directory under /tmp, shared-memory files in /dev/shm).
import os
import shutil
import socket
import subprocess
import time

from app_env import fail, log

HERE = os.path.dirname(os.path.abspath(__file__))

MPIS = {
    # vader (shared memory, single copy by CMA) within the node, TCP
    # between nodes: Open MPI's defaults, named here so the job says what it
    # uses.
    "openmpi": {"cc": "mpicc.openmpi",
                "run": ["mpirun.openmpi", "--allow-run-as-root", "--oversubscribe",
                        "--mca", "btl", "self,vader,tcp"]},
    "mpich": {"cc": "mpicc.mpich", "run": ["mpiexec.hydra"]},
}

# Names MPI jobs give their files in /dev/shm (Open MPI's vader segments and
# its shmem probes, UCX's and MPICH's segments).
SHM_PREFIXES = ("vader_segment.", "open_mpi.", "ucx_", "mpich_", "sm_segment.")

_shm_before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
_launchers = []  # pids of launchers and daemons, for their session directories
hosts = [socket.gethostname()]  # host names jobs ran under (one per UTS namespace)
own_hosts = []  # host names made up for this run: their session directories go whole


def missing(name):
    if os.geteuid() != 0:
        return "root"
    m = MPIS[name]
    for tool in (m["cc"], m["run"][0]):
        if not shutil.which(tool):
            return "%s (scripts/install-deps.sh)" % tool
    return None


def build_ring(mpi, wd):
    exe = os.path.join(wd, "ring")
    r = subprocess.run([mpi["cc"], "-O2", "-o", exe, os.path.join(HERE, "mpi", "ring.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("%s ring.c: %s" % (mpi["cc"], r.stderr.strip()))
    return exe


def launch_argv(mpi, ring, ranks, iters, pause_us, extra=()):
    return mpi["run"] + list(extra) + ["-np", str(ranks), ring, str(iters), str(pause_us)]


def start(mpi, ring, ranks, iters, pause_us, out_path, wd, extra=(), env=None):
    """The job as a session of its own (no terminal), stdout to out_path."""
    out = open(out_path, "w")
    err = open(out_path + ".err", "w")
    p = subprocess.Popen(launch_argv(mpi, ring, ranks, iters, pause_us, extra),
                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         start_new_session=True, cwd=wd, env=env)
    out.close()
    err.close()
    _launchers.append(p.pid)
    return p


def track(pid):
    if pid not in _launchers:
        _launchers.append(pid)


def reference(mpi, ring, ranks, iters, wd, extra=(), env=None):
    """What an uninterrupted run prints (no pause: a second or so)."""
    path = os.path.join(wd, "reference.out")
    p = start(mpi, ring, ranks, iters, 0, path, wd, extra, env)
    try:
        st = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        fail("the uninterrupted run did not end within 120 s")
    text = open(path).read()
    if st != 0 or "result " not in text:
        fail("the uninterrupted run failed (status %d): %s %s" %
             (st, text[-300:], open(path + ".err").read()[-500:]))
    return text


def progress(path):
    """The last iteration rank 0 reported in the job's output."""
    try:
        lines = open(path).read().split("\n")
    except OSError:
        return 0
    for line in reversed(lines):
        if line.startswith("iter "):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                pass
        if line.startswith("result "):
            return 1 << 30
    return 0


def wait_exit(pid, timeout):
    """Reaps pid (our child: we are a subreaper); its wait status."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            got, st = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            fail("pid %d is not our child" % pid)
        if got == pid:
            return st
        time.sleep(0.05)
    fail("pid %d did not end within %d s" % (pid, timeout))


class Ckpt:
    def __init__(self, path, wd):
        self.path, self.wd = path, wd

    def _run(self, what, argv, img):
        r = subprocess.run([self.path] + argv, capture_output=True, text=True)
        if r.returncode != 0:
            msg = (r.stderr.strip() or r.stdout.strip())
            logf = os.path.join(img, argv[0] + ".log")
            try:
                errs = [ln for ln in open(logf) if "Error" in ln or "Warn" in ln]
                for ln in errs[-10:]:
                    log(logf + ": " + ln.rstrip())
            except OSError:
                pass
            fail("%s: %s" % (what, msg))

    def dump(self, pid, name, leave_running, extra=()):
        img = os.path.join(self.wd, name)
        argv = ["dump", "-t", str(pid), "-D", img, "-o", "dump.log", "-v4",
                "--tcp-established"] + list(extra)
        if leave_running:
            argv.append("--leave-running")
        self._run("dump of pid %d" % pid, argv, img)
        return img

    def restore(self, img, extra=()):
        self._run("restore of " + img, ["restore", "-D", img, "-d", "-o", "restore.log",
                                       "-v4", "--tcp-established"] + list(extra), img)


def cleanup():
    """Open MPI's session directories of our launchers
    (/tmp/ompi.HOST.UID/pid.PID) and the /dev/shm files MPI jobs made while
    we ran: a killed job leaves them."""
    for host in own_hosts:
        shutil.rmtree("/tmp/ompi.%s.%d" % (host, os.getuid()), ignore_errors=True)
    for host in hosts:
        top = "/tmp/ompi.%s.%d" % (host, os.getuid())
        for pid in _launchers:
            shutil.rmtree("%s/pid.%d" % (top, pid), ignore_errors=True)
        try:
            os.rmdir(top)  # only when no other job uses it
        except OSError:
            pass
    if os.path.isdir("/dev/shm"):
        for name in set(os.listdir("/dev/shm")) - _shm_before:
            if name.startswith(SHM_PREFIXES):
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass
