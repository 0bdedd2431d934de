"""Which kernel module files an initramfs needs: requested names closed over ``modules.dep``.

Names are matched the way modprobe matches them: ``-`` and ``_`` are the same,
a name may be built into the kernel (``modules.builtin``), and a name may be an
alias of one or more modules (``crc32c`` is an alias of ``crc32c_intel``).
Dependencies come from the ``modules.dep`` that ``depmod`` wrote for the tree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from netboot.errors import NetbootError

_SUFFIX = re.compile(r"\.ko(\.(gz|xz|zst))?$")


class ModuleError(NetbootError):
    """The kernel's module tree is missing or unreadable."""


def module_name(path: str) -> str:
    """``kernel/drivers/scsi/sd_mod.ko`` -> ``sd_mod``; ``foo-bar.ko.xz`` -> ``foo_bar``."""
    return _SUFFIX.sub("", path.rsplit("/", 1)[-1]).replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``modules.dep`` as {name: (path, dependency paths)}."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            out[module_name(path)] = (path.strip(), tuple(deps.split()))
    return out


def parse_aliases(text: str) -> dict[str, tuple[str, ...]]:
    """The plain (wildcard-free) aliases of ``modules.alias`` as {alias: module names}."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "alias" and not set("*?[") & set(parts[1]):
            out.setdefault(parts[1].replace("-", "_"), []).append(parts[2].replace("-", "_"))
    return {k: tuple(v) for k, v in out.items()}


def parse_module_list(text: str) -> list[str]:
    """A module list file: one name per line, ``#`` comments, blank lines ignored."""
    names = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name.replace("-", "_"))
    return names


@dataclass(frozen=True)
class Resolution:
    """What a list of requested modules comes to in one kernel's tree."""

    load: tuple[str, ...]  # module names to modprobe, in the order requested
    paths: tuple[str, ...]  # the file of each name in ``load``
    files: tuple[str, ...]  # every module file needed (relative paths), sorted
    builtin: tuple[str, ...] = ()  # requested but built into the kernel
    missing: tuple[str, ...] = ()  # requested but not in this kernel at all
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> modules


@dataclass(frozen=True)
class ModuleTree:
    """The index of one ``lib/modules/<version>`` directory."""

    deps: dict[str, tuple[str, tuple[str, ...]]]
    builtin: frozenset[str]
    aliases: dict[str, tuple[str, ...]]

    @classmethod
    def read(cls, directory: Path) -> ModuleTree:
        try:
            deps = parse_modules_dep((directory / "modules.dep").read_text())
        except FileNotFoundError:
            raise ModuleError(f"{directory}: no modules.dep (run 'depmod -b ROOT VERSION', "
                              "or fetch the kernel again with 'netboot kernel fetch')") from None
        builtin_file = directory / "modules.builtin"
        builtin = builtin_file.read_text().split() if builtin_file.exists() else []
        alias_file = directory / "modules.alias"
        aliases = parse_aliases(alias_file.read_text()) if alias_file.exists() else {}
        return cls(deps, frozenset(module_name(p) for p in builtin), aliases)

    def resolve(self, requested: list[str]) -> Resolution:
        """The closure of ``requested`` over dependencies; unknown names are reported, not fatal.

        A name that is built in needs no file; a name that is neither a module
        nor built in but an alias stands for the modules it names.
        """
        load: list[str] = []
        builtin: list[str] = []
        missing: list[str] = []
        via_alias: dict[str, tuple[str, ...]] = {}
        for name in dict.fromkeys(n.replace("-", "_") for n in requested):
            if name in self.deps:
                load.append(name)
            elif name in self.builtin:
                builtin.append(name)
            elif name in self.aliases:
                targets = tuple(t for t in self.aliases[name] if t in self.deps)
                via_alias[name] = targets
                load.extend(t for t in targets if t not in load)
            else:
                missing.append(name)
        # depmod already lists the whole closure on each line; walking it anyway keeps a
        # hand-written modules.dep (or a future depmod that lists direct deps only) right.
        files: set[str] = set()
        todo = [self.deps[name][0] for name in load]
        while todo:
            path = todo.pop()
            if path not in files:
                files.add(path)
                todo.extend(self.deps.get(module_name(path), (path, ()))[1])
        load = list(dict.fromkeys(load))
        return Resolution(tuple(load), tuple(self.deps[n][0] for n in load), tuple(sorted(files)),
                          tuple(builtin), tuple(missing), via_alias)
