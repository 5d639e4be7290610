#!/usr/bin/env python3
# A JVM (Debian's OpenJDK 17) with dozens of threads, its perf-data file,
# its signal handlers and a GC at work (JvmWork.java, compiled here) doing
# steady, self-checking work survives dump, kill and restore: every thread
# goes on, and its own check passes when it is told to stop.
#
#   jvm_test.py --ckpt PATH --workdir DIR
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

HSPERF = "/tmp/hsperfdata_root"








def progress(state):
    try:
        v = [int(x) for x in open(state).read().split()]
        return v if len(v) == 24 else [0] * 24
    except (OSError, ValueError):
        return [0] * 24


def run(a, wd):
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "JvmWork.java")
    shutil.copy(src, wd)
    r = subprocess.run(["javac", "-d", wd, os.path.join(wd, "JvmWork.java")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("javac: " + r.stderr)
    state = os.path.join(wd, "state")
    out = open(os.path.join(wd, "jvm.out"), "w")
    jvm = subprocess.Popen(["java", "-Xmx256m", "-cp", wd, "JvmWork", state],
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                           start_new_session=True, cwd=wd)
    wait_for(lambda: min(progress(state)) > 1000, "every thread at work")
    threads = len(os.listdir("/proc/%d/task" % jvm.pid))
    img = os.path.join(wd, "img")
    r = subprocess.run([a.ckpt, "dump", "-t", str(jvm.pid), "-D", img, "-o", "dump.log", "-v4"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump: " + (r.stderr.strip() or r.stdout.strip()))
    jvm.wait(timeout=30)
    at_dump = progress(state)
    log("dumped the JVM (pid %d, %d threads)" % (jvm.pid, threads))
    r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("restore: " + (r.stderr.strip() or r.stdout.strip()))
    wait_for(lambda: all(n > m + 1000 for n, m in zip(progress(state), at_dump)),
             "every thread going on after restore")
    log("restored; all 24 workers go on")
    os.kill(jvm.pid, signal.SIGTERM)

    def ended():
        try:
            pid, st = os.waitpid(jvm.pid, os.WNOHANG)
        except ChildProcessError:
            fail("the restored JVM is not our child")
        if pid == jvm.pid:
            ended.status = st
            return True
        return False
    wait_for(ended, "end of the restored JVM")
    text = open(os.path.join(wd, "jvm.out")).read()
    if "PASS" not in text:
        fail("the JVM's own check: %r (status %#x)" % (text.strip()[-300:], ended.status))
    log("PASS")


def main():
    hsperf_existed = os.path.exists(HSPERF)

    def cleanup():  # the JVM's perf-data directory, if it made it
        if not hsperf_existed:
            shutil.rmtree(HSPERF, ignore_errors=True)
    return app_env.main("jvm_test", run,
                        lambda: None if shutil.which("java") and shutil.which("javac")
                        else "java and javac (openjdk-17-jdk-headless, scripts/install-deps.sh)",
                        cleanup)

sys.exit(main())
