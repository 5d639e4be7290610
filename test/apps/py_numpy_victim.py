# The victim of py_numpy_test.py, run by Debian's /usr/bin/python3: numpy
# matrix work in two threads (plus OpenBLAS's own), and a pipe to a child
# process that answers each number with its double. Everything it computes
# is checked against what it must be; progress goes to STATE (iterations
# per worker). On SIGTERM it stops, checks once more and prints PASS or
# FAIL with the reason.
import os
import signal
import subprocess
import sys
import threading

import numpy as np

state = sys.argv[1]
stop = threading.Event()
errors = []
counts = {"mat0": 0, "mat1": 0, "pipe": 0}
signal.signal(signal.SIGTERM, lambda *_: stop.set())

# The expected product, computed once: every later product must equal it.
rng = np.random.default_rng(1234)
a = rng.standard_normal((200, 200))
b = rng.standard_normal((200, 200))
want = a @ b
big = np.arange(4_000_000, dtype=np.float64)  # 32 MB that must come back intact
big_sum = float(big.sum())


def matrices(name):
    while not stop.is_set():
        if not np.array_equal(a @ b, want):
            errors.append(name + ": a product differs")
            return
        counts[name] += 1


child = subprocess.Popen([sys.executable, "-c",
                          "import sys\nfor l in sys.stdin: print(int(l) * 2, flush=True)"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def pipe():
    n = 0
    while not stop.is_set():
        n += 1
        child.stdin.write("%d\n" % n)
        child.stdin.flush()
        got = int(child.stdout.readline())
        if got != 2 * n:
            errors.append("pipe: %d answered %d" % (n, got))
            return
        counts["pipe"] = n


threads = [threading.Thread(target=matrices, args=(n,)) for n in ("mat0", "mat1")]
threads.append(threading.Thread(target=pipe))
for t in threads:
    t.start()
while not stop.wait(0.05):
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d\n" % (counts["mat0"], counts["mat1"], counts["pipe"]))
    os.rename(tmp, state)
for t in threads:
    t.join()
child.stdin.close()
child.wait()
if float(big.sum()) != big_sum:
    errors.append("the 32 MB array changed")
if child.returncode != 0:
    errors.append("the child ended with %d" % child.returncode)
print("FAIL: " + "; ".join(errors) if errors else "PASS", flush=True)
sys.exit(1 if errors else 0)
