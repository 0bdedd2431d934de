"""The inventory's WAL files survive other processes while this one holds connections.

`netboot serve` keeps one connection per thread; `netboot client add` (another
process) opens and closes its own. Were this process's SQLite locks lost, the
closing process would delete -wal and -shm under serve, whose next query then
fails with "disk I/O error" (found by the first lab boot).
"""

from __future__ import annotations

import subprocess
import sys

from netboot.inventory.store import Inventory

OPEN_AND_CLOSE = """
import sys
from pathlib import Path
from netboot.inventory.store import Inventory
inventory = Inventory(Path(sys.argv[1]))
inventory.clients()
inventory.close()
"""


def test_other_process_closing_leaves_wal_of_a_process_with_two_connections(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    first = Inventory(path)
    second = Inventory(path)  # serve opens one per thread
    first.clients()
    subprocess.run([sys.executable, "-c", OPEN_AND_CLOSE, str(path)], check=True)
    assert (tmp_path / "inventory.sqlite3-wal").exists()
    assert (tmp_path / "inventory.sqlite3-shm").exists()
    first.close()
    second.close()
