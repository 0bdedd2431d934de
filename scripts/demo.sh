#!/usr/bin/env bash
# `make demo`: a lab boot end to end on this machine, then everything removed again.
# Needs root (network namespace, taps, tgtd). CLIENTS=N boots N clients; UEFI=1 uses OVMF;
# STORAGE=ceph keeps the image and roots on RBD, on a one-node Ceph cluster the lab makes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "demo: needs root (it creates a network namespace, taps and a tgtd)" >&2
    exit 1
fi
netboot=.venv/bin/netboot
trap '$netboot lab down' EXIT
$netboot lab up --clients "${CLIENTS:-1}" --storage "${STORAGE:-file}"
$netboot lab boot ${UEFI:+--uefi}
