#!/usr/bin/env python3
# A multi-node Open MPI job checkpointed on every node at once and restarted
# (issue 13, "Multi-node", in the single-machine form): two "nodes" are two
# network namespaces joined by a veth pair (10.231.N.1 and 10.231.N.2).
# mpirun runs on node a; it starts its daemon on node b through a launcher
# agent (--mca plm_rsh_agent) that stands in for ssh and sshd: it starts
# orted in node b's namespace as a process of its own, not a child of
# mpirun, as sshd would. Four ranks, two per node: vader shared memory
# within a node, TCP over the veth between nodes.
#
# The checkpoint is driven the way a batch scheduler drives one (see
# docs/mpi.md): on each node one `ckpt dump --tcp-established` of that
# node's part of the job (mpirun and its ranks on a; orted and its ranks on
# b), run inside the node's network namespace, with an --action-script
# that at `network-lock` reports the node locked and waits until every node
# is: no node's processes are dumped before the connections between nodes
# are frozen on both sides. Both parts are killed; both are restored (each
# node's `ckpt restore` in its namespace), and the job ends printing what
# an uninterrupted run prints.
#
#   mpi_multinode_test.py --ckpt PATH --workdir DIR
# Needs root, Open MPI (scripts/install-deps.sh), ip and nsenter; creates
# and always removes its two namespaces.
import os
import shutil
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app_env  # noqa: E402
import mpi_env  # noqa: E402
from app_env import fail, log, wait_for  # noqa: E402

RANKS = 4
ITERS = 200
PAUSE_US = 20000
NET = 10 + os.getpid() % 200  # 10.231.NET.0/24, per run
NODES = {"a": "10.231.%d.1" % NET, "b": "10.231.%d.2" % NET}
NS = {n: "ckpt-mpi-%s-%d" % (n, os.getpid()) for n in NODES}
# Each node's own host name (a UTS namespace kept by a bind mount on this
# file): Open MPI names its shared-memory files and session directory after
# the host, and the two nodes share /dev/shm and /tmp.
UTS = {n: "/run/ckpt-mpi-uts-%s-%d" % (n, os.getpid()) for n in NODES}
HOSTS = {n: "node-%s-%d" % (n, os.getpid()) for n in NODES}
_made, _uts_made = [], []


