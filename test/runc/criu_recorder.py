#!/usr/bin/env python3
"""A stand-in for `criu swrk FD` that records what a runtime asks for.

runc runs `<criu> swrk 3` with one end of a SOCK_SEQPACKET socketpair as
fd 3 and speaks CRIU's RPC protocol over it (one protobuf message per
packet). This recorder answers VERSION (as CRIU 3.17, what runc needs),
and for any other request writes what it got to $CKPT_RUNC_RECORD (JSON:
the request's fields by name, plus this process's cgroups, mounts and
fds as the runtime prepared them) and answers success=false, so the
runtime stops there. It is a tool for docs/runc.md and the runc tests:
it decodes the wire format by hand (field numbers of CRIU's rpc.proto,
the protocol's public contract), needing no protobuf package.
"""
import json
import os
import socket
import sys

# criu_req / criu_opts field numbers (CRIU's rpc.proto).
REQ_TYPES = {1: "DUMP", 2: "RESTORE", 3: "CHECK", 4: "PRE_DUMP", 5: "PAGE_SERVER", 6: "NOTIFY",
             9: "FEATURE_CHECK", 10: "VERSION", 11: "WAIT_PID"}
OPTS = {1: "images_dir_fd", 2: "pid", 3: "leave_running", 4: "ext_unix_sk", 5: "tcp_established",
        6: "evasive_devices", 7: "shell_job", 8: "file_locks", 9: "log_level", 10: "log_file",
        11: "ps", 12: "notify_scripts", 13: "root", 14: "parent_img", 15: "track_mem",
        16: "auto_dedup", 17: "work_dir_fd", 18: "link_remap", 19: "veths", 20: "cpu_cap",
        21: "force_irmap", 22: "exec_cmd", 23: "ext_mnt", 24: "manage_cgroups", 25: "cg_root",
        26: "rst_sibling", 27: "inherit_fd", 28: "auto_ext_mnt", 29: "ext_sharing",
        30: "ext_masters", 31: "skip_mnt", 32: "enable_fs", 33: "unix_sk_ino",
        34: "manage_cgroups_mode", 35: "ghost_limit", 36: "irmap_scan_paths", 37: "external",
        38: "empty_ns", 39: "join_ns", 41: "cgroup_props", 42: "cgroup_props_file",
        43: "cgroup_dump_controller", 44: "freeze_cgroup", 45: "timeout",
        46: "tcp_skip_in_flight", 47: "weak_sysctls", 48: "lazy_pages", 49: "status_fd",
        50: "orphan_pts_master", 51: "config_file", 52: "tcp_close", 53: "lsm_profile"}
STRINGS = {10, 13, 14, 22, 31, 32, 36, 37, 41, 42, 43, 44, 51, 53}
BOOLS = {3, 4, 5, 6, 7, 8, 12, 15, 16, 18, 21, 24, 26, 28, 29, 30, 46, 47, 48, 50, 52}
PAIRS = {23: ("key", "val"), 27: ("key", "fd"), 25: ("ctrl", "path"), 19: ("if_in", "if_out"),
         39: ("ns", "ns_file")}
REPEATED = {19, 22, 23, 25, 27, 31, 32, 33, 36, 37, 39, 43}


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    """Yields (number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = int.from_bytes(b[i:i + 4], "little"), i + 4
        elif wt == 1:
            v, i = int.from_bytes(b[i:i + 8], "little"), i + 8
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


def decode_opts(b):
    out = {}
    for num, wt, v in fields(b):
        name = OPTS.get(num, "field_%d" % num)
        if num in PAIRS:
            sub = {}
            for n2, w2, v2 in fields(v):
                k = PAIRS[num][n2 - 1] if n2 <= 2 else "field_%d" % n2
                sub[k] = v2.decode() if w2 == 2 else v2
            v = sub
        elif num in STRINGS or (wt == 2 and num not in (11,)):
            v = v.decode(errors="replace")
        elif num in BOOLS:
            v = bool(v)
        elif wt == 0 and v >= 1 << 63:
            v -= 1 << 64
        if num in REPEATED:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


def enc_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def enc_field(num, v):
    if isinstance(v, (bytes, str)):
        v = v.encode() if isinstance(v, str) else v
        return enc_varint(num << 3 | 2) + enc_varint(len(v)) + v
    return enc_varint(num << 3) + enc_varint(int(v))


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return str(e)


def main():
    if len(sys.argv) < 3 or sys.argv[1] != "swrk":
        if "--version" in sys.argv[1:] or "-V" in sys.argv[1:]:
            print("Version: 3.17")
            return 0
        print("criu_recorder: only `swrk FD` is served", file=sys.stderr)
        return 1
    sk = socket.socket(fileno=int(sys.argv[2]))
    record = os.environ.get("CKPT_RUNC_RECORD")
    while True:
        msg = sk.recv(1 << 20)
        if not msg:
            return 0
        req = {}
        for num, _, v in fields(msg):
            if num == 1:
                req["type"] = REQ_TYPES.get(v, v)
            elif num == 2:
                req["opts"] = decode_opts(v)
            else:
                req["field_%d" % num] = v if isinstance(v, int) else v.hex()
        rtype = [k for k, n in REQ_TYPES.items() if n == req.get("type")] or [0]
        if req.get("type") == "VERSION":
            version = enc_field(1, 3) + enc_field(2, 17)
            sk.send(enc_field(1, 10) + enc_field(2, 1) + enc_field(10, version))
            continue
        if record:
            fds = {}
            for fd in sorted(os.listdir("/proc/self/fd"), key=int):
                try:
                    fds[fd] = os.readlink("/proc/self/fd/" + fd)
                except OSError:
                    pass
            req["criu_process"] = {"cgroup": read("/proc/self/cgroup").splitlines(),
                                   "mountinfo": read("/proc/self/mountinfo").splitlines(),
                                   "fds": fds, "cwd": os.getcwd(), "argv": sys.argv}
            with open(record, "a") as f:
                f.write(json.dumps(req, indent=1) + "\n")
        sk.send(enc_field(1, rtype[0]) + enc_field(2, 0) + enc_field(9, "criu_recorder: recorded"))
        return 0


if __name__ == "__main__":
    sys.exit(main())
