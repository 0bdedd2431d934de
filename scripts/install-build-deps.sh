#!/bin/sh
# Install the packages `make deb` builds with (debian/control's Build-Depends) that are
# missing: apt reads them from debian/control, so that list has one home. (Without dpkg-dev,
# dpkg-checkbuilddeps is missing too: build-dep brings it with build-essential.)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)  # absolute: apt takes a path for a directory
dpkg-checkbuilddeps "$repo/debian/control" 2>/dev/null && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "setup: missing build dependencies of the .deb; run 'make setup' as root" >&2
    exit 1
fi
echo "setup: installing the .deb's build dependencies (debian/control)"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q --no-install-recommends "$repo"
