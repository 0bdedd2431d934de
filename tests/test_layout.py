"""The package's shape, read from its imports with ``ast``: no cycles, a small ground floor, and
no import hidden inside a function without a comment saying why it is there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "netboot"
# The only modules at the top of netboot/: what every part may use and none of them owns.
GROUND_FLOOR = frozenset({
    "__init__", "__main__", "config", "configfile", "errors", "log", "templates",
    "names",  # names people type (MAC, host name, IQN, image): config, CLI and provisioning
    "size",  # sizes people type: config defaults, CLI options, image and LUN sizes
    "output",  # tables for people, JSON for scripts: the CLI and the lab's live board
    "threads",  # service threads that cannot die quietly: every service starts them, serve watches
    "counters",  # what services count, carried across serve's processes: all count, admin reads
    "arch",  # what differs between client architectures: config's paths, boot, initramfs, lab
})


def _module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the package that module ``name`` imports, at any depth in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            # importing a submodule runs its packages' __init__ too, but that is no dependency
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = _modules(root)
    return {name: _imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_package_imports_itself_round_a_circle():
    assert cycles(import_graph()) == []


def test_a_circle_of_imports_is_found(tmp_path):
    """The check above can fail: two modules importing each other inside functions are a circle."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.b import g  # late\n")
    (package / "b.py").write_text("from pkg import a\n")
    assert cycles(import_graph(package)) == [["pkg.a", "pkg.b"]]


def test_the_top_of_the_package_holds_only_the_ground_floor():
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top - GROUND_FLOOR == set(), "put these modules in the folder of their part"


def test_the_ground_floor_imports_nothing_above_it():
    graph = import_graph()
    floor = {f"netboot.{m}" for m in GROUND_FLOOR - {"__init__", "__main__"}}
    for module in floor:
        assert graph[module] <= floor, f"{module} imports {sorted(graph[module] - floor)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_an_import_inside_a_function_says_why_on_its_line(path):
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    line = lines[inner.lineno - 1]
                    assert "#" in line, f"{path}:{inner.lineno}: a late import needs a reason"


def test_no_two_parts_of_the_system_depend_on_each_other():
    """Folders too: a part (dhcp/, boot/, ...) and the ground floor form layers, not circles."""
    parts: dict[str, set[str]] = {}
    for module, imported in import_graph().items():
        part = ".".join(module.split(".")[:2])
        parts.setdefault(part, set()).update(".".join(m.split(".")[:2]) for m in imported)
    for part in parts:
        parts[part].discard(part)
    assert cycles(parts) == []
