#!/bin/sh
# The system user `netboot serve` runs its network part as (server.user; README
# "Threat model"): no home, no shell, no password, a group of its own.
set -eu
user=netboot
getent passwd "$user" >/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "setup: no user $user; run 'make setup' as root" >&2
    exit 1
fi
echo "setup: adding the system user $user"
adduser --system --group --no-create-home --home /nonexistent --shell /usr/sbin/nologin \
    --quiet "$user"
