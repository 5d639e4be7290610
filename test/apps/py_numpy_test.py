#!/usr/bin/env python3
# A Python program (Debian's python3 with numpy: threads, OpenBLAS's
# threads, mmap'd libraries, 32 MB of arrays, a pipe to a child process)
# doing steady work that checks itself survives dump, kill and restore, and
# its work goes on (py_numpy_victim.py).
#
#   py_numpy_test.py --ckpt PATH --workdir DIR
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

PYTHON = "/usr/bin/python3"  # Debian's, which has python3-numpy








def progress(state):
    try:
        return [int(x) for x in open(state).read().split()]
    except (OSError, ValueError):
        return [0, 0, 0]


def run(a, wd):
    state = os.path.join(wd, "state")
    out = open(os.path.join(wd, "victim.out"), "w")
    victim = subprocess.Popen([PYTHON, os.path.join(os.path.dirname(__file__),
                                                    "py_numpy_victim.py"), state],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              start_new_session=True, cwd=wd)
    wait_for(lambda: min(progress(state)) > 5, "work under way")
    threads = len(os.listdir("/proc/%d/task" % victim.pid))
    img = os.path.join(wd, "img")
    r = subprocess.run([a.ckpt, "dump", "-t", str(victim.pid), "-D", img, "-o", "dump.log", "-v4"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump: " + (r.stderr.strip() or r.stdout.strip()))
    victim.wait(timeout=30)
    # Its child died with it and came to us (the subreaper): reaped, or its
    # zombie holds the pid the restore needs.
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    at_dump = progress(state)
    log("dumped pid %d (%d threads) at %s" % (victim.pid, threads, at_dump))
    r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore: " + (r.stderr.strip() or r.stdout.strip()))
    wait_for(lambda: all(n > m + 5 for n, m in zip(progress(state), at_dump)),
             "every worker going on after restore")
    log("restored; work goes on: %s" % progress(state))
    os.kill(victim.pid, signal.SIGTERM)

    def ended():
        try:
            pid, st = os.waitpid(victim.pid, os.WNOHANG)
        except ChildProcessError:
            fail("the restored program is not our child")
        if pid == victim.pid:
            ended.status = st
            return True
        return False
    wait_for(ended, "end of the restored program")
    text = open(os.path.join(wd, "victim.out")).read()
    if not os.WIFEXITED(ended.status) or os.WEXITSTATUS(ended.status) != 0 or "PASS" not in text:
        fail("the program's own check: %s (status %#x)" % (text.strip(), ended.status))
    log("PASS")


def main():
    return app_env.main("py_numpy_test", run,
                        lambda: None if subprocess.run([PYTHON, "-c", "import numpy"],
                                                       capture_output=True).returncode == 0
                        else "%s with numpy (python3-numpy, scripts/install-deps.sh)" % PYTHON)

sys.exit(main())
