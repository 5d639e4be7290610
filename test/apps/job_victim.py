#!/usr/bin/env python3
# An ordinary batch job for test/apps/job_test.py (it knows nothing of
# checkpoints): STEPS steps of work on 32 MiB of state plus a child
# process fed through a pipe, one progress line per step on stdout, then
# "RESULT ...": digests of the chain of steps and of the whole state, and
# the child's total. It checks itself at the end: the child's total must
# match the one it kept; a mismatch prints "BROKEN" and exits 1.
# Deterministic: every run with the same STEPS prints the same RESULT.
#
#   job_victim.py STEPS
import hashlib
import subprocess
import sys
import time

steps = int(sys.argv[1])
size = 32 << 20
state = bytearray(size)
chain = hashlib.sha256(b"start")
child = subprocess.Popen(
    [sys.executable, "-c",
     "import sys\n"
     "t = 0\n"
     "for line in sys.stdin:\n"
     "    t = (t * 31 + int(line)) % (1 << 61)\n"
     "print(t, flush=True)\n"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
mine = 0
for i in range(steps):
    d = chain.digest()
    off = int.from_bytes(d[:8], "little") % (size - 65536)
    state[off:off + 65536] = (d * 2048)[:65536]
    chain.update(bytes(state[off:off + 4096]))
    v = int.from_bytes(d[8:16], "little")
    child.stdin.write("%d\n" % v)
    child.stdin.flush()
    mine = (mine * 31 + v) % (1 << 61)
    print("step %d" % (i + 1), flush=True)
    time.sleep(0.01)
child.stdin.close()
total = int(child.stdout.read())
child.wait()
whole = hashlib.sha256(bytes(state)).hexdigest()
if total != mine:
    print("BROKEN: the child's total %d, mine %d" % (total, mine), flush=True)
    sys.exit(1)
print("RESULT %s %s %d" % (chain.hexdigest(), whole, total), flush=True)
