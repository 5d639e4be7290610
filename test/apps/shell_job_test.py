#!/usr/bin/env python3
# A shell pipeline started from an interactive shell (issue 13): bash on a
# pty runs `bash -c 'sh producer.sh | sh consumer.sh'` as its foreground
# job; the job is dumped with --shell-job (its terminal belongs to the
# shell, outside the dump), killed, and restored with --shell-job by a ckpt
# whose stdio is that terminal. The numbers the consumer prints reach the
# terminal in order, none lost or repeated, across the restore (the pipe
# between the two, with what was in it, comes back).
#
#   shell_job_test.py --ckpt PATH --workdir DIR
import fcntl
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log  # noqa: E402

PRODUCER = "i=0\nwhile [ $i -lt 1000000 ]; do i=$((i+1)); echo $i; sleep 0.01; done\n"
CONSUMER = "while read n; do echo \"got $n\"; done\n"






class Terminal:
    def __init__(self, master):
        self.master, self.text = master, ""

    def read(self, timeout=0.1):
        r, _, _ = select.select([self.master], [], [], timeout)
        if r:
            try:
                self.text += os.read(self.master, 65536).decode(errors="replace")
            except OSError:
                pass

    def numbers(self):
        return [int(n) for n in re.findall(r"got (\d+)", self.text)]

    def wait(self, cond, what, timeout=60):
        end = time.time() + timeout
        while not cond():
            if time.time() > end:
                fail("no %s within %d s; the terminal shows: %r" % (what, timeout, self.text[-500:]))
            self.read()


def children(pid):
    try:
        return [int(c) for c in open("/proc/%d/task/%d/children" % (pid, pid)).read().split()]
    except OSError:
        return []


def run(a, wd):
    for name, text in (("producer.sh", PRODUCER), ("consumer.sh", CONSUMER)):
        with open(os.path.join(wd, name), "w") as f:
            f.write(text)
    master, slave = pty.openpty()
    term = Terminal(master)

    def as_terminal_owner():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    shell = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave,
                             stderr=slave, cwd=wd, preexec_fn=as_terminal_owner,
                             env={"PATH": "/usr/bin:/bin", "PS1": "$ ", "TERM": "dumb"})
    os.write(master, b"bash -c 'sh producer.sh | sh consumer.sh'\n")
    term.wait(lambda: len(term.numbers()) > 20, "numbers from the pipeline")
    jobs = [c for c in children(shell.pid)
            if open("/proc/%d/cmdline" % c).read().startswith("bash\0-c")]
    if len(jobs) != 1:
        fail("cannot find the job among the shell's children %s" % children(shell.pid))
    job = jobs[0]
    pipeline, todo = [], children(job)  # killed with the job, they come to us (the subreaper)
    while todo:
        c = todo.pop()
        pipeline.append(c)
        todo += children(c)
    img = os.path.join(wd, "img")
    r = subprocess.run([a.ckpt, "dump", "-t", str(job), "-D", img, "-o", "dump.log", "-v4",
                        "--shell-job"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump --shell-job: " + (r.stderr.strip() or r.stdout.strip()))
    term.wait(lambda: not os.path.exists("/proc/%d" % job) or
              open("/proc/%d/stat" % job).read().split(") ")[1][0] == "Z", "end of the dumped job")
    for c in pipeline:  # reaped, or their zombies hold the pids the restore needs
        try:
            os.waitpid(c, 0)
        except ChildProcessError:
            pass
    for _ in range(20):  # and whatever else of the job came to us meanwhile (a sleep)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.025)
    time.sleep(0.3)
    term.read()
    before = term.numbers()
    log("dumped the job (pid %d) after %d numbers" % (job, len(before)))

    # The restoring ckpt's terminal is the shell's: its stdio is the pty.
    r = subprocess.run([a.ckpt, "restore", "-D", img, "-d", "-o", "restore.log", "-v4",
                        "--shell-job"], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        fail("restore --shell-job: " + r.stderr.strip())
    term.wait(lambda: len(term.numbers()) > len(before) + 20, "numbers after restore")
    got = term.numbers()
    if got != list(range(1, len(got) + 1)):
        bad = next(i for i, v in enumerate(got) if v != i + 1)
        fail("number %d on the terminal is %d (lost or repeated across the restore)" %
             (bad + 1, got[bad]))
    log("%d numbers in order, %d of them after the restore" % (len(got), len(got) - len(before)))
    log("PASS")


def main():
    return app_env.main("shell_job_test", run)

sys.exit(main())
