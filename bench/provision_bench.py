"""Provisioning N clients from one golden image: file store (reflink on XFS, sparse copy on
ext4) against RBD clones, side by side in one run (issue 14).

The golden image is a 2 GiB ext4 filesystem holding a generated tree of files
(``--data-mib`` of random data in files from 4 KiB to 8 MiB), made by ``mke2fs -d``.
Each store gets it through netboot's own import (``import_image``, timed), then N
clients through netboot's own provisioning path (``add_client`` with
``target.manage: false``: record, addresses, CHAP secrets, root; no tgtd), at
the image's own size by default so that no store grows a root (``--size`` larger
makes the file store run resize2fs per client, which the RBD store leaves to the
client's first boot).

Stores, each made by the bench and removed at its end (also on Ctrl-C or SIGTERM):
  xfs   file store on XFS (reflink=1) on a loop device: FICLONE
  ext4  file store on ext4 on a loop device: sparse copy (SEEK_DATA + copy_file_range)
  rbd   RBD store on a one-node Ceph cluster (netboot.lab.ceph, one BlueStore OSD on a
        sparse file, pool size 1): a clone of the image's version snapshot

Bytes newly allocated: for a file store the filesystem's used bytes (statvfs, after
sync) before and after; for RBD the pool's ``bytes_used`` from ``ceph df`` (admin,
inside the cluster's namespace), read once the mgr's figure has stopped moving.
Beside them, the sum of the store's own ``allocated()`` over the N roots: a file's
blocks (st_blocks, which counts blocks a reflink shares with its image as well), an
RBD clone's own objects (its parent's not counted); the store's metadata is left out.

Needs root (loop devices, network namespace); ext4 writes N copies of the data, so
the temporary directory's filesystem needs about N x data free (26 GiB at the defaults).

    sudo .venv/bin/python bench/provision_bench.py [--clients 100] [--data-mib 256]
        [--size SIZE] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

from netboot.configfile import parse_config
from netboot.inventory.store import Inventory
from netboot.lab import ceph
from netboot.lab.topology import signals_deferred, signals_interrupt
from netboot.output import emit_json, table
from netboot.provisioning.clients import add_client
from netboot.size import format_size, parse_size
from netboot.storage.backend import open_storage
from netboot.storage.images import import_image

IMAGE = "golden"
IMAGE_SIZE = 2 << 30
CONFIG = """\
server: {{address: 198.18.0.1, interface: nb0}}
dhcp: {{subnet: 198.18.0.0/16}}
target: {{manage: false}}
storage:
  state_dir: {state}
{storage}
"""
FILE_STORAGE = "  images_dir: {mount}/images\n  lun_dir: {mount}/luns\n"
RBD_STORAGE = ("  backend: rbd\n"
               "  rbd: {{pool: {pool}, ceph_conf: {conf}, client_id: {client_id}}}\n")
MKFS = {"xfs": ["mkfs.xfs", "-q", "-m", "reflink=1"], "ext4": ["mkfs.ext4", "-q"]}
SETTLE_S = 12.0  # the mgr's pool figures must hold this long (stats come every ~5 s)
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Result:
    """One store's run: the import, then N clients."""

    store: str
    method: str  # how the store made the roots (from add_client)
    clients: int
    import_s: float
    import_bytes: int
    total_s: float
    p50_s: float
    p95_s: float
    max_s: float
    new_bytes: int  # used bytes after the N clients minus before (filesystem or pool)
    roots_allocated: int  # sum of Storage.allocated() over the roots
    bytes_measured_by: str


def progress(line: str) -> None:
    """A progress line for people, on stderr: stdout holds only the results (--json)."""
    print(line, file=sys.stderr, flush=True)


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:2])}: {(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout.strip()


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method); the value itself for a single one."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def size_of(n: int) -> str:
    """format_size, which knows no negative counts (a pool may shrink between readings)."""
    return f"-{format_size(-n)}" if n < 0 else format_size(n)


def mac_of(i: int) -> str:
    return f"52:54:00:01:{i >> 8:02x}:{i & 0xFF:02x}"


# -- the golden image ------------------------------------------------------------------


def golden(work: Path, data_mib: int) -> Path:
    """A 2 GiB ext4 image holding ``data_mib`` MiB of files (sizes log-uniform from 4 KiB
    to 8 MiB, 100 to a directory, random contents from a fixed seed)."""
    rng = random.Random(14)
    tree = work / "tree"
    left, n = data_mib << 20, 0
    while left > 0:
        size = min(left, int(2 ** rng.uniform(12, 23)))
        directory = tree / f"d{n // 100:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{n:05d}").write_bytes(rng.randbytes(size))
        left -= size
        n += 1
    image = work / "golden.img"
    with open(image, "wb") as f:
        f.truncate(IMAGE_SIZE)
    sh("mke2fs", "-q", "-F", "-t", "ext4", "-L", IMAGE, "-d", str(tree), str(image))
    shutil.rmtree(tree)
    progress(f"golden image: {format_size(IMAGE_SIZE)} ext4, {n} files, "
             f"{format_size(os.stat(image).st_blocks * 512)} allocated")
    return image


# -- the stores ------------------------------------------------------------------------


def loop_fs(work: Path, fstype: str, size: int, cleanup: ExitStack) -> Path:
    """A fresh ``fstype`` on a loop device over a sparse file, mounted; undone by ``cleanup``."""
    backing, mount = work / f"{fstype}.fs", work / fstype
    with open(backing, "wb") as f:
        f.truncate(size)
    cleanup.callback(backing.unlink)
    sh(*MKFS[fstype], str(backing))
    device = sh("losetup", "--find", "--show", str(backing))
    cleanup.callback(subprocess.run, ["losetup", "-d", device], check=False)
    mount.mkdir()
    sh("mount", device, str(mount))
    cleanup.callback(subprocess.run, ["umount", str(mount)], check=False)
    return mount


