#!/usr/bin/env python3
# scripts/ckpt-job, the checkpoint/restart wrapper for batch jobs (issue 13
# item 6), with an ordinary self-checking job (job_victim.py: 32 MiB of
# state, a child fed through a pipe, a digest of its work at the end):
#   1. the job uninterrupted gives the reference RESULT;
#   2. `ckpt-job run` under it, SIGUSR1 midway (as Slurm's --signal=B:USR1
#      sends it): ckpt-job dumps the job and exits 75, the job is gone;
#      `ckpt-job restart` brings it back from that checkpoint and it ends
#      with exit 0 and the same RESULT, having gone on from where it was
#      (its progress lines go on from the step it had reached);
#   3. `ckpt-job run --leave-running`, two signals: two checkpoints, the job
#      goes on to the end (same RESULT); `restart` then takes the newest
#      (ckpt-2) and the job ends with the same RESULT again;
#   4. a checkpoint that fails: the job goes on to the right RESULT.
#
#   job_test.py --ckpt PATH --workdir DIR
# Needs root and bash. A child subreaper; leaves nothing behind.
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WRAPPER = os.path.join(HERE, "..", "..", "scripts", "ckpt-job")
STEPS = 600


def steps_in(path):
    try:
        return [int(m) for m in re.findall(r"^step (\d+)$", open(path).read(), re.M)]
    except OSError:
        return []


def result_in(path):
    res = re.findall(r"^RESULT .*$", open(path).read(), re.M)
    if "BROKEN" in open(path).read():
        fail("the job found itself broken: " + path)
    return res


def wrapper(a, mode, ck, out, *extra):
    argv = [sys.executable, WRAPPER, mode, "-D", ck, "--ckpt", a.ckpt, "--output", out, *extra]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(p, what, timeout=300):
    try:
        text, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail(what + ": ckpt-job did not end within %d s" % timeout)
    for line in text.splitlines():
        log("  | " + line)
    return p.returncode


def job_cmd():
    return ["--", sys.executable, os.path.join(HERE, "job_victim.py"), str(STEPS)]


def run(a, wd):
    ref = os.path.join(wd, "reference.out")
    with open(ref, "w") as f:
        r = subprocess.run([sys.executable, os.path.join(HERE, "job_victim.py"), str(STEPS)],
                           stdout=f, stderr=subprocess.STDOUT, timeout=300)
    want = result_in(ref)
    if r.returncode != 0 or len(want) != 1:
        fail("the uninterrupted job failed: exit %d" % r.returncode)
    log("uninterrupted: " + want[0][:40] + "...")

    # 2. checkpoint and end, then restart.
    ck, out = os.path.join(wd, "ck1"), os.path.join(wd, "job1.out")
    p = wrapper(a, "run", ck, out, *job_cmd())
    wait_for(lambda: len(steps_in(out)) >= 30 or p.poll() is not None, "30 steps of the job")
    p.send_signal(signal.SIGUSR1)
    rc = finish(p, "run")
    if rc != 75:
        fail("ckpt-job run exited %d after SIGUSR1, want 75 (checkpointed)" % rc)
    if not os.path.isfile(os.path.join(ck, "ckpt-1", "inventory.img")):
        fail("no complete checkpoint ckpt-1 in " + ck)
    reached = steps_in(out)[-1]
    if reached >= STEPS or result_in(out):
        fail("the job had finished before the checkpoint (step %d)" % reached)
    log("checkpointed at step %d, the job is gone" % reached)
    p = wrapper(a, "restart", ck, out)
    rc = finish(p, "restart")
    if rc != 0:
        fail("ckpt-job restart exited %d, want the job's 0" % rc)
    st = steps_in(out)
    if st != list(range(1, STEPS + 1)):
        bad = next((i for i, v in enumerate(st) if v != i + 1), len(st))
        fail("progress lines are not 1..%d once each: line %d is %r" %
             (STEPS, bad, st[bad] if bad < len(st) else None))
    got = result_in(out)
    if got != want:
        fail("restarted job's result %r, uninterrupted %r" % (got, want))
    log("restarted from step %d; same result as the uninterrupted run" % reached)

    # 3. two checkpoints with --leave-running, then restart from the newest.
    ck, out = os.path.join(wd, "ck2"), os.path.join(wd, "job2.out")
    p = wrapper(a, "run", ck, out, "--leave-running", *job_cmd())
    marks = []
    for n, at in ((1, 20), (2, 60)):
        wait_for(lambda: len(steps_in(out)) >= at or p.poll() is not None, "%d steps" % at)
        p.send_signal(signal.SIGUSR1)
        wait_for(lambda: os.path.isdir(os.path.join(ck, "ckpt-%d" % n)) or p.poll() is not None,
                 "checkpoint %d" % n, timeout=120)
        marks.append(steps_in(out)[-1])
    rc = finish(p, "run --leave-running")
    if rc != 0:
        fail("ckpt-job run --leave-running exited %d, want the job's 0" % rc)
    if result_in(out) != want:
        fail("the job left running ended with %r, want %r" % (result_in(out), want))
    if sorted(os.listdir(ck)) != ["ckpt-1", "ckpt-2"]:
        fail("checkpoint directory holds %s" % sorted(os.listdir(ck)))
    before = len(steps_in(out))
    p = wrapper(a, "restart", ck, out)
    rc = finish(p, "restart from ckpt-2")
    if rc != 0:
        fail("ckpt-job restart exited %d" % rc)
    again = steps_in(out)[before:]
    if not again or again[0] <= marks[0] or again[-1] != STEPS:
        fail("restart did not go on from checkpoint 2 (steps %r...)" % again[:3])
    if result_in(out) != want * 2:
        fail("results %r, want the reference twice" % result_in(out))
    log("leave-running: checkpoints at steps ~%s, restart from ckpt-2 went on from step %d; "
        "same result" % (marks, again[0]))

    # 4. a checkpoint that fails (ckpt refuses an option): the job goes on
    # and ends as it would have; no ckpt-N claims to be a checkpoint.
    ck, out = os.path.join(wd, "ck3"), os.path.join(wd, "job3.out")
    p = wrapper(a, "run", ck, out, "--dump-opt=--no-such-option", *job_cmd())
    wait_for(lambda: len(steps_in(out)) >= 20 or p.poll() is not None, "20 steps")
    p.send_signal(signal.SIGUSR1)
    rc = finish(p, "run with a failing dump")
    if rc != 0 or result_in(out) != want:
        fail("after a failed checkpoint: exit %d, result %r" % (rc, result_in(out)))
    if any(n.startswith("ckpt-") for n in os.listdir(ck)):
        fail("a failed dump left %s" % sorted(os.listdir(ck)))
    log("a failed checkpoint left the job running to the right result")
    log("PASS")


def main():
    return app_env.main("job_test", run,
                        lambda: None if os.geteuid() == 0 else "root")


sys.exit(main())
