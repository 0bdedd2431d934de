#!/usr/bin/env bash
# `make demo`: the main job on a machine with no boot VLAN. Until `netboot lab`
# lands, it runs what exists (config, inventory, CLI) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
nb=.venv/bin/netboot
dir=lab-state/demo
rm -rf "$dir"
mkdir -p "$dir"
export NETBOOT_CONFIG=$dir/netboot.yaml
$nb init --interface nb-demo0 --subnet 198.18.0.0/24 --state-dir "$dir/state"
$nb config check
for i in 1 2 3; do $nb client add "52:54:00:de:00:0$i" >/dev/null; done
$nb client list
echo
echo "demo: the lab boot (QEMU clients PXE-booting to iSCSI roots) is not built yet;"
echo "demo: this ran what exists: a validated config and a client inventory in $dir."