def fs_used(mount: Path) -> int:
    os.sync()
    st = os.statvfs(mount)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def pool_used(cluster: ceph.Cluster) -> int:
    """The pool's ``bytes_used`` once ``ceph df`` has given the same figure for SETTLE_S
    (the OSD reports to the mgr every few seconds: a figure read at once may be old, and
    there is none before the mgr, started last by ceph.up, has its first report)."""
    argv = cluster.argv(["ceph", "--conf", str(cluster.cluster_conf), "df", "--format", "json"])
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        pools = json.loads(sh(*argv))["pools"]  # empty until the mgr has reported
        used = next((p["stats"]["bytes_used"] for p in pools if p["name"] == cluster.pool),
                    None)
        if used != last:
            last, since = used, time.monotonic()
        elif used is not None and time.monotonic() - since >= SETTLE_S:
            return used
        time.sleep(1)
    sys.exit(f"ceph df: pool {cluster.pool}'s used bytes did not settle in "
             f"{SETTLE_TIMEOUT_S:.0f} s")


def ceph_cluster(work: Path, cleanup: ExitStack) -> ceph.Cluster:
    directory = work / "ceph"
    cleanup.callback(ceph.down, directory)
    cluster = ceph.up(directory, say=progress)
    ceph.attach(cluster, None)
    return cluster


# -- one store's run -------------------------------------------------------------------


def run_store(name: str, storage_yaml: str, used: Callable[[], int], measured_by: str,
              image: Path, work: Path, clients: int, size: int | None) -> Result:
    """Import ``image``, then add ``clients`` clients from it, timing and measuring each."""
    state = work / f"state-{name}"
    config = parse_config(CONFIG.format(state=state, storage=storage_yaml), f"<{name}>")
    start = used()
    began = time.perf_counter()
    import_image(config, IMAGE, image)
    import_s = time.perf_counter() - began
    before = used()
    progress(f"{name}: image imported in {import_s:.2f} s; adding {clients} clients")
    times, methods = [], set()
    with Inventory(config.storage.database) as inventory:
        began = time.perf_counter()
        for i in range(clients):
            t = time.perf_counter()
            added = add_client(config, inventory, mac_of(i), image=IMAGE, size=size)
            times.append(time.perf_counter() - t)
            methods.add(added.method)
        total_s = time.perf_counter() - began
        hosts = [c.hostname for c in inventory.clients()]
    after = used()
    storage = open_storage(config)
    allocated = sum(storage.allocated(storage.root_location(h)) or 0 for h in hosts)
    progress(f"{name}: {clients} clients in {total_s:.2f} s")
    return Result(store=name, method=", ".join(sorted(methods)), clients=clients,
                  import_s=import_s, import_bytes=before - start, total_s=total_s,
                  p50_s=percentile(times, 50), p95_s=percentile(times, 95), max_s=max(times),
                  new_bytes=after - before, roots_allocated=allocated,
                  bytes_measured_by=measured_by)


def _run(args: argparse.Namespace, cleanup: ExitStack) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="netboot-provision-bench-"))
    cleanup.callback(shutil.rmtree, work, ignore_errors=True)
    need = (args.clients + 2) * ((args.data_mib + 64) << 20)
    if shutil.disk_usage(work).free < need:
        sys.exit(f"{work}: the ext4 store needs about {format_size(need)} free")
    image = golden(work, args.data_mib)
    results = []
    for fstype in ("xfs", "ext4"):
        mount = loop_fs(work, fstype, IMAGE_SIZE + need, cleanup)
        results.append(run_store(
            f"file, {fstype}", FILE_STORAGE.format(mount=mount), lambda m=mount: fs_used(m),
            "statvfs", image, work, args.clients, args.size))
    cluster = ceph_cluster(work, cleanup)
    results.append(run_store(
        "rbd", RBD_STORAGE.format(pool=cluster.pool, conf=cluster.conf,
                                  client_id=cluster.client_id),
        lambda: pool_used(cluster), "ceph df", image, work, args.clients, args.size))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--data-mib", type=int, default=256,
                        help="MiB of file data in the 2 GiB golden image")
    parser.add_argument("--size", type=parse_size, default=IMAGE_SIZE,
                        help="each root's size (default: the image's, so none is grown)")
    parser.add_argument("--json", action="store_true", help="JSON for scripts.")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: loop devices, mounts, a network namespace for Ceph")
    with signals_interrupt():
        cleanup = ExitStack()
        try:
            results = _run(args, cleanup)
        finally:
            with signals_deferred():
                cleanup.close()
    if args.json:
        emit_json([asdict(r) for r in results])
        return 0
    print(f"{args.clients} clients from one {format_size(IMAGE_SIZE)} image "
          f"({args.data_mib} MiB of files), roots of {format_size(args.size)}:")
    print(table(["store", "root made by", "import s", "import bytes", "total s",
                 "per client p50 / p95 / max s", "new bytes", "per client", "allocated() sum",
                 "bytes from"],
                [(r.store, r.method, f"{r.import_s:.2f}", size_of(r.import_bytes),
                  f"{r.total_s:.2f}", f"{r.p50_s:.3f} / {r.p95_s:.3f} / {r.max_s:.3f}",
                  size_of(r.new_bytes), size_of(r.new_bytes // r.clients),
                  format_size(r.roots_allocated), r.bytes_measured_by) for r in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
