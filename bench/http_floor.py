"""The floor under any CPython boot server: a boot's HTTP with no logic, beside busybox httpd.

Issue 17 asks that a boot cost `netboot serve` no more CPU than dnsmasq + busybox
httpd. This bench separates the two halves of that question. Three servers
hand out the same four files per boot (an iPXE script, a kernel, an
initramfs, a client's initrd part) on loopback: busybox httpd (the peer's),
and two Python servers that do nothing a boot server could skip: parse the
request, answer, ``sendfile`` the file, keep the connection alive. One on
the stdlib's threaded ``http.server`` (netboot's HTTP design), one on
asyncio (the design the issue offers instead). Each boot is one curl with
four URLs on one connection (busybox closes it after each response, curl
opens the next). CPU is read from a cgroup per server (busybox forks a child
per connection), rounds alternate the servers so drift hits all three.

What is left of netboot's per-boot cost over this floor is its own work per
boot (DHCP, the boot window and its tokens, the stage timeline, rendering
the script and the client's initrd part): `bench/token_bench.py` measures
that in process.

    sudo .venv/bin/python bench/http_floor.py [--boots 200] [--rounds 3] [--json]

Needs root (cgroups), busybox and curl.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from boot_storm import CpuGroup, cgroup2_root

from netboot.lab.topology import signals_interrupt
from netboot.output import table

# What iPXE fetches in one boot: name and size (the lab's kernel, initramfs and initrd part)
FILES = {"boot.ipxe": 600, "vmlinuz": 7_800_000, "initramfs.img": 12_000_000,
         "client.img": 40_000}
PORTS = {"busybox httpd": 18081, "python threads": 18082, "python asyncio": 18083}
PARALLEL = 8  # boots at once
CURL_LIMIT = 60  # seconds for one boot's four files


class FileHandler(http.server.BaseHTTPRequestHandler):
    """The least a threaded boot server does per request: headers, then sendfile."""

    protocol_version = "HTTP/1.1"
    root = Path()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with (self.root / self.path.lstrip("/")).open("rb") as f:
            self.send_response(200)
            self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(f)


class ThreadedServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve_threads(root: Path, port: int) -> None:
    FileHandler.root = root
    ThreadedServer(("127.0.0.1", port), FileHandler).serve_forever()


def serve_asyncio(root: Path, port: int) -> None:
    """The same on asyncio: read the head, answer, ``loop.sendfile``, next request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode().lstrip("/")
                with (root / path).open("rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
                    await writer.drain()
                    await asyncio.get_running_loop().sendfile(writer.transport, f)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(main())


def server_argv(name: str, root: Path) -> list[str]:
    port = PORTS[name]
    if name == "busybox httpd":
        return ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(root)]
    kind = "threads" if name == "python threads" else "asyncio"
    return [sys.executable, __file__, "--serve", kind, str(root), str(port)]


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on port {port}") from None
            time.sleep(0.05)


def boot(port: int) -> None:
    urls = [f"http://127.0.0.1:{port}/{name}" for name in FILES]
    subprocess.run(["curl", "-sf", "--max-time", str(CURL_LIMIT),
                    *(arg for _ in urls for arg in ("-o", "/dev/null")), *urls], check=True)


def measure(name: str, root: Path, boots: int) -> float:
    """Milliseconds of CPU ``name`` spent per boot, over ``boots`` boots, PARALLEL at once."""
    group = CpuGroup(cgroup2_root(), name.replace(" ", "-"))
    proc = subprocess.Popen(server_argv(name, root), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        group.add(proc.pid)
        wait_listening(PORTS[name])
        boot(PORTS[name])  # warm: page cache, the server's first-request paths
        before = group.seconds()
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda _: boot(PORTS[name]), range(boots)))
        return (group.seconds() - before) / boots * 1000
    finally:
        group.kill()
        proc.wait()
        group.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="JSON for scripts.")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)  # kind, root, port
    args = parser.parse_args()
    if args.serve:
        kind, root, port = args.serve
        (serve_threads if kind == "threads" else serve_asyncio)(Path(root), int(port))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("needs root: each server's CPU is read from a cgroup of its own")
    with tempfile.TemporaryDirectory(prefix="nbfloor-") as tmp:
        root = Path(tmp)
        for name, size in FILES.items():
            (root / name).write_bytes(os.urandom(size))
        load = os.getloadavg()[0]
        runs: dict[str, list[float]] = {name: [] for name in PORTS}
        for n in range(args.rounds):
            for name in PORTS:
                runs[name].append(measure(name, root, args.boots))
                print(f"round {n + 1}: {name} {runs[name][-1]:.2f} ms a boot", file=sys.stderr)
    peer = statistics.median(runs["busybox httpd"])
    rows = [{"server": name, "cpu_ms_per_boot": round(statistics.median(ms), 2),
             "runs": [round(m, 2) for m in ms],
             "vs_busybox": round(statistics.median(ms) / peer, 2)} for name, ms in runs.items()]
    if args.json:
        print(json.dumps({"boots": args.boots, "load": round(load, 2), "servers": rows}))
    else:
        print(f"{args.boots} boots of {len(FILES)} files ({sum(FILES.values()) / 1e6:.1f} MB), "
              f"{PARALLEL} at once, median of {args.rounds} rounds, load {load:.2f}")
        print(table(["server", "CPU ms/boot", "runs", "vs busybox"],
                    [(r["server"], r["cpu_ms_per_boot"], " ".join(map(str, r["runs"])),
                      f"{r['vs_busybox']}x") for r in rows]))
    return 0


if __name__ == "__main__":
    with signals_interrupt():  # SIGTERM and SIGHUP too stop the server and remove its cgroup
        sys.exit(main())
