#!/bin/sh
# Let the venv import Ceph's Python bindings (Debian python3-rados, python3-rbd).
# They are C extensions built for Debian's python3 and exist on no package index, so
# the venv gets a symlink to each extension module and to nothing else of
# /usr/lib/python3/dist-packages (--system-site-packages would bring all of it).
set -eu
venv=$1; shift
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
for module in "$@"; do
    found=$(ls /usr/lib/python3/dist-packages/"$module".cpython-*.so 2>/dev/null | head -n 1)
    if [ -z "$found" ]; then
        echo "setup: /usr/lib/python3/dist-packages has no $module module (Debian python3-$module)" >&2
        exit 1
    fi
    ln -sf "$found" "$site/$(basename "$found")"
done
