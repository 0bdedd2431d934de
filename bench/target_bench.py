"""Target benchmark: netboot's clone and reconcile beside the tools an admin uses by hand.

1. Root LUN clone of one golden image (ext4, random data inside): netboot's
   clone_file against coreutils `cp`, on an ext4 loop filesystem (sparse copy
   vs `cp --sparse=always`) and on an XFS reflink=1 loop filesystem (FICLONE
   vs `cp --reflink=always`): seconds (median of 3) and bytes newly allocated.
2. Targets for N clients (one LUN, ACL, CHAP + mutual CHAP; discovery CHAP: netboot
   binds the first 16 clients' accounts, as many as tgt's global target holds;
   tgt-admin takes only one incomingdiscoveryuser, and its `--update` fails on that
   existing account unless told `--ignore-errors`):
   netboot's apply on a fresh tgtd against tgt's own `tgt-admin` with the
   equivalent targets.conf (`-e` from empty, `--update ALL` with nothing to change).
3. Reconcile N clients from an empty tgtd, the same apply and plan two ways: through
   tgtd's management socket (netboot) and the old way, one `tgtadm` process per
   request (a runner local to this benchmark; it puts CHAP secrets in argv, which
   is acceptable only here, on a private tgtd). Both must leave tgtd holding the
   same targets. tgtd serves management requests one at a time in its main thread,
   so no client can finish before that thread has spent its CPU time on them:
   "tgtd cpu s" is that time in each reconcile (socket / tgtadm), "at most" the
   speed-up over tgtadm a client costing nothing would reach.

Needs root (loop devices, tgtd); a private tgtd on a 127.x portal and control
port; about a minute, plus the reconciles of part 3.

    sudo .venv/bin/python bench/target_bench.py [--clients 50] [--reconcile 200 1000]
        [--data-mib 128]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from unittest import mock

from netboot.output import table
from netboot.size import format_size
from netboot.storage.clone import clone_file
from netboot.target.model import Account, DesiredState, Lun, TargetError, TargetSpec
from netboot.target.tgt import DISCOVERY_ACCOUNTS_MAX, TgtBackend
from netboot.target.tgtd import forget_control_port, start_tgtd, stop_tgtd
from netboot.target.tgtmgmt import NO_LUN, NO_TID, Mode, Operation, Param, Request, call

AUTH = "iqn.2026-11.org.example"


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:2])}: {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout.strip()


def loop_fs(work: Path, fstype: str, size: str = "2G") -> tuple[Path, str]:
    image, mnt = work / f"{fstype}.fs", work / fstype
    sh("truncate", "-s", size, str(image))
    sh(*({"xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"], "ext4": ["mkfs.ext4", "-q"]}[fstype]),
       str(image))
    dev = sh("losetup", "--find", "--show", str(image))
    mnt.mkdir()
    sh("mount", dev, str(mnt))
    return mnt, dev


def golden(directory: Path, data_mib: int) -> Path:
    tree = directory / "tree"
    tree.mkdir()
    with open(tree / "data.bin", "wb") as f:
        for _ in range(data_mib):
            f.write(os.urandom(1 << 20))
    image = directory / "golden.img"
    with open(image, "wb") as f:
        f.truncate((data_mib + 256) << 20)
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-d", str(tree), str(image))
    return image


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bfree * st.f_frsize


def timed(copy: Callable[[Path], object], fs: Path) -> tuple[float, int]:
    """Median seconds of three copies, and bytes the last one allocated."""
    times, grew = [], 0
    for i in range(3):
        dst = fs / f"copy{i}.img"
        before = free(fs)
        began = time.perf_counter()
        copy(dst)
        os.sync()
        times.append(time.perf_counter() - began)
        grew = before - free(fs)
        dst.unlink()
    return statistics.median(times), grew


def clone_rows(work: Path, data_mib: int) -> list[tuple]:
    rows = []
    for fstype, peer_flag in (("ext4", "--sparse=always"), ("xfs", "--reflink=always")):
        fs, dev = loop_fs(work, fstype)
        try:
            src = golden(fs, data_mib)
            for who, copy in (
                ("netboot clone_file", lambda d, s=src: clone_file(s, d)),
                (f"cp {peer_flag}", lambda d, s=src, f=peer_flag: sh("cp", f, str(s), str(d))),
            ):
                seconds, grew = timed(copy, fs)
                rows.append((fstype, who, f"{seconds:.3f}", format_size(max(grew, 0))))
        finally:
            subprocess.run(["umount", str(fs)], check=False)
            subprocess.run(["losetup", "-d", dev], check=False)
    return rows


def specs(work: Path, n: int) -> list[TargetSpec]:
    out = []
    for i in range(n):
        lun = work / f"lun{i}.img"
        with open(lun, "wb") as f:
            f.truncate(64 << 20)
        name = f"bench{i:03d}"
        out.append(TargetSpec(
            iqn=f"{AUTH}:target:{name}", mac=f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
            luns=(Lun(1, str(lun)),), initiators=(f"{AUTH}:initiator:{name}",),
            incoming=Account(name, f"Secret{i:010d}"),
            outgoing=Account(f"{name}-target", f"Mutual{i:010d}")))
    return out


def targets_conf(path: Path, targets: list[TargetSpec]) -> None:
    # tgt-admin refuses a second incomingdiscoveryuser ("Option has a missing value")
    lines = [f"incomingdiscoveryuser {targets[0].incoming.user} {targets[0].incoming.secret}"]
    for t in targets:
        assert t.outgoing is not None
        lines += [f"<target {t.iqn}>", f"    backing-store {t.luns[0].path}",
                  f"    initiator-name {t.initiators[0]}",
                  f"    incominguser {t.incoming.user} {t.incoming.secret}",
                  f"    outgoinguser {t.outgoing.user} {t.outgoing.secret}", "</target>"]
    path.write_text("\n".join(lines) + "\n")


def reconcile_rows(work: Path, n: int) -> list[tuple]:
    port = random.randint(20000, 32000)
    portal = (IPv4Address(f"127.{random.randint(1, 254)}.0.{random.randint(2, 254)}"),
              random.randint(40000, 60000))
    targets = specs(work, n)
    conf = work / "targets.conf"
    targets_conf(conf, targets)
    desired = DesiredState(f"{AUTH}:target:", tuple(targets),
                           tuple(t.incoming for t in targets[:DISCOVERY_ACCOUNTS_MAX]))
    admin = ("tgt-admin", "-C", str(port), "-c", str(conf))
    backend = TgtBackend(port, work)
    tools: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        ("netboot apply", lambda: backend.apply(desired), lambda: backend.apply(desired)),
        ("tgt-admin", lambda: sh(*admin, "-e"),
         lambda: sh(*admin, "--update", "ALL", "--ignore-errors")),
    ]
    rows = []
    try:
        for who, first_run, again_run in tools:
            start_tgtd(port, portal)
            began = time.perf_counter()
            first_run()
            first = time.perf_counter() - began
            began = time.perf_counter()
            again_run()
            rows.append((who, n, f"{first:.2f}", f"{time.perf_counter() - began:.3f}"))
            stop_tgtd(port)
    finally:
        stop_tgtd(port)
        forget_control_port(port)
    return rows


# The old way: tgtadm's command line for a request (tgtadm.c main() read backwards).
TGTADM_MODES = {Mode.SYSTEM: "system", Mode.TARGET: "target", Mode.DEVICE: "logicalunit",
                Mode.PORTAL: "portal", Mode.ACCOUNT: "account"}
TGTADM_OPTIONS = {Param.PATH: "--backing-store", Param.TARGETNAME: "--targetname",
                  Param.INITIATOR_NAME: "--initiator-name", Param.USER: "--user"}


def tgtadm_argv(control_port: int, request: Request) -> list[str]:
    argv = ["tgtadm", "-C", str(control_port), "--lld", "iscsi",
            "--mode", TGTADM_MODES[request.mode], "--op", request.op.name.lower()]
    if request.tid != NO_TID:  # the discovery target's tid is tgtadm's default too
        argv += ["--tid", str(request.tid)]
    if request.lun != NO_LUN:
        argv += ["--lun", str(request.lun)]
    for key, value in request.params:
        argv += [TGTADM_OPTIONS[key], value]
    if request.secret is not None:
        argv += ["--password", request.secret]
    return argv + ["--outgoing"] * request.outgoing + ["--force"] * request.force


def tgtadm_call(control_port: int, request: Request, *, what: str,
                timeout: float = 30.0) -> str:
    """What netboot did before it spoke the socket: one tgtadm process per request."""
    done = subprocess.run(tgtadm_argv(control_port, request), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise TargetError(f"{what}: {done.stderr.strip().removeprefix('tgtadm: ')}")
    return done.stdout


def main_thread_cpu(pid: int) -> float:
    """CPU seconds, user and system, a process's main thread has used (proc(5) ``stat``)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # proc(5): fields 14 and 15, 1-based
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def socket_vs_tgtadm_rows(work: Path, counts: list[int]) -> list[tuple]:
    """Reconcile N clients from an empty tgtd through the socket, then one tgtadm per request."""
    port = random.randint(20000, 32000)
    portal = (IPv4Address(f"127.{random.randint(1, 254)}.0.{random.randint(2, 254)}"),
              random.randint(40000, 60000))
    rows = []
    try:
        for n in counts:
            targets = specs(work, n)
            desired = DesiredState(f"{AUTH}:target:", tuple(targets),
                                   tuple(t.incoming for t in targets[:DISCOVERY_ACCOUNTS_MAX]))
            seconds, busy, shown = [], [], []
            for transport in (call, tgtadm_call):
                pid = start_tgtd(port, portal)
                before = main_thread_cpu(pid)
                state = work / f"state-{n}-{transport.__name__}"
                state.mkdir()
                with mock.patch("netboot.target.tgt.call", transport):
                    began = time.perf_counter()
                    outcome = TgtBackend(port, state).apply(desired)
                    seconds.append(time.perf_counter() - began)
                busy.append(main_thread_cpu(pid) - before)
                if outcome.failed:
                    sys.exit(f"reconcile of {n} clients failed: {outcome.failed}")
                shown.append(call(port, Request(Mode.TARGET, Operation.SHOW), what="show"))
                stop_tgtd(port)
            if shown[0] != shown[1]:
                sys.exit(f"the two ways left different targets for {n} clients")
            rows.append((n, f"{seconds[0]:.2f}", f"{seconds[1]:.2f}",
                         f"{seconds[1] / seconds[0]:.1f}x", f"{busy[0]:.2f} / {busy[1]:.2f}",
                         f"{seconds[1] / busy[0]:.1f}x"))
    finally:
        stop_tgtd(port)
        forget_control_port(port)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--reconcile", type=int, nargs="*", default=[200],
                        help="client counts for the socket-against-tgtadm reconcile")
    parser.add_argument("--data-mib", type=int, default=128)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("target_bench: needs root (loop devices, tgtd)")
    with tempfile.TemporaryDirectory(prefix="netboot-target-bench-") as tmp:
        work = Path(tmp)
        print(f"clone of a golden image with {args.data_mib} MiB of data:")
        print(table(["filesystem", "tool", "seconds", "allocated"], clone_rows(work,
                                                                             args.data_mib)))
        print()
        print(f"targets for {args.clients} clients (LUN, ACL, CHAP, mutual and discovery CHAP):")
        print(table(["tool", "targets", "from empty s", "no change s"],
                    reconcile_rows(work, args.clients)))
        if args.reconcile:
            print()
            print("reconcile N clients from an empty tgtd, socket against one tgtadm per "
                  "request:")
            print(table(["targets", "socket s", "tgtadm s", "socket faster", "tgtd cpu s",
                         "at most"],
                        socket_vs_tgtadm_rows(work, args.reconcile)))


if __name__ == "__main__":
    main()