def sh(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if r.returncode != 0:
        fail("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


def ns_args(node):
    return ["--net=/run/netns/" + NS[node], "--uts=" + UTS[node]]


def in_ns(node, argv):
    return ["nsenter"] + ns_args(node) + argv


def make_nodes():
    mpi_env.own_hosts.extend(HOSTS.values())
    for n in NODES:
        sh("ip", "netns", "add", NS[n])
        _made.append(NS[n])
        sh("ip", "-n", NS[n], "link", "set", "lo", "up")
        open(UTS[n], "w").close()
        _uts_made.append(UTS[n])
        sh("unshare", "--uts=" + UTS[n], "hostname", HOSTS[n])
    sh("ip", "-n", NS["a"], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
       "netns", NS["b"])
    for n, addr in NODES.items():
        sh("ip", "-n", NS[n], "addr", "add", addr + "/24", "dev", "eth0")
        sh("ip", "-n", NS[n], "link", "set", "eth0", "up")


def remove_nodes():
    for ns in _made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for f in _uts_made:
        subprocess.run(["umount", f], capture_output=True)
        try:
            os.unlink(f)
        except OSError:
            pass


def write_agent(wd):
    """The ssh stand-in mpirun calls as `agent HOST COMMAND...`: runs the
    command in HOST's namespace, detached (a new session, not our child's
    child: it reparents to this driver, a subreaper), and returns at once,
    as ssh returns once sshd has started a daemonized command."""
    path = os.path.join(wd, "agent.sh")
    cases = "".join('  %s) ns="%s" ;;\n' % (addr, " ".join(ns_args(n)))
                    for n, addr in NODES.items())
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "while [ \"${1#-}\" != \"$1\" ]; do shift; done  # ssh options, if any\n"
                "host=$1; shift\n"
                "case $host in\n" + cases +
                "  *) echo \"agent: unknown node $host\" >&2; exit 1 ;;\n"
                "esac\n"
                "nsenter $ns setsid sh -c \"$*\" </dev/null "
                ">>%s 2>&1 &\n" % os.path.join(wd, "agent.log"))
    os.chmod(path, 0o755)
    return path


def write_barrier(wd):
    """The action script each node's dump runs: at network-lock it marks its
    node locked and waits (bounded) until every node is."""
    path = os.path.join(wd, "barrier.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "[ \"$CRTOOLS_SCRIPT_ACTION\" = network-lock ] || exit 0\n"
                "touch %s/locked.$NODE\n"
                "for i in $(seq 600); do\n"
                "  [ -e %s/locked.a ] && [ -e %s/locked.b ] && exit 0\n"
                "  sleep 0.05\n"
                "done\n"
                "echo \"barrier: node $NODE: the other node did not lock\" >&2\n"
                "exit 1\n" % (wd, wd, wd))
    os.chmod(path, 0o755)
    return path


def ns_inode(node):
    return os.stat("/run/netns/" + NS[node]).st_ino


def net_of(pid):
    try:
        return os.stat("/proc/%d/ns/net" % pid).st_ino
    except OSError:
        return None


def run_both(argvs, what):
    """Runs one command per node at the same time; fails naming the node."""
    res = {}

    def one(n):
        env = dict(os.environ, NODE=n)
        res[n] = subprocess.run(in_ns(n, argvs[n]), capture_output=True, text=True, env=env)
    ts = [threading.Thread(target=one, args=(n,)) for n in argvs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for n, r in sorted(res.items()):
        if r.returncode != 0:
            fail("%s on node %s: %s" % (what, n, (r.stderr.strip() or r.stdout.strip())[-1500:]))


def run(a, wd):
    make_nodes()
    mpi = mpi_env.MPIS["openmpi"]
    ring = mpi_env.build_ring(mpi, wd)
    hosts = os.path.join(wd, "hosts")
    with open(hosts, "w") as f:
        for addr in NODES.values():
            f.write("%s slots=2\n" % addr)
    agent = write_agent(wd)
    extra = ["--hostfile", hosts, "--mca", "plm_rsh_agent", agent, "--map-by", "node"]
    launch = mpi_env.MPIS["openmpi"]["run"]
    local = dict(mpi, run=in_ns("a", launch))

    want = mpi_env.reference(local, ring, RANKS, ITERS, wd, extra)
    log("an uninterrupted run over both nodes prints %r" % want.splitlines()[-1])
    app_env.kill_children()  # the reference's orted, if it lingers

    out_path = os.path.join(wd, "job.out")
    job = mpi_env.start(local, ring, RANKS, ITERS, PAUSE_US, out_path, wd, extra)
    try:
        wait_for(lambda: mpi_env.progress(out_path) >= 60, "the job under way on both nodes")
    except SystemExit:
        for f in (out_path, out_path + ".err", os.path.join(wd, "agent.log")):
            if os.path.exists(f):
                log("%s: %r" % (f, open(f).read()[-1500:]))
        raise
    roots = {"a": job.pid}
    b_ns = ns_inode("b")
    kids = [p for p in app_env.children_of(os.getpid()) if net_of(p) == b_ns]
    if len(kids) != 1:
        fail("want one process of node b started by the agent, found %s" % kids)
    roots["b"] = kids[0]
    for n, pid in roots.items():
        for p in [pid] + descendants(pid):
            mpi_env.track(p)  # orted's session directory is named after its pid
        log("node %s: %s (pid %d) and its ranks %s" %
            (n, open("/proc/%d/comm" % pid).read().strip(), pid, descendants(pid)))

    barrier = write_barrier(wd)
    imgs = {n: os.path.join(wd, "img-" + n) for n in NODES}
    run_both({n: [a.ckpt, "dump", "-t", str(roots[n]), "-D", imgs[n], "-o", "dump.log", "-v4",
                  "--tcp-established", "--action-script", barrier] for n in NODES},
             "dump")
    at = mpi_env.progress(out_path)
    if at >= ITERS:
        fail("the job had finished before the dump: nothing left to restore")
    app_env.kill_children()
    log("both nodes dumped at iteration %d (each locked before either dumped) and killed" % at)

    run_both({n: [a.ckpt, "restore", "-D", imgs[n], "-d", "-o", "restore.log", "-v4",
                  "--tcp-established"] for n in NODES}, "restore")
    log("both nodes restored")
    status = mpi_env.wait_exit(job.pid, 120)
    got = open(out_path).read()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        fail("the restored job ended with status %#x; its output ends %r, its stderr %r" %
             (status, got[-100:], open(out_path + ".err").read()[-1500:]))
    if got != want:
        fail("the restored job printed %r, an uninterrupted run %r" % (got[-200:], want[-200:]))
    # The daemon of node b ends with the job.
    wait_for(lambda: not os.path.exists("/proc/%d" % roots["b"]) or reaped(roots["b"]),
             "the end of node b's daemon")
    log("the restored job printed what an uninterrupted run prints: %r" % got.splitlines()[-1])
    log("PASS")


def reaped(pid):
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in app_env.children_of(p):
            out.append(c)
            todo.append(c)
    return out


def missing():
    m = mpi_env.missing("openmpi")
    if m:
        return m
    for tool in ("ip", "nsenter", "setsid", "unshare"):
        if not shutil.which(tool):
            return tool
    return None


def cleanup():
    remove_nodes()
    mpi_env.cleanup()


sys.exit(app_env.main("mpi_multinode_test", run, missing, cleanup))
