#!/bin/bash
# `make deb`: build netboot's .deb into DIR (default dist/) with dpkg-buildpackage, from a copy
# of what the package is made of (dpkg-buildpackage writes into debian/ and beside the
# source: the checkout stays as it is). The build dependencies are debian/control's
# Build-Depends (scripts/install-build-deps.sh installs them).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$repo/dist}")
version=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/netboot-$version"
mkdir "$src"
tar -C "$repo" --exclude=__pycache__ -cf - pyproject.toml README.md netboot debian |
    tar -C "$src" -xf -
# The wheels Debian 12 lacks, hash-checked, so that dpkg-buildpackage itself runs offline.
/usr/bin/python3 -m pip --disable-pip-version-check --no-input download -q --no-deps \
    --only-binary=:all: --require-hashes -r "$src/debian/pypi-requirements.txt" \
    -d "$src/debian/pypi-wheels"
(cd "$src" && dpkg-buildpackage --build=binary --no-sign)
mkdir -p "$out"
cp "$work"/netboot_"$version"_all.deb "$out"/
echo "built $out/netboot_${version}_all.deb"
