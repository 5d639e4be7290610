#!/usr/bin/env python3
# MPI jobs through checkpoint and restart (issue 13): Debian's Open MPI
# (mpirun.openmpi: the ranks share memory through vader segments in
# /dev/shm and single-copy CMA, and hold TCP listeners and PMIx connections
# to mpirun; their stdout is a pty that mpirun reads) or MPICH (mpiexec.hydra
# with its hydra_pmi_proxy; ch4:ucx: UCX's POSIX and SysV shared memory,
# CMA, TCP) running 4 ranks of mpi/ring.c. The whole job is dumped from the
# launcher's pid with --tcp-established, with no help from the job.
#
#   once      dump (the job is killed), restore, the job finishes
#   periodic  three --leave-running checkpoints during one run, the job
#             killed after the third, restarted from the SECOND one
#
# Either way the job must end with exit status 0 and print exactly what an
# uninterrupted run of the same program prints (every progress line and the
# checksum).
#
#   mpi_test.py --ckpt PATH --workdir DIR --mpi openmpi|mpich --case once|periodic
# Needs root and the MPI packages of scripts/install-deps.sh; loopback only;
# a child subreaper; removes what the job leaves in /dev/shm and /tmp.
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
import mpi_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

RANKS = 4
ITERS = 150
PAUSE_US = 20000  # per iteration: the job runs 3 s or more (MPICH's ranks poll)


def run(a, wd):
    mpi = mpi_env.MPIS[a.mpi]
    ring = mpi_env.build_ring(mpi, wd)
    want = mpi_env.reference(mpi, ring, RANKS, ITERS, wd)
    log("%s: an uninterrupted run prints %r" % (a.mpi, want.splitlines()[-1]))

    out_path = os.path.join(wd, "job.out")
    job = mpi_env.start(mpi, ring, RANKS, ITERS, PAUSE_US, out_path, wd)
    mpi_env.track(job.pid)
    ck = mpi_env.Ckpt(a.ckpt, wd)
    if a.case == "once":
        wait_for(lambda: mpi_env.progress(out_path) >= 50, "the job under way")
        img = ck.dump(job.pid, "img", leave_running=False)
        job.wait(timeout=30)
        app_env.kill_children()
        at = mpi_env.progress(out_path)
        if at >= ITERS:
            fail("the job had finished before the dump: nothing left to restore")
        log("dumped at iteration %d of %d, job killed" % (at, ITERS))
    else:
        imgs = []
        for n, it in enumerate((30, 60, 90)):
            wait_for(lambda: mpi_env.progress(out_path) >= it, "iteration %d" % it)
            imgs.append(ck.dump(job.pid, "img%d" % (n + 1), leave_running=True))
            log("checkpoint %d at iteration %d, the job goes on" %
                (n + 1, mpi_env.progress(out_path)))
        at3 = mpi_env.progress(out_path)
        if at3 >= ITERS - 20:
            fail("the job was almost done at the third checkpoint (iteration %d)" % at3)
        wait_for(lambda: mpi_env.progress(out_path) >= at3 + 10, "the job going on")
        app_env.kill_children()
        log("job killed at iteration %d; restarting from checkpoint 2" %
            mpi_env.progress(out_path))
        img = imgs[1]
    if job.poll() is None:
        fail("the job outlived its kill")
    ck.restore(img)
    log("restored; pid %d runs again" % job.pid)
    status = mpi_env.wait_exit(job.pid, 120)
    got = open(out_path).read()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        fail("the restored job ended with status %#x; its output ends %r, its stderr %r" %
             (status, got[-100:], open(out_path + ".err").read()[-1500:]))
    if got != want:
        gl, wl = got.splitlines(), want.splitlines()
        bad = next((i for i in range(min(len(gl), len(wl))) if gl[i] != wl[i]), min(len(gl), len(wl)))
        fail("the restored job's output differs from an uninterrupted run's at line %d: %r, "
             "want %r" % (bad + 1, gl[bad] if bad < len(gl) else "<end>",
                          wl[bad] if bad < len(wl) else "<end>"))
    log("the restored job printed what an uninterrupted run prints: %r" % got.splitlines()[-1])
    log("PASS")


def main():
    import argparse
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--mpi", choices=sorted(mpi_env.MPIS), required=True)
    ap.add_argument("--case", choices=["once", "periodic"], required=True)
    mine, rest = ap.parse_known_args()
    sys.argv = [sys.argv[0]] + rest

    def run_with(a, wd):
        a.mpi, a.case = mine.mpi, mine.case
        run(a, wd)
    return app_env.main("mpi_test[%s/%s]" % (mine.mpi, mine.case), run_with,
                        lambda: mpi_env.missing(mine.mpi), mpi_env.cleanup)


sys.exit(main())
